"""Vectors over UDP (proprioception, touch): a documented binary layout, or JSON.

Binary datagram, little-endian (:data:`HEADER`, 20 bytes, then the values)::

    offset  size  field
    0       4     magic  b"SNSV"
    4       2     version (1)
    6       2     count: number of float32 values that follow
    8       4     seq: the sender's sequence number (uint32)
    12      8     t_sender: the sender's timestamp, seconds (float64)
    20      4*n   values, float32

JSON datagram: ``{"seq": 7, "t": 12.5, "values": [0.1, 0.2, ...]}`` (``seq`` and
``t`` optional). A datagram that is neither, of another size, with a count
other than the spec's, or with non-finite values is counted in ``dropped`` and
discarded; so is a repeated or older seq than the newest seen (out of order; one
more than 1,000 below it means the sender restarted, and is taken). The
capture time is the receive time unless ``sender_clock=True`` (the sender
stamps with this host's ``time.monotonic()``). Bound to 127.0.0.1 unless a
host is given.
"""

from __future__ import annotations

import json
import socket
import struct

import numpy as np

from deploy.clock import now
from deploy.sources.base import Source, SourceError
from perception.spec import ModalityKind, ModalitySpec

MAGIC = b"SNSV"
VERSION = 1
HEADER = struct.Struct("<4sHHId")
MAX_DATAGRAM = 65507
REORDER_WINDOW = 1000  # a seq this far below the newest means the sender restarted


def pack_vector(values: np.ndarray, seq: int, t_sender: float) -> bytes:
    """A binary datagram of the layout above (for senders and tests)."""
    v = np.asarray(values, "<f4").ravel()
    return HEADER.pack(MAGIC, VERSION, v.size, seq & 0xFFFFFFFF, t_sender) + v.tobytes()


def parse_datagram(data: bytes, count: int) -> tuple[np.ndarray, int | None, float | None]:
    """(values, seq, t_sender) of one datagram, or ValueError saying what is wrong."""
    if data[:1] == b"{":
        msg = json.loads(data.decode("utf-8"))
        if not isinstance(msg, dict) or "values" not in msg:
            raise ValueError("JSON datagram without 'values'")
        values = np.asarray(msg["values"], np.float64)
        seq, t = msg.get("seq"), msg.get("t")
        seq = int(seq) if seq is not None else None
        t = float(t) if t is not None else None
    else:
        if len(data) < HEADER.size:
            raise ValueError(f"{len(data)} bytes is shorter than the {HEADER.size}-byte header")
        magic, version, n, seq, t = HEADER.unpack_from(data)
        if magic != MAGIC or version != VERSION:
            raise ValueError(f"magic/version {magic!r}/{version}, expected {MAGIC!r}/{VERSION}")
        if len(data) != HEADER.size + 4 * n:
            raise ValueError(f"{len(data)} bytes for {n} values")
        values = np.frombuffer(data, "<f4", n, HEADER.size).astype(np.float64)
    if values.shape != (count,):
        raise ValueError(f"{values.size} values, the spec has {count}")
    if not np.isfinite(values).all():
        raise ValueError("non-finite values")
    return values.astype(np.float32), seq, t


class UdpVectorSource(Source):
    """Datagrams on one port as the vector (or touch) modality `spec`."""

    def __init__(self, spec: ModalitySpec, port: int, host: str = "127.0.0.1",
                 sender_clock: bool = False, **kwargs: float) -> None:
        if spec.kind not in (ModalityKind.VECTOR, ModalityKind.TOUCH):
            raise SourceError(f"udp fills vector or touch modalities; {spec.name!r} is "
                              f"{spec.kind.value}")
        if not 0 < int(port) < 65536:
            raise SourceError(f"udp port {port} is invalid; use 1..65535, e.g. udp:9100")
        super().__init__([spec], f"udp:{host}:{port}" if host != "127.0.0.1" else f"udp:{port}",
                         **kwargs)
        self.spec, self.host, self.port, self.sender_clock = spec, host, int(port), sender_clock
        self.sock: socket.socket | None = None
        self.last_seq: int | None = None
        self.drop_reasons: dict[str, int] = {}

    def _open(self) -> None:
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((self.host, self.port))
        except OSError:
            sock.close()
            raise
        sock.settimeout(0.1)
        self.sock = sock

    def _drop(self, why: str) -> None:
        self.stats.dropped += 1
        key = why.split(",")[0][:60]
        self.drop_reasons[key] = self.drop_reasons.get(key, 0) + 1

    def _read_loop(self) -> None:
        assert self.sock is not None
        count = self.spec.shape[0]
        while not self._stopping.is_set():
            try:
                data = self.sock.recv(MAX_DATAGRAM + 1)
            except TimeoutError:
                continue
            t_recv = now()
            try:
                values, seq, t_sender = parse_datagram(data, count)
            except (ValueError, UnicodeDecodeError) as e:
                self._drop(str(e))
                continue
            # older than the newest seen: out of order (far older: the sender restarted)
            if seq is not None and self.last_seq is not None and \
                    0 <= self.last_seq - seq < REORDER_WINDOW:
                self._drop("out of order")
                continue
            if seq is not None:
                self.last_seq = seq
            t_capture = t_sender if (self.sender_clock and t_sender is not None) else t_recv
            self.publish(self.spec.name, values, t_capture, t_recv)

    def _interrupt(self) -> None:
        pass  # the 0.1 s socket timeout ends the read

    def _close(self) -> None:
        if self.sock is not None:
            self.sock.close()
            self.sock = None
