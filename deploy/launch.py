"""From ``sensorium run`` / ``sensorium record`` settings to a running runtime, and its report.

The wiring a robot team would otherwise write: the model file, one source
per modality (or the sim / a replay for all), actuators named by strings,
the run until its end condition, and the report (JSON + PNG).
"""

from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path
from typing import Any

import numpy as np

from deploy.actuators import Actuator, JsonlActuator, SimActuator, UdpActuator
from deploy.clock import now
from deploy.model import Model
from deploy.run_settings import RunCommandSettings
from deploy.runtime import Runtime
from deploy.sources import Source, SourceError, make_source


def make_actuator(text: str) -> Actuator:
    kind, _, rest = text.partition(":")
    if kind == "udp":
        host, _, port = rest.rpartition(":")
        if not port.isdigit():
            raise SourceError(f"actuators: {text!r} needs a port, e.g. udp:9200")
        return UdpActuator(int(port), host or "127.0.0.1")
    if kind == "jsonl" and rest:
        return JsonlActuator(rest)
    raise SourceError(f"actuators: {text!r} is not an actuator; use udp:PORT, udp:HOST:PORT "
                      "or jsonl:FILE (the sim source adds its own)")


def training_env(model: Model) -> dict[str, Any]:
    """The env config the model was trained on (from its metadata)."""
    config = json.loads(model.info.get("config") or "{}")
    env = dict(config.get("env", {}))
    if "id" not in env:
        raise SourceError(f"{model.path} does not say which world it was trained on; "
                          "source=sim needs a sensorium export")
    return env


def source_options(s: RunCommandSettings) -> dict[str, dict[str, Any]]:
    return {"camera": dataclasses.asdict(s.camera), "mic": dataclasses.asdict(s.mic),
            "udp": dataclasses.asdict(s.udp)}


def build_sources(s: RunCommandSettings, model: Model
                  ) -> tuple[dict[str, Source | str | None], list[Actuator], Any]:
    """Sources per modality, the actuators they bring (the sim's), and the sim or replay."""
    spec = model.obs_spec
    given = {k: v for k, v in s.sources.items() if v}
    if s.source == "sim":
        from deploy.sources.sim import SimSource

        gain = {k: v for k, v in s.sim.gain.items() if v != 1.0}
        noise = {k: v for k, v in s.sim.noise.items() if v}
        sim = SimSource({**training_env(model), **s.sim.env}, spec, tuple(s.sim.off), gain,
                        noise, s.sim.seed, discrete=model.action_spec.kind == "discrete")
        return dict.fromkeys(spec.names, sim), [SimActuator(sim)], sim
    if s.source == "replay":
        from deploy.record import read_recording
        from deploy.sources.replay import ReplaySource

        if not s.file:
            raise SourceError("source=replay needs file=RECORDING.mcap")
        recording = read_recording(s.file)
        replay = ReplaySource(recording, spec, s.timing)
        return dict.fromkeys(spec.names, replay), [], replay
    unknown = sorted(set(given) - set(spec.names))
    if unknown:
        raise SourceError(f"sources.{unknown[0]}: the model has no modality {unknown[0]!r}; its "
                          f"modalities: {', '.join(spec.names)}")
    return {n: given.get(n, "none") for n in spec.names}, [], None


def _answered(sim: Any) -> None:
    if not sim.wait_answer(30.0):
        raise SourceError("sim.lockstep: the world did not answer an action within 30 s; "
                          "see the sim source's last error in the report")


def run(s: RunCommandSettings, print_fn: Any = print) -> dict[str, Any]:
    """Run the loop as `s` says; the report (also written to ``s.out`` with a PNG)."""
    model = Model(s.model, threads=s.threads)
    sources, own_actuators, special = build_sources(s, model)
    actuators = own_actuators + [make_actuator(a) for a in s.actuators]
    runtime = Runtime(model, sources, actuators, s.hz or None, s.safe_action,
                      {k: v for k, v in s.max_age.items() if v is not None and k in
                       model.obs_spec}, s.watchdog, s.rt, s.record or None, source_options(s),
                      threads=s.threads)
    lockstep = s.source == "replay" and s.timing == "ticks"
    if lockstep:
        runtime.keep_commands = True
    with runtime:
        print_fn(runtime.startup_report())
        t0 = time.perf_counter()
        until = None
        if s.source == "sim" and s.episodes:
            def until() -> bool:
                return len(special.episodes) >= s.episodes
        elif s.source == "replay" and not lockstep:
            until = special.finished.is_set
        if lockstep:
            runtime.loop.run_unpaced(len(special.ticks), special.set_tick)
        elif s.source == "sim" and s.sim.lockstep:
            end = None if not s.duration else time.monotonic() + s.duration
            runtime.loop.run_unpaced(s.ticks or None, None,
                                     lambda: (until is not None and until())
                                     or (end is not None and time.monotonic() > end),
                                     wait=lambda: _answered(special))
        else:
            runtime.run(s.duration or None, s.ticks or None, until, status=s.status)
        wall = time.perf_counter() - t0
    report = runtime.final_report
    report["wall_s"] = wall
    if s.source == "sim":
        report["episodes"] = special.episode_summary()
        report["sim"] = dataclasses.asdict(s.sim)
    if lockstep:
        recorded = [np.asarray(t["action"]) for t in special.ticks]
        got = [np.asarray(c.action) for c in runtime.commands]
        same = [bool(np.array_equal(a, b)) for a, b in zip(recorded, got)]
        report["replay"] = {"ticks": len(recorded), "same_actions": int(sum(same)),
                            "identical": all(same) and len(got) == len(recorded)}
    out = Path(s.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2, default=str))
    if runtime.telemetry.ticks:
        report["plot"] = str(runtime.telemetry.plot(out.with_suffix(".png"), 1 / runtime.hz))
    report["report"] = str(out)
    return report


def record(s: RunCommandSettings, print_fn: Any = print) -> dict[str, Any]:
    """``sensorium record``: the sources of a model's modalities to MCAP, no model run."""
    from deploy.record import Recorder

    if not s.record:
        raise SourceError("sensorium record needs record=FILE.mcap")
    model = Model(s.model, threads=1)  # for its spec: what to record, in which shapes
    sources, _, _ = build_sources(s, model)
    if s.source == "sim":
        raise SourceError("sensorium record records real sensors; use `sensorium run "
                          "source=sim record=...` to record a simulated run")
    built = {n: (make_source(v, model.obs_spec[n], source_options(s)) if isinstance(v, str)
                 else v) for n, v in sources.items()}
    live = {id(v): v for v in built.values() if v is not None}
    recorder = Recorder(s.record, model.obs_spec, {"sensorium.model": str(model.path)})
    last = dict.fromkeys(built, -1)
    period = 1.0 / (s.hz or 1000.0)  # poll the sources this often for new samples
    for src in live.values():
        src.start()
    t_end = now() + (s.duration or 10.0)
    try:
        while now() < t_end:
            for name, src in built.items():
                sample = src.latest(name) if src is not None else None
                if sample is not None and sample.seq != last[name]:
                    last[name] = sample.seq
                    recorder.sample(name, sample)
            time.sleep(period)
    finally:
        for src in live.values():
            src.stop()
        written = recorder.close()
    print_fn(f"recorded {written['messages']} messages ({written['dropped']} dropped) to "
             f"{written['file']}")
    return {"recording": written, "sources": {v.label: v.stats.to_dict() for v in live.values()}}
