"""The fixed-rate control loop: absolute deadlines, a tick that accounts for itself.

Tick k is due at ``t0 + k * period`` on the monotonic clock; the loop sleeps
until shortly before and spins the rest. A tick: synchronise (each
modality's newest fresh sample into the model's bound inputs), infer, let
the watchdog decide, send to every actuator, record. If a tick ends after
the next deadline, the schedule skips ahead to the next deadline still in
the future, counts the missed ones, and never drifts.
"""

from __future__ import annotations

import contextlib
import gc
import os
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from deploy.actuators import Actuator, Command
from deploy.clock import now, sleep_until
from deploy.model import Model
from deploy.sync import Synchronizer
from deploy.telemetry import Telemetry
from deploy.watchdog import Watchdog
from perception.settings import require_float, require_int


@dataclass
class RealtimeSettings:
    """Optional real-time knobs; each is applied where the OS permits and reported."""

    fifo_priority: int = 0
    """SCHED_FIFO priority of the loop's thread (1-99; 0 = leave the scheduler alone)."""
    cpus: list[int] = field(default_factory=list)
    """Pin the loop's thread to these CPUs (empty = no pinning)."""
    gc_freeze: bool = True
    """gc.freeze() before the loop: objects made at start-up are never scanned again."""
    gc_off: bool = True
    """No garbage collection while the loop runs (collected once at the end)."""
    switch_interval_us: float = 200.0
    """Python's GIL switch interval during the loop (default 5,000 µs): a sensor thread that
    holds the GIL then hands it back to the loop within this (0 = leave it)."""
    spin_us: float = 200.0
    """Spin this long before each deadline instead of sleeping (punctual wake-up)."""
    warm_us: float = 1000.0
    """Run the tick's work once, thrown away, at most this long before each deadline (timed
    to end just before it), then spin to it (0 = off). A model idle between ticks runs
    cold (measured here: 730 µs after 10 ms of idling against 233 back to back); a
    throw-away pass just before warms it. Only at periods of at least 4x this (at high
    rates the ticks keep it warm)."""

    def validate(self) -> None:
        require_int("rt", "fifo_priority", self.fifo_priority, 0, 99)
        require_float("rt", "spin_us", self.spin_us, 0.0, 1e7)
        require_float("rt", "switch_interval_us", self.switch_interval_us, 0.0, 1e7)
        require_float("rt", "warm_us", self.warm_us, 0.0, 1e7)
        for c in self.cpus:
            require_int("rt", "cpus", c, 0)


def apply_realtime(rt: RealtimeSettings) -> dict[str, Any]:
    """Apply the knobs to the calling thread; what is on, and why not where refused."""
    report: dict[str, Any] = {"gc_freeze": rt.gc_freeze, "gc_off": rt.gc_off,
                              "spin_us": rt.spin_us, "warm_us": rt.warm_us,
                              "switch_interval_us": rt.switch_interval_us}
    if rt.fifo_priority:
        try:
            os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(rt.fifo_priority))
            report["sched_fifo"] = rt.fifo_priority
        except (OSError, AttributeError) as e:
            report["sched_fifo"] = f"refused: {e}"
    else:
        report["sched_fifo"] = False
    if rt.cpus:
        try:
            os.sched_setaffinity(0, rt.cpus)
            report["cpus"] = list(rt.cpus)
        except (OSError, AttributeError, ValueError) as e:
            report["cpus"] = f"refused: {e}"
    else:
        report["cpus"] = False
    if rt.gc_freeze:
        gc.collect()
        gc.freeze()
    return report


class ControlLoop:
    """Runs `model` on `sync`'s inputs at `hz`, sending every action to `actuators`.

    Args:
        on_tick: called after each tick with (command, sync result) — the
            recorder's hook; must not block.
    """

    def __init__(self, model: Model, sync: Synchronizer, actuators: Sequence[Actuator],
                 hz: float, safe_action: np.ndarray, watchdog: Watchdog,
                 telemetry: Telemetry | None = None, rt: RealtimeSettings | None = None,
                 on_tick: Callable[[Command, Any], None] | None = None) -> None:
        self.model, self.sync, self.actuators = model, sync, list(actuators)
        self.hz, self.period = float(hz), 1.0 / float(hz)
        self.safe_action = np.asarray(safe_action)
        self.watchdog, self.rt = watchdog, rt or RealtimeSettings()
        self.telemetry = telemetry or Telemetry()
        self.on_tick = on_tick
        self.bound = model.bind(1)
        self.hidden = model.info.hidden_size
        self.h = np.zeros((1, self.hidden), np.float32) if self.hidden else None
        self.k = 0  # the next tick's index
        self.rt_report: dict[str, Any] = {}
        self._warm_cost = 0.0  # running mean of the warm-up pass's duration (s)

    def reset_state(self) -> None:
        """Zero the recurrent state (a new episode, a robot restarted)."""
        if self.h is not None:
            self.h[...] = 0.0

    def tick(self, t_sched: float | None = None, t_sync: float | None = None) -> Command:
        """One tick now (`t_sched`: when it was due; `t_sync`: the time samples are aged at).

        Both default to now; a lockstep replay passes the time it aligned its samples to.
        """
        t0 = now()
        t_sched = t0 if t_sched is None else t_sched
        tel, wd = self.telemetry, self.watchdog
        result = self.sync.gather(t0 if t_sync is None else t_sync, self.bound.inputs)
        t1 = now()
        cause = ""
        action = None
        if result.invalid:
            cause = "invalid_input"
            tel.errors["invalid_input"] = result.invalid[0]
            wd.blind(False)
        else:
            if self.h is not None:
                self.bound.inputs["h_in"][...] = self.h
            try:
                out = self.bound.run()
                action = out["action"][0].copy()
                if self.h is not None:
                    self.h[...] = out["h_out"]
            except Exception as e:  # onnxruntime failed: counted, the loop goes on
                cause = "inference_error"
                tel.errors["inference_error"] = f"{type(e).__name__}: {e}"
            blind = wd.blind(result.all_absent)
            if not cause and now() - t_sched > wd.deadline_s:
                cause = "overrun"
                tel.late_actions += 1
            elif not cause and blind:
                cause = "all_absent"
        t2 = now()
        if cause:
            tel.safe(cause)
            wd.sent_safe()
            command = Command(self.k, t_sched, self.safe_action, True, cause)
        else:
            command = Command(self.k, t_sched, wd.limit(action))
        for actuator in self.actuators:
            actuator.send(command)
        t3 = now()
        tel.record_tick(t1 - t0, t2 - t1, t3 - t2, t3 - t0, t0 - t_sched)
        if self.on_tick is not None:
            self.on_tick(command, result)
        self.k += 1
        return command

    def run(self, duration_s: float | None = None, ticks: int | None = None,
            until: Callable[[], bool] | None = None) -> dict[str, Any]:
        """Tick at the fixed rate until `duration_s`, `ticks`, or `until()` says stop."""
        self.rt_report = apply_realtime(self.rt)
        spin, warm = self.rt.spin_us * 1e-6, self.rt.warm_us * 1e-6
        self._warm_cost = warm / 2
        gc_was = gc.isenabled()
        if self.rt.gc_off:
            gc.disable()
        switch_was = sys.getswitchinterval()
        if self.rt.switch_interval_us:
            sys.setswitchinterval(self.rt.switch_interval_us * 1e-6)
        start_k = self.k
        t_start = now() + self.period  # the first deadline: one period from now
        end = t_start + duration_s if duration_s is not None else None
        try:
            while True:
                i = self.k - start_k
                if ticks is not None and i >= ticks:
                    break
                t_sched = t_start + i * self.period
                if end is not None and t_sched >= end:
                    break
                if until is not None and until():
                    break
                if warm and self.period >= 4 * warm:
                    # start the warm-up so that it ends just before the deadline
                    lead = min(warm, 1.2 * self._warm_cost + 50e-6)
                    sleep_until(t_sched - lead, spin)
                    t_w = now()
                    self._warm()
                    self._warm_cost += 0.2 * ((now() - t_w) - self._warm_cost)
                    sleep_until(t_sched, warm)  # spin the rest: sleeping would cool it again
                else:
                    sleep_until(t_sched, spin)
                self.tick(t_sched)
                late = now() - (t_start + (self.k - start_k) * self.period)
                if late > 0:  # ran past the next deadline: skip what cannot be met
                    missed = int(late // self.period) + 1
                    self.telemetry.deadline_misses += missed
                    self.k += missed
        finally:
            sys.setswitchinterval(switch_was)
            if self.rt.gc_off and gc_was:
                gc.enable()
        return self.telemetry.summary()

    def _warm(self) -> None:
        """A throw-away pass of the tick's work (synchronise, infer), nothing counted or sent.

        It brings the code and the model's weights back into the caches; the real tick
        right after overwrites every input and output.
        """
        self.sync.gather(now(), self.bound.inputs, count=False)
        if self.h is not None:
            self.bound.inputs["h_in"][...] = self.h
        with contextlib.suppress(Exception):  # the real tick meets (and counts) the error
            self.bound.run()

    def run_unpaced(self, ticks: int | None,
                    before_tick: Callable[[int, float], None] | None = None,
                    until: Callable[[], bool] | None = None,
                    wait: Callable[[], None] | None = None) -> dict[str, Any]:
        """Tick as fast as possible, `ticks` times (None: no limit) or until ``until()``.

        `wait()` blocks before each tick (the sim's answer to the last action);
        `before_tick(i, t)` aligns tick i to its time t (a replay's recorded tick).
        """
        i = 0
        while ticks is None or i < ticks:
            if wait is not None:
                wait()  # before the end condition: the answer may end the run (an episode)
            if until is not None and until():
                break
            t = now()
            if before_tick is not None:
                before_tick(i, t)
            self.tick(t, t_sync=t)
            i += 1
        return self.telemetry.summary()
