"""The runtime's one clock: every sample, tick and deadline is on ``time.monotonic()``.

A sample's capture time, the tick that reads it and the deadline it serves
are compared directly, so they must share one clock that never jumps. On
Linux ``time.monotonic`` is ``CLOCK_MONOTONIC`` (the clock PortAudio's and
most drivers' timestamps derive from).
"""

from __future__ import annotations

import time

now = time.monotonic


def sleep_until(deadline: float, spin_s: float = 0.0002) -> float:
    """Sleep until `spin_s` before `deadline`, then spin; the time of waking (>= deadline).

    ``time.sleep`` wakes late by tens of microseconds to milliseconds; the
    short spin at the end trades a little CPU for a punctual wake-up.
    """
    t = now()
    if deadline - t > spin_s:
        time.sleep(deadline - t - spin_s)
    t = now()
    while t < deadline:
        t = now()
    return t
