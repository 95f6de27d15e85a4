"""The robot runtime in one object: a model file, a source per modality, actuators.

```python
from deploy.runtime import Runtime
from deploy.sources import CameraSource, UdpVectorSource
from deploy.actuators import UdpActuator

with Runtime("model.onnx", {"rgb": "camera:0", "proprio": "udp:9100"},
             actuators=[UdpActuator(9200)]) as rt:   # other modalities: absent
    print(rt.startup_report())
    rt.run(duration_s=10)                           # or rt.step() from your own loop
print(rt.report()["telemetry"]["latency_us"])
```

Before the first tick every source is checked against the model's spec (a
missing modality, another shape, another sample rate is refused with the
mismatch named); a modality with no source is absent every tick and the
startup report says so. Imports onnxruntime, numpy, OpenCV, sounddevice and
the spec only (the sim and replay sources import the worlds or the
recording reader when used).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from deploy.actuators import Actuator, Command
from deploy.loop import ControlLoop, RealtimeSettings
from deploy.model import Model, ModelFileError
from deploy.sources import Source, SourceError, make_source
from deploy.sync import Synchronizer, SyncResult
from deploy.telemetry import StatusLine, Telemetry
from deploy.watchdog import Watchdog, WatchdogSettings


def _safe_action(model: Model, given: Any) -> np.ndarray:
    info = model.info
    if given is None:
        if info.safe_action is None:
            raise ModelFileError(f"{model.path} declares no safe action; pass safe_action=")
        return np.asarray(info.safe_action)
    spec = model.action_spec
    value = np.asarray(given)
    if spec.kind == "discrete":
        if value.shape != () or not 0 <= int(value) < spec.n:
            raise ModelFileError(f"safe_action={given!r} is not one of the {spec.n} actions")
        return value.astype(np.int64)
    value = np.broadcast_to(value.astype(np.float32), spec.shape).copy()
    return value


class Runtime:
    """A model driven by live sources at a fixed rate.

    Args:
        model: the exported file (or an opened :class:`Model`).
        sources: modality -> a :class:`Source`, a source string (``camera:0``,
            ``mic``, ``udp:9100``, ``none``) or None. One source object may
            fill several modalities (sim, replay).
        actuators: where actions go.
        hz: control rate (default: the model's).
        safe_action: override of the file's safe action.
        max_age_s: per-modality overrides of the spec's max sample age.
        record: an MCAP file to record samples, ticks and telemetry to.
        source_options: per-kind options for source strings.
        threads: onnxruntime intra-op threads (1: leave the other cores to the sensors).
        connect_timeout_s: how long start-up waits for each source's first open.
    """

    def __init__(self, model: str | Path | Model, sources: Mapping[str, Source | str | None],
                 actuators: Sequence[Actuator] = (), hz: float | None = None,
                 safe_action: Any = None, max_age_s: Mapping[str, float] | None = None,
                 watchdog: WatchdogSettings | None = None, rt: RealtimeSettings | None = None,
                 record: str | Path | None = None,
                 source_options: Mapping[str, Mapping[str, Any]] | None = None,
                 threads: int = 1, connect_timeout_s: float = 2.0) -> None:
        self.model = model if isinstance(model, Model) else Model(model, threads=threads)
        spec = self.model.obs_spec
        unknown = sorted(set(sources) - set(spec.names))
        if unknown:
            raise SourceError(f"sources for {unknown}: the model takes "
                              f"{', '.join(spec.names)} (its file: {self.model.path})")
        built: dict[str, Source | None] = {}
        for name in spec.names:
            s = sources.get(name)
            built[name] = make_source(s, spec[name], source_options) if isinstance(s, str) \
                else s
        self.sources = built
        self.hz = float(hz or self.model.info.control_hz or spec.control_hz)
        if not self.hz > 0:
            raise SourceError(f"hz={hz!r} is invalid; give a rate > 0")
        self.sync = Synchronizer(spec, built, max_age_s)  # checks every source's spec
        safe = _safe_action(self.model, safe_action)
        self.telemetry = Telemetry()
        wd = Watchdog(watchdog or WatchdogSettings(), self.model.action_spec, safe, 1 / self.hz)
        self.recorder = None
        if record:
            from deploy.record import Recorder

            self.recorder = Recorder(record, spec, {k: v for k, v in
                                                    self.model.info.metadata.items()
                                                    if k != "sensorium.config"})
        self.loop = ControlLoop(self.model, self.sync, actuators, self.hz, safe, wd,
                                self.telemetry, rt, self._on_tick)
        self.actuators = list(actuators)
        self.connect_timeout_s = connect_timeout_s
        self._started = False
        self.final_report: dict[str, Any] = {}
        self.commands: list[Command] = []
        self.keep_commands = False

    # -- lifecycle ----------------------------------------------------------------------------

    def unique_sources(self) -> list[Source]:
        seen: dict[int, Source] = {}
        for s in self.sources.values():
            if s is not None:
                seen.setdefault(id(s), s)
        return list(seen.values())

    def start(self) -> Runtime:
        for s in self.unique_sources():
            s.start()
        for s in self.unique_sources():
            s.wait_connected(self.connect_timeout_s)
        self._started = True
        return self

    def close(self) -> dict[str, Any]:
        """Stop sources, close actuators and the recording; the final report."""
        if self.recorder is not None:
            from deploy.clock import now

            self.recorder.telemetry(now(), self.telemetry.summary())
        for s in self.unique_sources():
            s.stop()
        for a in self.actuators:
            a.close()
        rec = self.recorder.close() if self.recorder is not None else None
        self.recorder = None
        report = self.report()
        if rec is not None:
            report["recording"] = rec
        self.final_report = report
        return report

    def __enter__(self) -> Runtime:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.close()

    # -- running ------------------------------------------------------------------------------

    def _on_tick(self, command: Command, result: SyncResult) -> None:
        if self.recorder is not None:
            self.recorder.tick(command, result.samples, result.present)
        if self.keep_commands:
            self.commands.append(command)

    def step(self) -> Command:
        """One tick now (for loops of your own); the command sent."""
        return self.loop.tick()

    def run(self, duration_s: float | None = None, ticks: int | None = None,
            until: Any = None, status: bool = False) -> dict[str, Any]:
        """The fixed-rate loop until `duration_s` / `ticks` / ``until()``; the telemetry."""
        if not self._started:
            self.start()
        if status:
            with StatusLine(lambda: self.telemetry.status_line(self.hz)):
                return self.loop.run(duration_s, ticks, until)
        return self.loop.run(duration_s, ticks, until)

    # -- reports ------------------------------------------------------------------------------

    def startup_report(self) -> str:
        """Which source fills which modality, and what is absent, in lines a person reads."""
        spec = self.model.obs_spec
        lines = [f"model {self.model.path} ({self.model.info.get('env_id') or 'unknown env'}),"
                 f" {self.hz:g} Hz, safe action {self.loop.safe_action.tolist()}"]
        for m in spec:
            s = self.sources[m.name]
            where = s.label if s is not None else "NONE: absent every tick"
            lines.append(f"  {m.name:<10} {m.dtype}{list(m.shape)} <- {where} "
                         f"(max age {self.sync.max_age[m.name] * 1e3:.0f} ms)")
        for s in self.unique_sources():
            lines += [f"  note: {n}" for n in s.stats.notes]
        return "\n".join(lines)

    def report(self) -> dict[str, Any]:
        summary = self.telemetry.summary()
        summary["hz"] = self.hz
        return {"model": str(self.model.path), "hz": self.hz, "telemetry": summary,
                "modalities": self.sync.report(), "realtime": self.loop.rt_report,
                "sources": {s.label: s.stats.to_dict() for s in self.unique_sources()},
                "actuators": [a.label for a in self.actuators]}
