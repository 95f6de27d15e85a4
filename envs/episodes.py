"""Run a policy on a SAME_STEP-autoreset vector env and collect finished episodes' metrics."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import gymnasium as gym
import numpy as np

from envs.metrics import episode_metrics_of

Policy = Callable[[dict[str, np.ndarray]], np.ndarray]

#: The seed of the evaluation worlds (`sensorium eval`'s default; training seeds its own)
EVAL_SEED = 12345


class EpisodeQuota:
    """Which ended episodes count, so that an evaluation is not biased to short ones.

    Stopping at the first N episodes to end over-counts short episodes (often
    the successes or the quick failures). Instead each world runs a fixed
    number of episodes (N split as evenly as possible) and only those count.
    """

    def __init__(self, num_envs: int, episodes: int) -> None:
        self.quota = np.full(num_envs, episodes // num_envs, np.int64)
        self.quota[: episodes % num_envs] += 1
        self.done = np.zeros(num_envs, np.int64)

    def count(self, ended: np.ndarray) -> np.ndarray:
        """Mask of the worlds in `ended` whose episode counts; updates the tallies."""
        counts = ended & (self.done < self.quota)
        self.done += counts
        return counts

    @property
    def complete(self) -> bool:
        return bool((self.done >= self.quota).all())


def run_episodes(
    env: gym.vector.VectorEnv,
    policy: Policy,
    episodes: int,
    seed: int | None = None,
    keys: tuple[str, ...] | None = None,
    on_end: Callable[[np.ndarray], None] | None = None,
    max_steps: int = 1_000_000,
) -> dict[str, Any]:
    """Step `policy` until `episodes` episodes have ended; return per-episode metrics and speed.

    Each world contributes a fixed share of the episodes (:class:`EpisodeQuota`).
    `on_end(worlds)` is told which worlds just started a new episode (for
    policies with per-episode state). Metrics come from ``info["final_info"]``: `keys`,
    by default the ones the world declares plus ``episode_return`` and ``episode_length``.
    """
    if keys is None:
        keys = (*(m.name for m in episode_metrics_of(env)), "episode_return", "episode_length")
    obs, _ = env.reset(seed=seed)
    ended: dict[str, list] = {k: [] for k in keys}
    quota = EpisodeQuota(env.num_envs, episodes)
    seen: set[str] = set()
    steps = 0
    t0 = time.perf_counter()
    while not quota.complete and steps < max_steps:
        obs, _, _, _, info = env.step(policy(obs))
        steps += env.num_envs
        if "final_info" in info:
            mask = info["_final_info"]
            counts = quota.count(mask)
            for k in keys:  # a world reports the metrics it has
                if k in info["final_info"]:
                    ended[k].extend(np.asarray(info["final_info"][k])[counts].tolist())
                    seen.add(k)
            if on_end is not None:
                on_end(np.flatnonzero(mask))
    elapsed = time.perf_counter() - t0
    per_episode = {k: v for k, v in ended.items() if k in seen or not seen}
    summary = {k: float(np.mean(v)) if v else float("nan") for k, v in per_episode.items()}
    return {"episodes": int(quota.done.sum()), "mean": summary, "per_episode": per_episode,
            "env_steps": steps, "seconds": elapsed, "env_steps_per_s": steps / elapsed}
