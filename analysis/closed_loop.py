"""Online value functions: closed-loop episodes of a trained policy with each coalition.

Every coalition drives its own episodes on the evaluation worlds (the same
seed for all), the modalities outside it switched off every step through
their presence flags. Per episode: success, return and SPL (where the world
reports them), the samples of :func:`analysis.shapley.shapley_of_samples`
with ``paired=False`` (each coalition's episodes are its own).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from analysis.shapley import Coalition, coalitions

ONLINE_VALUES = ("success", "return", "spl")


def online_values(trained: Any, names: Sequence[str], episodes: int, seed: int = 12345,
                  num_envs: int = 32, subsets: Sequence[Coalition] | None = None
                  ) -> dict[str, dict[Coalition, np.ndarray]]:
    """Per online value (those the world reports), per coalition: (episodes,) values.

    Args:
        trained: an ``agent.trained.Trained`` run.
        episodes: episodes per coalition (2^M coalitions: the cost is 2^M times this).
        subsets: the coalitions to drive (default: all of them).
    """
    names = tuple(names)
    out: dict[str, dict[Coalition, np.ndarray]] = {}
    for s in coalitions(names) if subsets is None else subsets:
        absent = tuple(m for m in names if m not in s)
        result = trained.evaluate(episodes, num_envs, seed, deterministic=True, absent=absent,
                                  per_episode=True)["per_episode"]
        for value in ONLINE_VALUES:
            if value in result:
                out.setdefault(value, {})[s] = np.asarray(result[value], np.float64)
    return out
