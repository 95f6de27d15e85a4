"""``sensorium analyze``: a trained run's modality contributions, written as a report folder.

The states are the full policy's own (its rollouts on its world, sampled
actions, seeded); every coalition of its modalities is evaluated on all of
them in batched calls (:mod:`analysis.coalitions`). From those decisions:
the Shapley values and pairwise interaction indices of each offline value
function with bootstrap intervals over the states (:mod:`analysis.shapley`;
exact up to 6 modalities, sampled orders above), and each state's
interaction type per pair (:mod:`analysis.interaction_types`). From the
encoder features: the PID of each pair about the policy's and the expert's
action (:mod:`analysis.pid_of_run`). Then the robustness curves
(:mod:`analysis.robustness_run`) and, with ``episodes``, the closed-loop
values of every coalition (:mod:`analysis.closed_loop`). Written:
``analysis.json``, ``analysis.md`` (what a person reads) and the PNGs.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import numpy as np

from analysis.closed_loop import ONLINE_VALUES, online_values
from analysis.coalitions import OFFLINE_VALUES, coalition_logits, values_of_logits
from analysis.interaction_types import interaction_types
from analysis.pid_of_run import pid_report
from analysis.robustness_run import check_reference, robustness, rollout_states, write_plots
from analysis.settings import AnalyzeSettings
from analysis.shapley import (
    MAX_EXACT,
    Coalition,
    ShapleyResult,
    sampled_orders,
    shapley_by_permutations,
    shapley_of_samples,
    visited_coalitions,
)
from analysis.summary import summary_markdown
from perception.settings import ConfigError

VALUE_UNITS = {"agreement": "share of states with the full policy's greedy action",
               "neg_kl": "-KL(full || coalition) of the action distributions, nats",
               "success": "closed-loop success rate", "return": "closed-loop episode return",
               "spl": "closed-loop SPL"}


def dropout_warning(run_settings: Any, names: tuple[str, ...]) -> str | None:
    """A warning when the run never saw one of its modalities `names` absent in training
    (per step or per episode, after the per-modality overrides), else None."""
    def never_dropped(m: str) -> bool:
        step = run_settings.modality_dropout_of.get(m, run_settings.modality_dropout)
        episode = run_settings.episode_dropout_of.get(m, run_settings.episode_dropout)
        return step <= 0 and episode <= 0

    never = [m for m in names if never_dropped(m)]
    if not never:
        return None
    return (f"this run was trained without modality dropout of {', '.join(never)}: a "
            "coalition that lacks one of them is off-distribution for its policy, so the "
            "values say what the policy does when that sensor is gone, not only what the "
            "sensor carries; compare with a run trained with dropout")


def _contributions(per_sample: dict, names: tuple[str, ...], settings: AnalyzeSettings,
                   paired: bool) -> ShapleyResult:
    """Exact Shapley values (and interaction indices) up to MAX_EXACT modalities; above,
    the sampled orders' estimate of the mean value (no interaction indices)."""
    if len(names) <= MAX_EXACT:
        return shapley_of_samples(per_sample, names, settings.resamples, seed=settings.seed,
                                  paired=paired)
    return shapley_by_permutations(lambda s: float(np.mean(per_sample[s])), names,
                                   settings.permutations, settings.seed)


def _subsets(names: tuple[str, ...], settings: AnalyzeSettings) -> list[Coalition] | None:
    """The coalitions to evaluate: all of them up to MAX_EXACT modalities; above, those
    the sampled orders visit and those the interaction types need."""
    if len(names) <= MAX_EXACT:
        return None
    orders = sampled_orders(len(names), settings.permutations, settings.seed)
    out = visited_coalitions(names, orders)
    for i, a in enumerate(names):
        for b in names[i + 1:]:
            base = frozenset(names) - {a, b} if settings.context == "rest" else frozenset()
            out += [base, base | {a}, base | {b}, base | {a, b}]
    return list(dict.fromkeys(out))


def offline_analysis(policy: Any, obs: dict[str, np.ndarray], names: tuple[str, ...],
                     h: np.ndarray | None, settings: AnalyzeSettings
                     ) -> tuple[dict[str, ShapleyResult], dict[str, Any],
                                dict[Coalition, np.ndarray]]:
    """The offline values' Shapley results, the interaction types and the coalitions'
    logits of `policy` (a DeterministicPolicy) on the states `obs`."""
    logits = coalition_logits(policy, obs, names, h, settings.removal, settings.seed,
                              subsets=_subsets(names, settings))
    values = values_of_logits(logits, names)
    results = {v: _contributions(values[v], names, settings, paired=True)
               for v in OFFLINE_VALUES}
    types = interaction_types(logits, names, settings.context, settings.threshold,
                              settings.resamples, settings.seed)
    return results, types, logits


def analyze(settings: AnalyzeSettings) -> dict[str, Any]:
    """The report's content (also written to the report folder; see :func:`write`)."""
    from agent.trained import load_trained
    settings.validate()
    seconds: dict[str, float] = {}
    t = time.perf_counter()
    trained = load_trained(Path(settings.run))
    names = tuple(trained.obs_spec.names)
    if trained.action_spec.kind != "discrete":
        raise ConfigError(f"run {settings.run} acts in a continuous space; the offline values "
                          "(agreement, KL) are defined for discrete actions only")
    reference = _reference(settings, trained)
    policy = trained.deployable()
    obs, h, expert = rollout_states(trained, settings.states, settings.worlds, settings.seed,
                                    expert=True)
    seconds["rollout"] = time.perf_counter() - t

    t = time.perf_counter()
    results, types, logits = offline_analysis(policy, obs, names, h, settings)
    seconds["coalitions"] = time.perf_counter() - t

    t = time.perf_counter()
    actions = logits[frozenset(names)].argmax(-1)
    pid = pid_report(policy, obs, names, actions, expert, clusters=settings.clusters or None,
                     shuffles=settings.shuffles, resamples=settings.pid_resamples,
                     seed=settings.seed)
    seconds["pid"] = time.perf_counter() - t

    t = time.perf_counter()
    curves = robustness(trained, obs, h, names, episodes=settings.episodes,
                        resamples=settings.resamples, seed=settings.seed, reference=reference)
    seconds["robustness"] = time.perf_counter() - t

    t = time.perf_counter()
    if settings.episodes and (not settings.values
                              or set(settings.values) & set(ONLINE_VALUES)):
        online = online_values(trained, names, settings.episodes,
                               subsets=_subsets(names, settings))
        results.update({v: _contributions(per, names, settings, paired=False)
                        for v, per in online.items()})
    seconds["closed_loop"] = time.perf_counter() - t
    if settings.values:
        results = {v: r for v, r in results.items() if v in settings.values}
    warnings = [w for w in [dropout_warning(trained.setup.run, names)] if w]
    return {
        "run": str(settings.run), "env_steps": trained.step, "modalities": list(names),
        "removal": settings.removal, "states": settings.states, "seed": settings.seed,
        "resamples": settings.resamples, "interval": 0.95, "warnings": warnings,
        "shapley_exact": len(names) <= MAX_EXACT,
        "permutations": None if len(names) <= MAX_EXACT else settings.permutations,
        "shapley": {v: {m: {"value": r.values[m], "ci": list(r.ci[m])} for m in names}
                    for v, r in results.items()},
        "interaction_index": {v: {p: {"value": x, "ci": list(r.interaction_ci[p])}
                                  for p, x in r.interaction.items()}
                              for v, r in results.items()},
        "coalition_values": {v: r.coalition_values for v, r in results.items()},
        "efficiency_gap": {v: r.efficiency_gap for v, r in results.items()},
        "value_units": {v: VALUE_UNITS[v] for v in results},
        "interaction_types": types,
        "pid": pid,
        "robustness": curves,
        "episodes": settings.episodes,
        "seconds": seconds,
    }


def _reference(settings: AnalyzeSettings, trained: Any) -> Any:
    """The reference run of effective robustness (None without one), checked before any
    work: the same modalities and kind of actions as `trained`."""
    from agent.trained import load_trained

    if not settings.reference:
        return None
    reference = load_trained(Path(settings.reference))
    check_reference(trained, reference)
    return reference


def write(report: dict[str, Any], out: Path) -> dict[str, Path]:
    """analysis.json, analysis.md and the PNGs in `out`: Shapley values and interaction
    indices per value function, interaction types, PID and robustness curves; the paths."""
    from deploy.plot import bars_png

    out.mkdir(parents=True, exist_ok=True)
    paths = {"json": out / "analysis.json", "md": out / "analysis.md"}
    paths["json"].write_text(json.dumps(report, indent=2))
    paths["md"].write_text(summary_markdown(report))
    name = Path(report["run"]).name
    for v in report["shapley"]:
        values = {m: (x["value"], *x["ci"]) for m, x in report["shapley"][v].items()}
        paths[f"png_{v}"] = bars_png({"Shapley value": values}, out / f"shapley_{v}.png",
                                     f"Shapley values ({v}), 95 % intervals: {name}")
        pairs = {p: (x["value"], *x["ci"]) for p, x in report["interaction_index"][v].items()}
        if pairs:
            paths[f"png_interaction_{v}"] = bars_png(
                {"pairs": pairs}, out / f"interaction_{v}.png",
                f"Shapley interaction index ({v}), 95 % intervals")
    types = report["interaction_types"]
    paths["png_interaction_types"] = bars_png(
        {p: {k: (f["value"], *f["ci"]) for k, f in x["fractions"].items()}
         for p, x in types["pairs"].items()}, out / "interaction_types.png",
        f"Interaction types per pair (share of states, 95 % intervals): {name}")
    for target in ("model", "data"):
        groups = {p: {atom: (x[target][atom],) * 3 for atom in ("R", "U1", "U2", "S")}
                  for p, x in report["pid"]["pairs"].items() if target in x}
        if groups:
            paths[f"png_pid_{target}"] = bars_png(
                groups, out / f"pid_{target}.png",
                f"PID of each pair, target the {'policy' if target == 'model' else 'expert'}"
                f"'s action (bits): {name}", "bits")
    paths.update({f"png_{k}": v for k, v in write_plots(report["robustness"], out, name).items()})
    return paths
