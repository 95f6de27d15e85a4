"""ModalityProbe: the gymnasium contract, the ground truth of each interaction, and errors."""

from __future__ import annotations

import math
from typing import Any

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env
from gymnasium.vector import AutoresetMode

import envs  # noqa: F401  (registers the envs)
from envs import ConfigError
from envs.modality_probe import (
    ModalityProbeConfig,
    ModalityProbeEnv,
    ModalityProbeVectorEnv,
    answer_probabilities,
    bayes_optimal_actions,
    bit_log_odds,
    modality_probe_spec,
)

ENV_ID = "sensorium/ModalityProbe-v0"
INTERACTIONS = ("redundant", "unique_a", "unique_b", "synergy", "mixed")


def collect(episodes: int, seed: int = 0, num_envs: int = 500, **kw: Any) -> dict[str, Any]:
    """Bandit episodes answered by the expert: observations, answers and latents, stacked."""
    env = ModalityProbeVectorEnv(num_envs=num_envs, **kw)
    obs, _ = env.reset(seed=seed)
    seen: list[dict[str, np.ndarray]] = []
    answers, latents = [], []
    for _ in range(math.ceil(episodes / num_envs)):
        seen.append(obs)
        answers.append(env.expert_actions())
        latents.append(env.latents())
        obs, reward, *_ = env.step(answers[-1])
        assert (reward == 1.0).all()
    return {
        "cfg": env.cfg,
        "obs": {k: np.concatenate([o[k] for o in seen]) for k in seen[0]},
        "y": np.concatenate(answers),
        "latents": {k: np.concatenate([x[k] for x in latents]) for k in latents[0]},
    }


def accuracy(data: dict[str, Any], use: Any = ("a", "b")) -> float:
    return float((bayes_optimal_actions(data["obs"], data["cfg"], use) == data["y"]).mean())


def at_chance(p: float, n: int, sigmas: float = 4.0) -> bool:
    return abs(p - 0.5) <= sigmas * 0.5 / math.sqrt(n)


# -- the gymnasium contract ---------------------------------------------------------------

@pytest.mark.parametrize("interaction", INTERACTIONS)
def test_single_env_passes_gymnasium_check_env(interaction: str) -> None:
    env = gym.make(ENV_ID, interaction=interaction, distractor="vector")
    assert isinstance(env.unwrapped, ModalityProbeEnv)
    check_env(env.unwrapped)
    obs, _ = env.reset(seed=1)
    assert env.observation_space.contains(obs)
    obs, reward, terminated, truncated, info = env.step(env.unwrapped.expert_action())
    assert reward == 1.0 and terminated and not truncated and info["correct"] is True


def test_render_gives_a_panel_per_modality() -> None:
    env = gym.make(ENV_ID, render_mode="rgb_array", distractor="vector")
    check_env(env.unwrapped, skip_render_check=False)
    env.reset(seed=0)
    picture = env.render()
    assert picture.dtype == np.uint8 and picture.ndim == 3 and picture.shape[2] == 3
    assert picture.shape[1] > picture.shape[0]  # three tiles side by side


@pytest.mark.parametrize("interaction, n_actions", [("synergy", 2), ("mixed", 16)])
def test_make_vec_gives_the_native_batched_env_with_spaces_from_the_spec(
    interaction: str, n_actions: int
) -> None:
    env = gym.make_vec(ENV_ID, num_envs=5, vectorization_mode="vector_entry_point",
                       interaction=interaction, distractor="vector", image_size=16)
    assert isinstance(env, ModalityProbeVectorEnv)
    assert env.metadata["autoreset_mode"] is AutoresetMode.SAME_STEP
    assert env.single_observation_space == modality_probe_spec(env.cfg).to_space()
    assert env.obs_spec.names == ("rgb", "audio", "vector")  # a, b, distractor
    assert env.single_action_space == gym.spaces.Discrete(n_actions)
    obs, _ = env.reset(seed=0)
    assert env.observation_space.contains(obs)
    assert obs["rgb"].shape == (5, 16, 16, 3) and obs["rgb"].dtype == np.uint8
    assert obs["audio"].shape == (5, 1, 1600) and obs["audio"].dtype == np.float32
    assert obs["vector"].shape == (5, 8) and obs["vector"].dtype == np.float32
    obs, reward, term, trunc, _ = env.step(env.action_space.sample())
    assert env.observation_space.contains(obs)
    assert reward.shape == term.shape == trunc.shape == (5,)
    assert reward.dtype == np.float64 and term.dtype == trunc.dtype == np.bool_


def test_autoreset_ends_every_bandit_episode_and_starts_a_new_one() -> None:
    env = ModalityProbeVectorEnv(num_envs=4)
    obs0, _ = env.reset(seed=2)
    before = env.latents()
    obs1, reward, term, trunc, info = env.step(env.expert_actions())
    assert term.all() and not trunc.any() and (reward == 1.0).all()
    assert info["_final_obs"].all() and info["_final_info"].all()
    for i in range(4):  # the final observation is the one that was answered
        for key in obs0:
            assert np.array_equal(info["final_obs"][i][key], obs0[key][i])
    assert not np.array_equal(obs1["rgb"], obs0["rgb"])  # a new episode
    fi = info["final_info"]
    assert fi["correct"].all() and (fi["episode_length"] == 1).all()
    assert np.array_equal(fi["latent_s_a"], before["s_a"])
    assert np.array_equal(fi["answer"], before["s_a"] ^ before["s_b"])


def test_longer_episodes_repeat_the_world_with_fresh_noise_and_reward_the_last_answer() -> None:
    env = ModalityProbeVectorEnv(num_envs=3, episode_steps=3, interaction="redundant")
    obs, _ = env.reset(seed=0)
    latents = env.latents()
    wrong = 1 - env.expert_actions()
    for _ in range(2):
        new, reward, term, _, info = env.step(wrong)  # wrong answers cost nothing yet
        assert not term.any() and (reward == 0).all() and info == {}
        assert all(np.array_equal(env.latents()[k], v) for k, v in latents.items())
        assert not np.array_equal(new["audio"], obs["audio"])  # fresh noise ...
        gain = np.abs(np.fft.rfft(new["audio"][:, 0])) - np.abs(np.fft.rfft(obs["audio"][:, 0]))
        assert np.abs(gain).max() < 0.2 * np.abs(np.fft.rfft(obs["audio"][:, 0])).max()
        obs = new  # ... on the same tones
    _, reward, term, _, info = env.step(env.expert_actions())
    assert term.all() and (reward == 1.0).all()
    assert (info["final_info"]["episode_length"] == 3).all()
    assert (info["final_info"]["episode_return"] == 1.0).all()


def test_single_env_without_autoreset_refuses_to_step_past_the_end() -> None:
    env = ModalityProbeVectorEnv(num_envs=2, autoreset=False)
    obs, _ = env.reset(seed=0)
    obs2, _, term, _, info = env.step(np.zeros(2, np.int64))
    assert term.all() and info["correct"].shape == (2,)
    assert np.array_equal(obs2["rgb"], obs["rgb"]) and obs2["rgb"] is not obs["rgb"]
    with pytest.raises(RuntimeError, match="call reset"):
        env.step(np.zeros(2, np.int64))


def test_seeding_repeats_rollouts_and_different_seeds_differ() -> None:
    def rollout(seed: int) -> list[np.ndarray]:
        env = ModalityProbeVectorEnv(num_envs=4, episode_steps=2, distractor="vector")
        obs, _ = env.reset(seed=seed)
        rng = np.random.default_rng(0)
        out = list(obs.values())
        for _ in range(6):  # crosses episode ends and autoresets
            obs, reward, *_ = env.step(rng.integers(0, 2, size=4))
            out += [*obs.values(), reward]
        return out

    a, b, c = rollout(7), rollout(7), rollout(8)
    assert all(np.array_equal(x, y) for x, y in zip(a, b))
    assert not all(np.array_equal(x, y) for x, y in zip(a, c))
    env = ModalityProbeVectorEnv(num_envs=4)
    first, _ = env.reset(seed=7)
    again, _ = env.reset()  # no seed: the stream goes on
    assert not np.array_equal(first["rgb"], again["rgb"])


@pytest.mark.parametrize("interaction", INTERACTIONS)
def test_the_expert_is_always_right(interaction: str) -> None:
    env = ModalityProbeVectorEnv(num_envs=64, interaction=interaction, noise_a=3.0)
    env.reset(seed=3)
    for _ in range(5):
        _, reward, _, _, info = env.step(env.expert_actions())
        assert (reward == 1.0).all() and info["final_info"]["correct"].all()


# -- the ground truth ---------------------------------------------------------------------

@pytest.mark.parametrize("interaction", INTERACTIONS)
@pytest.mark.parametrize("kinds", [("image", "audio"), ("audio", "vector"), ("vector", "image")])
def test_bayes_rule_with_both_modalities_is_right_at_zero_noise(
    interaction: str, kinds: tuple[str, str]
) -> None:
    data = collect(1000, interaction=interaction, modality_a=kinds[0], modality_b=kinds[1],
                   noise_a=0.0, noise_b=0.0)
    assert accuracy(data) >= 0.99


def test_synergy_one_modality_alone_is_at_chance_both_are_right() -> None:
    n = 8000
    data = collect(n, seed=1, interaction="synergy", noise_a=0.0, noise_b=0.0)
    assert accuracy(data) >= 0.99
    y, lat = data["y"], data["latents"]
    for role, own in (("a", ("r", "u_a", "s_a")), ("b", ("r", "u_b", "s_b"))):
        assert abs(accuracy(data, use=role) - 0.5) <= 0.03
        probs = answer_probabilities(data["obs"], data["cfg"], use=role)
        assert np.all(probs == 0.5)  # exactly no information, not merely little
        decoded = (bit_log_odds(data["obs"], data["cfg"], role) > 0).astype(int)
        for j, name in enumerate(own):  # the modality is read right ...
            assert (decoded[:, j] == lat[name]).mean() >= 0.99
        cell = decoded @ np.array([4, 2, 1])
        for value in range(8):  # ... yet says nothing about y, whatever it shows
            hits = y[cell == value]
            assert len(hits) > n / 16 and at_chance(hits.mean(), len(hits))


@pytest.mark.parametrize("unique, other", [("a", "b"), ("b", "a")])
def test_unique_one_modality_is_right_and_the_other_at_chance(unique: str, other: str) -> None:
    data = collect(4000, seed=2, interaction=f"unique_{unique}", noise_a=0.0, noise_b=0.0)
    assert accuracy(data, use=unique) >= 0.99
    assert at_chance(accuracy(data, use=other), 4000)
    assert accuracy(data, use=data["cfg"].keys[unique]) >= 0.99  # by observation key too


def test_redundant_either_modality_alone_is_right_and_both_agree_more_under_noise() -> None:
    data = collect(2000, seed=3, interaction="redundant", noise_a=0.0, noise_b=0.0)
    assert accuracy(data, use="a") >= 0.99 and accuracy(data, use="b") >= 0.99
    noisy = collect(2000, seed=3, interaction="redundant", noise_a=1.0, noise_b=1.0)
    assert accuracy(noisy) > max(accuracy(noisy, "a"), accuracy(noisy, "b")) + 0.03


def test_the_distractor_carries_no_information() -> None:
    data = collect(2000, seed=4, interaction="redundant", distractor="vector",
                   noise_distractor=0.0)
    assert at_chance(accuracy(data, use="distractor"), 2000)
    assert at_chance(accuracy(data, use="vector"), 2000)


def test_more_noise_lowers_the_bayes_accuracy() -> None:
    accs = [accuracy(collect(2000, seed=5, interaction="unique_a", noise_a=noise))
            for noise in (0.0, 0.5, 1.5, 4.0)]
    assert accs[0] >= 0.99
    assert all(x > y + 0.03 for x, y in zip(accs, accs[1:])), accs


def _theory(kind: str, noise: float, views: int = 1) -> float:
    """Bayes accuracy of one bit at per-bit `noise`: coherent (vector) or Rayleigh-faded."""
    snr = views / noise**2
    if kind == "vector":
        return 0.5 * (1 + math.erf(math.sqrt(snr) / math.sqrt(2)))
    p = 1 / (2 + snr)
    d = 3 if kind == "image" else 1  # colour channels fade independently
    return 1 - p**d * sum(math.comb(d - 1 + k, k) * (1 - p) ** k for k in range(d))


@pytest.mark.parametrize("kind, other", [("image", "audio"), ("audio", "vector"),
                                         ("vector", "image")])
def test_noise_is_per_bit_and_the_posteriors_are_calibrated(kind: str, other: str) -> None:
    n = 6000
    data = collect(n, seed=6, interaction="unique_a", modality_a=kind, modality_b=other,
                   noise_a=1.0)
    acc = accuracy(data, use="a")
    p = answer_probabilities(data["obs"], data["cfg"], use="a")[:, 0]
    expected = np.maximum(p, 1 - p).mean()  # what the posteriors claim
    tol = 4 * math.sqrt(0.25 / n)
    assert abs(acc - _theory(kind, 1.0)) < tol, (acc, _theory(kind, 1.0))
    assert abs(expected - _theory(kind, 1.0)) < tol / 2
    # calibration in bins of claimed confidence
    conf = np.maximum(p, 1 - p)
    right = bayes_optimal_actions(data["obs"], data["cfg"], "a") == data["y"]
    for lo, hi in ((0.5, 0.7), (0.7, 0.9), (0.9, 1.01)):
        sel = (conf >= lo) & (conf < hi)
        if sel.sum() > 300:
            assert abs(right[sel].mean() - conf[sel].mean()) < 4 * math.sqrt(0.25 / sel.sum())


def test_views_of_a_longer_episode_add_up() -> None:
    env = ModalityProbeVectorEnv(num_envs=2000, episode_steps=4, interaction="unique_a",
                                 modality_a="audio", modality_b="vector", noise_a=1.0)
    obs, _ = env.reset(seed=8)
    y = env.expert_actions()
    views = [obs]
    for _ in range(3):
        obs, *_ = env.step(y)
        views.append(obs)
    stacked = {k: np.stack([v[k] for v in views]) for k in obs}
    one = (bayes_optimal_actions(views[0], env.cfg, "a") == y).mean()
    four = (bayes_optimal_actions(stacked, env.cfg, "a") == y).mean()
    tol = 4 * math.sqrt(0.25 / 2000)
    assert abs(one - _theory("audio", 1.0)) < tol and abs(four - _theory("audio", 1.0, 4)) < tol


def test_absent_modalities_count_as_unseen() -> None:
    data = collect(1000, seed=9, interaction="redundant")
    obs = dict(data["obs"], rgb_present=np.zeros(1000, bool))
    assert np.array_equal(bayes_optimal_actions(obs, data["cfg"]),
                          bayes_optimal_actions(data["obs"], data["cfg"], use="b"))


def test_mixed_reward_is_the_weighted_sum_of_right_components() -> None:
    weights = {"redundant": 3.0, "unique_a": 0.0, "unique_b": 1.0, "synergy": 0.0}
    env = ModalityProbeVectorEnv(num_envs=64, interaction="mixed", weights=weights)
    assert env.cfg.components == ("redundant", "unique_b")
    assert env.single_action_space == gym.spaces.Discrete(4)
    env.reset(seed=10)
    rng = np.random.default_rng(0)
    for _ in range(10):
        lat = env.latents()
        assert np.array_equal(env.expert_actions(), lat["r"] + 2 * lat["u_b"])
        a = rng.integers(0, 4, size=64)
        _, reward, _, _, info = env.step(a)
        fi = info["final_info"]
        right_r, right_ub = (a & 1) == lat["r"], (a >> 1) == lat["u_b"]
        assert np.array_equal(fi["correct_redundant"], right_r)
        assert np.array_equal(fi["correct_unique_b"], right_ub)
        assert np.array_equal(fi["correct"], right_r & right_ub)
        assert np.allclose(reward, 0.75 * right_r + 0.25 * right_ub)


def test_config_is_a_plain_structured_config() -> None:
    cfg = ModalityProbeConfig()
    assert cfg.id == ENV_ID and cfg.interaction == "synergy" and cfg.keys == {"a": "rgb",
                                                                             "b": "audio"}
    data = collect(500, seed=11)
    kwargs = {"interaction": "synergy"}  # a mapping works in place of the dataclass
    assert np.array_equal(bayes_optimal_actions(data["obs"], kwargs),
                          bayes_optimal_actions(data["obs"], data["cfg"]))


# -- errors that say how to fix them ------------------------------------------------------

def test_invalid_actions_get_clear_errors() -> None:
    env = ModalityProbeVectorEnv(num_envs=2)
    with pytest.raises(RuntimeError, match="call reset"):
        env.step(np.zeros(2, np.int64))
    env.reset(seed=0)
    with pytest.raises(ValueError, match=r"invalid action 2 for world 1.*\[0, 2\)"):
        env.step(np.array([0, 2]))
    with pytest.raises(ValueError, match="actions must be 2 integers"):
        env.step(np.array([0.5, 1.0]))
    single = gym.make(ENV_ID)
    single.reset(seed=0)
    with pytest.raises(ValueError, match="invalid action -1"):
        single.step(-1)


@pytest.mark.parametrize("kwargs, pattern", [
    ({"modality_a": "lidar"}, r"modality_a='lidar' is invalid.*one of image, audio, vector"),
    ({"modality_b": "image"}, r"modality_b='image'.*other than modality_a='image'"),
    ({"distractor": "audio"}, r"distractor='audio'.*other than modality_a and modality_b"),
    ({"interaction": "xor"}, r"interaction='xor'.*redundant, unique_a, unique_b, synergy, mixed"),
    ({"image_size": -4}, r"image_size=-4 is invalid; it must be an integer >= 8"),
    ({"audio_samples": -1}, r"audio_samples=-1.*integer >= 64"),
    ({"vector_dim": 0}, r"vector_dim=0.*integer >= 3"),
    ({"episode_steps": 0}, r"episode_steps=0.*integer >= 1"),
    ({"noise_a": -0.1}, r"noise_a=-0.1.*number >= 0"),
    ({"sample_rate": 4000}, r"sample_rate=4000.*raise audio_samples or sample_rate"),
    ({"weights": {"synergy": -1.0}}, r"weights.synergy=-1.0.*number >= 0"),
    ({"interaction": "mixed", "weights": {"redundant": 0, "unique_a": 0, "unique_b": 0,
                                          "synergy": 0}}, r"weights=.*at least one component"),
    ({"weights": {"xor": 1.0}}, r"weights: unknown setting\(s\) \['xor'\]"),
    ({"colour": True}, r"unknown setting\(s\) \['colour'\]; valid settings: .*audio_samples"),
])
def test_bad_settings_get_clear_errors(kwargs: dict[str, Any], pattern: str) -> None:
    with pytest.raises(ConfigError, match=pattern):
        ModalityProbeVectorEnv(num_envs=1, **kwargs)
    with pytest.raises(ConfigError, match=pattern):
        gym.make(ENV_ID, **kwargs)


def test_bad_oracle_inputs_get_clear_errors() -> None:
    data = collect(10, num_envs=10)
    with pytest.raises(ValueError, match=r"unknown modality 'depth'.*'a' \(rgb\), 'b' \(audio\)"):
        bayes_optimal_actions(data["obs"], data["cfg"], use=("depth",))
    with pytest.raises(ValueError, match=r"observation lacks modality 'rgb'"):
        bayes_optimal_actions({"audio": data["obs"]["audio"]}, data["cfg"])
    with pytest.raises(ValueError, match=r"modality 'rgb': expected shape.*pass env.cfg"):
        bayes_optimal_actions(data["obs"], {"image_size": 64})


def test_bad_num_envs_gets_a_clear_error() -> None:
    with pytest.raises(ConfigError, match="num_envs must be an integer >= 1"):
        ModalityProbeVectorEnv(num_envs=0)
