"""``sensorium train`` and ``sensorium eval`` run as users run them (subprocesses).

Tiny runs: 7x7 maps, 16-pixel views, 4 worlds, 16-step rollouts (64 env-steps an update).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import cv2
import pytest
import yaml

from agent.checkpoint import latest_checkpoint, list_checkpoints

SENSORIUM = shutil.which("sensorium") or str(Path(sys.executable).parent / "sensorium")
REPO = Path(__file__).resolve().parents[2]
TINY = ["env.map_size=7", "env.image_size=16", "env.max_steps=30", "num_envs=4",
        "agent.num_steps=16", "agent.minibatches=2", "agent.epochs=1", "progress=false",
        "threads=1"]
ITER = 64  # env-steps per update


def sensorium(*args: str, cwd: Path, check: bool = True) -> subprocess.CompletedProcess:
    proc = subprocess.run([SENSORIUM, *args], cwd=cwd, capture_output=True, text=True,
                          timeout=300)
    if check and proc.returncode != 0:
        raise AssertionError(f"sensorium {' '.join(args)} failed:\n{proc.stdout}\n{proc.stderr}")
    return proc


def steps_of(run_dir: Path) -> list[int]:
    return [json.loads(line)["step"] for line in
            (run_dir / "metrics.jsonl").read_text().splitlines()]


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Path:
    """``sensorium train ... name=tiny total_steps=128`` in a fresh folder; the folder."""
    cwd = tmp_path_factory.mktemp("train")
    out = sensorium("train", *TINY, "total_steps=128", "name=tiny", "root=runs", cwd=cwd).stdout
    assert "run: runs/tiny  (128 env-steps" in out
    return cwd


def test_train_writes_the_run_folder(trained: Path) -> None:
    run = trained / "runs" / "tiny"
    config = yaml.safe_load((run / "config.yaml").read_text())
    assert config["env"]["image_size"] == 16 and config["fusion"]["method"] == "concat"
    assert config["agent"]["name"] == "ppo" and config["num_envs"] == 4
    assert steps_of(run) == [ITER, 2 * ITER]
    assert latest_checkpoint(run / "checkpoints").name.endswith(f"{2 * ITER:012d}")
    assert list((run / "tb").glob("events.out.tfevents.*"))
    assert json.loads((run / "train_summary.json").read_text())["env_steps"] == 2 * ITER


def test_eval_writes_a_report_and_a_video(trained: Path) -> None:
    out = sensorium("eval", "run=runs/tiny", "episodes=4", "num_envs=4", "video_episodes=1",
                    cwd=trained).stdout
    assert "report: runs/tiny/eval.json" in out
    report = json.loads((trained / "runs/tiny/eval.json").read_text())
    assert report["episodes"] == 4 and report["env_steps"] == 2 * ITER
    for key in ("success_rate", "spl", "mean_return", "collisions"):
        assert isinstance(report[key], float), key
    assert 0 <= report["spl"] <= report["success_rate"] <= 1
    cap = cv2.VideoCapture(str(trained / "runs/tiny/eval.mp4"))
    frames = 0
    while cap.read()[0]:
        frames += 1
    cap.release()
    assert frames > 0


def test_an_existing_run_needs_resume_and_resume_needs_a_checkpoint(trained: Path) -> None:
    proc = sensorium("train", *TINY, "total_steps=128", "name=tiny", "root=runs", cwd=trained,
                     check=False)
    assert proc.returncode != 0
    assert "runs/tiny already has checkpoints; continue it with resume=true" in proc.stderr
    proc = sensorium("train", *TINY, "name=fresh", "resume=true", "root=runs", cwd=trained,
                     check=False)
    assert proc.returncode != 0
    assert "resume=true but runs/fresh has no checkpoint" in proc.stderr
    assert steps_of(trained / "runs/tiny") == [ITER, 2 * ITER]  # left as it was


def test_unknown_fusion_fails_with_the_options(tmp_path: Path) -> None:
    proc = sensorium("train", *TINY, "fusion=nosuch", cwd=tmp_path, check=False)
    assert proc.returncode != 0
    assert "Could not find 'fusion/nosuch'" in proc.stderr
    assert "Available options in 'fusion'" in proc.stderr and "attention" in proc.stderr
    proc = sensorium("train", *TINY, "fusion.method=nosuch", cwd=tmp_path, check=False)
    assert proc.returncode != 0
    assert "unknown fusion method 'nosuch'; choose one of: attention, concat" in proc.stderr


def test_a_sweep_writes_one_run_per_combination(tmp_path: Path) -> None:
    out = sensorium("train", "-m", "fusion=concat,attention", "seed=1,2", *TINY,
                    f"total_steps={ITER}", "tensorboard=false", "export=false",
                    cwd=tmp_path).stdout
    names = sorted(p.name for p in (tmp_path / "runs").iterdir())
    assert names == [f"audiovisualnav-{f}-ppo-s{s}" for f in ("attention", "concat")
                     for s in (1, 2)]
    for name in names:
        assert f"run: runs/{name}  ({ITER} env-steps" in out
        assert list_checkpoints(tmp_path / "runs" / name / "checkpoints")


def test_flags_may_come_before_or_after_the_overrides() -> None:
    from cli.main import _flags_last

    assert _flags_last(["hydra.run.dir=.", "-m", "fusion=a,b", "--cfg", "job", "seed=1"]) == [
        "hydra.run.dir=.", "fusion=a,b", "seed=1", "-m", "--cfg", "job"]
    assert _flags_last(["a=1", "--info", "b=2"]) == ["a=1", "b=2", "--info"]
    assert _flags_last(["a=1", "--info", "defaults", "--cfg=job"]) == [
        "a=1", "--info", "defaults", "--cfg=job"]


def test_a_killed_run_resumes_from_its_last_checkpoint(tmp_path: Path) -> None:
    """SIGKILL mid-run, then ``resume=true``: the run goes on from the last checkpoint, and
    the metrics the killed run logged after it are replaced, not duplicated."""
    args = [*TINY, "name=k", "checkpoint_every=1", "tensorboard=false", "export=false"]
    proc = subprocess.Popen([sys.executable, "-m", "cli", "train", *args, "total_steps=1000000"],
                            cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            env={**os.environ, "PYTHONPATH": str(REPO)})
    ckpt_dir = tmp_path / "runs/k/checkpoints"
    deadline = time.monotonic() + 120
    try:
        while True:
            latest = latest_checkpoint(ckpt_dir) if ckpt_dir.exists() else None
            if latest is not None and int(latest.name.split("_")[1]) >= 3 * ITER:
                break
            assert proc.poll() is None, proc.stderr.read().decode()
            assert time.monotonic() < deadline, "no checkpoints within 120 s"
            time.sleep(0.05)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        proc.stderr.close()
    assert proc.returncode == -signal.SIGKILL
    saved = int(latest_checkpoint(ckpt_dir).name.split("_")[1])
    logged = steps_of(tmp_path / "runs/k")
    assert saved >= 3 * ITER and max(logged) <= saved + ITER  # lost at most one interval
    out = subprocess.run([sys.executable, "-m", "cli", "train", *args, "resume=true",
                          f"total_steps={saved + 2 * ITER}"], cwd=tmp_path, capture_output=True,
                         text=True, timeout=300, env={**os.environ, "PYTHONPATH": str(REPO)})
    assert out.returncode == 0, out.stderr
    assert steps_of(tmp_path / "runs/k") == list(range(ITER, saved + 3 * ITER, ITER))
    assert latest_checkpoint(ckpt_dir).name.endswith(f"{saved + 2 * ITER:012d}")
    assert json.loads((tmp_path / "runs/k/train_summary.json").read_text())["iterations"] == \
        saved // ITER + 2
