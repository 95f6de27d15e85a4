"""Learning curves from the checkpoints a run keeps."""

from __future__ import annotations

from pathlib import Path

from agent.checkpoint import list_checkpoints, read_checkpoint_meta
from agent.config import RunSettings
from agent.curves import checkpoint_curve
from agent.run_setup import TrainSetup
from agent.training import run_training

AVN = {"id": "sensorium/AudioVisualNav-v0", "map_size": 7, "image_size": 16, "max_steps": 30}


def test_a_run_that_keeps_every_checkpoint_gives_one_curve_point_each(tmp_path: Path) -> None:
    run = RunSettings(num_envs=4, total_steps=3 * 64, checkpoint_every=1, keep_checkpoints=0,
                      progress=False, threads=1, device="cpu", export=False,
                      tensorboard=False)
    setup = TrainSetup(env=dict(AVN), fusion={"method": "concat"},
                       agent={"name": "ppo", "num_steps": 16, "minibatches": 2, "epochs": 1},
                       model={}, policy={}, run=run)
    run_training(setup, tmp_path / "run")
    kept = list_checkpoints(tmp_path / "run" / "checkpoints")
    assert len(kept) == 3  # keep_checkpoints=0: none deleted
    seconds = [read_checkpoint_meta(tmp_path / "run" / "checkpoints", int(p.name[5:]))
               ["train_seconds"] for p in kept]
    assert all(a < b for a, b in zip(seconds, seconds[1:])) and seconds[0] > 0

    points = checkpoint_curve(tmp_path / "run", episodes=4, seed=99, offset_seconds=60.0,
                              offset_steps=1000, num_envs=4)
    assert [p["env_steps"] for p in points] == [1064, 1128, 1192]
    assert [p["minutes"] for p in points] == [1.0 + s / 60 for s in seconds]
    for p in points:  # the world's declared metrics, evaluated greedily on new worlds
        assert {"mean_return", "success_rate", "spl", "collisions"} <= set(p)
        assert 0.0 <= p["success_rate"] <= 1.0
