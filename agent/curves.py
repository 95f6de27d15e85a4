"""Learning curves: every checkpoint a run kept, evaluated on worlds it never saw.

A run that keeps all its checkpoints (``keep_checkpoints=0``) holds its policy at
each ``checkpoint_every`` updates, and each checkpoint records the training
seconds it was saved at. Evaluating them afterwards gives the curve against
env-steps and wall-clock without the evaluations taking any of the run's
training time.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from agent.checkpoint import list_checkpoints, read_checkpoint_meta
from agent.checkpoint.atomic import step_of
from agent.trained import load_trained


def checkpoint_curve(run_dir: Path, episodes: int, seed: int, offset_seconds: float = 0.0,
                     offset_steps: int = 0, num_envs: int = 32) -> list[dict[str, Any]]:
    """One point per kept checkpoint of `run_dir`, oldest first: its env-steps and training
    minutes (plus the offsets: the phases before this run), and the greedy evaluation's
    mean return and the metrics the world declares, on `episodes` episodes of `seed`."""
    points = []
    for ckpt in list_checkpoints(Path(run_dir) / "checkpoints"):
        step = step_of(ckpt)
        meta = read_checkpoint_meta(Path(run_dir) / "checkpoints", step)
        result = load_trained(run_dir, step=step).evaluate(episodes, num_envs, seed)
        points.append({"env_steps": offset_steps + int(step),
                       "minutes": (offset_seconds + float(meta["train_seconds"])) / 60,
                       "episodes": episodes,
                       **{k: v for k, v in result.items() if isinstance(v, float)}})
    return points


def wilson(p: float, n: int, z: float = 1.96) -> tuple[float, float]:
    """The Wilson score interval of a rate `p` seen over `n` trials."""
    if n <= 0:
        return p, p
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return centre - half, centre + half


def curve_plots(curves: Mapping[str, Sequence[Mapping[str, Any]]], keys: Sequence[str],
                prefix: Path, title: str, rates: Sequence[str] = ()) -> list[Path]:
    """``<prefix>_minutes.png`` and ``<prefix>_steps.png``: the evaluated `keys` of each
    named curve against training minutes and against env-steps; the keys in `rates` (a
    fraction of episodes, e.g. a success rate) get their 95 % Wilson band."""
    from deploy.plot import curves_png

    out = []
    for axis, label, scale, suffix in (("minutes", "training wall-clock, minutes", 1.0,
                                        "minutes"),
                                       ("env_steps", "env-steps, millions", 1e-6, "steps")):
        series = {}
        for name, points in curves.items():
            x = [p[axis] * scale for p in points]
            for key in keys:
                y = [p[key] for p in points]
                band = ([wilson(v, int(p["episodes"])) for v, p in zip(y, points)]
                        if key in rates else [(v, v) for v in y])
                series[f"{name} {key}"] = (x, y, [b[0] for b in band], [b[1] for b in band])
        out.append(curves_png(series, prefix.with_name(f"{prefix.name}_{suffix}.png"), title,
                              label, ", ".join(keys)))
    return out


__all__ = ["checkpoint_curve", "curve_plots", "wilson"]
