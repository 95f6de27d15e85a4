"""One interface for every sensor: a context manager with a capture thread and ``latest()``.

A source turns its device's output into :class:`Sample` s already in the
spec's shape and dtype (in its own thread, never in the control tick), stamps
each with its capture time on the runtime's one clock (:mod:`deploy.clock`),
and keeps the newest per modality behind a lock. A source whose thread dies
is restarted with exponential backoff; its failures are counted, and the
control loop never sees the exception (rule: a crash in a sensor thread never
kills the loop).
"""

from __future__ import annotations

import threading
import traceback
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from deploy.clock import now
from perception.settings import UserError
from perception.spec import ModalitySpec


class SourceError(UserError):
    """A source cannot be made as configured; the message names the setting and the fix."""


@dataclass(frozen=True)
class Sample:
    """One reading of one modality.

    Attributes:
        data: in the modality spec's shape and dtype.
        t_capture: when the world was sensed (monotonic seconds; for audio,
            the capture time of the window's last sample).
        t_recv: when the sample reached this process.
        seq: per-modality sequence number, from 0.
    """

    data: np.ndarray
    t_capture: float
    t_recv: float
    seq: int


@dataclass
class SourceStats:
    """What a source has done so far (read by telemetry; written by the source's thread)."""

    samples: int = 0
    failures: int = 0
    restarts: int = 0
    dropped: int = 0  # malformed input the source counted and discarded
    last_error: str = ""
    notes: list[str] = field(default_factory=list)  # said once (e.g. "mono mic -> both ears")

    def to_dict(self) -> dict[str, Any]:
        return {"samples": self.samples, "failures": self.failures, "restarts": self.restarts,
                "dropped": self.dropped, "last_error": self.last_error, "notes": self.notes}


class Source(ABC):
    """Base of every source: threading, restart with backoff, the newest sample per modality.

    Subclasses implement :meth:`_open` (acquire the device), :meth:`_read_loop`
    (run until ``self._stopping`` is set, calling :meth:`publish`) and
    :meth:`_close`. Sources driven by callbacks (sounddevice, a user's code)
    publish from their callbacks and make ``_read_loop`` wait.

    Args:
        specs: the modalities this source gives (most give one).
        label: how the source is named in reports (``camera:0``, ``udp:9100``...).
        backoff_s: first wait before a restart; doubles up to ``max_backoff_s``.
    """

    def __init__(self, specs: list[ModalitySpec], label: str, backoff_s: float = 0.1,
                 max_backoff_s: float = 2.0) -> None:
        if not specs:
            raise SourceError(f"source {label} was given no modality to fill")
        self.specs = {s.name: s for s in specs}
        self.label = label
        self.backoff_s, self.max_backoff_s = backoff_s, max_backoff_s
        self.stats = SourceStats()
        self._latest: dict[str, Sample | None] = dict.fromkeys(self.specs)
        self._seq = dict.fromkeys(self.specs, 0)
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._connected = threading.Event()
        self._thread: threading.Thread | None = None

    # -- what the loop uses -----------------------------------------------------------------

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(self.specs)

    def latest(self, name: str | None = None) -> Sample | None:
        """The newest sample of modality `name` (the source's only one by default)."""
        if name is None:
            if len(self.specs) != 1:
                raise SourceError(f"source {self.label} gives {', '.join(self.specs)}; "
                                  "name the modality: latest('rgb')")
            name = next(iter(self.specs))
        with self._lock:
            return self._latest[name]

    def wait_connected(self, timeout_s: float) -> bool:
        """Block until the device has opened once (or the timeout passes)."""
        return self._connected.wait(timeout_s)

    # -- lifecycle --------------------------------------------------------------------------

    def start(self) -> Source:
        if self._thread is not None and self._thread.is_alive():
            return self
        self._stopping.clear()
        self._thread = threading.Thread(target=self._supervise, name=f"source {self.label}",
                                        daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout_s: float = 2.0) -> None:
        self._stopping.set()
        self._interrupt()
        if self._thread is not None:
            self._thread.join(timeout_s)
        self._thread = None

    def __enter__(self) -> Source:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    # -- for subclasses ---------------------------------------------------------------------

    def publish(self, name: str, data: np.ndarray, t_capture: float,
                t_recv: float | None = None) -> Sample:
        """Make `data` the newest sample of `name` (thread-safe); the sample."""
        t_recv = now() if t_recv is None else t_recv
        with self._lock:
            sample = Sample(data, t_capture, t_recv, self._seq[name])
            self._seq[name] += 1
            self._latest[name] = sample
        self.stats.samples += 1
        return sample

    def publish_all(self, data: Mapping[str, np.ndarray], t_capture: float) -> None:
        """Make every modality of `data` newest at once (one sensing of several modalities:
        a tick never sees one modality of this reading beside another of the last)."""
        t_recv = now()
        with self._lock:
            for name, d in data.items():
                self._latest[name] = Sample(d, t_capture, t_recv, self._seq[name])
                self._seq[name] += 1
        self.stats.samples += len(data)

    def note(self, text: str) -> None:
        """Say something once (it goes into the startup report and the telemetry)."""
        if text not in self.stats.notes:
            self.stats.notes.append(text)

    @abstractmethod
    def _open(self) -> None:
        """Acquire the device; raise if it is not there (the supervisor retries)."""

    @abstractmethod
    def _read_loop(self) -> None:
        """Read and publish until ``self._stopping`` is set; raise on a device failure."""

    def _close(self) -> None:  # noqa: B027 (optional hook)
        """Release the device (also after a failure)."""

    def _interrupt(self) -> None:  # noqa: B027 (optional hook)
        """Wake a blocking read so that stop() returns promptly (sockets, queues)."""

    def _supervise(self) -> None:
        wait = self.backoff_s
        first = True
        while not self._stopping.is_set():
            try:
                if not first:
                    self.stats.restarts += 1
                first = False
                self._open()
                self._connected.set()
                wait = self.backoff_s  # a good open resets the backoff
                self._read_loop()
            except Exception as e:  # any device error: counted, never raised into the loop
                self.stats.failures += 1
                self.stats.last_error = f"{type(e).__name__}: {e}".strip()
                if not isinstance(e, (OSError, RuntimeError, SourceError)):
                    self.stats.last_error += " | " + traceback.format_exc(limit=3).splitlines()[-1]
            finally:
                try:
                    self._close()
                except Exception as e:  # closing a broken device may fail too
                    self.stats.last_error = f"close: {type(e).__name__}: {e}"
            if self._stopping.wait(wait):
                break
            wait = min(wait * 2, self.max_backoff_s)

    def check(self, spec: ModalitySpec) -> None:
        """Refuse (before the first tick) a source whose output cannot fit `spec`."""
        mine = self.specs.get(spec.name)
        if mine is None:
            raise SourceError(f"source {self.label} does not give {spec.name!r}; it gives "
                              f"{', '.join(self.specs)}")
        for attr in ("shape", "dtype", "kind", "sample_rate"):
            a, b = getattr(mine, attr), getattr(spec, attr)
            if a != b:
                raise SourceError(f"source {self.label} gives {spec.name!r} with {attr} {a}, the "
                                  f"model wants {b}; configure the source to the model's spec")
