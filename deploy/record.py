"""Recording to MCAP, off the control path, and reading it back.

Channels (one per modality, standard schemas where they exist, so common
MCAP viewers show them):

| topic | schema | what |
|---|---|---|
| ``/<image>`` | ``foxglove.RawImage`` (protobuf), ``rgb8`` / ``mono8`` | camera frames, lossless |
| ``/<depth>`` | ``foxglove.RawImage``, ``32FC1`` | depth in metres, lossless |
| ``/<audio>`` | ``foxglove.RawAudio``, ``pcm-s16`` interleaved | for listening |
| ``/<audio>/float32`` | none, ``x-sensorium-ndarray`` | the exact waveform window |
| ``/<vector>`` | JSON (``sensorium.Vector``) | values, lossless |
| ``/sensorium/tick`` | JSON (``sensorium.Tick``) | per tick: presence, seqs fed, action, cause |
| ``/sensorium/telemetry`` | JSON | the run's telemetry summary, at the end |

Every sample message carries ``publish_time`` = capture time, ``log_time`` =
receive time (runtime monotonic clock, ns) and ``sequence`` = the sample's
seq. The file's metadata record ``sensorium`` holds the ObsSpec (and the
model's metadata when a model ran). The loop hands items to a bounded queue;
a writer thread encodes and writes them (the ``mcap`` writer compresses
chunks in the thread that writes); a full queue drops and counts, it never
blocks the loop.

Needs the ``record`` extra (``mcap``, ``foxglove-schemas-protobuf``).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from deploy.actuators import Command
from deploy.background import BackgroundWriter
from deploy.sources.base import Sample, SourceError
from perception.settings import UserError
from perception.spec import ModalityKind, ObsSpec

TICK_TOPIC = "/sensorium/tick"
TELEMETRY_TOPIC = "/sensorium/telemetry"
RAW_ENCODING = "x-sensorium-ndarray"
NS = 1_000_000_000


class RecordingError(UserError):
    """A recording cannot be read (or written); the message says what and how much was read."""


def _ns(t: float) -> int:
    return max(0, int(round(t * NS)))


def _json_schema(name: str, props: dict[str, Any]) -> bytes:
    return json.dumps({"title": name, "type": "object", "properties": props}).encode()


class Recorder:
    """Writes samples, ticks and telemetry of `spec` to an MCAP file, from its own thread."""

    def __init__(self, path: str | Path, spec: ObsSpec, metadata: Mapping[str, str] | None = None,
                 queue_size: int = 4096) -> None:
        try:
            from foxglove_schemas_protobuf.RawAudio_pb2 import RawAudio
            from foxglove_schemas_protobuf.RawImage_pb2 import RawImage
            from mcap.writer import Writer
            from mcap_protobuf.schema import build_file_descriptor_set
        except ImportError as e:
            raise RecordingError(f"recording needs the record extra ({e.name} is missing): "
                                 "pip install 'sensorium[record]'") from None
        self.path, self.spec = Path(path), spec
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._RawImage, self._RawAudio = RawImage, RawAudio
        self._file = self.path.open("wb")
        self.writer = Writer(self._file)
        self.writer.start(profile="", library="sensorium")
        self.channels: dict[str, int] = {}
        proto = {}
        for cls in (RawImage, RawAudio):
            proto[cls.DESCRIPTOR.full_name] = self.writer.register_schema(
                cls.DESCRIPTOR.full_name, "protobuf",
                build_file_descriptor_set(cls).SerializeToString())
        vector = self.writer.register_schema("sensorium.Vector", "jsonschema", _json_schema(
            "sensorium.Vector", {"t_capture": {"type": "number"}, "seq": {"type": "integer"},
                                 "values": {"type": "array", "items": {"type": "number"}}}))
        for m in spec:
            meta = {"modality": m.name, "kind": m.kind.value, "dtype": m.dtype,
                    "shape": json.dumps(list(m.shape))}
            if m.kind in (ModalityKind.IMAGE, ModalityKind.DEPTH):
                self.channels[m.name] = self.writer.register_channel(
                    f"/{m.name}", "protobuf", proto["foxglove.RawImage"], meta)
            elif m.kind is ModalityKind.AUDIO:
                self.channels[m.name] = self.writer.register_channel(
                    f"/{m.name}", "protobuf", proto["foxglove.RawAudio"], meta)
                self.channels[m.name + "/float32"] = self.writer.register_channel(
                    f"/{m.name}/float32", RAW_ENCODING, 0, meta)
            else:
                self.channels[m.name] = self.writer.register_channel(
                    f"/{m.name}", "json", vector, meta)
        tick = self.writer.register_schema("sensorium.Tick", "jsonschema", _json_schema(
            "sensorium.Tick", {"tick": {"type": "integer"}, "t": {"type": "number"},
                               "present": {"type": "object"}, "seq": {"type": "object"},
                               "action": {"type": "array"}, "safe": {"type": "boolean"},
                               "cause": {"type": "string"}}))
        self.channels["tick"] = self.writer.register_channel(TICK_TOPIC, "json", tick)
        telemetry = self.writer.register_schema("sensorium.Telemetry", "jsonschema",
                                                _json_schema("sensorium.Telemetry", {}))
        self.channels["telemetry"] = self.writer.register_channel(TELEMETRY_TOPIC, "json",
                                                                  telemetry)
        self.writer.add_metadata("sensorium", {"obs_spec": spec.to_json(),
                                               **dict(metadata or {})})
        self._last_seq: dict[str, int] = {}
        self._writer = BackgroundWriter(self._write, "mcap recorder", queue_size)
        self._put = self._writer.put

    # -- called by the loop (cheap, never blocks) ------------------------------------------------

    def tick(self, command: Command, samples: Mapping[str, Sample | None],
             present: Mapping[str, bool]) -> None:
        """Queue the tick record and every sample fed that is new since the last tick."""
        for name, sample in samples.items():
            if sample is not None and self._last_seq.get(name) != sample.seq:
                self._last_seq[name] = sample.seq
                self._put(("sample", name, sample))
        seq = {n: (s.seq if s is not None else None) for n, s in samples.items()}
        self._put(("tick", command, dict(present), seq))

    def sample(self, name: str, sample: Sample) -> None:
        """Queue one sample (``sensorium record``: sensors without a model)."""
        self._put(("sample", name, sample))

    def telemetry(self, t: float, summary: Mapping[str, Any]) -> None:
        self._put(("telemetry", t, summary))

    # -- the writer thread -----------------------------------------------------------------------

    def _write(self, item: tuple) -> None:
        kind = item[0]
        if kind == "sample":
            self._write_sample(item[1], item[2])
        elif kind == "tick":
            command, present, seq = item[1:]
            data = {"tick": command.tick, "t": command.t, "present": present, "seq": seq,
                    "action": np.asarray(command.action).tolist(), "safe": command.safe,
                    "cause": command.cause}
            self.writer.add_message(self.channels["tick"], _ns(command.t),
                                    json.dumps(data).encode(), _ns(command.t),
                                    command.tick & 0xFFFFFFFF)
        else:
            t, summary = item[1:]
            self.writer.add_message(self.channels["telemetry"], _ns(t),
                                    json.dumps(summary, default=float).encode(), _ns(t))

    def _write_sample(self, name: str, s: Sample) -> None:
        m = self.spec[name]
        stamp = dict(log_time=_ns(s.t_recv), publish_time=_ns(s.t_capture),
                     sequence=s.seq & 0xFFFFFFFF)
        data = s.data
        if m.kind in (ModalityKind.IMAGE, ModalityKind.DEPTH):
            h, w, c = data.shape
            enc = "32FC1" if m.kind is ModalityKind.DEPTH else ("rgb8" if c == 3 else "mono8")
            msg = self._RawImage(width=w, height=h, encoding=enc,
                                 step=w * c * data.dtype.itemsize,
                                 data=np.ascontiguousarray(data).tobytes(), frame_id=name)
            msg.timestamp.FromNanoseconds(_ns(s.t_capture))
            self.writer.add_message(self.channels[name], data=msg.SerializeToString(), **stamp)
        elif m.kind is ModalityKind.AUDIO:
            pcm = np.clip(np.rint(data.T * 32767.0), -32768, 32767).astype("<i2")
            msg = self._RawAudio(data=pcm.tobytes(), format="pcm-s16",
                                 sample_rate=int(m.sample_rate),
                                 number_of_channels=int(data.shape[0]))
            msg.timestamp.FromNanoseconds(_ns(s.t_capture))
            self.writer.add_message(self.channels[name], data=msg.SerializeToString(), **stamp)
            self.writer.add_message(self.channels[name + "/float32"],
                                    data=np.ascontiguousarray(data, "<f4").tobytes(), **stamp)
        else:
            body = {"t_capture": s.t_capture, "seq": s.seq,
                    "values": np.asarray(data, np.float64).tolist()}
            self.writer.add_message(self.channels[name], data=json.dumps(body).encode(),
                                    **stamp)

    def close(self) -> dict[str, Any]:
        """Write what is queued, finish the file; what was written and dropped."""
        w = self._writer
        w.close(30)
        self.writer.finish()
        self._file.close()
        return {"file": str(self.path), "messages": w.written, "dropped": w.dropped,
                "error": w.error}


@dataclass
class Recording:
    """A recording read back: samples per modality in order, tick records, the spec."""

    path: Path
    spec: ObsSpec
    samples: dict[str, list[Sample]]
    ticks: list[dict[str, Any]]
    metadata: dict[str, str]
    telemetry: list[dict[str, Any]] = field(default_factory=list)
    complete: bool = True
    problem: str = ""

    def sample_by_seq(self, name: str) -> dict[int, Sample]:
        return {s.seq: s for s in self.samples[name]}


def _decode(kind: ModalityKind, shape: tuple[int, ...], dtype: str, encoding: str,
            data: bytes, raw_image: Any) -> np.ndarray:
    if kind in (ModalityKind.IMAGE, ModalityKind.DEPTH):
        msg = raw_image.FromString(data)
        return np.frombuffer(msg.data, dtype).reshape(shape).copy()
    if encoding == RAW_ENCODING:
        return np.frombuffer(data, "<f4").reshape(shape).astype(dtype)
    return np.asarray(json.loads(data)["values"], dtype).reshape(shape)


def read_recording(path: str | Path) -> Recording:
    """Everything readable in `path`; a truncated file gives what precedes the cut.

    Raises RecordingError for a file that is missing, not MCAP, or without the
    ``sensorium`` metadata; a truncated one is returned with ``complete=False``
    and ``problem`` saying where it stopped.
    """
    path = Path(path)
    if not path.is_file():
        raise RecordingError(f"recording {path} does not exist; make one with `sensorium run "
                             "... record=FILE.mcap` or `sensorium record`")
    try:
        from foxglove_schemas_protobuf.RawImage_pb2 import RawImage
        from mcap.records import Channel, Message, Metadata
        from mcap.stream_reader import StreamReader
    except ImportError as e:
        raise RecordingError(f"reading recordings needs the record extra ({e.name} is missing):"
                             " pip install 'sensorium[record]'") from None
    channels: dict[int, Channel] = {}
    metadata: dict[str, str] = {}
    raw: list[Message] = []
    complete, problem = True, ""
    with path.open("rb") as f:
        try:
            for record in StreamReader(f, validate_crcs=True).records:
                if isinstance(record, Channel):
                    channels[record.id] = record
                elif isinstance(record, Message):
                    raw.append(record)
                elif isinstance(record, Metadata) and record.name == "sensorium":
                    metadata = dict(record.metadata)
        except Exception as e:  # the mcap reader raises its own errors on a cut file
            complete = False
            problem = (f"{path} is truncated or damaged ({type(e).__name__}: {e}); read "
                       f"{len(raw)} messages before the damage")
    if "obs_spec" not in metadata:
        if not complete and not raw:
            raise RecordingError(f"{path} is not a readable MCAP recording: {problem}")
        raise RecordingError(f"{path} has no sensorium metadata (obs_spec); it was not written "
                             "by sensorium, or was cut before its first records")
    spec = ObsSpec.from_json(metadata["obs_spec"])
    samples: dict[str, list[Sample]] = {n: [] for n in spec.names}
    ticks: list[dict[str, Any]] = []
    telemetry: list[dict[str, Any]] = []
    for msg in raw:
        ch = channels.get(msg.channel_id)
        if ch is None:
            continue
        if ch.topic == TICK_TOPIC:
            ticks.append(json.loads(msg.data))
            continue
        if ch.topic == TELEMETRY_TOPIC:
            telemetry.append(json.loads(msg.data))
            continue
        name = ch.metadata.get("modality")
        if name not in samples:
            continue
        m = spec[name]
        if m.kind is ModalityKind.AUDIO and ch.message_encoding != RAW_ENCODING:
            continue  # the pcm-s16 channel is for listening; the float32 one is exact
        data = _decode(m.kind, m.shape, m.dtype, ch.message_encoding, msg.data, RawImage)
        samples[name].append(Sample(data, msg.publish_time / NS, msg.log_time / NS,
                                    int(msg.sequence)))
    for name in samples:
        samples[name].sort(key=lambda s: (s.t_capture, s.seq))
    return Recording(path, spec, samples, ticks, metadata, telemetry, complete, problem)


__all__ = ["Recorder", "Recording", "RecordingError", "SourceError", "read_recording"]
