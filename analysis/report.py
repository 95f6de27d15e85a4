"""``sensorium analyze``: a trained run's modality contributions, written as a report folder.

The states are the full policy's own (its rollouts on its world, sampled
actions, seeded); every coalition of its modalities is evaluated on all of
them in batched calls (:mod:`analysis.coalitions`), and the exact Shapley
values and pairwise interaction indices of each offline value function come
with bootstrap intervals over the states (:mod:`analysis.shapley`). Written:
``analysis.json``, ``analysis.md`` (what a person reads) and one PNG per
value function.
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path
from typing import Any

from analysis.closed_loop import online_values
from analysis.coalitions import OFFLINE_VALUES, offline_values
from analysis.settings import AnalyzeSettings
from analysis.shapley import MAX_EXACT, ShapleyResult, shapley_of_samples
from perception.settings import ConfigError

VALUE_UNITS = {"agreement": "share of states with the full policy's greedy action",
               "neg_kl": "-KL(full || coalition) of the action distributions, nats",
               "success": "closed-loop success rate", "return": "closed-loop episode return",
               "spl": "closed-loop SPL"}


def dropout_warning(run_settings: Any) -> str | None:
    """A warning when the run never saw a modality absent in training, else None."""
    probabilities = [run_settings.modality_dropout, run_settings.episode_dropout,
                     *run_settings.modality_dropout_of.values(),
                     *run_settings.episode_dropout_of.values()]
    if any(p > 0 for p in probabilities):
        return None
    return ("this run was trained without modality dropout: a coalition that lacks a "
            "modality is off-distribution for its policy, so the values say what the policy "
            "does when a sensor is gone, not only what the sensor carries; compare with a run "
            "trained with dropout")


def analyze(settings: AnalyzeSettings) -> dict[str, Any]:
    """The report's content (also written to the report folder; see :func:`write`)."""
    from agent.trained import load_trained
    from deploy.export.rollouts import record_rollout

    settings.validate()
    t0 = time.perf_counter()
    trained = load_trained(Path(settings.run))
    names = trained.obs_spec.names
    if trained.action_spec.kind != "discrete":
        raise ConfigError(f"run {settings.run} acts in a continuous space; the offline values "
                          "(agreement, KL) are defined for discrete actions only")
    if len(names) > MAX_EXACT:
        raise ConfigError(f"run {settings.run} has {len(names)} modalities; the offline "
                          f"coalitions are exact up to {MAX_EXACT}")
    policy = trained.deployable()
    steps = math.ceil(settings.states / settings.worlds)
    rollout = record_rollout(policy, trained.policy, trained.obs_spec, dict(trained.setup.env),
                             settings.worlds, steps, settings.seed, trained.policy.hidden_size)
    obs, h = rollout.flat()
    obs = {k: v[:settings.states] for k, v in obs.items()}
    h = None if h is None else h[:settings.states]
    t1 = time.perf_counter()
    values = offline_values(policy, obs, names, h, settings.removal, settings.seed)
    results: dict[str, ShapleyResult] = {
        v: shapley_of_samples(values[v], names, settings.resamples, seed=settings.seed)
        for v in OFFLINE_VALUES}
    t2 = time.perf_counter()
    if settings.episodes:
        online = online_values(trained, names, settings.episodes)
        results.update({v: shapley_of_samples(per, names, settings.resamples,
                                              seed=settings.seed, paired=False)
                        for v, per in online.items()})
    warnings = [w for w in [dropout_warning(trained.setup.run)] if w]
    return {
        "run": str(settings.run), "env_steps": trained.step, "modalities": list(names),
        "removal": settings.removal, "states": settings.states, "seed": settings.seed,
        "resamples": settings.resamples, "interval": 0.95, "warnings": warnings,
        "shapley": {v: {m: {"value": r.values[m], "ci": list(r.ci[m])} for m in names}
                    for v, r in results.items()},
        "interaction_index": {v: {p: {"value": x, "ci": list(r.interaction_ci[p])}
                                  for p, x in r.interaction.items()}
                              for v, r in results.items()},
        "coalition_values": {v: r.coalition_values for v, r in results.items()},
        "efficiency_gap": {v: r.efficiency_gap for v, r in results.items()},
        "value_units": {v: VALUE_UNITS[v] for v in results},
        "episodes": settings.episodes,
        "seconds": {"rollout": t1 - t0, "coalitions": t2 - t1,
                    "closed_loop": time.perf_counter() - t2},
    }


def summary_markdown(report: dict[str, Any]) -> str:
    """analysis.md: the tables a person reads first."""
    lines = [f"# What each modality contributes: {report['run']}", "",
             f"{report['states']} states of the full policy's rollouts (seed {report['seed']}), "
             f"every coalition of {', '.join(report['modalities'])}, modalities removed by "
             f"`{report['removal']}`; 95 % bootstrap intervals over the states "
             f"({report['resamples']} resamples)"
             + (f"; closed-loop values over {report['episodes']} episodes per coalition "
                "(evaluation worlds, seed 12345, modalities off by their presence flags)"
                if report["episodes"] else "") + ".", ""]
    lines += [f"**Warning:** {w}" for w in report["warnings"]]
    for v, per in report["shapley"].items():
        lines += ["", f"## Shapley values: {v} ({report['value_units'][v]})", "",
                  "| modality | Shapley value | 95 % interval |", "|---|---|---|"]
        for m, x in sorted(per.items(), key=lambda kv: -kv[1]["value"]):
            lines.append(f"| {m} | {x['value']:.3f} | {x['ci'][0]:.3f} .. {x['ci'][1]:.3f} |")
        full = report["coalition_values"][v]
        lines += ["", f"v(all) = {full['+'.join(report['modalities'])]:.3f}, v(none) = "
                  f"{full['none']:.3f}; the values sum to the difference."]
        pairs = sorted(report["interaction_index"][v].items(), key=lambda kv: -kv[1]["value"])
        lines += ["", "| pair | interaction index | 95 % interval | reads as |",
                  "|---|---|---|---|"]
        for p, x in pairs:
            lo, hi = x["ci"]
            kind = "synergy" if lo > 0 else "redundancy" if hi < 0 else "neither (0 inside)"
            lines.append(f"| {p} | {x['value']:+.3f} | {lo:+.3f} .. {hi:+.3f} | {kind} |")
    return "\n".join(lines) + "\n"


def write(report: dict[str, Any], out: Path) -> dict[str, Path]:
    """analysis.json, analysis.md and shapley_<value>.png in `out`; the paths."""
    from deploy.plot import bars_png

    out.mkdir(parents=True, exist_ok=True)
    paths = {"json": out / "analysis.json", "md": out / "analysis.md"}
    paths["json"].write_text(json.dumps(report, indent=2))
    paths["md"].write_text(summary_markdown(report))
    name = Path(report["run"]).name
    for v in report["shapley"]:
        values = {m: (x["value"], *x["ci"]) for m, x in report["shapley"][v].items()}
        pairs = {p: (x["value"], *x["ci"]) for p, x in report["interaction_index"][v].items()}
        paths[f"png_{v}"] = bars_png({"Shapley value": values}, out / f"shapley_{v}.png",
                                     f"Shapley values ({v}), 95 % intervals: {name}")
        paths[f"png_interaction_{v}"] = bars_png(
            {"pairs": pairs}, out / f"interaction_{v}.png",
            f"Shapley interaction index ({v}), 95 % intervals")
    return paths
