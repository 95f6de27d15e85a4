"""PPO and the on-policy runner on real worlds: smoke runs, seeded repeats, the truncation
bootstrap and the recurrent state bookkeeping checked against a replay, critics, auxiliary
losses, evaluation, checkpoints and resume, and the errors bad configs get.

Every run is tiny (7x7 maps, 16-pixel views, 4 worlds, 16-step rollouts).
"""

from __future__ import annotations

import copy
import json
import math
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from agent.checkpoint import CheckpointError, list_checkpoints
from agent.config import RunSettings
from agent.evaluate import record_policy_video
from agent.observations import ObservationPipeline
from agent.policy import ActorCritic
from agent.run_setup import TrainSetup
from agent.runner import OnPolicyRunner
from agent.trained import load_trained
from envs.factory import make_vector_env
from perception.settings import ConfigError

AVN = {"id": "sensorium/AudioVisualNav-v0", "map_size": 7, "image_size": 16, "max_steps": 30}
REACHER = {"id": "sensorium/Multimodal-v0", "env_id": "Reacher-v5", "image_size": 16,
           "env_kwargs": {"max_episode_steps": 10}}
PROBE = {"id": "sensorium/ModalityProbe-v0", "image_size": 16, "audio_samples": 400}
AGENT = {"name": "ppo", "num_steps": 16, "minibatches": 2, "epochs": 1, "seq_len": 8}
TIMING = {"time", "collect_seconds", "update_seconds", "env_steps_per_s"}
NUM_ENVS = 4
STEPS_PER_ITER = AGENT["num_steps"] * NUM_ENVS


def make_setup(env: dict[str, Any] = AVN, fusion: str = "concat",
               agent: dict[str, Any] | None = None, model: dict[str, Any] | None = None,
               policy: dict[str, Any] | None = None, **run: Any) -> TrainSetup:
    settings = {"num_envs": NUM_ENVS, "total_steps": 4 * STEPS_PER_ITER, "progress": False,
                "threads": 1, "device": "cpu", **run}
    return TrainSetup(env=copy.deepcopy(env), fusion={"method": fusion},
                      agent={**AGENT, **(agent or {})}, model=dict(model or {}),
                      policy=dict(policy or {}), run=RunSettings(**settings))


def train(run_dir: Path, **kwargs: Any) -> OnPolicyRunner:
    runner = OnPolicyRunner(make_setup(**kwargs), run_dir)
    runner.learn()
    return runner


def metrics(run_dir: Path) -> list[dict[str, float]]:
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


def without_timing(rows: list[dict[str, float]]) -> list[dict[str, float]]:
    return [{k: v for k, v in r.items() if k not in TIMING} for r in rows]


def keep_acting_policy(runner: OnPolicyRunner) -> list[dict[str, torch.Tensor]]:
    """Record the policy's state as it acted in each rollout.

    ``compute_returns`` comes right after a rollout, before the normalisers and the
    update change the policy; the real method still runs.
    """
    states: list[dict[str, torch.Tensor]] = []
    real = runner.alg.compute_returns

    def spy(last_values: torch.Tensor) -> None:
        states.append(copy.deepcopy(runner.policy.state_dict()))
        real(last_values)

    runner.alg.compute_returns = spy
    return states


def policy_with(runner: OnPolicyRunner, state: dict[str, torch.Tensor]) -> ActorCritic:
    policy = copy.deepcopy(runner.policy)
    policy.load_state_dict(state)
    return policy.eval()


@pytest.fixture(scope="module")
def avn_run(tmp_path_factory) -> tuple[Path, OnPolicyRunner]:
    """A feed-forward AudioVisualNav run of 4 updates (256 env-steps), checkpoint every 2."""
    run_dir = tmp_path_factory.mktemp("avn") / "run"
    return run_dir, train(run_dir, checkpoint_every=2, seed=3)


# -- smoke runs ------------------------------------------------------------------------------


def check_run_folder(run_dir: Path, iterations: int) -> list[dict[str, float]]:
    rows = metrics(run_dir)
    assert [r["step"] for r in rows] == [STEPS_PER_ITER * (i + 1) for i in range(iterations)]
    for r in rows:
        for key in ("policy_loss", "value_loss", "entropy", "approx_kl", "clip_fraction",
                    "grad_norm", "lr", "env_steps_per_s"):
            assert math.isfinite(r[key]), (key, r)
        assert r["minibatch_updates"] == AGENT["minibatches"] * AGENT["epochs"]
    assert rows[0]["lr"] > rows[-1]["lr"] > 0  # linear schedule
    ckpts = list_checkpoints(run_dir / "checkpoints")
    assert ckpts and ckpts[-1].name.endswith(f"{STEPS_PER_ITER * iterations:012d}")
    assert list((run_dir / "tb").glob("events.out.tfevents.*"))
    summary = json.loads((run_dir / "train_summary.json").read_text())
    assert summary["iterations"] == iterations
    assert summary["env_steps"] == STEPS_PER_ITER * iterations
    return rows


def test_feed_forward_smoke_run(avn_run) -> None:
    run_dir, runner = avn_run
    rows = check_run_folder(run_dir, 4)
    assert not runner.policy.recurrent
    assert "episode_return" in rows[-1] and "episode_success" in rows[-1]
    assert 0 <= rows[-1]["episode_spl"] <= 1
    assert len(list_checkpoints(run_dir / "checkpoints")) == 2  # keep_checkpoints=2


def test_recurrent_smoke_run(tmp_path: Path) -> None:
    runner = train(tmp_path / "run", model={"memory": 16})
    assert runner.policy.recurrent and runner.alg.storage.hidden.shape == (16, NUM_ENVS, 16)
    check_run_folder(tmp_path / "run", 4)


def test_continuous_actions_on_reacher(tmp_path: Path) -> None:
    runner = train(tmp_path / "run", env=REACHER, total_steps=2 * STEPS_PER_ITER)
    rows = check_run_folder(tmp_path / "run", 2)
    assert runner.policy.continuous
    assert runner.alg.storage.actions.shape == (16, NUM_ENVS, 2)
    assert runner.alg.storage.actions.dtype == torch.float32
    assert rows[-1]["episode_length"] == 10  # every episode ends at the time limit


def test_modality_probe_run(tmp_path: Path) -> None:
    train(tmp_path / "run", env=PROBE, total_steps=2 * STEPS_PER_ITER)
    rows = check_run_folder(tmp_path / "run", 2)
    assert rows[-1]["episode_length"] == 1  # a contextual bandit


def test_max_minutes_ends_the_run_early_and_saves(tmp_path: Path) -> None:
    runner = train(tmp_path / "run", total_steps=10**9, max_minutes=0.005, tensorboard=False)
    summary = json.loads((tmp_path / "run/train_summary.json").read_text())
    assert 0 < summary["env_steps"] == runner.env_steps < 10**9
    assert list_checkpoints(tmp_path / "run/checkpoints")[-1].name.endswith(
        f"{runner.env_steps:012d}")


# -- repeatability -----------------------------------------------------------------------------


def test_seeded_runs_repeat_and_other_seeds_differ(tmp_path: Path) -> None:
    kwargs = {"total_steps": 2 * STEPS_PER_ITER, "modality_dropout": 0.3, "tensorboard": False}
    runs = {name: train(tmp_path / name, seed=seed, **kwargs)
            for name, seed in (("a", 1), ("b", 1), ("c", 2))}
    rows = {name: without_timing(metrics(tmp_path / name)) for name in runs}
    assert rows["a"] == rows["b"]
    assert rows["a"] != rows["c"]
    tensors = {name: load_file(str(list_checkpoints(tmp_path / name / "checkpoints")[-1]
                                   / "tensors.safetensors")) for name in runs}
    assert tensors["a"].keys() == tensors["b"].keys()
    assert all(torch.equal(tensors["a"][k], tensors["b"][k]) for k in tensors["a"])
    assert any(not torch.equal(tensors["a"][k], tensors["c"][k]) for k in tensors["a"])
    params = {name: r.policy.state_dict() for name, r in runs.items()}
    assert all(torch.equal(params["a"][k], params["b"][k]) for k in params["a"])


# -- the rollout, checked against a replay of the same worlds --------------------------------


CARTPOLE = {"id": "sensorium/Multimodal-v0", "env_id": "CartPole-v1", "image_size": 16,
            "env_kwargs": {"max_episode_steps": 12}}


#: no randomizers or dropout: what the run stored is what a replay of its worlds shows
RAW_OBSERVATIONS = {"randomize": False, "modality_dropout": 0.0, "episode_dropout": 0.0}


@pytest.mark.parametrize("env,num_envs", [
    ({**AVN, "max_steps": 4}, NUM_ENVS),
    ({**REACHER, "env_kwargs": {"max_episode_steps": 4}}, NUM_ENVS),
    # TimeLimit: some poles fall at the limit, terminated and truncated at once (~1 in 64
    # steps; 512 steps make one all but certain)
    (CARTPOLE, 32),
], ids=["audiovisual_nav", "reacher", "cartpole"])
def test_truncations_bootstrap_gamma_times_the_value_of_the_final_obs(tmp_path: Path, env,
                                                                     num_envs: int) -> None:
    """Where a time limit cut the episode the stored reward is r + gamma * V(final_obs);
    where the world ended (terminated, even if also truncated) it is r."""
    gamma = 0.9
    runner = OnPolicyRunner(make_setup(env=env, agent={"gamma": gamma}, num_envs=num_envs,
                                       total_steps=16 * num_envs, tensorboard=False,
                                       **RAW_OBSERVATIONS), tmp_path / "run")
    acting = keep_acting_policy(runner)
    runner.learn()
    policy = policy_with(runner, acting[0])
    s = runner.alg.storage
    pipeline = ObservationPipeline(runner.obs_spec, policy, torch.device("cpu"))
    replay = make_vector_env(env, num_envs)
    obs, _ = replay.reset(seed=runner.env_seed)
    truncations = both = 0
    for t in range(s.T):
        x = pipeline(obs, train=False)
        for k in s.obs:  # the replay sees what the run saw
            assert torch.equal(s.obs[k][t], x[k]), (t, k)
        obs, reward, term, trunc, info = replay.step(policy.clip_actions(s.actions[t]).numpy())
        assert torch.equal(s.dones[t], torch.as_tensor(term | trunc))
        expected = torch.as_tensor(reward, dtype=torch.float32)
        rows = np.flatnonzero(trunc & ~term)
        both += int((trunc & term).sum())
        if len(rows):
            final = pipeline({k: np.stack([info["final_obs"][i][k] for i in rows])
                              for k in obs}, train=False)
            with torch.no_grad():
                v_final = policy.act(final, deterministic=True, frontend_done=True).value
                v_next = policy.act({k: v[rows] for k, v in pipeline(obs, train=False).items()},
                                    deterministic=True, frontend_done=True).value
            assert not torch.allclose(v_final, v_next)  # the check below can tell them apart
            expected[rows] += gamma * v_final
            truncations += len(rows)
        assert torch.allclose(s.rewards[t], expected, atol=1e-5), t
    replay.close()
    assert truncations > 0
    assert both > 0 or env is not CARTPOLE


def test_recurrent_chunks_replay_the_rollouts_log_probs_and_values(tmp_path: Path) -> None:
    """The state stored at each chunk's start and the episode starts inside it let the
    update's (L, B) unroll reproduce what the policy computed step by step."""
    runner = OnPolicyRunner(make_setup(model={"memory": 16}, total_steps=STEPS_PER_ITER,
                                       tensorboard=False, env={**AVN, "max_steps": 6}),
                            tmp_path / "run")
    acting = keep_acting_policy(runner)
    runner.learn()
    policy = policy_with(runner, acting[0])
    s = runner.alg.storage
    assert s.starts[0].all() and s.starts[1:].any()
    assert torch.count_nonzero(s.hidden[s.starts]) == 0  # a new episode starts from zeros
    assert torch.count_nonzero(s.hidden[~s.starts]) > 0
    inside = 0
    with torch.no_grad():
        for mb in s.sequences(2, AGENT["seq_len"], torch.Generator().manual_seed(0)):
            inside += int(mb.starts[1:].sum())
            ev = policy.evaluate(mb.obs, mb.actions, mb.h0, mb.starts, mb.privileged,
                                 frontend_done=True)
            assert torch.allclose(ev.log_prob, mb.old_log_prob, atol=1e-5)
            assert torch.allclose(ev.value, mb.old_value, atol=1e-5)
    assert inside > 0  # episodes also start inside chunks


# -- critics, auxiliary losses, augmentation -------------------------------------------------


@pytest.mark.parametrize("policy,model", [
    ({"privileged_critic": True}, {}),
    ({"separate_critic": True}, {}),
    ({"separate_critic": True, "privileged_critic": True}, {"memory": 8}),
], ids=["privileged", "separate", "separate-privileged-recurrent"])
def test_critic_variants_train(tmp_path: Path, policy, model) -> None:
    runner = train(tmp_path / "run", policy=policy, model=model,
                   total_steps=2 * STEPS_PER_ITER, tensorboard=False)
    rows = metrics(tmp_path / "run")
    assert len(rows) == 2 and all(math.isfinite(r["value_loss"]) for r in rows)
    p = runner.policy
    if policy.get("privileged_critic"):
        assert p.privileged_dim == 4 and runner.alg.storage.privileged.shape == (16, 4, 4)
    if policy.get("separate_critic"):
        assert p.critic_trunk is not None
        shared = {id(t) for t in p.trunk.parameters()} & {id(t) for t in
                                                           p.critic_trunk.parameters()}
        assert not shared
    if model.get("memory"):
        assert p.hidden_size == 16  # the actor's and the critic's memory
    assert runner.evaluate(2, num_envs=2)["episodes"] == 2
    video = record_policy_video(p, runner.setup.env, runner.pipeline, tmp_path / "v.mp4",
                                episodes=1, seed=0)
    assert Path(video["video"]).stat().st_size > 0


def test_coordination_loss_runs_and_is_logged(tmp_path: Path) -> None:
    runner = train(tmp_path / "run", agent={"coordination": {"weight": 0.1}},
                   total_steps=2 * STEPS_PER_ITER, tensorboard=False)
    rows = metrics(tmp_path / "run")
    assert all(math.isfinite(r["coordination_loss"]) and r["coordination_loss"] > 0
               for r in rows)
    assert "coordination" in runner.alg.modules()


def test_modality_dropout_drops_modalities_while_collecting(tmp_path: Path) -> None:
    runner = train(tmp_path / "run", modality_dropout=0.3, total_steps=STEPS_PER_ITER,
                   tensorboard=False)
    s = runner.alg.storage
    flags = torch.stack([s.obs[f"{n}_present"] for n in runner.obs_spec.names])
    assert not flags.all() and flags.any(0).all()  # some absent, never all of a sample's


def test_an_ablated_run_sees_only_its_modalities_and_evaluates_on_the_full_env(
        tmp_path: Path) -> None:
    hearing = ["audio", "proprio", "touch"]
    runner = train(tmp_path / "run", modalities=hearing, total_steps=STEPS_PER_ITER,
                   tensorboard=False)
    assert runner.obs_spec.names == tuple(hearing)
    assert set(runner.policy.trunk.encoders) == set(hearing)
    assert not {"rgb", "depth"} & set(runner.alg.storage.obs)
    trained = load_trained(tmp_path / "run")
    assert trained.obs_spec.names == tuple(hearing)
    assert trained.evaluate(episodes=2, num_envs=2)["episodes"] == 2  # env still renders rgb


def test_an_unknown_modality_in_an_ablation_names_the_ones_there(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"run.modalities=\['sonar'\]: unknown modality "
                       r"'sonar'.*modalities=\[rgb,depth,audio,proprio,touch\]"):
        OnPolicyRunner(make_setup(modalities=["sonar"]), tmp_path / "run")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device (runs on a GPU machine)")
@pytest.mark.parametrize("model", [{}, {"memory": 16}])
def test_training_runs_on_cuda_and_its_checkpoint_loads_on_the_cpu(tmp_path: Path, model) -> None:
    runner = train(tmp_path / "run", model=model, device="cuda")
    assert all(p.device.type == "cuda" for p in runner.policy.parameters())
    assert runner.alg.storage.obs["rgb"].device.type == "cuda"
    rows = metrics(tmp_path / "run")
    assert all(math.isfinite(r["policy_loss"]) for r in rows if "policy_loss" in r)
    trained = load_trained(tmp_path / "run", device="cpu")
    gpu = {k: v.cpu() for k, v in runner.policy.state_dict().items()}
    assert all(torch.equal(v, gpu[k]) for k, v in trained.policy.state_dict().items())
    assert trained.evaluate(episodes=2, num_envs=2)["episodes"] == 2


# -- evaluation ----------------------------------------------------------------------------------


def test_evaluate_reports_navigation_metrics(avn_run) -> None:
    _, runner = avn_run
    result = runner.evaluate(6, num_envs=3)
    assert result["episodes"] == 6
    for key in ("success_rate", "spl", "collisions", "mean_return", "mean_length"):
        assert math.isfinite(result[key]), key
    assert 0 <= result["success_rate"] <= 1 and 0 <= result["spl"] <= result["success_rate"]
    assert 1 <= result["mean_length"] <= AVN["max_steps"]
    assert result == runner.evaluate(6, num_envs=3)  # seeded, greedy


# -- checkpoints and resume ------------------------------------------------------------------


def test_resume_restores_the_run_and_continues_its_metrics(avn_run, tmp_path: Path) -> None:
    src, trained = avn_run
    run_dir = tmp_path / "run"
    shutil.copytree(src, run_dir)
    runner = OnPolicyRunner(make_setup(checkpoint_every=2, seed=3, resume=True,
                                       total_steps=6 * STEPS_PER_ITER), run_dir)
    runner.resume()
    assert (runner.iteration, runner.env_steps) == (4, 4 * STEPS_PER_ITER)
    want = trained.policy.state_dict()
    assert all(torch.equal(v, want[k]) for k, v in runner.policy.state_dict().items())
    opt, want_opt = runner.alg.optimizer.state_dict(), trained.alg.optimizer.state_dict()
    assert opt["state"].keys() == want_opt["state"].keys()
    assert all(torch.equal(opt["state"][i]["exp_avg"], want_opt["state"][i]["exp_avg"])
               for i in opt["state"])
    runner.learn()
    steps = [r["step"] for r in metrics(run_dir)]
    assert steps == [STEPS_PER_ITER * (i + 1) for i in range(6)]
    assert list_checkpoints(run_dir / "checkpoints")[-1].name.endswith(
        f"{6 * STEPS_PER_ITER:012d}")


# -- errors that say what to do --------------------------------------------------------------


def test_unknown_fusion_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="unknown fusion method 'nosuch'; choose one of: "
                                          ".*attention.*concat"):
        OnPolicyRunner(make_setup(fusion="nosuch"), tmp_path / "run")


def test_privileged_critic_needs_an_env_with_privileged_state(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="privileged_critic=true needs an env with "
                                          "privileged_state"):
        OnPolicyRunner(make_setup(env=REACHER, policy={"privileged_critic": True}),
                       tmp_path / "run")


def test_resume_without_a_checkpoint_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match="has no checkpoint; start it without resume"):
        OnPolicyRunner(make_setup(resume=True), tmp_path / "run")


def test_a_run_with_checkpoints_is_not_overwritten(avn_run, tmp_path: Path) -> None:
    src, _ = avn_run
    shutil.copytree(src, tmp_path / "run")
    with pytest.raises(CheckpointError, match="already has checkpoints; continue it with resume"):
        OnPolicyRunner(make_setup(), tmp_path / "run")


def test_resume_with_another_spec_names_the_mismatch(avn_run, tmp_path: Path) -> None:
    src, _ = avn_run
    shutil.copytree(src, tmp_path / "run")
    runner = OnPolicyRunner(make_setup(env={**AVN, "image_size": 24}, resume=True),
                            tmp_path / "run")
    with pytest.raises(CheckpointError) as err:
        runner.learn()
    msg = str(err.value)
    assert "was trained for observation spec" in msg
    assert "rgb: shape (16, 16, 3) vs (24, 24, 3)" in msg
    assert "start a new run or pick the matching env" in msg


def test_resume_with_another_model_names_the_mismatch(avn_run, tmp_path: Path) -> None:
    src, _ = avn_run
    shutil.copytree(src, tmp_path / "run")
    runner = OnPolicyRunner(make_setup(fusion="attention", resume=True), tmp_path / "run")
    with pytest.raises(CheckpointError, match="does not match this run's model"):
        runner.learn()


def test_critic_warmup_trains_only_the_critic_head(tmp_path: Path) -> None:
    """agent.critic_warmup=N: the first N updates leave the actor and the trunk as they were."""
    runner = OnPolicyRunner(make_setup(agent={"critic_warmup": 1}, total_steps=2 * STEPS_PER_ITER,
                                       export=False, tensorboard=False), tmp_path / "run")
    before = copy.deepcopy(runner.policy.state_dict())
    keep_acting_policy(runner)
    real = runner.alg.update
    after_warmup: list[dict[str, torch.Tensor]] = []

    def spy(critic_only: bool = False) -> dict[str, float]:
        out = real(critic_only)
        after_warmup.append(copy.deepcopy(runner.policy.state_dict()))
        return out

    runner.alg.update = spy
    runner.learn()
    first, second = after_warmup
    learnable = dict(runner.policy.named_parameters())
    for name in learnable:
        moved = not torch.equal(first[name], before[name])
        assert moved == name.startswith("critic."), name  # warm-up: the critic head only
    assert any(not torch.equal(second[n], first[n]) for n in learnable if n.startswith("actor."))
