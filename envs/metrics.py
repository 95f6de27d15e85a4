"""The episode metrics a world declares: what its ``final_info`` reports beyond return and length.

Trainers, loggers, evaluations and reports show whatever the world declares
(:func:`episode_metrics_of`); nothing outside a world names its metrics.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
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


def collect_ended(found: dict[str, list[float]], final_info: Mapping[str, Any],
                  rows: np.ndarray, metrics: Sequence[EpisodeMetric]) -> None:
    """Append the `rows` of each declared metric in `final_info` to ``found[metric.name]``."""
    for m in metrics:
        if m.name in final_info:
            found.setdefault(m.name, []).extend(
                np.asarray(final_info[m.name])[rows].astype(float).tolist())


def reported(found: Mapping[str, list[float]], metrics: Sequence[EpisodeMetric]
             ) -> dict[str, float]:
    """Each declared metric's mean over the episodes in `found`, under its report key."""
    return {m.key: float(np.mean(found[m.name])) for m in metrics if found.get(m.name)}
