"""Robustness curves of a trained run: its score while one modality, or all, is noised or dropped.

Two perturbations, each at the levels of :data:`analysis.robustness_curves.LEVELS`:

- ``noise``: Gaussian noise of sd ``level * scale`` added to a modality's raw
  values, where its scale is the sd of its values pooled over the run's own
  rollout states (:func:`modality_scales`); integer data (uint8 images) is
  rounded and clipped to its dtype's range afterwards.
- ``dropout``: each state's (or step's) presence flag of a modality turned off
  with probability ``level``, the policy's own absent path; for ``all``, every
  modality is dropped independently.

Level 0 is the unperturbed run, the same condition for every curve of a kind:
it is evaluated once and shared.

Offline curves (always): on the full policy's rollout states, the score of a
state is ``agreement`` (1 when the perturbed policy's greedy action equals the
unperturbed one's, else 0) for discrete actions, ``closeness`` (1 - the
distance between the two deterministic actions / the diagonal of the action
box, so also 1 when unchanged and 0 at most apart) for continuous ones. Only
the current observation is perturbed: a recurrent policy is fed the
unperturbed policy's state at each step. Online curves (with episodes):
closed-loop episodes on the evaluation worlds (seed 12345, as
:mod:`analysis.closed_loop`) with every step's observation perturbed; an
episode's score is its success where the world reports success, else its
return. Raw values throughout, not normalised against another benchmark.

Every score has a 95 % percentile bootstrap interval of its mean over the
states or episodes (`resamples` draws, seeded); every condition draws its
perturbation from its own generator, seeded by (seed, kind, target, level),
so a run and its reference see the same draws. With a reference run (e.g. a
late-fusion run of the same budget), the reference is measured the same way
(on its own rollout states, with the analysed run's scales) and each curve
gets its effective robustness against the reference's curve of the same kind
and modality.
"""

from __future__ import annotations

import math
import time
import zlib
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from analysis.robustness_curves import LEVELS, RobustnessCurve
from envs.episodes import EVAL_SEED
from perception.settings import ConfigError
from perception.spec import ActionSpec, presence_key

KINDS = ("noise", "dropout")
#: The target that perturbs every modality at once
ALL = "all"
#: Seed of the evaluation worlds of the online curves (as analysis.closed_loop's)
INTERVAL = 0.95
ONLINE_SCORES = ("success", "return")
SCORE_UNITS = {"agreement": "share of states with the unperturbed policy's greedy action",
               "closeness": "1 - |action - unperturbed action| / diagonal of the action box",
               "success": "closed-loop success rate", "return": "closed-loop episode return"}
X_LABELS = {"noise": "noise sd, in units of each modality's scale",
            "dropout": "dropout probability"}

Curves = dict[str, dict[str, RobustnessCurve]]
"""``curves[kind][target]``: one curve per kind and modality (or ``all``)."""


def modality_scales(obs: Mapping[str, np.ndarray], names: Sequence[str],
                    chunk: int = 1024) -> dict[str, float]:
    """Each modality's sd pooled over all its values in `obs` (float64, in chunks of states).

    A constant modality (sd 0, e.g. touch that never fired) gets scale 1.0: noise
    on it is then in its raw units, not nothing.
    """
    scales = {}
    for n in names:
        x = np.asarray(obs[n])
        rows = range(0, len(x), chunk)
        count = x.size
        mean = sum(float(x[i:i + chunk].astype(np.float64).sum()) for i in rows) / count
        var = sum(float(np.square(x[i:i + chunk].astype(np.float64) - mean).sum())
                  for i in rows) / count
        sd = math.sqrt(var)
        scales[n] = sd if sd > 0 and math.isfinite(sd) else 1.0
    return scales


def noised(obs: Mapping[str, np.ndarray], modalities: Sequence[str], level: float,
           scales: Mapping[str, float], rng: np.random.Generator) -> dict[str, np.ndarray]:
    """`obs` with N(0, (level * scale)^2) added to each of `modalities`, dtypes kept.

    Integer data is rounded and clipped to its dtype's range. Level 0 gives
    `obs`'s own arrays back and draws nothing.
    """
    out = dict(obs)
    if level == 0:
        return out
    for n in modalities:
        x = np.asarray(obs[n])
        y = x.astype(np.float64) + rng.normal(0.0, level * scales[n], x.shape)
        if np.issubdtype(x.dtype, np.integer):
            info = np.iinfo(x.dtype)
            y = np.clip(np.rint(y), info.min, info.max)
        out[n] = y.astype(x.dtype)
    return out


def dropped(obs: Mapping[str, np.ndarray], modalities: Sequence[str], p: float,
            rng: np.random.Generator) -> dict[str, np.ndarray]:
    """`obs` with each of `modalities` absent (flag off) in each state with probability `p`,
    independently; a flag already off stays off, a missing one is taken as on. Level 0
    gives `obs`'s own arrays back and draws nothing."""
    out = dict(obs)
    if p == 0:
        return out
    for n in modalities:
        batch = len(obs[n])
        flag = np.asarray(obs.get(presence_key(n), np.ones(batch, bool)), bool).reshape(batch)
        out[presence_key(n)] = flag & ~(rng.random(batch) < p)
    return out


def perturbed(obs: Mapping[str, np.ndarray], kind: str, modalities: Sequence[str],
              level: float, scales: Mapping[str, float], rng: np.random.Generator
              ) -> dict[str, np.ndarray]:
    """:func:`noised` or :func:`dropped` by `kind`."""
    if kind == "noise":
        return noised(obs, modalities, level, scales, rng)
    if kind == "dropout":
        return dropped(obs, modalities, level, rng)
    raise ValueError(f"kind={kind!r} is unknown; choose one of {', '.join(KINDS)}")


def condition_rng(seed: int, kind: str, target: str, level: float) -> np.random.Generator:
    """The generator of one condition's draws: the same for a run and its reference."""
    return np.random.default_rng([seed, KINDS.index(kind), zlib.crc32(target.encode()),
                                  round(level * 1000)])


def bootstrap_ci(samples: np.ndarray, resamples: int, seed: int, level: float = INTERVAL
                 ) -> tuple[float, float]:
    """Percentile interval of the mean of `samples` (states or episodes), seeded: every
    curve of as many samples is resampled alike."""
    x = np.asarray(samples, np.float64)
    if len(x) < 2:
        raise ValueError(f"{len(x)} sample(s): an interval needs at least 2 states or episodes")
    means = x[np.random.default_rng(seed).integers(0, len(x), (resamples, len(x)))].mean(1)
    lo, hi = np.quantile(means, [(1 - level) / 2, 1 - (1 - level) / 2])
    return float(lo), float(hi)


def _targets(names: Sequence[str], targets: Sequence[str] | None) -> tuple[str, ...]:
    targets = (*names, ALL) if targets is None else tuple(targets)
    unknown = [t for t in targets if t != ALL and t not in names]
    if unknown:
        raise ValueError(f"targets {unknown} are not modalities of the run; choose among "
                         f"{', '.join(names)} or {ALL!r}")
    return targets


def _check_levels(levels: Sequence[float], kinds: Sequence[str]) -> None:
    if not levels or levels[0] != 0:
        raise ValueError(f"levels {list(levels)} must start at 0 (the unperturbed run)")
    bad = [k for k in kinds if k not in KINDS]
    if bad:
        raise ValueError(f"kinds {bad} are unknown; choose among {', '.join(KINDS)}")
    if "dropout" in kinds and max(levels) > 1:
        raise ValueError(f"levels {list(levels)}: a dropout probability is at most 1")


def state_score(action_spec: ActionSpec, run: str
                ) -> tuple[str, Callable[[np.ndarray, np.ndarray], np.ndarray]]:
    """The offline score's name and ``score(actions, unperturbed actions) -> (N,)``."""
    if action_spec.kind == "discrete":
        return "agreement", lambda a, full: (a == full).astype(np.float64)
    size = int(np.prod(action_spec.shape))
    low = np.broadcast_to(np.asarray(action_spec.low, np.float64), (size,))
    high = np.broadcast_to(np.asarray(action_spec.high, np.float64), (size,))
    diagonal = float(np.linalg.norm(high - low))
    if not (math.isfinite(diagonal) and diagonal > 0):
        raise ConfigError(f"run {run} acts in an unbounded continuous space (low {low.tolist()}, "
                          f"high {high.tolist()}); the offline closeness needs finite bounds")

    def closeness(a: np.ndarray, full: np.ndarray) -> np.ndarray:
        d = np.linalg.norm((a - full).reshape(len(a), -1).astype(np.float64), axis=1)
        return 1.0 - d / diagonal

    return "closeness", closeness


def _sweep(clean: np.ndarray,
           measure: Callable[[str, Sequence[str], float, np.random.Generator], np.ndarray],
           names: Sequence[str], levels: Sequence[float], kinds: Sequence[str],
           targets: Sequence[str], resamples: int, seed: int) -> Curves:
    """Every curve of the grid: level 0 is `clean` (the per-sample scores unperturbed,
    shared), each other point ``measure(kind, modalities, level, rng)``'s per-sample
    scores with the condition's own generator; means with bootstrap intervals."""
    clean_ci = bootstrap_ci(clean, resamples, seed)
    curves: Curves = {}
    for kind in kinds:
        for target in targets:
            mods = tuple(names) if target == ALL else (target,)
            scores, ci = [float(clean.mean())], [clean_ci]
            for level in levels[1:]:
                got = measure(kind, mods, level, condition_rng(seed, kind, target, level))
                scores.append(float(got.mean()))
                ci.append(bootstrap_ci(got, resamples, seed))
            curves.setdefault(kind, {})[target] = RobustnessCurve(
                target, kind, [float(x) for x in levels], scores, ci)
    return curves


@torch.no_grad()
def _actions(policy: nn.Module, obs: Mapping[str, np.ndarray], h: np.ndarray | None,
             names: Sequence[str]) -> np.ndarray:
    keys = [k for k in obs if k in names or k in {presence_key(m) for m in names}]
    x = {k: torch.as_tensor(np.asarray(obs[k])) for k in keys}
    hx = None if h is None else torch.as_tensor(np.asarray(h, np.float32))
    return policy(x, hx)[0].numpy()


def offline_curves(policy: nn.Module, obs: Mapping[str, np.ndarray], h: np.ndarray | None,
                   names: Sequence[str], scales: Mapping[str, float],
                   action_spec: ActionSpec, *, run: str = "", levels: Sequence[float] = LEVELS,
                   kinds: Sequence[str] = KINDS, targets: Sequence[str] | None = None,
                   resamples: int = 1000, seed: int = 0, chunk: int = 256
                   ) -> tuple[str, Curves]:
    """The offline score's name and its curves on the N states of `obs`.

    Args:
        policy: a ``DeterministicPolicy``: ``forward(obs, h) -> (action, head, ..., h)``.
        obs: (N, ...) raw observations (the full policy's rollout states).
        h: (N, H) recurrent state fed at each state (the unperturbed policy's), or None.
        run: the run's name, for errors.
        targets: the modalities (and/or ``all``) to perturb; None = each and all.
        chunk: states per model call.
    """
    names = tuple(names)
    targets = _targets(names, targets)
    _check_levels(levels, kinds)
    score_name, score = state_score(action_spec, run)
    n = len(obs[names[0]])
    arrays = {k: np.asarray(v) for k, v in obs.items()
              if k in names or k in {presence_key(m) for m in names}}
    parts = [np.arange(lo, min(lo + chunk, n)) for lo in range(0, n, chunk)]

    def hs(idx: np.ndarray) -> np.ndarray | None:
        return None if h is None else np.asarray(h)[idx]

    full = np.concatenate([_actions(policy, {k: v[i] for k, v in arrays.items()}, hs(i), names)
                           for i in parts])

    def measure(kind: str, mods: Sequence[str], level: float, rng: np.random.Generator
                ) -> np.ndarray:
        acts = np.concatenate([
            _actions(policy, perturbed({k: v[i] for k, v in arrays.items()}, kind, mods,
                                       level, scales, rng), hs(i), names)
            for i in parts])
        return score(acts, full)

    return score_name, _sweep(score(full, full), measure, names, levels, kinds, targets,
                              resamples, seed)


def online_curves(trained: Any, names: Sequence[str], scales: Mapping[str, float],
                  episodes: int, *, levels: Sequence[float] = LEVELS,
                  kinds: Sequence[str] = KINDS, targets: Sequence[str] | None = None,
                  resamples: int = 1000, seed: int = 0, num_envs: int = 32,
                  score: str | None = None) -> tuple[str, Curves]:
    """The online score's name and its closed-loop curves, `episodes` greedy episodes per
    point (evaluation worlds, seed :data:`EVAL_SEED`; level 0 run once for all curves).

    Args:
        trained: an ``agent.trained.Trained`` run.
        seed: seeds the perturbations' draws and the bootstrap (not the worlds).
        score: ``success`` or ``return``; None = success where the world reports it,
            else return.
    """
    names = tuple(names)
    targets = _targets(names, targets)
    _check_levels(levels, kinds)

    def per_episode(perturb: Callable | None) -> dict[str, list[float]]:
        return trained.evaluate(episodes, num_envs, EVAL_SEED, deterministic=True,
                                per_episode=True, perturb=perturb)["per_episode"]

    first = per_episode(None)
    score_name = score or ("success" if "success" in first else "return")
    if score_name not in ONLINE_SCORES or score_name not in first:
        raise ValueError(f"score={score_name!r}: choose one of {', '.join(ONLINE_SCORES)} "
                         f"that the world reports ({', '.join(sorted(first))})")

    def measure(kind: str, mods: Sequence[str], level: float, rng: np.random.Generator
                ) -> np.ndarray:
        def perturb(obs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
            return perturbed(obs, kind, mods, level, scales, rng)

        return np.asarray(per_episode(perturb)[score_name], np.float64)

    return score_name, _sweep(np.asarray(first[score_name], np.float64), measure, names,
                              levels, kinds, targets, resamples, seed)


def rollout_states(trained: Any, states: int, worlds: int, seed: int, expert: bool = False
                   ) -> tuple[dict[str, np.ndarray], np.ndarray | None, np.ndarray | None]:
    """`states` states of `trained`'s own rollouts (sampled actions, seeded), the
    recurrent state fed at each and, with `expert`, the world's expert's action there
    (None without one), as ``sensorium analyze`` records them."""
    from deploy.export.rollouts import record_rollout

    worlds = min(worlds, states)
    rollout = record_rollout(trained.deployable(), trained.policy, trained.obs_spec,
                             trained.setup.env, worlds, math.ceil(states / worlds), seed,
                             trained.policy.hidden_size, expert=expert)
    obs, h = rollout.flat()
    actions = rollout.flat_expert()
    return ({k: v[:states] for k, v in obs.items()}, None if h is None else h[:states],
            None if actions is None else actions[:states])


def check_reference(trained: Any, reference: Any) -> None:
    """ConfigError unless `reference` reads the same modalities and acts in the same kind
    of action space as `trained` (its curves are compared one by one)."""
    mine, theirs = list(trained.obs_spec.names), list(reference.obs_spec.names)
    if set(mine) != set(theirs):
        raise ConfigError(f"reference={reference.run_dir} reads modalities {theirs}, the run "
                          f"{trained.run_dir} reads {mine}; a reference must read the same "
                          "ones (e.g. the same env with another fusion)")
    if trained.action_spec.kind != reference.action_spec.kind:
        raise ConfigError(f"reference={reference.run_dir} acts in a "
                          f"{reference.action_spec.kind} space, the run {trained.run_dir} in a "
                          f"{trained.action_spec.kind} one; their scores do not compare")


def _dicts(curves: Curves, reference: Curves | None) -> dict[str, dict[str, dict]]:
    return {k: {t: c.to_dict(None if reference is None else reference[k][t])
                for t, c in per.items()} for k, per in curves.items()}


def robustness(trained: Any, obs: Mapping[str, np.ndarray], h: np.ndarray | None,
               names: Sequence[str], *, episodes: int = 0, resamples: int = 1000,
               seed: int = 0, reference: Any | None = None, worlds: int = 32,
               levels: Sequence[float] = LEVELS, kinds: Sequence[str] = KINDS,
               targets: Sequence[str] | None = None, num_envs: int = 32,
               online_score: str | None = None) -> dict[str, Any]:
    """A run's robustness curves, JSON-ready (see the module's docstring for the method).

    Args:
        trained: an ``agent.trained.Trained`` run.
        obs, h: its rollout states (raw observations) and recurrent states (or None).
        names: its modalities.
        episodes: closed-loop episodes per point of the online curves; 0 = offline only.
        reference: another ``Trained`` run with the same modalities, measured alike on
            `len(obs)` states of its own rollouts over `worlds` worlds (seed `seed`).
        levels, kinds, targets: the grid; the defaults are every level of LEVELS, both
            kinds, each modality and ``all``.
        online_score: ``success`` or ``return``; None = success where the world
            reports it, else return.

    Returns:
        ``levels``, ``seed``, ``eval_seed``, ``resamples``, ``interval``, ``states``,
        ``episodes``, ``scales`` (per modality), ``score`` (``{"offline": name,
        "online": name}``), ``score_units``, ``offline`` and (with episodes) ``online``
        as ``[kind][target] = RobustnessCurve.to_dict(reference curve)`` (modality,
        kind, levels, scores, ci, area and, with a reference, effective_robustness),
        ``reference`` (None, or its run, offline and online curves) and ``seconds``.
    """
    t0 = time.perf_counter()
    names = tuple(names)
    run = str(trained.run_dir)
    if reference is not None:
        check_reference(trained, reference)
    grid = {"levels": levels, "kinds": kinds, "targets": targets, "resamples": resamples,
            "seed": seed}
    scales = modality_scales(obs, names)
    offline_score, offline = offline_curves(trained.deployable(), obs, h, names, scales,
                                            trained.action_spec, run=run, **grid)
    t1 = time.perf_counter()
    score = {"offline": offline_score}
    online = None
    if episodes:
        score["online"], online = online_curves(trained, names, scales, episodes,
                                                num_envs=num_envs, score=online_score, **grid)
    t2 = time.perf_counter()
    ref_offline = ref_online = None
    ref_out = None
    if reference is not None:
        ref_obs, ref_h, _ = rollout_states(reference, len(obs[names[0]]), worlds, seed)
        _, ref_offline = offline_curves(reference.deployable(), ref_obs, ref_h, names, scales,
                                        reference.action_spec, run=str(reference.run_dir),
                                        **grid)
        ref_out = {"run": str(reference.run_dir), "env_steps": reference.step,
                   "offline": _dicts(ref_offline, None)}
        if episodes:
            try:
                _, ref_online = online_curves(reference, names, scales, episodes,
                                              num_envs=num_envs, score=score["online"], **grid)
            except ValueError as e:
                raise ConfigError(f"reference={reference.run_dir}: {e}; the run {run} is "
                                  f"scored by {score['online']}: use a reference trained on "
                                  "the same env") from e
            ref_out["online"] = _dicts(ref_online, None)
    out: dict[str, Any] = {
        "levels": [float(x) for x in levels], "seed": seed, "eval_seed": EVAL_SEED,
        "resamples": resamples, "interval": INTERVAL, "states": len(obs[names[0]]),
        "episodes": episodes, "scales": scales, "score": score,
        "score_units": {k: SCORE_UNITS[v] for k, v in score.items()},
        "offline": _dicts(offline, ref_offline)}
    if online is not None:
        out["online"] = _dicts(online, ref_online)
    out["reference"] = ref_out
    out["seconds"] = {"offline": t1 - t0, "online": t2 - t1,
                      "reference": time.perf_counter() - t2}
    return out


def write_plots(result: Mapping[str, Any], out: Path, name: str) -> dict[str, Path]:
    """One PNG per section (offline, online) and kind: a line per modality and ``all``
    (with its area) and, with a reference, the reference's ``all``; the paths by key
    ``robustness_<section>_<kind>``."""
    from deploy.plot import curves_png

    paths = {}
    for section in ("offline", "online"):
        for kind, per in result.get(section, {}).items():
            series = {f"{t} (area {c['area']:.3f})": (c["levels"], c["scores"],
                                                      *zip(*c["ci"])) for t, c in per.items()}
            ref = (result.get("reference") or {}).get(section, {}).get(kind, {}).get(ALL)
            if ref is not None:
                series[f"reference all (area {ref['area']:.3f})"] = (
                    ref["levels"], ref["scores"], *zip(*ref["ci"]))
            key = f"robustness_{section}_{kind}"
            paths[key] = curves_png(
                series, Path(out) / f"{key}.png",
                f"{section} robustness to {kind}: {name}, "
                f"{round(100 * result['interval'])} % bootstrap intervals, seed {result['seed']}",
                X_LABELS[kind], f"{result['score'][section]}: {result['score_units'][section]}")
    return paths
