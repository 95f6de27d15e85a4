"""Replay a recording as the sources of a run.

Two timings:

- ``realtime``: a thread publishes every recorded sample when its time comes
  (capture times shifted to now, spacing kept), and the loop runs at its own
  rate, as on the robot;
- ``ticks`` (as fast as possible, lockstep): tick i of the replay sees exactly
  what recorded tick i saw, the same samples at the same ages, so the same
  model gives the same actions. The loop then runs unpaced.
"""

from __future__ import annotations

import threading
from typing import Any

from deploy.clock import now
from deploy.record import Recording
from deploy.sources.base import Sample, Source, SourceError
from perception.spec import ObsSpec

TIMINGS = ("realtime", "ticks")


class ReplaySource(Source):
    """The samples of `recording` for the modalities of `spec`."""

    def __init__(self, recording: Recording, spec: ObsSpec, timing: str = "realtime",
                 loop: bool = False, **kwargs: float) -> None:
        if timing not in TIMINGS:
            raise SourceError(f"replay timing={timing!r} is invalid; use one of {TIMINGS}")
        missing = [n for n in spec.names if n not in recording.spec]
        if missing:
            raise SourceError(f"recording {recording.path} has no {missing}; it recorded "
                              f"{', '.join(recording.spec.names)}")
        super().__init__([recording.spec[n] for n in spec.names], f"replay:{recording.path}",
                         **kwargs)
        self.recording, self.timing, self.loop = recording, timing, loop
        if timing == "ticks" and not recording.ticks:
            raise SourceError(f"recording {recording.path} has no tick records (it was made "
                              "without a model); replay it with timing=realtime")
        self._by_seq = {n: recording.sample_by_seq(n) for n in spec.names}
        self.finished = threading.Event()

    @property
    def ticks(self) -> list[dict[str, Any]]:
        return self.recording.ticks

    def set_tick(self, index: int, t: float) -> None:
        """Lockstep: make the samples recorded tick `index` fed the newest, at their ages."""
        rec = self.recording.ticks[index]
        with self._lock:
            for name in self.specs:
                seq = rec["seq"].get(name)
                s = self._by_seq[name].get(seq) if seq is not None else None
                if s is None:
                    self._latest[name] = None
                    continue
                age = rec["t"] - s.t_capture
                self._latest[name] = Sample(s.data, t - age, t - (rec["t"] - s.t_recv), s.seq)

    def _open(self) -> None:
        pass

    def _read_loop(self) -> None:
        if self.timing == "ticks":
            self._stopping.wait()
            return
        events = sorted(((s.t_capture, n, s) for n, ss in self.recording.samples.items()
                         if n in self.specs for s in ss), key=lambda e: e[0])
        while not self._stopping.is_set():
            if not events:
                break
            t0, start = events[0][0], now()
            for t_rec, name, s in events:
                if self._stopping.wait(max(0.0, start + (t_rec - t0) - now())):
                    return
                t = now()
                self.publish(name, s.data, t, t)
            if not self.loop:
                break
        self.finished.set()
        self._stopping.wait()
