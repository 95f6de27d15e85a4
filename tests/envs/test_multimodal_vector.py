"""The multimodal wrapper's slower camera and its vector modes (native, sync, async)."""

from __future__ import annotations

import os

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.vector import AutoresetMode

import envs  # noqa: F401  (registers sensorium/Multimodal-v0)
from envs import ConfigError, make_vector_env, obs_spec_of
from envs.multimodal import make_multimodal
from envs.multimodal_vector import MultimodalVectorEnv, make_multimodal_vector

os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
os.environ.setdefault("SDL_AUDIODRIVER", "dummy")

CARTPOLE = {"id": "sensorium/Multimodal-v0", "env_id": "CartPole-v1", "image_size": 16}


def test_a_slower_camera_renders_only_on_its_ticks_and_holds_the_frame():
    env = make_multimodal("CartPole-v1", image_size=32, rgb_hz=10)
    assert env.obs_spec["rgb"].rate_hz == 10 and env.obs_spec["proprio"].rate_hz == 50
    assert env.obs_spec.control_hz == 50
    obs, _ = env.reset(seed=0)
    assert env.frames_rendered == 1  # a fresh frame at reset
    frames, renders = [obs["rgb"]], [env.frames_rendered]
    for k in range(10):
        obs, *_ = env.step(k % 2)  # the pole stays up for 10 steps of left, right...
        frames.append(obs["rgb"])
        renders.append(env.frames_rendered)
    assert renders == [1, 1, 1, 1, 1, 2, 2, 2, 2, 2, 3]  # steps 5 and 10 tick (10 of 50 Hz)
    for k in (1, 2, 3, 4):
        np.testing.assert_array_equal(frames[k], frames[0])  # held between ticks
    assert not np.array_equal(frames[5], frames[0])  # the pole moved: a new frame
    twin = make_multimodal("CartPole-v1", image_size=32)  # a camera at the control rate
    twin.reset(seed=0)
    for k in range(5):
        same, *_ = twin.step(k % 2)
    np.testing.assert_array_equal(frames[5], same["rgb"])  # a tick's frame is the state's own
    env.reset(seed=1)
    assert env.frames_rendered == 4  # a new episode starts with a fresh frame


def test_camera_rates_that_do_not_divide_the_control_rate_tick_evenly():
    env = make_multimodal("CartPole-v1", image_size=8, rgb_hz=15)  # 0.3 ticks per step
    env.reset(seed=0)
    for k in range(20):
        _, _, term, _, _ = env.step(k % 2)
        assert not term  # the pole stays up: no reset
    assert env.frames_rendered == 1 + 6  # floor(20 * 15 / 50) ticks after the reset
    with pytest.raises(ConfigError, match=r"rgb_hz=60 is invalid; it must be a number > 0.0 and"
                                          r" <= 50"):
        make_multimodal("CartPole-v1", rgb_hz=60)
    with pytest.raises(ConfigError, match=r"vector_mode='fast' is invalid; it must be 'auto' or"):
        make_multimodal("CartPole-v1", vector_mode="fast")


def _rollout(env: gym.vector.VectorEnv, actions: np.ndarray) -> list[tuple]:
    out = [env.reset(seed=7)]
    out += [env.step(a) for a in actions]
    return out


@pytest.mark.parametrize("rgb_hz", [None, 10.0])
def test_native_vector_env_matches_sync_vector_env_same_step(rgb_hz):
    cfg = {**CARTPOLE, "rgb_hz": rgb_hz}
    native = make_vector_env(cfg, 3)
    assert isinstance(native, MultimodalVectorEnv) and native.metadata["vector_mode"] == "native"
    assert native.metadata["autoreset_mode"] == AutoresetMode.SAME_STEP
    sync = make_vector_env(cfg, 3, "sync")
    assert native.single_observation_space == sync.single_observation_space
    assert obs_spec_of(native) == obs_spec_of(sync)
    actions = np.random.default_rng(0).integers(0, 2, size=(40, 3))
    a, b = _rollout(native, actions), _rollout(sync, actions)
    ended = 0
    for (obs_a, *rest_a), (obs_b, *rest_b) in zip(a, b, strict=True):
        for k in ("rgb", "proprio"):
            np.testing.assert_array_equal(obs_a[k], obs_b[k])
        info_a, info_b = rest_a[-1], rest_b[-1]
        for x, y in zip(rest_a[:-1], rest_b[:-1], strict=True):
            np.testing.assert_array_equal(x, y)
        assert sorted(info_a) == sorted(info_b)
        if "final_obs" in info_b:
            ended += 1
            np.testing.assert_array_equal(info_a["_final_obs"], info_b["_final_obs"])
            np.testing.assert_array_equal(info_a["_final_info"], info_b["_final_info"])
            for i in np.flatnonzero(info_b["_final_obs"]):
                for k in ("rgb", "proprio"):
                    np.testing.assert_array_equal(info_a["final_obs"][i][k],
                                                  info_b["final_obs"][i][k])
            assert info_a["final_obs"][~info_b["_final_obs"]].tolist() == [None] * int(
                (~info_b["_final_obs"]).sum())
    assert ended >= 2  # random CartPole episodes end within 40 steps: autoreset was seen
    renders = native.frames_rendered
    assert renders == sum(e.get_wrapper_attr("frames_rendered") for e in sync.envs)
    if rgb_hz is not None:
        assert renders < 3 * 41 / 3  # about one render in five steps (plus resets)
    cost = native.cost()
    assert cost["vector_mode"] == "native" and cost["env_steps"] == 3 * 40
    assert cost["env_steps_per_s"] > 0 and cost["renders_per_env_step"] == renders / 120
    native.close()
    sync.close()


def test_reacher_native_vector_env_takes_continuous_actions_and_keeps_infos():
    env = make_vector_env({"id": "sensorium/Multimodal-v0", "env_id": "Reacher-v5",
                           "image_size": 16, "rgb_hz": 25.0}, 2)
    obs, _ = env.reset(seed=0)
    assert obs["rgb"].shape == (2, 16, 16, 3) and obs["proprio"].shape == (2, 10)
    obs, reward, term, trunc, info = env.step(np.zeros((2, 2), np.float32))
    assert reward.shape == (2,) and info["_reward_dist"].all()
    assert env.frames_rendered == 2  # 25 of 50 Hz: no tick at step 1
    env.step(np.zeros((2, 2), np.float32))
    assert env.frames_rendered == 4
    env.close()


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_every_vector_mode_says_which_it_is_and_declares_the_spec(mode, caplog):
    with caplog.at_level("INFO", logger="envs.multimodal_vector"):
        env = make_vector_env({**CARTPOLE, "vector_mode": mode, "rgb_hz": 10.0}, 2)
    assert env.metadata["vector_mode"] == env.vector_mode == mode
    assert env.metadata["autoreset_mode"] == AutoresetMode.SAME_STEP
    assert obs_spec_of(env)["rgb"].rate_hz == 10
    assert f"vector_mode={mode}, 2 x CartPole-v1; camera 10 Hz at 50 Hz control" in caplog.text
    obs, _ = env.reset(seed=0)
    assert obs["rgb"].shape == (2, 16, 16, 3)
    env.step(np.array([0, 1]))
    env.close()


def test_auto_is_native_and_bad_settings_are_refused():
    env = gym.make_vec("sensorium/Multimodal-v0", num_envs=2, env_id="CartPole-v1",
                       image_size=8)  # vectorization_mode None: the vector entry point
    assert isinstance(env, MultimodalVectorEnv)
    env.close()
    with pytest.raises(ConfigError, match=r"vector_mode='fast' is invalid"):
        make_multimodal_vector(2, vector_mode="fast", env_id="CartPole-v1")
    with pytest.raises(ConfigError, match=r"num_envs must be an integer >= 1"):
        make_multimodal_vector(0, env_id="CartPole-v1")
