"""What training does by default so that a policy survives real sensors: whole-episode and
per-step modality dropout, randomizers over real devices' ranges, gain-invariant audio
features; and PPO fine-tuning that starts from another run's policy."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from agent.config import ROBUST_RANDOMIZER, RunSettings
from agent.logger import read_metrics
from agent.observations import ObservationPipeline
from agent.policy import ActorCritic
from agent.run_setup import action_spec_of
from agent.runner import OnPolicyRunner
from envs.factory import make_vector_env, obs_spec_of
from perception.augment.randomizers import (
    BANK_FROM,
    ImageJitterNoise,
    LevelNoise,
    ObservationRandomizer,
    RandomizerConfig,
    _normal,
)
from perception.encoders.audio import AudioEncoder, AudioEncoderConfig
from perception.settings import ConfigError
from perception.spec import ModalitySpec, presence_key
from tests.agent.test_ppo_runner import AVN, NUM_ENVS, REACHER, STEPS_PER_ITER, make_setup


def test_training_defaults_are_the_real_sensor_ones() -> None:
    run = RunSettings()
    assert run.randomize and run.modality_dropout == 0.1 and run.episode_dropout == 0.15
    cfg = RandomizerConfig(**ROBUST_RANDOMIZER)
    assert cfg.audio_gain_db >= 6.0  # x0.5 .. x2
    assert cfg.audio_noise_max >= 0.01 and cfg.image_noise >= 10
    assert AudioEncoderConfig().gain_invariant


def _pipeline(run: RunSettings, worlds: int = 64, seed: int = 3
              ) -> tuple[ObservationPipeline, dict]:
    """A training run's pipeline (no randomizer) and a first observation of `worlds`."""
    env = make_vector_env(AVN, worlds)
    obs, _ = env.reset(seed=0)
    spec = obs_spec_of(env)
    env.close()
    policy = ActorCritic(spec, action_spec_of(env))
    return ObservationPipeline.for_training(spec, policy, torch.device("cpu"), run, None,
                                            seed), obs


def test_episode_dropout_keeps_a_modality_off_for_the_whole_episode() -> None:
    pipe, obs = _pipeline(RunSettings(modality_dropout=0.0, episode_dropout=0.3))
    pipe.new_episodes(np.ones(64, bool))
    flags = lambda x: torch.stack([x[presence_key(n)] for n in pipe.names], 1)  # noqa: E731
    first = flags(pipe(obs, train=True))
    assert (~first).any() and first.any(dim=1).all()  # some off, never all of a world's
    off = (~first).float().mean().item()
    assert 0.15 < off < 0.45
    again = flags(pipe(obs, train=True))
    torch.testing.assert_close(first, again)  # the same worlds lack the same sensors
    ended = np.zeros(64, bool)
    ended[:32] = True
    pipe.new_episodes(ended)
    third = flags(pipe(obs, train=True))
    torch.testing.assert_close(third[32:], first[32:])  # episodes still running: unchanged
    assert not torch.equal(third[:32], first[:32])
    assert flags(pipe(obs, train=False)).all()  # evaluation sees every sensor
    none, _ = _pipeline(RunSettings(modality_dropout=0.0, episode_dropout=0.0))
    none.new_episodes(np.ones(64, bool))
    assert flags(none(obs, train=True)).all()


def test_per_step_dropout_can_leave_a_modality_to_the_episode_draw() -> None:
    """``modality_dropout_of={audio: 0}``: audio is never dropped for one step (a deaf
    episode then does not look like a dropped tick); the other senses are, and a setting
    naming no sense of the world is ignored."""
    pipe, obs = _pipeline(RunSettings(modality_dropout=0.3, episode_dropout=0.0,
                                      modality_dropout_of={"audio": 0.0, "sonar": 0.5}),
                          worlds=256, seed=1)
    x = pipe(obs, train=True)
    assert x[presence_key("audio")].all()
    for name in ("rgb", "depth", "proprio", "touch"):
        assert 0.15 < (~x[presence_key(name)]).float().mean() < 0.45


def test_whole_episode_dropout_can_be_set_per_sensor() -> None:
    """``episode_dropout_of={audio: 0.5}``: more deaf episodes, the rest at the default."""
    pipe, _ = _pipeline(RunSettings(modality_dropout=0.0, episode_dropout=0.1,
                                    episode_dropout_of={"audio": 0.5, "sonar": 0.9}),
                        worlds=512, seed=2)
    pipe.new_episodes(np.ones(512, bool))
    absent = pipe.episode_absent()
    assert 0.4 < absent["audio"].mean() < 0.6
    for name in ("rgb", "depth", "proprio", "touch"):
        assert 0.04 < absent[name].mean() < 0.17
    with pytest.raises(ConfigError, match="episode_dropout_of.audio"):
        RunSettings(episode_dropout_of={"audio": 1.5}).validate()


def test_the_audio_features_do_not_change_with_the_microphone_gain() -> None:
    spec = ModalitySpec("audio", "audio", (2, 1600), "float32", 10.0, -1, 1, sample_rate=16000)
    t = torch.arange(1600) / 16000
    wave = torch.stack([0.2 * torch.sin(2 * torch.pi * 440 * t),
                        0.1 * torch.sin(2 * torch.pi * 440 * t)])[None]
    # a noise floor above log-mel's eps (bins at the eps floor do not scale with the gain)
    wave = wave + 0.05 * torch.randn(1, 2, 1600, generator=torch.Generator().manual_seed(0))
    inv = AudioEncoder(spec, AudioEncoderConfig())
    raw = AudioEncoder(spec, AudioEncoderConfig(gain_invariant=False))
    for gain in (0.5, 2.0):
        moved = (raw.frontend(wave * gain) - raw.frontend(wave)).abs().mean()
        kept = (inv.frontend(wave * gain) - inv.frontend(wave)).abs().mean()
        assert moved > 1.0 and kept < 0.05 * moved
    # the level difference between the ears stays: 6 dB (x4 in power) in the tone's band
    z = inv.frontend(wave)[0]
    band = z[0].mean(dim=0).argmax()
    assert (z[0, :, band] - z[1, :, band]).mean() > 1.0


def test_level_noise_draws_a_noise_level_per_sample() -> None:
    x = torch.full((8, 64, 64, 3), 128, dtype=torch.uint8)
    y = LevelNoise(12.0, 0.0, 255.0).forward_in(x, torch.Generator().manual_seed(0))
    assert y.dtype == torch.uint8 and y.shape == x.shape
    stds = (y.float() - 128).flatten(1).std(dim=1)
    assert stds.max() < 13 and stds.max() - stds.min() > 2  # levels differ between samples
    both = ImageJitterNoise(None, LevelNoise(12.0, 0.0, 255.0))
    z = both.forward_in(x, torch.Generator().manual_seed(0))
    assert z.dtype == torch.uint8 and (z != 128).any()


def test_large_noise_draws_come_from_the_bank_and_repeat_under_a_seed() -> None:
    like = torch.zeros(1)
    a = _normal((BANK_FROM * 2,), like, torch.Generator().manual_seed(1))
    b = _normal((BANK_FROM * 2,), like, torch.Generator().manual_seed(1))
    c = _normal((BANK_FROM * 2,), like, torch.Generator().manual_seed(2))
    torch.testing.assert_close(a, b)
    assert not torch.equal(a, c)
    assert abs(a.mean().item()) < 0.02 and abs(a.std().item() - 1) < 0.02


def test_the_robust_randomizer_keeps_dtypes_and_absent_rows(tmp_path: Path) -> None:
    env = make_vector_env(AVN, 8)
    obs, _ = env.reset(seed=0)
    spec = obs_spec_of(env)
    env.close()
    aug = ObservationRandomizer(spec, RandomizerConfig(**ROBUST_RANDOMIZER)).train()
    x = {k: torch.as_tensor(v) for k, v in obs.items()}
    x[presence_key("rgb")] = torch.tensor([True, False] * 4)
    y = aug(x, generator=torch.Generator().manual_seed(0))
    for m in spec:
        assert y[m.name].dtype == x[m.name].dtype and y[m.name].shape == x[m.name].shape
    assert not torch.equal(y["rgb"][0], x["rgb"][0])
    torch.testing.assert_close(y["rgb"][1], x["rgb"][1])  # absent rows keep their data


def test_ppo_starts_from_another_runs_policy(tmp_path: Path) -> None:
    first = OnPolicyRunner(make_setup(total_steps=64), tmp_path / "a")
    first.learn()
    first.close()
    second = OnPolicyRunner(make_setup(total_steps=64, init=str(tmp_path / "a")), tmp_path / "b")
    for (name, p), q in zip(first.policy.state_dict().items(),
                            second.policy.state_dict().values()):
        torch.testing.assert_close(p, q, msg=name)
    second.close()
    with pytest.raises(ConfigError, match="init=.*nowhere: no checkpoints there"):
        OnPolicyRunner(make_setup(init=str(tmp_path / "nowhere")), tmp_path / "c")


@pytest.mark.parametrize("deaf_expert", ["nearest", "in_view"])
def test_a_deaf_student_is_taught_to_walk_to_an_object(deaf_expert: str) -> None:
    """Without hearing the goal is unknowable; the expert for such episodes walks to an
    object (the nearest, or one in view) and stops: right about once in as many objects,
    never the privileged path's 100 %."""
    env = make_vector_env({"id": "sensorium/AudioVisualNav-v0", "deaf_expert": deaf_expert},
                          32)  # the default world
    try:
        env.reset(seed=4)
        deaf = np.zeros(32, bool)
        deaf[:16] = True
        first = env.expert_actions_without({"audio": deaf})
        np.testing.assert_array_equal(first[16:], env.expert_actions()[16:])
        np.testing.assert_array_equal(env.expert_actions_without({"depth": deaf}),
                                      env.expert_actions())
        success: dict[bool, list[float]] = {True: [], False: []}
        for _ in range(300):
            _, _, term, trunc, info = env.step(env.expert_actions_without({"audio": deaf}))
            for i in np.flatnonzero(term | trunc):
                success[bool(deaf[i])].append(float(info["final_info"]["success"][i]))
        heard, unheard = np.mean(success[False]), np.mean(success[True])
        objects = env.worlds.obj_pos.shape[1]
        assert heard >= 0.98 and len(success[True]) >= 100
        assert 0.5 / objects < unheard < 2.0 / objects  # chance of picking the goal
    finally:
        env.close()


def test_kickstarting_stores_the_experts_actions_and_adds_their_loss(tmp_path: Path) -> None:
    """Each stored step carries the expert's action for that state (a replay of the worlds
    with the stored actions meets the same labels), and the update logs its loss."""
    raw = {"randomize": False, "modality_dropout": 0.0, "episode_dropout": 0.0}
    runner = OnPolicyRunner(make_setup(total_steps=STEPS_PER_ITER, agent={"teacher_coef": 0.5},
                                       **raw), tmp_path / "k")
    runner.learn()
    s = runner.alg.storage
    replay = make_vector_env(AVN, NUM_ENVS)
    replay.reset(seed=runner.env_seed)
    for t in range(s.T):
        np.testing.assert_array_equal(s.teacher[t].numpy(), replay.expert_actions())
        replay.step(s.actions[t].numpy())
    replay.close()
    rows = [r for r in read_metrics(tmp_path / "k" / "metrics.jsonl") if "teacher_loss" in r]
    assert rows and all(0 < r["teacher_loss"] < 5 for r in rows)
    runner.close()
    with pytest.raises(ConfigError, match="teacher_coef"):
        OnPolicyRunner(make_setup(env=REACHER, agent={"teacher_coef": 0.5}), tmp_path / "r")


def test_kickstarting_only_where_a_sense_is_absent_leaves_the_rest_to_ppo(
        tmp_path: Path) -> None:
    """``teacher_on=absent``: a stored step has the expert's label exactly when its episode
    lacks a sense all episode, and -1 (no imitation) otherwise; the loss still logs."""
    runner = OnPolicyRunner(make_setup(total_steps=STEPS_PER_ITER, episode_dropout=0.3,
                                       agent={"teacher_coef": 0.5, "teacher_on": "absent"}),
                            tmp_path / "k")
    lacking: list[np.ndarray] = []
    label = runner.teacher.actions

    def labelled(obs: dict, absent: dict | None = None) -> torch.Tensor:
        lacking.append(np.logical_or.reduce(list(absent.values())))
        return label(obs, absent)

    runner.teacher.actions = labelled
    runner.learn()
    stored = runner.alg.storage.teacher.numpy()
    assert len(lacking) == stored.shape[0]
    for t, rows in enumerate(lacking):
        assert (stored[t][~rows] == -1).all() and (stored[t][rows] >= 0).all()
    share = np.mean(lacking)
    assert 0.2 < share < 0.95  # 1 - 0.7^5 of the episodes lack one, or more
    rows = [r for r in read_metrics(tmp_path / "k" / "metrics.jsonl") if "teacher_loss" in r]
    assert rows and all(0 < r["teacher_loss"] < 5 for r in rows)
    runner.close()
    with pytest.raises(ConfigError, match="episode_dropout"):
        OnPolicyRunner(make_setup(episode_dropout=0.0,
                                  agent={"teacher_coef": 0.5, "teacher_on": "absent"}),
                       tmp_path / "n")
