"""MultimodalWrapper: third-party gymnasium envs (CartPole, MuJoCo Reacher) as rgb + proprio."""

from __future__ import annotations

import dataclasses
import os

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env
from gymnasium.vector import AutoresetMode

import envs  # noqa: F401  (registers sensorium/Multimodal-v0)
from envs import ConfigError, obs_spec_of
from envs.factory import split_env_config
from envs.multimodal import MultimodalConfig, MultimodalWrapper, make_multimodal
from perception.settings import as_kwargs
from perception.spec import ModalityKind

# CartPole renders with pygame, which initialises SDL at the first render: no display needed.
os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
os.environ.setdefault("SDL_AUDIODRIVER", "dummy")


def test_cartpole_observations_are_its_render_and_its_state():
    env = make_multimodal("CartPole-v1", image_size=48)
    spec = env.obs_spec
    assert spec.names == ("rgb", "proprio")
    assert (spec["rgb"].kind, spec["rgb"].shape, spec["rgb"].dtype) == (
        ModalityKind.IMAGE, (48, 48, 3), "uint8")
    assert (spec["proprio"].kind, spec["proprio"].shape, spec["proprio"].dtype) == (
        ModalityKind.VECTOR, (4,), "float32")
    assert spec["rgb"].rate_hz == spec.control_hz == 50  # CartPole's render_fps
    assert env.observation_space == spec.to_space() and obs_spec_of(env) is spec
    obs, _ = env.reset(seed=0)
    frames = [obs["rgb"]]
    for _ in range(8):
        np.testing.assert_array_equal(obs["proprio"], env.unwrapped.state.astype(np.float32))
        assert obs["rgb"].dtype == np.uint8 and obs["rgb"].shape == (48, 48, 3)
        obs, *_ = env.step(1)  # push right: the cart moves, so does the picture
        frames.append(obs["rgb"])
    assert not np.array_equal(frames[0], frames[-1])
    assert len({f.tobytes() for f in frames}) >= len(frames) // 2  # most steps show a change
    again, _ = env.reset(seed=0)
    np.testing.assert_array_equal(again["rgb"], frames[0])  # same state, same picture
    full = env.render()  # for people: the full-size frame
    assert full.shape == (400, 600, 3)


def test_cartpole_passes_check_env():
    check_env(make_multimodal("CartPole-v1", image_size=32), skip_render_check=True)


def test_reacher_renders_at_image_size_and_observes_its_state():
    env = make_multimodal("Reacher-v5", image_size=40)
    assert env.unwrapped.width == env.unwrapped.height == 40  # rendered small, not resized
    twin = gym.make("Reacher-v5")
    obs, _ = env.reset(seed=3)
    state, _ = twin.reset(seed=3)
    assert env.obs_spec["proprio"].shape == (10,) and env.obs_spec.control_hz == 50
    rng = np.random.default_rng(0)
    frames = [obs["rgb"]]
    for _ in range(5):
        np.testing.assert_array_equal(obs["proprio"], state.astype(np.float32))
        action = rng.uniform(-1, 1, size=2).astype(np.float32)
        obs, *_ = env.step(action)
        state, *_ = twin.step(action)
        frames.append(obs["rgb"])
    assert not np.array_equal(frames[0], frames[-1])  # the arm moved
    check_env(env, skip_render_check=True)


def test_registered_env_makes_single_and_vector_envs():
    env = gym.make("sensorium/Multimodal-v0", env_id="CartPole-v1", image_size=24)
    obs, _ = env.reset(seed=0)
    assert obs["rgb"].shape == (24, 24, 3) and obs_spec_of(env).names == ("rgb", "proprio")
    vec = gym.make_vec(
        "sensorium/Multimodal-v0", num_envs=2, vectorization_mode="sync",
        vector_kwargs={"autoreset_mode": AutoresetMode.SAME_STEP}, env_id="CartPole-v1",
        image_size=24,
    )
    obs, _ = vec.reset(seed=0)
    assert obs["rgb"].shape == (2, 24, 24, 3) and obs["proprio"].dtype == np.float32
    assert obs_spec_of(vec).names == ("rgb", "proprio")


def test_config_is_a_hydra_structured_config_that_makes_the_env():
    from omegaconf import OmegaConf

    assert [f.name for f in dataclasses.fields(MultimodalConfig)][:3] == [
        "id", "env_id", "image_size"]
    cfg = OmegaConf.to_object(OmegaConf.merge(
        OmegaConf.structured(MultimodalConfig),
        {"image_size": 16, "env_kwargs": {"sutton_barto_reward": True}},
    ))
    env_id, kwargs = split_env_config(as_kwargs(cfg))
    env = gym.make(env_id, **kwargs)
    assert env.unwrapped._sutton_barto_reward and obs_spec_of(env)["rgb"].shape == (16, 16, 3)


@pytest.mark.parametrize(
    ("make", "match"),
    [
        (lambda: MultimodalWrapper(gym.make("FrozenLake-v1", render_mode="rgb_array")),
         r"MultimodalWrapper\(FrozenLake-v1\): the env's observation space Discrete\(16\) is "
         r"not a 1-D Box.*FlattenObservation"),
        (lambda: MultimodalWrapper(gym.make("CartPole-v1")),
         r"renders None, not 'rgb_array'; create it with gymnasium.make\(\.\.\., "
         r"render_mode='rgb_array'\)"),
        (lambda: make_multimodal("CartPole-v1", image_size=-4),
         r"image_size=-4 is invalid; it must be an integer >= 1"),
        (lambda: MultimodalWrapper(gym.make("CartPole-v1", render_mode="rgb_array"), 0),
         r"image_size=0 is invalid"),
        (lambda: make_multimodal("CartPol-v1"),
         r"env_id='CartPol-v1' is not a gymnasium env .*use a registered id"),
        (lambda: make_multimodal("CartPole-v1", rate_hz=-5.0),
         r"rate_hz=-5.0 is invalid; it must be a number > 0.0"),
        (lambda: make_multimodal("CartPole-v1", render_mode="human"),
         r"env_kwargs=.*render_mode is always rgb_array"),
    ],
)
def test_envs_that_cannot_be_made_multimodal_are_refused(make, match):
    with pytest.raises(ConfigError, match=match):
        make()


def test_an_invalid_action_is_named():
    env = make_multimodal("CartPole-v1", image_size=16)
    env.reset(seed=0)
    for bad in (2, -1, 0.5, [0, 1]):
        with pytest.raises(ValueError, match=r"invalid action .*an action is an integer in "):
            env.step(bad)
    env.step(np.int64(1))  # integer types and integral floats are fine
    env.step(1.0)
    reacher = make_multimodal("Reacher-v5", image_size=16)
    reacher.reset(seed=0)
    with pytest.raises(ValueError, match=r"a finite numeric array of shape \(2,\)"):
        reacher.step(np.zeros(3))
    with pytest.raises(ValueError, match=r"invalid action"):
        reacher.step(np.array([np.nan, 0.0]))
    reacher.step(np.zeros(2))  # float64 is fine
