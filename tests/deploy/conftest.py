"""Tiny trained runs for the deploy tests (7x7 maps, 16-pixel views, 4 worlds, 128 env-steps)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from agent.config import RunSettings
from agent.runner import OnPolicyRunner, TrainSetup

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
