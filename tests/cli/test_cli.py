"""The ``sensorium`` command, run as users run it (a subprocess of the installed entry point)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import cv2
import pytest

from agent.checkpoint import read_checkpoint_meta

SENSORIUM = shutil.which("sensorium") or str(Path(sys.executable).parent / "sensorium")


def sensorium(*args: str, cwd: Path, check: bool = True) -> subprocess.CompletedProcess:
    proc = subprocess.run([SENSORIUM, *args], cwd=cwd, capture_output=True, text=True,
                          timeout=300)
    if check and proc.returncode != 0:
        raise AssertionError(f"sensorium {' '.join(args)} failed:\n{proc.stdout}\n{proc.stderr}")
    return proc


def test_top_level_help_lists_the_commands(tmp_path: Path) -> None:
    out = sensorium("--help", cwd=tmp_path).stdout
    for words in ("demo", "envs list", "envs show", "envs bench"):
        assert words in out


def test_command_help_lists_the_config_groups(tmp_path: Path) -> None:
    out = sensorium("envs", "show", "--help", cwd=tmp_path).stdout
    assert "== Configuration groups ==" in out
    assert "env: audiovisual_nav" in out
    assert "map_size: 11" in out


def test_every_command_registers_its_configs_without_torch() -> None:
    """Every config dataclass (model, fusion, policy, algorithm, run) lives in a torch-free
    module: registering all commands' configs with Hydra imports no torch."""
    code = ("import sys\n"
            "from cli.config_store import register_configs\n"
            "from cli.main import COMMANDS, _load\n"
            "for c in COMMANDS:\n"
            "    register_configs(c.config, _load(c.node), c.groups)\n"
            "    assert 'torch' not in sys.modules, c.config + ' imported torch'\n"
            "print(len(COMMANDS))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert int(proc.stdout) >= 13


def test_envs_list_shows_the_specs(tmp_path: Path) -> None:
    out = sensorium("envs", "list", cwd=tmp_path).stdout
    assert "env=audiovisual_nav  (sensorium/AudioVisualNav-v0)" in out
    assert "audio     audio   (2, 1600)" in out
    assert "['stop', 'forward', 'turn_left', 'turn_right']" in out


def test_envs_show_writes_a_video_opencv_can_read(tmp_path: Path) -> None:
    out = sensorium("envs", "show", "out=v.mp4", "still=v.png", "max_frames=15", "episodes=1",
                    "env.image_size=32", cwd=tmp_path).stdout
    assert "wrote 15 frames to v.mp4" in out
    cap = cv2.VideoCapture(str(tmp_path / "v.mp4"))
    frames = 0
    while True:
        ok, frame = cap.read()
        if not ok:
            break
        frames += 1
        assert frame.shape[1] == 3 * 32 * 4  # rgb, depth and map side by side
    cap.release()
    assert frames == 15
    assert cv2.imread(str(tmp_path / "v.png")) is not None


def test_envs_bench_writes_a_json_report(tmp_path: Path) -> None:
    out = sensorium("envs", "bench", "num_envs=[1,4]", "steps=3", "repeats=2", "out=b.json",
                    cwd=tmp_path).stdout
    assert "report: b.json" in out
    report = json.loads((tmp_path / "b.json").read_text())
    rows = report["results"]
    assert [r["num_envs"] for r in rows] == [1, 4]
    for r in rows:
        assert r["native"]["steps_per_s_median"] > 0 and len(r["native"]["steps_per_s_all"]) == 2
        assert r["native_over_sync"] == pytest.approx(
            r["native"]["steps_per_s_median"] / r["sync"]["steps_per_s_median"])


def test_bad_settings_and_commands_get_clear_errors(tmp_path: Path) -> None:
    proc = sensorium("envs", "show", "env.image_size=-1", cwd=tmp_path, check=False)
    assert proc.returncode != 0
    assert "image_size=-1 is invalid; it must be an integer >= 8" in proc.stderr + proc.stdout
    proc = sensorium("envs", "show", "env=nowhere", cwd=tmp_path, check=False)
    assert proc.returncode != 0 and "nowhere" in proc.stderr
    proc = sensorium("evns", "list", cwd=tmp_path, check=False)
    assert proc.returncode != 0 and "unknown command 'evns list'" in proc.stderr


def test_perception_bench_reports_params_macs_and_both_runtimes(tmp_path: Path) -> None:
    out = sensorium("perception", "bench", "runs=20", "warmup=2", "memory=8",
                    "methods=[concat,late]", "out=p.json", cwd=tmp_path).stdout
    assert "report: p.json" in out
    rows = json.loads((tmp_path / "p.json").read_text())["results"]
    assert [(r["fusion"]["method"], r["memory"]) for r in rows] == [
        ("concat", 0), ("concat", 8), ("late", 0), ("late", 8)]
    for r in rows:
        assert r["params"] > 0 and r["macs"] > 0
        assert r["onnxruntime"]["p50_us"] > 0 and r["torch_eager"]["p99_us"] > 0


def test_perception_probe_writes_accuracies(tmp_path: Path) -> None:
    out = sensorium("perception", "probe", "steps=3", "methods=[late]", "out=q.json",
                    cwd=tmp_path).stdout
    assert "late       synergy" in out
    rows = json.loads((tmp_path / "q.json").read_text())["results"]
    assert {r["interaction"] for r in rows} == {"synergy", "redundant"}
    assert all(0 <= r["accuracy_audio_absent"] <= 1 for r in rows)


def _frames(path: Path) -> int:
    cap = cv2.VideoCapture(str(path))
    frames = 0
    while cap.read()[0]:
        frames += 1
    cap.release()
    return frames


def test_demo_trains_evaluates_exports_and_keeps_the_videos(tmp_path: Path) -> None:
    out = sensorium("demo", "minutes=1", "max_steps=256", "train_envs=4", "num_envs=4",
                    "episodes=4", "compile=false", "progress=false", "env.map_size=7",
                    "env.image_size=16", "env.max_steps=30", "out_dir=d", "bench_runs=50",
                    "runtime_seconds=1", "dagger_rounds=1", "dagger_steps=64", "curve_episodes=4",
                    # the deaf-head variant's settings reach both phases
                    "actor_when_absent=[audio]", "+episode_dropout_of.audio=0.35",
                    "+modality_dropout_of.audio=0.0", "env.deaf_expert=in_view",
                    cwd=tmp_path).stdout
    assert "PPO, concat fusion (0.00M steps" in out  # 256 steps
    for phase in ("run_dagger", "run"):
        config = read_checkpoint_meta(tmp_path / "d" / phase / "checkpoints")["config"]
        assert config["policy"]["actor_when_absent"] == ["audio"]
        assert config["run"]["episode_dropout_of"] == {"audio": 0.35}
        assert config["run"]["modality_dropout_of"] == {"audio": 0.0}
        assert config["env"]["deaf_expert"] == "in_view"
    for policy in ("expert (privileged shortest path)", "hearing only", "seeing only"):
        assert policy in out
    report = json.loads((tmp_path / "d" / "demo.json").read_text())
    trained = next(r for name, r in report["policies"].items() if name.startswith("PPO"))
    assert trained["episodes"] == 4 and 0 <= trained["spl"] <= trained["success_rate"] <= 1
    assert report["training"]["env_steps"] == 256
    assert report["onnx"]["max_abs_diff"] < 1e-3
    for video in report["videos"].values():
        assert _frames(tmp_path / video if not Path(video).is_absolute() else Path(video)) > 0
    assert (tmp_path / "d" / "run" / "model.onnx").exists()
    curve = json.loads((tmp_path / "d" / "curve.json").read_text())  # the learning curve
    assert [p["phase"] for p in curve["points"]] == ["dagger", "ppo"]
    assert curve["points"][0]["env_steps"] < curve["points"][1]["env_steps"]
    assert curve["points"][0]["minutes"] < curve["points"][1]["minutes"]
    assert all(p["episodes"] == 4 and 0 <= p["spl"] <= p["success_rate"] <= 1
               for p in curve["points"])
    for png in ("curve_minutes.png", "curve_steps.png"):
        assert cv2.imread(str(tmp_path / "d" / png)) is not None
    assert "learning curve (2 checkpoints" in out
