"""Third-party gymnasium envs end to end: ``sensorium train | eval`` (and the export) on them."""

from __future__ import annotations

import json
from pathlib import Path

from agent.config import RunSettings
from agent.runner import OnPolicyRunner, TrainSetup
from tests.cli.test_cli import sensorium

TINY_PPO = {"name": "ppo", "num_steps": 16, "minibatches": 2, "epochs": 1}


def test_cartpole_trains_from_pixels_and_state_exports_and_evaluates(tmp_path: Path) -> None:
    out = sensorium("train", "env=cartpole", "env.image_size=16", "env.rgb_hz=10", "num_envs=2",
                    "total_steps=64", "agent.num_steps=16", "agent.minibatches=2",
                    "agent.epochs=1", "eval_episodes=2", "progress=false", "tensorboard=false",
                    "threads=1", "device=cpu", "name=r", cwd=tmp_path).stdout
    assert "vector_mode=native (auto), 2 x CartPole-v1; camera 10 Hz at 50 Hz control" in out
    assert "run: runs/r  (64 env-steps" in out and (tmp_path / "runs/r/model.onnx").exists()
    out = sensorium("eval", "run=runs/r", "episodes=2", "num_envs=2", cwd=tmp_path).stdout
    report = json.loads(out[out.index("{"):out.rindex("}") + 1])
    assert report["episodes"] == 2 and report["mean_length"] > 0


def test_reacher_trains_continuous_actions_from_pixels_and_state(tmp_path: Path,
                                                                 one_thread_per_pool) -> None:
    env = {"id": "sensorium/Multimodal-v0", "env_id": "Reacher-v5", "image_size": 16,
           "rgb_hz": 10.0}
    setup = TrainSetup(env=env, fusion={"method": "concat"}, agent=dict(TINY_PPO), model={},
                       policy={}, run=RunSettings(num_envs=2, total_steps=64, progress=False,
                                                  threads=1, device="cpu", tensorboard=False))
    runner = OnPolicyRunner(setup, tmp_path / "run")
    try:
        assert runner.policy.continuous and runner.env.vector_mode == "native"
        summary = runner.learn()
        result = runner.evaluate(2, num_envs=2)
    finally:
        runner.close()
    assert summary["env_steps"] == 64
    assert result["episodes"] == 2 and result["mean_length"] == 50  # Reacher's time limit
    assert result["mean_return"] < 0
