"""Where actions go: the simulated robot, UDP, the user's callback, a JSONL log.

Every actuator takes ``send(command)`` where a :class:`Command` carries the
action (the model's, or the safe action and why), its tick and time. Sending
never blocks the loop for long: UDP is one ``sendto``, the log is written by
its own thread.

UDP action datagram, little-endian (:data:`HEADER`, 24 bytes, then the values)::

    offset  size  field
    0       4     magic  b"SNSA"
    4       2     version (1)
    6       2     count: number of float32 values that follow
    8       4     seq: the tick index (uint32)
    12      8     t: the tick's time, runtime monotonic seconds (float64)
    20      1     safe: 1 if this is the safe action
    21      1     cause: 0 none, 1 invalid input, 2 overrun, 3 all absent, 4 inference error
    22      2     padding
    24      4*n   values, float32 (a discrete action: one value, its index)
"""

from __future__ import annotations

import json
import socket
import struct
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from deploy.background import BackgroundWriter

MAGIC = b"SNSA"
VERSION = 1
HEADER = struct.Struct("<4sHHIdBB2x")
CAUSES = ("", "invalid_input", "overrun", "all_absent", "inference_error")


@dataclass(frozen=True)
class Command:
    """One tick's output."""

    tick: int
    t: float
    action: np.ndarray
    safe: bool = False
    cause: str = ""  # why the safe action (one of CAUSES[1:]) or ""

    def to_json(self) -> dict[str, Any]:
        return {"tick": self.tick, "t": self.t, "action": np.asarray(self.action).tolist(),
                "safe": self.safe, "cause": self.cause}


class Actuator(Protocol):
    label: str

    def send(self, command: Command) -> None: ...

    def close(self) -> None: ...


def pack_command(command: Command) -> bytes:
    values = np.asarray(command.action, "<f4").ravel()
    return HEADER.pack(MAGIC, VERSION, values.size, command.tick & 0xFFFFFFFF, command.t,
                       int(command.safe), CAUSES.index(command.cause)) + values.tobytes()


def unpack_command(data: bytes) -> Command:
    """The inverse of :func:`pack_command` (for receivers and tests)."""
    magic, version, n, tick, t, safe, cause = HEADER.unpack_from(data)
    if magic != MAGIC or version != VERSION or len(data) != HEADER.size + 4 * n:
        raise ValueError(f"not a sensorium action datagram ({len(data)} bytes, {magic!r})")
    values = np.frombuffer(data, "<f4", n, HEADER.size).copy()
    return Command(tick, t, values, bool(safe), CAUSES[cause])


class UdpActuator:
    """Each command as one datagram to (host, port); 127.0.0.1 unless told otherwise."""

    def __init__(self, port: int, host: str = "127.0.0.1") -> None:
        self.addr = (host, int(port))
        self.label = f"udp:{port}" if host == "127.0.0.1" else f"udp:{host}:{port}"
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.setblocking(False)
        self.errors = 0

    def send(self, command: Command) -> None:
        try:
            self.sock.sendto(pack_command(command), self.addr)
        except OSError:  # no receiver yet, buffer full: counted, the loop goes on
            self.errors += 1

    def close(self) -> None:
        self.sock.close()


class CallbackActuator:
    """``fn(command)`` for users who embed the runtime; its exceptions are counted, not raised."""

    def __init__(self, fn: Callable[[Command], Any], label: str = "callback") -> None:
        self.fn, self.label = fn, label
        self.errors = 0
        self.last_error = ""

    def send(self, command: Command) -> None:
        try:
            self.fn(command)
        except Exception as e:  # a user's bug must not stop the robot's loop
            self.errors += 1
            self.last_error = f"{type(e).__name__}: {e}"

    def close(self) -> None:
        pass


class SimActuator:
    """Hands each action to a :class:`deploy.sources.sim.SimSource`, which steps its world."""

    def __init__(self, sim: Any) -> None:
        self.sim, self.label = sim, "sim"

    def send(self, command: Command) -> None:
        self.sim.send(command.action)

    def close(self) -> None:
        pass


class JsonlActuator:
    """One JSON line per command, written by a thread of its own (never in the tick)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.label = f"jsonl:{self.path}"
        self._file = self.path.open("w")
        self._writer = BackgroundWriter(self._write, "jsonl actuator", 100_000)

    @property
    def dropped(self) -> int:
        return self._writer.dropped

    def send(self, command: Command) -> None:
        self._writer.put(command)

    def _write(self, command: Command) -> None:
        self._file.write(json.dumps(command.to_json()) + "\n")

    def close(self) -> None:
        self._writer.close(5)
        self._file.close()
