"""Deploy tests' fixtures: tiny trained runs and their file, a PulseAudio virtual microphone."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from agent.config import RunSettings
from agent.run_setup import TrainSetup
from agent.runner import OnPolicyRunner

AVN = {"id": "sensorium/AudioVisualNav-v0", "map_size": 7, "image_size": 16, "max_steps": 30}
AGENT = {"name": "ppo", "num_steps": 16, "minibatches": 2, "epochs": 1, "seq_len": 8}


@pytest.fixture(autouse=True, scope="module")
def _one_thread_per_pool(one_thread_per_pool):
    """See the root conftest: training tests run with one thread per OpenMP pool."""
    yield


def train_tiny(run_dir: Path, fusion: str = "concat", memory: int = 0, seed: int = 0,
               **policy: Any) -> Path:
    """Two PPO updates of 64 env-steps on a small AudioVisualNav; the run folder."""
    setup = TrainSetup(env=dict(AVN), fusion={"method": fusion}, agent=dict(AGENT),
                       model={"memory": memory}, policy=dict(policy),
                       run=RunSettings(num_envs=4, total_steps=128, progress=False, threads=1,
                                       device="cpu", seed=seed, tensorboard=False))
    runner = OnPolicyRunner(setup, run_dir)
    try:
        runner.learn()
    finally:
        runner.close()
    return run_dir


@pytest.fixture(scope="session")
def tiny_runs(tmp_path_factory) -> Callable[..., Path]:
    """``tiny_runs(fusion, memory)``: a tiny trained run, made once per session and setting."""
    made: dict[tuple, Path] = {}
    root = tmp_path_factory.mktemp("deploy_runs")

    def get(fusion: str = "concat", memory: int = 0) -> Path:
        key = (fusion, memory)
        if key not in made:
            made[key] = train_tiny(root / f"{fusion}-m{memory}", fusion, memory)
        return made[key]

    return get


def require(ok: bool, why: str) -> None:
    """Skip with `why` unless under CI (CI=true), where a missing part is a failure."""
    if ok:
        return
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"{why} (CI=true: every part must be there)")
    pytest.skip(why)


@pytest.fixture(scope="session")
def exported_tiny(tiny_runs, tmp_path_factory) -> Path:
    """The tiny concat run's file (16-pixel views, 2x1600 audio at 16 kHz)."""
    from deploy.export.policy import export_run

    path = tmp_path_factory.mktemp("exported") / "model.onnx"
    export_run(tiny_runs("concat"), {"out": str(path), "observations": 256})
    return path


class PulseMic:
    """A PulseAudio daemon with a virtual microphone ``mic`` fed through a FIFO (s16le)."""

    def __init__(self, runtime_dir: Path, rate: int = 16000) -> None:
        self.dir, self.rate = runtime_dir, rate
        self.fifo = runtime_dir / "mic.fifo"
        self.env = {"XDG_RUNTIME_DIR": str(runtime_dir), "PULSE_SOURCE": "mic"}
        self._writer = None

    def start(self) -> None:
        env = {**os.environ, **self.env}
        subprocess.run(["pulseaudio", "-D", "-n", "--exit-idle-time=-1",
                        f"--log-target=file:{self.dir}/pa.log",
                        "--load=module-native-protocol-unix",
                        f"--load=module-pipe-source source_name=mic file={self.fifo} "
                        f"format=s16le rate={self.rate} channels=1"],
                       env=env, check=True, capture_output=True, timeout=30)
        deadline = time.monotonic() + 10
        while subprocess.run(["pactl", "info"], env=env, capture_output=True).returncode:
            if time.monotonic() > deadline:
                log = (self.dir / "pa.log").read_text()
                raise RuntimeError(f"pulseaudio did not answer: {log}")
            time.sleep(0.05)

    def play(self, signal, chunk_s: float = 0.01, stop: threading.Event | None = None) -> None:
        """Write float samples in [-1, 1] into the FIFO in real time (blocks)."""
        import numpy as np

        pcm = (np.clip(signal, -1, 1) * 32767).astype("<i2")
        step = int(self.rate * chunk_s)
        try:
            with open(self.fifo, "wb", buffering=0) as f:
                t0 = time.monotonic()
                for i in range(0, len(pcm), step):
                    if stop is not None and stop.is_set():
                        return
                    f.write(pcm[i:i + step].tobytes())
                    delay = t0 + (i + step) / self.rate - time.monotonic()
                    if delay > 0:
                        time.sleep(delay)
        except BrokenPipeError:  # the daemon went away: the feed ends
            return

    def stop(self) -> None:
        subprocess.run(["pactl", "exit"], env={**os.environ, **self.env}, capture_output=True,
                       timeout=10)


@pytest.fixture(scope="session")
def pulse_mic(tmp_path_factory):
    """A running virtual microphone (skips without pulseaudio / libportaudio2, off CI)."""
    require(shutil.which("pulseaudio") is not None and shutil.which("pactl") is not None,
            "pulseaudio/pactl not installed (Debian: pulseaudio pulseaudio-utils)")
    import ctypes.util

    require(ctypes.util.find_library("portaudio") is not None,
            "PortAudio is not installed (Debian: libportaudio2), sounddevice cannot record")
    runtime_dir = Path(tempfile.mkdtemp(prefix="pulse-"))
    runtime_dir.chmod(0o700)
    mic = PulseMic(runtime_dir)
    mic.start()
    old = {k: os.environ.get(k) for k in mic.env}
    os.environ.update(mic.env)
    yield mic
    mic.stop()
    for k, v in old.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v
    shutil.rmtree(runtime_dir, ignore_errors=True)
