"""Data-parallel PPO: two processes under torchrun (gloo on the CPU), through the CLI.

Each rank steps its own worlds, gradients are all-reduced, rank 0 alone writes the run
folder; early stopping on target_kl is one decision for all ranks. To see every rank's
final weights, the test launches the CLI through a small driver that wraps
``OnPolicyRunner.learn`` (the real one runs) and saves, per rank, the policy's state and
the last rollout's rewards and actions.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import torch
from safetensors.torch import load_file

from agent.checkpoint import list_checkpoints
from agent.trained import load_trained

REPO = Path(__file__).resolve().parents[2]
DRIVER = """
import os, sys
from pathlib import Path
from safetensors.torch import save_file
import agent.runner

real_learn = agent.runner.OnPolicyRunner.learn

def learn(self):
    summary = real_learn(self)
    state = {k: v.detach().contiguous().clone() for k, v in self.policy.state_dict().items()}
    state["rollout_rewards"] = self.alg.storage.rewards.clone()
    state["rollout_actions"] = self.alg.storage.actions.clone()
    save_file(state, str(Path(os.environ["RANK_STATE_DIR"]) / f"rank{self.dist.rank}.safetensors"))
    return summary

agent.runner.OnPolicyRunner.learn = learn
from cli.main import main
main(sys.argv[1:])
"""


TINY = ["name=ddp", "env.map_size=7", "env.image_size=16", "env.max_steps=30", "num_envs=4",
        "agent.num_steps=16", "agent.minibatches=4", "agent.epochs=4", "agent.target_kl=0.0002",
        "checkpoint_every=1", "progress=false", "threads=1", "device=cpu"]


def torchrun(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    # the driver imports torch and numba before cli.main could set OMP_WAIT_POLICY
    env = {**os.environ, "PYTHONPATH": str(REPO), "RANK_STATE_DIR": str(cwd),
           "OMP_WAIT_POLICY": "PASSIVE"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
           "driver.py", "train", *TINY, *args]
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.count("run: runs/ddp") == 1  # rank 0 alone reports
    return proc


def test_two_ranks_train_one_model_and_resume_it(tmp_path: Path) -> None:
    (tmp_path / "driver.py").write_text(DRIVER)
    torchrun("total_steps=256", cwd=tmp_path)
    run = tmp_path / "runs" / "ddp"
    # 2 ranks x 4 worlds x 16 steps = 128 env-steps an update
    assert [p.name for p in list_checkpoints(run / "checkpoints")] == [
        "ckpt_000000000128", "ckpt_000000000256"]
    assert len(list((run / "tb").glob("events.out.tfevents.*"))) == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "driver.py", "rank0.safetensors", "rank1.safetensors", "runs"]
    first = load_file(str(tmp_path / "rank0.safetensors"))

    torchrun("total_steps=512", "resume=true", cwd=tmp_path)  # every rank loads the checkpoint
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [128, 256, 384, 512]
    # target_kl stopped some update early, on both ranks at the same minibatch
    assert any(r["minibatch_updates"] < 16 for r in rows)
    assert all(r["minibatch_updates"] == int(r["minibatch_updates"]) for r in rows)
    assert len(list((run / "tb").glob("events.out.tfevents.*"))) == 2  # one a launch
    assert [p.name for p in list_checkpoints(run / "checkpoints")] == [
        "ckpt_000000000384", "ckpt_000000000512"]
    assert json.loads((run / "train_summary.json").read_text())["env_steps"] == 512

    ranks = [load_file(str(tmp_path / f"rank{r}.safetensors")) for r in (0, 1)]
    # each rank stepped worlds of its own and sampled actions of its own, also after resuming...
    assert not torch.equal(ranks[0].pop("rollout_rewards"), ranks[1].pop("rollout_rewards"))
    actions = [r.pop("rollout_actions") for r in ranks]
    assert (actions[0] == actions[1]).float().mean() < 0.6  # 1/4 + a policy's preferences
    # ...and, the gradients and normalisers being averaged, ends with the same model
    assert ranks[0].keys() == ranks[1].keys()
    different = [k for k in ranks[0] if not torch.equal(ranks[0][k], ranks[1][k])]
    assert not different
    assert any(not torch.equal(ranks[0][k], first[k]) for k in ranks[0])  # trained on
    # which is the one rank 0 saved
    saved = load_trained(run).policy.state_dict()
    assert all(torch.equal(saved[k], ranks[0][k]) for k in saved)


def test_ranks_whose_episodes_end_at_different_times_log_together(tmp_path: Path) -> None:
    """CartPole, one world per rank, 8-step rollouts: with seed 2, one rank finishes its
    first episode an update before the other, so only one of them has episode statistics
    for that update; the ranks' all-reduce of the metrics must still match (it aborted
    gloo: "Received data size doesn't match expected size")."""
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
           "-m", "cli", "train", "env=cartpole", "env.image_size=16", "num_envs=1",
           "agent.num_steps=8", "agent.minibatches=1", "agent.epochs=1", "total_steps=96",
           "seed=2", "name=cp", "progress=false", "tensorboard=false", "threads=1"]
    proc = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, timeout=240,
                          env={**os.environ, "PYTHONPATH": str(REPO)})
    assert proc.returncode == 0, proc.stdout + proc.stderr
    rows = [json.loads(line) for line in
            (tmp_path / "runs/cp/metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == list(range(16, 97, 16))
    assert "episode_length" not in rows[0] and "episode_length" in rows[-1]
