"""Latency statistics: how every sensorium benchmark times calls and reports them (no torch)."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

QUANTILES = {"p50": 50.0, "p90": 90.0, "p99": 99.0, "p99.9": 99.9}


def latency_stats(samples_s: Sequence[float]) -> dict[str, float]:
    """p50/p90/p99/p99.9/max/mean in µs (``p50_us``...) and calls/s, from seconds per call."""
    us = np.asarray(samples_s, np.float64) * 1e6
    if us.size == 0:
        return {"calls": 0}
    out = {f"{k}_us": float(np.percentile(us, q)) for k, q in QUANTILES.items()}
    out.update(max_us=float(us.max()), mean_us=float(us.mean()), calls=int(us.size),
               calls_per_s=float(1e6 / us.mean()))
    return out


def time_calls(fn: Callable[[], Any], runs: int, warmup: int = 0) -> list[float]:
    """Seconds of each of `runs` calls of `fn`, after `warmup` untimed ones."""
    for _ in range(warmup):
        fn()
    out = []
    clock = time.perf_counter
    for _ in range(runs):
        t0 = clock()
        fn()
        out.append(clock() - t0)
    return out


def time_alternating(fns: dict[str, Callable[[], Any]], runs: int, warmup: int,
                     blocks: int = 5, per_fn_runs: dict[str, int] | None = None
                     ) -> dict[str, list[float]]:
    """Each function timed in `blocks` alternating blocks, so all see the same machine state.

    `per_fn_runs` overrides `runs` for some functions (slow ones get fewer calls).
    """
    out: dict[str, list[float]] = {k: [] for k in fns}
    counts = {k: max(1, (per_fn_runs or {}).get(k, runs) // blocks) for k in fns}
    for _ in range(blocks):
        for name, fn in fns.items():
            out[name] += time_calls(fn, counts[name], min(warmup, counts[name]))
    return out
