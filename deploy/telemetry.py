"""What the loop measured: per-stage latency, wake-up lateness, misses, safe actions, freshness.

Every tick records its stage durations into preallocated arrays (no
allocation in the tick); percentiles (p50/p99/p99.9/max), jitter and counts
are computed at the end, or for the live status line from another thread.
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any, TextIO

import numpy as np

STAGES = ("sync", "inference", "act", "tick", "lateness")


class Series:
    """Float samples in a preallocated array that doubles up to `cap`, then keeps the newest."""

    def __init__(self, initial: int = 4096, cap: int = 2_000_000) -> None:
        self.buf = np.zeros(initial, np.float64)
        self.n, self.cap, self.total = 0, cap, 0

    def add(self, value: float) -> None:
        if self.n == len(self.buf):
            if len(self.buf) < self.cap:
                self.buf = np.concatenate([self.buf, np.zeros(min(len(self.buf), self.cap))])
            else:  # full: drop the older half
                half = self.n // 2
                self.buf[: self.n - half] = self.buf[half: self.n]
                self.n -= half
        self.buf[self.n] = value
        self.n += 1
        self.total += 1

    def values(self) -> np.ndarray:
        return self.buf[: self.n]

    def __len__(self) -> int:
        return self.n


def percentiles_us(seconds: np.ndarray) -> dict[str, float]:
    """p50/p90/p99/p99.9/max/mean in µs of seconds; jitter = std (µs)."""
    if seconds.size == 0:
        return {}
    us = seconds * 1e6
    return {"p50": float(np.percentile(us, 50)), "p90": float(np.percentile(us, 90)),
            "p99": float(np.percentile(us, 99)), "p99.9": float(np.percentile(us, 99.9)),
            "max": float(us.max()), "mean": float(us.mean()), "jitter": float(us.std())}


class Telemetry:
    """Counters and per-tick series of one run of the loop."""

    def __init__(self) -> None:
        self.series = {s: Series() for s in STAGES}
        self.ticks = 0
        self.deadline_misses = 0  # ticks skipped because a tick ran past the next deadline
        self.late_actions = 0  # ticks whose action was ready after its deadline
        self.safe_actions: dict[str, int] = {}
        self.errors: dict[str, str] = {}
        self.lock = threading.Lock()

    def record_tick(self, sync_s: float, inference_s: float, act_s: float, tick_s: float,
                    lateness_s: float) -> None:
        s = self.series
        s["sync"].add(sync_s)
        s["inference"].add(inference_s)
        s["act"].add(act_s)
        s["tick"].add(tick_s)
        s["lateness"].add(lateness_s)
        self.ticks += 1

    def safe(self, cause: str) -> None:
        self.safe_actions[cause] = self.safe_actions.get(cause, 0) + 1

    def summary(self) -> dict[str, Any]:
        latency = {stage: percentiles_us(self.series[stage].values()) for stage in STAGES}
        tick = latency["tick"]
        return {"ticks": self.ticks, "deadline_misses": self.deadline_misses,
                "late_actions": self.late_actions,
                "safe_actions": {"total": sum(self.safe_actions.values()),
                                 **dict(sorted(self.safe_actions.items()))},
                "latency_us": {"p50": tick.get("p50"), "p99": tick.get("p99"),
                               "p99.9": tick.get("p99.9"), "max": tick.get("max"),
                               "per_stage": latency},
                "errors": dict(self.errors)}

    def status_line(self, hz: float, extra: str = "") -> str:
        tick = self.series["tick"].values()[-2000:]
        p99 = float(np.percentile(tick, 99)) * 1e6 if tick.size else 0.0
        safe = sum(self.safe_actions.values())
        return (f"{self.ticks:>8,} ticks @ {hz:g} Hz | tick p99 {p99:6.0f} us | misses "
                f"{self.deadline_misses} | safe {safe} {extra}")

    def plot(self, path: str | Path, period_s: float) -> Path:
        """A timeline of every tick's stages and a histogram of them (one PNG, stacked)."""
        import cv2

        from deploy.plot import histogram_png, timeline_png

        path = Path(path)
        stages = {k: self.series[k].values() * 1e6 for k in ("tick", "inference", "sync",
                                                              "lateness")}
        top = timeline_png(stages, path.with_name(path.stem + ".timeline.png"),
                           "every tick: duration of each stage (and wake-up lateness)",
                           limit=period_s * 1e6)
        bottom = histogram_png(stages, path.with_name(path.stem + ".hist.png"),
                               "stage durations per tick")
        image = np.concatenate([cv2.imread(str(top)), cv2.imread(str(bottom))], axis=0)
        top.unlink()
        bottom.unlink()
        cv2.imwrite(str(path), image)
        return path


class StatusLine:
    """Prints ``status()`` every `period_s` on one line, from its own thread."""

    def __init__(self, status: Callable[[], str], period_s: float = 0.5,
                 stream: TextIO = sys.stderr) -> None:
        self.status, self.period_s, self.stream = status, period_s, stream
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="status line", daemon=True)

    def __enter__(self) -> StatusLine:
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.wait(self.period_s):
            self.stream.write("\r" + self.status())
            self.stream.flush()

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        self._thread.join(2)
        self.stream.write("\r" + self.status() + "\n")
        self.stream.flush()
