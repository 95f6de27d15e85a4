"""A source fed by the user's own code: ``source.push(array)`` from any thread.

For robots whose drivers already run in the user's process (a ROS node, a
vendor SDK callback): each push is checked against the modality's spec,
stamped (now, or the capture time the caller gives) and becomes the newest
sample. A push that does not fit is counted and refused with an error that
says what was expected.
"""

from __future__ import annotations

import numpy as np

from deploy.clock import now
from deploy.sources.base import Sample, Source, SourceError
from perception.spec import ModalitySpec, SpecError


class CallbackSource(Source):
    """Samples pushed by the caller, for modality `spec`."""

    def __init__(self, spec: ModalitySpec, label: str = "callback", **kwargs: float) -> None:
        super().__init__([spec], f"{label}:{spec.name}", **kwargs)
        self.spec = spec

    def push(self, data: np.ndarray, t_capture: float | None = None) -> Sample:
        """Publish `data` (the spec's shape; cast to its dtype); the sample made."""
        arr = np.asarray(data)
        if arr.dtype != np.dtype(self.spec.dtype):
            if arr.dtype.kind == "f" and self.spec.dtype == "uint8":
                self.stats.dropped += 1
                raise SourceError(f"{self.label}: push uint8 data for {self.spec.name!r} (an "
                                  f"image), got {arr.dtype}")
            arr = arr.astype(self.spec.dtype)
        try:
            self.spec.check(arr)
        except SpecError as e:
            self.stats.dropped += 1
            raise SourceError(f"{self.label}: {e}") from None
        t = now()
        return self.publish(self.spec.name, arr, t if t_capture is None else t_capture, t)

    def _open(self) -> None:
        pass

    def _read_loop(self) -> None:
        self._stopping.wait()
