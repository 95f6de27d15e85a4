"""The runtime: alignment, the fixed-rate loop, the watchdog's causes, spec checks before the
first tick, recording and replay, and the whole thing on real paths (a video-file camera, an
MJPEG stream that dies and returns, the PulseAudio microphone, UDP in and out)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from deploy.actuators import CallbackActuator, Command, UdpActuator, unpack_command
from deploy.clock import now
from deploy.loop import RealtimeSettings
from deploy.model import Model
from deploy.record import RecordingError, read_recording
from deploy.run_settings import RunCommandSettings, SimSettings
from deploy.runtime import Runtime
from deploy.sources import CallbackSource, CameraSource, MicrophoneSource, SourceError
from deploy.sources.base import Source
from deploy.sources.udp import UdpVectorSource, pack_vector
from deploy.sync import Synchronizer
from deploy.watchdog import Watchdog, WatchdogSettings
from perception.spec import ActionSpec, ModalitySpec
from tests.deploy.test_model_file import NO_TORCH
from tests.deploy.test_sources import kill, serve_mjpeg, wait_for, write_video

REPO = Path(__file__).resolve().parents[2]
FAST = RealtimeSettings(gc_freeze=False)


def callbacks(model: Model) -> dict[str, CallbackSource]:
    return {m.name: CallbackSource(m) for m in model.obs_spec}


def fill(sources: dict[str, CallbackSource], seed: int = 0, t: float | None = None) -> None:
    rng = np.random.default_rng(seed)
    for src in sources.values():
        m = src.spec
        data = (rng.integers(0, 256, m.shape) if m.dtype == "uint8"
                else rng.uniform(0, 0.5, m.shape))
        src.push(data.astype(m.dtype), t)


def test_sync_feeds_fresh_samples_and_makes_old_ones_absent(exported_tiny: Path) -> None:
    model = Model(exported_tiny)
    srcs = callbacks(model)
    sync = Synchronizer(model.obs_spec, srcs, max_age_s={"touch": 0.05})
    bound = model.bind(1)
    fill(srcs)
    srcs["depth"].push(np.ones((16, 16, 1), np.float32), now() - 1.0)  # 1 s old
    srcs["touch"].push(np.ones(4, np.float32), now() - 0.1)  # older than its 50 ms
    result = sync.gather(now(), bound.inputs)
    assert result.present == {"rgb": True, "depth": False, "audio": True, "proprio": True,
                              "touch": False}
    assert not bound.inputs["depth_present"][0] and bound.inputs["rgb_present"][0]
    assert bound.inputs["depth"].max() == 0 and bound.inputs["touch"].max() == 0  # zeroed
    np.testing.assert_array_equal(bound.inputs["rgb"][0], srcs["rgb"].latest().data)
    report = sync.report()
    assert report["depth"]["stale"] == 1 and report["rgb"]["fresh"] == 1
    assert report["touch"]["max_age_ms"] == pytest.approx(50)
    assert report["rgb"]["age_ms"]["max"] < 100
    none = Synchronizer(model.obs_spec, {"rgb": srcs["rgb"]})
    assert none.gather(now(), bound.inputs).present["audio"] is False
    assert none.report()["audio"] == {**none.report()["audio"], "source": "none", "absent": 1}


def test_the_loop_keeps_its_grid_and_skips_ahead_after_an_overrun(exported_tiny: Path) -> None:
    """A tick that takes 2.5 periods costs the deadlines it overran, never the schedule."""
    commands: list[Command] = []

    def act(c: Command) -> None:
        commands.append(c)
        if c.tick == 5:
            time.sleep(2.5 / 50)

    model = Model(exported_tiny)
    srcs = callbacks(model)
    fill(srcs)
    with Runtime(model, srcs, [CallbackActuator(act)], hz=50, rt=FAST,
                 max_age_s=dict.fromkeys(srcs, 10.0)) as rt:
        report = rt.run(ticks=30)
    assert report["deadline_misses"] == 2  # ticks 6 and 7 were due while 5 ran
    ticks = [c.tick for c in commands]
    assert ticks[:6] == list(range(6)) and ticks[6] == 8 and len(ticks) == 28
    t0 = commands[0].t
    k = np.array([(c.t - t0) * 50 for c in commands])
    np.testing.assert_allclose(k, np.round(k), atol=1e-6)  # every tick on the grid
    np.testing.assert_array_equal(np.round(k), ticks)
    assert report["safe_actions"]["total"] == 0


class BadData(Source):
    """Publishes NaN depth, then a wrong shape, then good data, in a cycle."""

    def __init__(self, spec: ModalitySpec) -> None:
        super().__init__([spec], "bad")
        self.spec, self.i = spec, 0

    def _open(self) -> None:
        pass

    def _read_loop(self) -> None:
        while not self._stopping.wait(0.01):
            self.i += 1
            data = np.full(self.spec.shape, 0.5, np.float32)
            if self.i % 3 == 0:
                data[0, 0, 0] = np.nan
            elif self.i % 3 == 1:
                data = data[:8]
            self.publish("depth", data, now())


def test_the_watchdog_sends_the_safe_action_and_counts_why(exported_tiny: Path) -> None:
    model = Model(exported_tiny)
    srcs = callbacks(model)
    srcs["depth"] = BadData(model.obs_spec["depth"])
    sent: list[Command] = []
    fill({k: v for k, v in srcs.items() if k != "depth"})
    ages = dict.fromkeys(srcs, 10.0)
    ages["depth"] = 1.0
    with Runtime(model, srcs, [CallbackActuator(sent.append)], hz=100, rt=FAST,
                 max_age_s=ages) as rt:
        assert wait_for(lambda: srcs["depth"].latest() is not None)
        report = rt.run(ticks=60)
    invalid = [c for c in sent if c.cause == "invalid_input"]
    assert invalid and all(c.safe and int(c.action) == 0 for c in invalid)
    assert report["safe_actions"]["invalid_input"] == len(invalid)
    assert "depth" in report["errors"]["invalid_input"]
    assert len(sent) + report["deadline_misses"] == 60

    # an inference slower than its deadline (here: a deadline of 1 µs after the tick)
    with Runtime(model, callbacks(model), hz=100, rt=FAST,
                 watchdog=WatchdogSettings(deadline_fraction=1e-4, all_absent_ticks=1000)
                 ) as rt:
        report = rt.run(ticks=10)
    assert report["safe_actions"]["overrun"] == report["ticks"] == report["late_actions"]

    # nothing arrives: blind after K ticks
    with Runtime(model, {}, hz=100, rt=FAST,
                 watchdog=WatchdogSettings(all_absent_ticks=3)) as rt:
        report = rt.run(ticks=10)
    assert report["safe_actions"]["all_absent"] == report["ticks"] - 2


def test_a_crashing_source_never_stops_the_loop(exported_tiny: Path) -> None:
    from tests.deploy.test_sources import Flaky

    model = Model(exported_tiny)
    srcs = callbacks(model)
    fill(srcs)
    srcs["proprio"] = Flaky()
    with Runtime(model, srcs, hz=100, rt=FAST, max_age_s=dict.fromkeys(srcs, 10.0)) as rt:
        report = rt.run(ticks=50)
        stats = srcs["proprio"].stats
    assert report["ticks"] + report["deadline_misses"] == 50
    assert stats.failures >= 2 and rt.report()["sources"]["flaky"]["restarts"] >= 1


def test_continuous_actions_are_clipped_and_rate_limited() -> None:
    spec = ActionSpec("continuous", shape=(2,), low=(-1.0, -1.0), high=(1.0, 1.0))
    wd = Watchdog(WatchdogSettings(max_rate=10.0), spec, np.zeros(2), period_s=0.01)
    np.testing.assert_allclose(wd.limit(np.array([5.0, -0.05])), [0.1, -0.05])  # from rest
    np.testing.assert_allclose(wd.limit(np.array([5.0, 0.0])), [0.2, 0.0])  # 0.1 per tick
    wd.sent_safe()
    np.testing.assert_allclose(wd.limit(np.array([-5.0, 0.0])), [-0.1, 0.0])
    free = Watchdog(WatchdogSettings(), spec, np.zeros(2), 0.01)
    np.testing.assert_allclose(free.limit(np.array([5.0, -3.0])), [1.0, -1.0])


def test_sources_that_do_not_fit_the_model_are_refused_before_the_first_tick(
        exported_tiny: Path) -> None:
    model = Model(exported_tiny)
    with pytest.raises(SourceError, match=r"sources for \['sonar'\]: the model takes rgb"):
        Runtime(model, {"sonar": "udp:9100"})
    short = ModalitySpec("proprio", "vector", (5,), "float32", 10.0)
    with pytest.raises(SourceError, match=r"source callback:proprio gives 'proprio' with shape "
                                          r"\(5,\), the model wants \(6,\)"):
        Runtime(model, {"proprio": CallbackSource(short)})
    mic8k = ModalitySpec("audio", "audio", (2, 1600), "float32", 10.0, -1, 1, sample_rate=8000)
    with pytest.raises(SourceError, match="gives 'audio' with sample_rate 8000, the model "
                                          "wants 16000"):
        Runtime(model, {"audio": MicrophoneSource(mic8k)})
    with pytest.raises(SourceError, match="camera can fill image modalities; 'audio' is audio"):
        Runtime(model, {"audio": "camera:0"})
    with pytest.raises(SourceError, match="unknown source 'lidar'"):
        Runtime(model, {"depth": "lidar:0"})
    rt = Runtime(model, {"rgb": "none"})
    assert "NONE: absent every tick" in rt.startup_report()


def test_record_then_replay_gives_the_same_actions(exported_tiny: Path, tmp_path: Path) -> None:
    from deploy.launch import run

    rec = tmp_path / "run.mcap"
    first = run(RunCommandSettings(model=str(exported_tiny), source="sim", hz=50, duration=2.0,
                                   record=str(rec), status=False, out=str(tmp_path / "a.json"),
                                   rt=FAST), print_fn=lambda *a: None)
    assert first["telemetry"]["ticks"] >= 80 and first["recording"]["dropped"] == 0
    recording = read_recording(rec)
    assert recording.complete and len(recording.ticks) == first["telemetry"]["ticks"]
    assert {len(v) > 20 for v in recording.samples.values()} == {True}
    assert recording.samples["rgb"][0].data.shape == (16, 16, 3)
    again = run(RunCommandSettings(model=str(exported_tiny), source="replay", file=str(rec),
                                   timing="ticks", status=False, out=str(tmp_path / "b.json")),
                print_fn=lambda *a: None)
    assert again["replay"]["identical"] and again["replay"]["ticks"] == len(recording.ticks)
    live = run(RunCommandSettings(model=str(exported_tiny), source="replay", file=str(rec),
                                  hz=50, duration=5.0, status=False, rt=FAST,
                                  out=str(tmp_path / "c.json")), print_fn=lambda *a: None)
    assert live["telemetry"]["ticks"] > 50 and live["modalities"]["rgb"]["fresh"] > 30

    data = rec.read_bytes()
    cut = tmp_path / "cut.mcap"
    cut.write_bytes(data[: len(data) // 2])
    partial = read_recording(cut)
    assert not partial.complete and "truncated or damaged" in partial.problem
    assert 0 < len(partial.ticks) < len(recording.ticks)
    (tmp_path / "junk.mcap").write_bytes(b"no mcap here" * 10)
    with pytest.raises(RecordingError, match="junk.mcap is not a readable MCAP recording"):
        read_recording(tmp_path / "junk.mcap")
    with pytest.raises(RecordingError, match="does not exist"):
        read_recording(tmp_path / "none.mcap")


def test_the_recording_opens_with_standard_schemas(exported_tiny: Path, tmp_path: Path) -> None:
    """Images as foxglove.RawImage, audio as foxglove.RawAudio: what MCAP viewers show."""
    from mcap.reader import make_reader

    from deploy.launch import run

    rec = tmp_path / "run.mcap"
    run(RunCommandSettings(model=str(exported_tiny), source="sim", hz=20, duration=1.0,
                           record=str(rec), status=False, out=str(tmp_path / "a.json"),
                           rt=FAST), print_fn=lambda *a: None)
    with rec.open("rb") as f:
        summary = make_reader(f).get_summary()
    schemas = {c.topic: summary.schemas[c.schema_id].name if c.schema_id else c.message_encoding
               for c in summary.channels.values()}
    assert schemas["/rgb"] == schemas["/depth"] == "foxglove.RawImage"
    assert schemas["/audio"] == "foxglove.RawAudio"
    assert schemas["/proprio"] == "sensorium.Vector" and schemas["/sensorium/tick"] == \
        "sensorium.Tick"
    from foxglove_schemas_protobuf.RawImage_pb2 import RawImage

    with rec.open("rb") as f:
        for _, _, message in make_reader(f).iter_messages(topics=["/rgb"]):
            img = RawImage.FromString(message.data)
            assert (img.width, img.height, img.encoding) == (16, 16, "rgb8")
            break


def _udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_end_to_end_on_real_paths(exported_tiny: Path, pulse_mic, tmp_path: Path) -> None:
    """20 Hz for 3 s: a video-file camera, the PulseAudio microphone (its feed stops half
    way), UDP proprioception in, actions out over UDP and read back here."""
    model = Model(exported_tiny)
    video = write_video(tmp_path / "v.avi", frames=60)
    in_port, out_port = _udp_port(), _udp_port()
    rx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    rx.bind(("127.0.0.1", out_port))
    rx.settimeout(0.2)
    received: list[Command] = []

    def receive() -> None:
        while not done.is_set():
            try:
                received.append(unpack_command(rx.recv(1024)))
            except TimeoutError:
                continue

    def send_proprio() -> None:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as tx:
            seq = 0
            while not done.is_set():
                tx.sendto(pack_vector(np.full(6, 0.1 * seq), seq, now()), ("127.0.0.1", in_port))
                seq += 1
                time.sleep(0.02)

    done = threading.Event()
    tone = 0.5 * np.sin(2 * np.pi * 440 * np.arange(int(16000 * 1.5)) / 16000)
    sources = {"rgb": CameraSource(model.obs_spec["rgb"], str(video), loop=True),
               "audio": MicrophoneSource(model.obs_spec["audio"], "pulse", channels=1),
               "proprio": UdpVectorSource(model.obs_spec["proprio"], in_port),
               "depth": None}  # touch: not given, absent too
    threads = [threading.Thread(target=f, daemon=True) for f in (receive, send_proprio)]
    rt = Runtime(model, sources, [UdpActuator(out_port)], hz=20, rt=FAST)
    try:
        with rt:
            for t in threads:
                t.start()
            player = threading.Thread(target=pulse_mic.play, args=(tone,), daemon=True)
            player.start()
            assert wait_for(lambda: sources["audio"].latest() is not None, 5)
            report = rt.run(duration_s=3.0)
            player.join(5)
    finally:
        done.set()
        for t in threads:
            t.join(2)
        rx.close()
    mods = rt.report()["modalities"]
    assert report["ticks"] + report["deadline_misses"] >= 58 and report["deadline_misses"] <= 2
    assert mods["rgb"]["fresh"] >= 50 and mods["proprio"]["fresh"] >= 50
    assert mods["depth"]["absent"] == mods["touch"]["absent"] == report["ticks"]
    # the tone played for 1.5 s of the 3: audio fresh, then absent (stale) after the feed ends
    assert mods["audio"]["fresh"] >= 15 and mods["audio"]["stale"] >= 10
    assert len(received) >= report["ticks"] - 2
    assert [c.tick for c in received] == sorted(c.tick for c in received)
    assert all(c.action.shape == (1,) and 0 <= c.action[0] < 4 for c in received)


def test_the_loop_keeps_its_rate_while_the_camera_server_is_down(exported_tiny: Path) -> None:
    model = Model(exported_tiny)
    server = serve_mjpeg()
    port = server.server_address[1]
    cam = CameraSource(model.obs_spec["rgb"], f"http://127.0.0.1:{port}/s.mjpg", backoff_s=0.05,
                       max_backoff_s=0.2)
    events: list[tuple[int, bool]] = []

    def watch(c: Command) -> None:
        events.append((c.tick, bool(rt.loop.bound.inputs["rgb_present"][0])))

    rt = Runtime(model, {"rgb": cam}, [CallbackActuator(watch)], hz=20, rt=FAST,
                 max_age_s={"rgb": 0.2})
    with rt:
        assert wait_for(lambda: cam.latest() is not None, 10)
        outage = threading.Timer(1.0, kill, args=(server,))
        outage.start()
        back: list = []
        threading.Timer(2.5, lambda: back.append(serve_mjpeg(port))).start()
        report = rt.run(duration_s=5.0)
        outage.join()
    for s in back:
        kill(s)
    flags = [p for _, p in events]
    assert report["deadline_misses"] <= 2 and len(events) >= 95
    assert flags[0] and not all(flags) and flags[-1]  # present, absent, present again
    first_gap = flags.index(False)
    assert any(flags[first_gap:])
    assert cam.stats.restarts >= 1


def test_the_runtime_runs_where_torch_and_numba_cannot_be_imported(exported_tiny: Path) -> None:
    blocker = NO_TORCH.replace('name == "torch" or name.startswith("torch.")',
                               'name.split(".")[0] in ("torch", "numba")')
    code = blocker + textwrap.dedent(f"""
        import sys
        import numpy as np
        from deploy.runtime import Runtime
        from deploy.sources import CallbackSource
        from deploy.actuators import CallbackActuator
        from deploy.loop import RealtimeSettings
        from deploy.model import Model
        m = Model({str(exported_tiny)!r})
        srcs = {{s.name: CallbackSource(s) for s in m.obs_spec}}
        for s in srcs.values():
            s.push(np.zeros(s.spec.shape, s.spec.dtype))
        sent = []
        with Runtime(m, srcs, [CallbackActuator(sent.append)], hz=200,
                     max_age_s=dict.fromkeys(srcs, 60.0),
                     rt=RealtimeSettings(gc_freeze=False)) as rt:
            report = rt.run(ticks=20)
        assert len(sent) + report["deadline_misses"] == 20, report
        bad = [k for k in sys.modules if k.split(".")[0] in ("torch", "numba", "agent")]
        assert not bad, bad
        print("ok", len(sent))
    """)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120, cwd=REPO)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("ok")


def test_sensorium_run_on_the_sim_writes_its_telemetry(exported_tiny: Path,
                                                       tmp_path: Path) -> None:
    from tests.cli.test_deploy_cli import sensorium

    proc = sensorium("run", f"model={exported_tiny}", "source=sim", "hz=50", "duration=2",
                     "status=false", "out=r.json", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "rgb        uint8[16, 16, 3] <- sim" in proc.stdout
    report = json.loads((tmp_path / "r.json").read_text())
    tel = report["telemetry"]
    for key in ("ticks", "deadline_misses", "safe_actions", "latency_us"):
        assert key in tel
    assert {"p50", "p99", "max", "per_stage"} <= set(tel["latency_us"])
    assert set(tel["latency_us"]["per_stage"]) == {"sync", "inference", "act", "tick",
                                                   "lateness"}
    assert tel["ticks"] >= 90 and report["modalities"]["audio"]["fresh"] >= 80
    assert report["realtime"]["gc_off"] is True
    assert (tmp_path / "r.png").exists()
    bad = sensorium("run", f"model={exported_tiny}", "sources.sonar=udp:1", cwd=tmp_path)
    assert bad.returncode != 0


def test_sim_in_lockstep_judges_the_policy_as_evaluation_does(exported_tiny: Path,
                                                              tmp_path: Path) -> None:
    """Each tick sees the world's answer to the last action: the runtime's episodes are the
    in-process evaluation's, to the number (same world seed, one world)."""
    from deploy.export.closed_loop import evaluate_model
    from deploy.launch import run, training_env

    report = run(RunCommandSettings(model=str(exported_tiny), source="sim", episodes=3,
                                    duration=0, status=False, out=str(tmp_path / "l.json"),
                                    sim=SimSettings(seed=7, lockstep=True)),
                 print_fn=lambda *a: None)
    model = Model(exported_tiny)
    expected = evaluate_model(model, training_env(model), 3, seed=7, num_envs=1)
    got = report["episodes"]
    assert got["episodes"] == 3
    for key, ref in (("success", "success_rate"), ("spl", "spl"), ("collisions", "collisions"),
                     ("episode_length", "mean_length")):
        assert got[key] == pytest.approx(expected[ref], abs=1e-9), key
    tel = report["telemetry"]
    assert tel["ticks"] == round(3 * expected["mean_length"])  # one world step per tick
    assert tel["safe_actions"]["total"] == 0
    assert report["modalities"]["rgb"]["fresh"] == tel["ticks"]
    assert report["modalities"]["rgb"]["age_ms"]["p50"] >= 0  # stamped before the tick


def test_the_spec_imports_without_side_effects_or_torch() -> None:
    code = NO_TORCH + textwrap.dedent("""
        import os, sys
        before = dict(os.environ)
        import perception.spec
        from perception.spec import ObsSpec
        assert dict(os.environ) == before, set(os.environ) ^ set(before)
        bad = [k for k in sys.modules if k.split(".")[0] in ("torch", "numba", "cv2")]
        assert not bad, bad
        print("ok")
    """)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=60, cwd=REPO, env={k: v for k, v in os.environ.items()
                                                     if k != "OMP_WAIT_POLICY"})
    assert proc.returncode == 0, proc.stderr


def test_the_jsonl_actuator_writes_every_command_from_its_own_thread(tmp_path: Path) -> None:
    from deploy.actuators import JsonlActuator

    log = JsonlActuator(tmp_path / "logs" / "actions.jsonl")
    for i in range(50):
        log.send(Command(i, float(i) / 10, np.array([i % 4]), safe=i == 7,
                         cause="overrun" if i == 7 else ""))
    log.close()
    rows = [json.loads(line) for line in (tmp_path / "logs" / "actions.jsonl").read_text()
            .splitlines()]
    assert [r["tick"] for r in rows] == list(range(50)) and log.dropped == 0
    assert rows[7] == {"tick": 7, "t": 0.7, "action": [3], "safe": True, "cause": "overrun"}
