"""The episode metrics a world declares: what its ``final_info`` reports beyond return and length.

Trainers, loggers, evaluations and reports show whatever the world declares
(:func:`episode_metrics_of`); nothing outside a world names its metrics.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np


@dataclass(frozen=True)
class EpisodeMetric:
    """One number per ended episode, under ``final_info[name]``."""

    name: str
    description: str
    higher_is_better: bool
    report_as: str = ""
    """Its key in evaluation reports, when not `name` (``success`` -> ``success_rate``)."""

    @property
    def key(self) -> str:
        return self.report_as or self.name


def declared(env: Any, attribute: str) -> Any:
    """The value of `attribute` on the outermost layer of `env` that sets it, else None.

    Walks gymnasium wrappers (``.env``) and vector envs over single ones (``.envs[0]``).
    """
    layer = env
    while layer is not None:
        value = getattr(layer, attribute, None)
        if value is not None:
            return value
        if hasattr(layer, "envs"):  # SyncVectorEnv / AsyncVectorEnv over single envs
            return declared(layer.envs[0], attribute)
        layer = getattr(layer, "env", None)
    return None


def episode_metrics_of(env: Any) -> tuple[EpisodeMetric, ...]:
    """The metrics `env` declares in ``episode_metrics``; none for a plain gymnasium env."""
    return tuple(declared(env, "episode_metrics") or ())


class EpisodeTally:
    """Return, length and the declared metrics of the episodes that end in a batch of worlds.

    `window` keeps the last that many episodes of each (None: all since :meth:`clear`).
    """

    def __init__(self, num_envs: int, metrics: Sequence[EpisodeMetric],
                 window: int | None = None) -> None:
        self.metrics = tuple(metrics)
        self.ret, self.length = np.zeros(num_envs), np.zeros(num_envs, np.int64)
        self.ended: dict[str, deque] = {k: deque(maxlen=window) for k in
                                        ("return", "length", *(m.name for m in metrics))}

    def step(self, reward: np.ndarray, done: np.ndarray, info: Mapping[str, Any],
             counted: np.ndarray | None = None) -> None:
        """Count one batch step; record the worlds in `counted` (default: those `done`) and
        start the next episode of those `done`."""
        self.ret += reward
        self.length += 1
        if not done.any():
            return
        rows = done if counted is None else counted
        self.ended["return"].extend(self.ret[rows].tolist())
        self.ended["length"].extend(self.length[rows].tolist())
        final = info.get("final_info", {})
        for m in self.metrics:
            if m.name in final:
                self.ended[m.name].extend(np.asarray(final[m.name])[rows].astype(float).tolist())
        self.ret[done], self.length[done] = 0.0, 0

    def restart(self) -> None:
        """Every world starts a new episode (after a reset)."""
        self.ret[:], self.length[:] = 0.0, 0

    def clear(self) -> None:
        for v in self.ended.values():
            v.clear()

    def means(self, reduce: Callable[[list[float]], list[float]] = list) -> dict[str, float]:
        """``episode_<name>`` means; `reduce` averages a list over processes (a trainer's
        all-reduce: every process sends sums and counts of the same keys, ended or not)."""
        names = sorted(self.ended)
        totals = reduce([x for k in names for x in (float(np.sum(self.ended[k])),
                                                    float(len(self.ended[k])))])
        return {f"episode_{k}": totals[2 * i] / totals[2 * i + 1]
                for i, k in enumerate(names) if totals[2 * i + 1] > 0}

    def report(self) -> dict[str, float]:
        """An evaluation's numbers: mean return and length, each metric under its key."""
        return {"mean_return": float(np.mean(self.ended["return"])),
                "mean_length": float(np.mean(self.ended["length"])),
                **{m.key: float(np.mean(self.ended[m.name])) for m in self.metrics
                   if self.ended[m.name]}}
