"""A bounded queue drained by a thread of its own: file writes off the control loop.

``put`` never blocks the loop: when the queue is full the item is dropped and
counted. The thread hands each item to ``handle``; an exception there is kept
in ``error`` (a disk error must not reach the loop) and the next item goes on.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable
from typing import Any


class BackgroundWriter:
    def __init__(self, handle: Callable[[Any], None], name: str, maxsize: int) -> None:
        self.handle = handle
        self.queue: queue.Queue = queue.Queue(maxsize=maxsize)
        self.dropped = 0
        self.written = 0
        self.error = ""
        self._thread = threading.Thread(target=self._drain, name=name, daemon=True)
        self._thread.start()

    def put(self, item: Any) -> None:
        """Queue `item` (from the loop: never blocks; a full queue drops and counts)."""
        try:
            self.queue.put_nowait(item)
        except queue.Full:
            self.dropped += 1

    def _drain(self) -> None:
        while True:
            item = self.queue.get()
            if item is None:
                break
            try:
                self.handle(item)
                self.written += 1
            except Exception as e:  # reported, never raised into the loop
                self.error = f"{type(e).__name__}: {e}"

    def close(self, timeout_s: float) -> None:
        """Handle what is queued, then stop the thread."""
        self.queue.put(None)
        self._thread.join(timeout_s)
