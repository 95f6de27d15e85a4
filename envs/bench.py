"""Env-steps per second of a batched world, and of SyncVectorEnv over its single env.

The "native" measurement is ``make_vector_env(cfg, n)`` as training makes it; its
row names the vector mode that gave it (``vector_mode``: the env's own choice, e.g.
the multimodal wrapper's ``native``/``sync``/``async``).
"""

from __future__ import annotations

import platform
import statistics
import time
from collections.abc import Mapping
from typing import Any

import gymnasium as gym
import numpy as np

from envs.factory import make_vector_env


def random_actions(n_steps: int, num_envs: int, n_actions: int, stop_prob: float,
                   seed: int) -> np.ndarray:
    """(n_steps, num_envs) actions: 0 ('stop') with `stop_prob`, else uniform over the rest."""
    rng = np.random.default_rng(seed)
    acts = rng.integers(1, n_actions, size=(n_steps, num_envs))
    acts[rng.random((n_steps, num_envs)) < stop_prob] = 0
    return acts


def sampled_actions(space: gym.Space, n_steps: int, seed: int) -> list[Any]:
    """`n_steps` batched actions sampled from the vector env's `space` (continuous ones)."""
    space.seed(seed)
    return [space.sample() for _ in range(n_steps)]


def steps_per_second(env: gym.vector.VectorEnv, actions: Any, repeats: int) -> list[float]:
    """Env-steps/s of `repeats` timed windows, each stepping through all of `actions`."""
    env.step(actions[0])  # warm-up: compiled kernels, caches
    rates = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        for a in actions:
            env.step(a)
        rates.append(len(actions) * env.num_envs / (time.perf_counter() - t0))
    return rates


def bench_env(env_cfg: Mapping[str, Any], num_envs: list[int], steps: int, repeats: int,
              stop_prob: float, seed: int, sync: bool = True) -> dict[str, Any]:
    """Median env-steps/s per batch size, native and SyncVectorEnv, measured in one run."""
    rows = []
    for n in num_envs:
        row: dict[str, Any] = {"num_envs": n}
        for mode in ("native", "sync") if sync else ("native",):
            env = make_vector_env(env_cfg, n, "auto" if mode == "native" else "sync")
            env.reset(seed=seed)
            # SyncVectorEnv is slow at large n: fewer steps keep each window ~ equal in time
            k = steps if mode == "native" else max(steps * min(16, n) // n, 5)
            if isinstance(env.single_action_space, gym.spaces.Discrete):
                acts: Any = random_actions(k, n, int(env.single_action_space.n), stop_prob, seed)
            else:
                acts = sampled_actions(env.action_space, k, seed)
            rates = steps_per_second(env, acts, repeats)
            env.close()
            med = statistics.median(rates)
            row[mode] = {"steps_per_s_median": med, "steps_per_s_all": rates,
                         "us_per_env_step": 1e6 / med, "batched_steps_per_window": k,
                         "vector_mode": env.metadata.get("vector_mode", "native")}
        if sync:
            row["native_over_sync"] = row["native"]["steps_per_s_median"] / row["sync"][
                "steps_per_s_median"]
        rows.append(row)
    by_n = {r["num_envs"]: r["native"]["us_per_env_step"] for r in rows}
    report: dict[str, Any] = {
        "benchmark": "envs bench",
        "env": dict(env_cfg),
        "actions": f"random, stop with p={stop_prob}",
        "repeats": repeats,
        "machine": {"cpu_count": _cpu_count(), "processor": platform.processor(),
                    "python": platform.python_version(), "numpy": np.__version__,
                    "gymnasium": gym.__version__},
        "results": rows,
    }
    if 64 in by_n and 256 in by_n:
        report["per_env_cost_256_over_64"] = by_n[256] / by_n[64]
    return report


def _cpu_count() -> int:
    import os

    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
