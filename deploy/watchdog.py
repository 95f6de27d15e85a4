"""The watchdog: when the model's action cannot be trusted, the safe action, counted by cause.

Causes (the loop asks in this order):

- ``invalid_input``: a sample that does not fit its spec (shape, dtype) or
  holds NaN/Inf; the model is not run on it;
- ``inference_error``: onnxruntime raised;
- ``overrun``: the action was ready after its deadline (stale on arrival);
- ``all_absent``: every modality absent for ``all_absent_ticks`` ticks in a row
  (the model would be acting blind).

And optional limits on every action sent (continuous actions): clipping to
the action bounds and a maximum rate of change per second.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from perception.settings import require_float, require_int
from perception.spec import ActionSpec


@dataclass
class WatchdogSettings:
    """When to send the safe action, and how actions are limited."""

    all_absent_ticks: int = 3
    """Safe action after this many consecutive ticks with every modality absent."""
    deadline_fraction: float = 1.0
    """An action ready later than this fraction of a period after its tick is an overrun."""
    clip: bool = True
    """Continuous actions: clip to the action spec's bounds."""
    max_rate: float = 0.0
    """Continuous actions: max change per second of each component (0 = no limit)."""

    def validate(self) -> None:
        require_int("watchdog", "all_absent_ticks", self.all_absent_ticks, 1)
        require_float("watchdog", "deadline_fraction", self.deadline_fraction, 0.0, 10.0,
                      lo_open=True)
        require_float("watchdog", "max_rate", self.max_rate, 0.0)


class Watchdog:
    """Decides, per tick, whether to send the model's action or the safe one."""

    def __init__(self, settings: WatchdogSettings, action_spec: ActionSpec,
                 safe_action: np.ndarray, period_s: float) -> None:
        self.s, self.spec, self.period_s = settings, action_spec, period_s
        self.safe_action = np.asarray(safe_action)
        self.absent_run = 0
        self.continuous = action_spec.kind == "continuous"
        if self.continuous:
            size = int(np.prod(action_spec.shape))
            self.low = np.broadcast_to(np.asarray(action_spec.low, np.float32), (size,))
            self.high = np.broadcast_to(np.asarray(action_spec.high, np.float32), (size,))
            # the rate limit starts from rest: the safe action
            self.last: np.ndarray | None = self.safe_action.astype(np.float32).reshape(-1)

    @property
    def deadline_s(self) -> float:
        return self.s.deadline_fraction * self.period_s

    def blind(self, all_absent: bool) -> bool:
        """Count the run of all-absent ticks; True once it reaches the limit."""
        self.absent_run = self.absent_run + 1 if all_absent else 0
        return self.absent_run >= self.s.all_absent_ticks

    def limit(self, action: np.ndarray) -> np.ndarray:
        """The action within the configured limits (discrete actions pass unchanged)."""
        if not self.continuous:
            return action
        a = action.astype(np.float32).reshape(-1)
        if self.s.clip:
            a = np.clip(a, self.low, self.high)
        if self.s.max_rate > 0 and self.last is not None:
            step = self.s.max_rate * self.period_s
            a = np.clip(a, self.last - step, self.last + step)
        self.last = a
        return a.reshape(action.shape)

    def sent_safe(self) -> None:
        """Tell the rate limiter that the safe action went out."""
        if self.continuous:
            self.last = self.safe_action.astype(np.float32).reshape(-1)
