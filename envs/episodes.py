"""Run a policy on a SAME_STEP-autoreset vector env and collect finished episodes' metrics."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import gymnasium as gym
import numpy as np

Policy = Callable[[dict[str, np.ndarray]], np.ndarray]


def run_episodes(
    env: gym.vector.VectorEnv,
    policy: Policy,
    episodes: int,
    seed: int | None = None,
    keys: tuple[str, ...] = ("success", "spl", "collisions", "episode_return", "episode_length"),
    on_end: Callable[[np.ndarray], None] | None = None,
    max_steps: int = 1_000_000,
) -> dict[str, Any]:
    """Step `policy` until `episodes` episodes have ended; return per-episode metrics and speed.

    `on_end(worlds)` is told which worlds just started a new episode (for
    policies with per-episode state). Metrics come from ``info["final_info"]``.
    """
    obs, _ = env.reset(seed=seed)
    ended: dict[str, list] = {k: [] for k in keys}
    count, steps = 0, 0
    t0 = time.perf_counter()
    while count < episodes and steps < max_steps:
        obs, _, _, _, info = env.step(policy(obs))
        steps += env.num_envs
        if "final_info" in info:
            mask = info["_final_info"]
            for k in keys:
                ended[k].extend(np.asarray(info["final_info"][k])[mask].tolist())
            count += int(mask.sum())
            if on_end is not None:
                on_end(np.flatnonzero(mask))
    elapsed = time.perf_counter() - t0
    per_episode = {k: v[:episodes] for k, v in ended.items()}
    summary = {k: float(np.mean(v)) if v else float("nan") for k, v in per_episode.items()}
    return {"episodes": min(count, episodes), "mean": summary, "per_episode": per_episode,
            "env_steps": steps, "seconds": elapsed, "env_steps_per_s": steps / elapsed}
