"""Sensor-realism wrappers on real Dict-observation envs: each transform, each gymnasium API."""

from __future__ import annotations

import functools
import os
from collections.abc import Sequence
from typing import Any

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env
from gymnasium.vector import AutoresetMode

import envs  # noqa: F401  (registers sensorium/Multimodal-v0)
from envs import ConfigError, obs_spec_of
from envs.multimodal import make_multimodal
from envs.sensors import (
    Delay,
    Dropout,
    GaussianNoise,
    Occlusion,
    SampleAndHold,
    SensorConfig,
    SensorsConfig,
    SensorTransform,
    SensorVectorWrapper,
    SensorWrapper,
    build_transforms,
    with_sensors,
)

# CartPole renders with pygame, which initialises SDL at the first render: no display needed.
os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
os.environ.setdefault("SDL_AUDIODRIVER", "dummy")

SIZE = 32  # rgb side; CartPole renders 600x400 and the wrapper resizes
KINDS = ["single", AutoresetMode.SAME_STEP, AutoresetMode.NEXT_STEP]
Row = dict[str, np.ndarray]
Episode = list[tuple[Row, Row]]  # (raw, transformed) observation of each step


def make_single() -> gym.Env:
    return make_multimodal("CartPole-v1", image_size=SIZE)


def make_vec(mode: AutoresetMode, num_envs: int = 3) -> gym.vector.VectorEnv:
    return gym.make_vec(
        "sensorium/Multimodal-v0", num_envs=num_envs, vectorization_mode="sync",
        vector_kwargs={"autoreset_mode": mode}, env_id="CartPole-v1", image_size=SIZE,
    )


def make(kind: str | AutoresetMode) -> gym.Env | gym.vector.VectorEnv:
    return make_single() if kind == "single" else make_vec(kind)


class Tap(gym.Wrapper):
    """Keeps the last observation of the env it wraps: the raw data under the sensors."""

    def reset(self, **kwargs: Any) -> Any:
        self.last, info = self.env.reset(**kwargs)
        return self.last, info

    def step(self, action: Any) -> Any:
        self.last, *rest = self.env.step(action)
        return self.last, *rest


class VectorTap(gym.vector.VectorWrapper):
    """Keeps the last observation and info of the vector env it wraps."""

    def reset(self, **kwargs: Any) -> Any:
        self.last, self.info = self.env.reset(**kwargs)
        return self.last, self.info

    def step(self, actions: Any) -> Any:
        self.last, reward, term, trunc, self.info = self.env.step(actions)
        return self.last, reward, term, trunc, self.info


def rows(obs: dict[str, np.ndarray], n: int) -> list[Row]:
    return [{k: v[i] for k, v in obs.items()} for i in range(n)]


def rollout(
    kind: str | AutoresetMode, transforms: Sequence[SensorTransform], steps: int = 300,
    seed: int = 0,
) -> list[list[Episode]]:
    """Run a sensor-wrapped env with random actions, `steps` env-steps over all worlds.

    Returns, per world, its episodes, each the list of (raw, transformed) observation
    pairs in order; in SAME_STEP mode the last pair of an ended episode is its final_obs.
    """
    single = kind == "single"
    tap = Tap(make_single()) if single else VectorTap(make_vec(kind))
    env = with_sensors(tap, transforms)
    n = 1 if single else env.num_envs
    obs, _ = env.reset(seed=seed)
    batch = (lambda o: {k: np.asarray(v)[None] for k, v in o.items()}) if single else dict
    worlds = [[[pair]] for pair in zip(rows(batch(tap.last), n), rows(batch(obs), n))]
    rng = np.random.default_rng(seed)
    ended_before = np.zeros(n, dtype=bool)
    for _ in range(steps // n):
        actions = rng.integers(2, size=n)
        obs, _, term, trunc, info = env.step(int(actions[0]) if single else actions)
        done = np.atleast_1d(term | trunc)
        if single and done[0]:
            worlds[0][-1].append((tap.last, obs))
            obs, _ = env.reset()
        if kind == AutoresetMode.SAME_STEP:
            for i in np.flatnonzero(done):
                worlds[i][-1].append((tap.info["final_obs"][i], info["final_obs"][i]))
        if kind == AutoresetMode.NEXT_STEP:
            starts, ended_before = ended_before, done
        else:
            starts = done
        for i, pair in enumerate(zip(rows(batch(tap.last), n), rows(batch(obs), n))):
            if starts[i]:
                worlds[i].append([])
            worlds[i][-1].append(pair)
    env.close()
    return worlds


# Transforms on different modalities do not interact: each rollout serves two tests.
SCENARIOS = {
    "delay+dropout": lambda: [Delay("proprio", 3), Dropout("rgb", 0.3)],
    "hold+occlusion": lambda: [SampleAndHold("proprio", 4), Occlusion("rgb", 0.5, 0.1)],
    "episode_dropout+noise": lambda: [Dropout("proprio", 0.5, per="episode"),
                                      GaussianNoise("rgb", 20)],
    "noise+delay": lambda: [GaussianNoise("proprio", 0.05), Delay("rgb", 1)],
}


@functools.cache
def scenario(name: str, kind: str | AutoresetMode) -> list[list[Episode]]:
    return rollout(kind, SCENARIOS[name]())


def episodes(worlds: list[list[Episode]]) -> list[Episode]:
    return [ep for world in worlds for ep in world]


def all_pairs(worlds: list[list[Episode]]) -> list[tuple[Row, Row]]:
    return [pair for ep in episodes(worlds) for pair in ep]


# ---------------------------------------------------------------- transforms, per API


@pytest.mark.parametrize("kind", KINDS)
def test_delay_returns_the_observation_k_steps_earlier_in_the_episode(kind):
    for name, modality, k in [("delay+dropout", "proprio", 3), ("noise+delay", "rgb", 1)]:
        worlds = scenario(name, kind)
        eps = episodes(worlds)
        assert len(eps) > 2 * len(worlds)  # episodes ended: the delay line had to restart
        for ep in eps:
            for t, (_, out) in enumerate(ep):
                np.testing.assert_array_equal(out[modality], ep[max(0, t - k)][0][modality])


def test_delay_matches_an_unwrapped_twin_stepped_with_the_same_seed_and_actions():
    k = 2
    env, twin = with_sensors(make_single(), [Delay("proprio", k)]), make_single()
    out, _ = env.reset(seed=4)
    raw, _ = twin.reset(seed=4)
    history = [raw["proprio"]]
    np.testing.assert_array_equal(out["proprio"], raw["proprio"])
    for t in range(1, 40):
        out, _, term, trunc, _ = env.step(t % 2)
        raw, *_ = twin.step(t % 2)
        history.append(raw["proprio"])
        np.testing.assert_array_equal(out["proprio"], history[max(0, t - k)])
        np.testing.assert_array_equal(out["rgb"], raw["rgb"])
        if term or trunc:
            out, _ = env.reset()
            raw, _ = twin.reset()
            history = [raw["proprio"]]
            np.testing.assert_array_equal(out["proprio"], raw["proprio"])  # line restarted


@pytest.mark.parametrize("kind", KINDS)
def test_sample_and_hold_updates_every_period_steps_with_a_random_phase(kind):
    period = 4
    first_updates = set()
    for ep in episodes(scenario("hold+occlusion", kind)):
        raw = np.stack([r["proprio"] for r, _ in ep])
        out = np.stack([o["proprio"] for _, o in ep])
        changes = [t for t in range(1, len(ep)) if not np.array_equal(out[t], out[t - 1])]
        last = 0
        for t in range(len(ep)):
            last = t if t in changes else last
            np.testing.assert_array_equal(out[t], raw[last])  # the latest sample taken
        if changes:
            assert 1 <= changes[0] <= period
            first_updates.add(changes[0])
            assert np.all(np.diff(changes) == period)
            assert len(ep) - 1 - changes[-1] < period  # no update missed at the end
        else:
            assert len(ep) <= period
    assert len(first_updates) > 1  # the phase is drawn per episode


@pytest.mark.parametrize("kind", KINDS)
def test_dropout_per_step_zeroes_data_and_clears_the_flag_with_probability_p(kind):
    p = 0.3
    pairs = all_pairs(scenario("delay+dropout", kind))
    flags = np.array([out["rgb_present"] for _, out in pairs])
    assert flags.dtype == np.bool_ and len(flags) > 280
    assert abs((~flags).mean() - p) < 0.1  # > 280 draws: 3.5 standard deviations
    for raw, out in pairs:
        if out["rgb_present"]:
            np.testing.assert_array_equal(out["rgb"], raw["rgb"])
        else:
            assert not out["rgb"].any()


@pytest.mark.parametrize("kind", KINDS)
def test_dropout_per_episode_is_constant_within_an_episode(kind):
    eps = episodes(scenario("episode_dropout+noise", kind))
    per_episode = []
    for ep in eps:
        flags = {bool(out["proprio_present"]) for _, out in ep}
        assert len(flags) == 1
        per_episode.append(flags.pop())
        for raw, out in ep:
            expected = raw["proprio"] if per_episode[-1] else np.zeros_like(raw["proprio"])
            np.testing.assert_array_equal(out["proprio"], expected)
    assert len(eps) >= 10 and 0 < sum(per_episode) < len(eps)


def test_dropout_combines_with_an_existing_flag():
    pairs = all_pairs(rollout("single", [Dropout("rgb", 0.5), Dropout("rgb", 0.5)], steps=150))
    absent = np.mean([not out["rgb_present"] for _, out in pairs])
    assert abs(absent - 0.75) < 0.12  # present only if both keep it: 1 - 0.5 * 0.5
    for _, out in pairs:
        assert out["rgb"].any() == bool(out["rgb_present"])


@pytest.mark.parametrize("kind", KINDS)
def test_gaussian_noise_has_the_configured_std_and_keeps_dtype_and_bounds(kind):
    pairs = all_pairs(scenario("noise+delay", kind))
    diff = np.stack([out["proprio"] - raw["proprio"] for raw, out in pairs])
    assert all(out["proprio"].dtype == np.float32 for _, out in pairs)
    assert abs(diff.std() / 0.05 - 1) < 0.1
    assert abs(diff.mean()) < 0.01
    pairs = all_pairs(scenario("episode_dropout+noise", kind))
    raw_rgb = np.stack([raw["rgb"] for raw, _ in pairs]).astype(np.int64)
    out_rgb = np.stack([out["rgb"] for _, out in pairs])
    assert out_rgb.dtype == np.uint8
    white = raw_rgb == 255  # noise clips at the bound instead of wrapping round
    assert white.any() and out_rgb[white].min() >= 255 - 6 * 20
    assert (out_rgb[white] == 255).mean() > 0.45
    mid = (raw_rgb > 80) & (raw_rgb < 175)  # 4 std from both bounds: no clipping
    assert mid.sum() > 1000
    assert abs((out_rgb[mid] - raw_rgb[mid]).std() / 20 - 1) < 0.1


@pytest.mark.parametrize("kind", KINDS)
def test_occlusion_covers_one_rectangle_of_at_most_max_fraction(kind):
    p, fraction = 0.5, 0.1
    occluded, areas = 0, []
    pairs = all_pairs(scenario("hold+occlusion", kind))
    for raw, out in pairs:
        changed = np.any(out["rgb"] != raw["rgb"], axis=-1)
        if not changed.any():
            continue
        occluded += 1
        ys, xs = np.nonzero(changed)
        area = (ys.max() - ys.min() + 1) * (xs.max() - xs.min() + 1)
        assert area <= int(fraction * SIZE * SIZE)
        areas.append(area)
    assert abs(occluded / len(pairs) - p) < 0.11
    assert len(set(areas)) > 5  # sizes vary


def test_occlusion_with_a_constant_fills_the_rectangle_with_it():
    for raw, out in all_pairs(rollout("single", [Occlusion("rgb", 1.0, 0.2, value=7)], 30)):
        changed = np.any(out["rgb"] != raw["rgb"], axis=-1)
        assert changed.any() and np.all(out["rgb"][changed] == 7)


def test_final_obs_rows_carry_the_transformed_observation():
    transforms = [Dropout("rgb", 0.5), Delay("proprio", 2)]
    env = with_sensors(make_vec(AutoresetMode.SAME_STEP), transforms)
    env.reset(seed=1)
    rng = np.random.default_rng(1)
    for _ in range(200):
        _, _, term, trunc, info = env.step(rng.integers(2, size=env.num_envs))
        if np.any(term | trunc):
            break
    ended = np.flatnonzero(term | trunc)
    assert info["_final_obs"][ended].all()
    for i in ended:
        final = info["final_obs"][i]
        assert set(final) == {"rgb", "proprio", "rgb_present"}
        assert env.single_observation_space.contains(
            {k: np.asarray(v) for k, v in final.items()}
        )


def test_disabled_autoreset_resets_only_the_masked_worlds():
    env = with_sensors(make_vec(AutoresetMode.DISABLED), [Delay("proprio", 5)])
    twin = make_vec(AutoresetMode.DISABLED)
    obs, _ = env.reset(seed=2)
    twin.reset(seed=2)
    for t in range(8):
        actions = np.full(3, t % 2)  # keeps the poles up
        obs, _, term, trunc, _ = env.step(actions)
        twin.step(actions)
        assert not np.any(term | trunc)
    mask = np.array([True, False, True])
    before = {k: v.copy() for k, v in obs.items()}
    obs, _ = env.reset(options={"reset_mask": mask.copy()})
    raw, _ = twin.reset(options={"reset_mask": mask.copy()})
    np.testing.assert_array_equal(obs["proprio"][mask], raw["proprio"][mask])  # restarted line
    np.testing.assert_array_equal(obs["proprio"][~mask], before["proprio"][~mask])


# ---------------------------------------------------------------- spaces, spec, seeding


def all_transforms() -> list[SensorTransform]:
    return [
        Occlusion("rgb", 0.5), GaussianNoise("rgb", 5.0), SampleAndHold("rgb", 2),
        Delay("proprio", 2), Dropout("rgb", 0.2), Dropout("proprio", 0.3, per="episode"),
    ]


def test_single_wrapper_updates_spaces_and_spec_and_passes_check_env():
    env = with_sensors(make_single(), all_transforms())
    assert isinstance(env, SensorWrapper)
    spec = env.obs_spec
    assert obs_spec_of(env) is spec
    assert spec.presence == ("rgb", "proprio")
    assert spec["rgb"].rate_hz == 50 / 2  # sample and hold halves the rate
    assert env.observation_space == spec.to_space()
    obs, _ = env.reset(seed=0)
    assert set(obs) == {"rgb", "proprio", "rgb_present", "proprio_present"}
    assert env.observation_space.contains(obs)
    check_env(env, skip_render_check=True)


@pytest.mark.parametrize("mode", [AutoresetMode.SAME_STEP, AutoresetMode.NEXT_STEP])
def test_vector_wrapper_updates_spaces_and_spec(mode):
    env = with_sensors(make_vec(mode), all_transforms())
    assert isinstance(env, SensorVectorWrapper) and env.autoreset_mode is mode
    assert env.single_observation_space == env.obs_spec.to_space()
    obs, _ = env.reset(seed=0)
    assert obs["rgb_present"].shape == (3,) and obs["rgb"].shape == (3, SIZE, SIZE, 3)
    assert env.observation_space.contains(obs)
    for _ in range(30):
        obs, *_ = env.step(env.action_space.sample())
        assert env.observation_space.contains(obs)


def test_wrappers_stack_and_report_the_outer_spec():
    inner = with_sensors(make_vec(AutoresetMode.SAME_STEP), [Dropout("rgb", 0.1)])
    outer = with_sensors(inner, [Delay("rgb", 1), Dropout("rgb", 0.1)])
    assert obs_spec_of(outer) is outer.obs_spec and outer.obs_spec.presence == ("rgb",)
    obs, _ = outer.reset(seed=0)
    assert outer.observation_space.contains(obs)


@pytest.mark.parametrize("kind", ["single", AutoresetMode.SAME_STEP])
def test_seeded_runs_repeat(kind):
    def run(seed: int) -> list[np.ndarray]:
        return [
            np.concatenate([out["rgb"].ravel(), out["proprio"].view(np.uint8).ravel(),
                            [out["rgb_present"], out["proprio_present"]]])
            for _, out in all_pairs(rollout(kind, all_transforms(), steps=60, seed=seed))
        ]

    a, b, c = run(5), run(5), run(6)
    assert len(a) == len(b) and all(np.array_equal(x, y) for x, y in zip(a, b))
    assert len(a) != len(c) or not all(np.array_equal(x, y) for x, y in zip(a, c))


def test_one_transform_list_configures_several_envs():
    transforms = [Delay("proprio", 2)]
    a, b = with_sensors(make_single(), transforms), with_sensors(make_single(), transforms)
    a.reset(seed=0)
    b.reset(seed=1)
    oa, *_ = a.step(0)
    ob, *_ = b.step(0)
    assert not np.array_equal(oa["proprio"], ob["proprio"])  # each has its own delay line


# ---------------------------------------------------------------- config


def test_config_builds_transforms_in_signal_order_and_skips_neutral_settings():
    cfg = SensorsConfig({
        "rgb": SensorConfig(noise_std=3.0, occlusion_p=0.2, dropout_p=0.1, dropout_per="episode"),
        "proprio": SensorConfig(delay_steps=2, hold_period=3),
        "idle": SensorConfig(),
    })
    built = build_transforms(cfg)
    assert [(type(t).__name__, t.modality) for t in built] == [
        ("Occlusion", "rgb"), ("GaussianNoise", "rgb"), ("Dropout", "rgb"),
        ("SampleAndHold", "proprio"), ("Delay", "proprio"),
    ]
    assert built[2].per == "episode" and built[3].period == 3 and built[4].steps == 2


def test_config_is_a_hydra_structured_config():
    from omegaconf import OmegaConf

    base = OmegaConf.structured(SensorsConfig)
    merged = OmegaConf.merge(base, {"modalities": {"rgb": {"delay_steps": 2}}})
    cfg = OmegaConf.to_object(merged)
    assert cfg == SensorsConfig({"rgb": SensorConfig(delay_steps=2)})
    assert [type(t) for t in build_transforms(merged)] == [Delay]  # DictConfig works too
    env = with_sensors(make_single(), {"modalities": {"proprio": {"delay_steps": 1}}})
    assert isinstance(env.chain.transforms[0], Delay)


# ---------------------------------------------------------------- errors


@pytest.mark.parametrize(
    ("transforms", "match"),
    [
        ([Delay("depth", 2)], r"unknown modality 'depth'; this env has: rgb, proprio"),
        (SensorsConfig({"audio": SensorConfig(noise_std=1.0)}), r"unknown modality 'audio'"),
        ([Occlusion("proprio", 0.5)],
         r"'proprio' is of kind 'vector'; Occlusion only applies to kind image or depth"),
        ([Occlusion("rgb", 0.5, max_fraction=1e-4)], r"max_fraction=0.0001 covers less than"),
    ],
)
def test_transforms_that_do_not_fit_the_env_are_refused(transforms, match):
    with pytest.raises(ConfigError, match=match):
        with_sensors(make_single(), transforms)


@pytest.mark.parametrize(
    ("settings", "match"),
    [
        ({"delay_steps": -1}, r"sensors.modalities.rgb: delay_steps=-1 is invalid; it must be an "
                              r"integer >= 0"),
        ({"dropout_p": 1.5}, r"dropout_p=1.5 is invalid; it must be a number >= 0.0 and <= 1.0"),
        ({"occlusion_p": -0.1}, r"occlusion_p=-0.1 is invalid"),
        ({"noise_std": -2.0}, r"noise_std=-2.0 is invalid; it must be a number >= 0.0"),
        ({"hold_period": 0}, r"hold_period=0 is invalid; it must be an integer >= 1"),
        ({"delay_steps": 1.5}, r"delay_steps=1.5 is invalid; it must be an integer"),
        ({"dropout_per": "second"}, r"dropout_per='second' is invalid; it must be 'step' or"),
        ({"occlusion_max_fraction": 0.0}, r"occlusion_max_fraction=0.0 is invalid"),
        ({"noise": 1.0}, r"unknown setting\(s\) \['noise'\]; valid settings: delay_steps"),
    ],
)
def test_bad_config_settings_are_named(settings, match):
    with pytest.raises(ConfigError, match=match):
        build_transforms({"modalities": {"rgb": settings}})


@pytest.mark.parametrize(
    ("build", "match"),
    [
        (lambda: Delay("rgb", -3), r"Delay\('rgb'\): steps=-3 is invalid"),
        (lambda: Dropout("rgb", 2.0), r"Dropout\('rgb'\): p=2.0 is invalid"),
        (lambda: Dropout("rgb", 0.5, per="run"), r"per='run' is invalid"),
        (lambda: SampleAndHold("rgb", 0), r"period=0 is invalid"),
        (lambda: GaussianNoise("rgb", -1), r"std=-1 is invalid"),
        (lambda: Occlusion("rgb", 0.5, max_fraction=1.5), r"max_fraction=1.5 is invalid"),
    ],
)
def test_bad_transform_arguments_are_named(build: Any, match: str):
    with pytest.raises(ConfigError, match=match):
        build()


def test_an_invalid_action_is_named_through_the_wrappers():
    env = with_sensors(make_single(), [Delay("rgb", 1)])
    env.reset(seed=0)
    with pytest.raises(ValueError, match=r"invalid action 5; an action is an integer in \[0, 2\)"):
        env.step(5)
    vec = with_sensors(make_vec(AutoresetMode.SAME_STEP), [Delay("rgb", 1)])
    vec.reset(seed=0)
    with pytest.raises(ValueError, match=r"invalid action"):
        vec.step(np.array([0, 1, 2]))


def test_sensors_on_the_natively_batched_world() -> None:
    """The native AudioVisualNav batch (SAME_STEP, numba) takes the same wrappers."""
    from envs.audiovisual_nav import AudioVisualNavVectorEnv
    from envs.audiovisual_nav.world import STOP

    env = with_sensors(AudioVisualNavVectorEnv(num_envs=8, image_size=16),
                       {"modalities": {"audio": {"dropout_p": 0.5, "dropout_per": "episode"},
                                       "rgb": {"noise_std": 8.0, "occlusion_p": 0.5}}})
    assert env.obs_spec.presence == ("audio",)
    obs, _ = env.reset(seed=3)
    assert env.observation_space.contains(obs)
    flags = obs["audio_present"].copy()
    assert 0 < flags.sum() < 8
    assert (obs["audio"][~flags] == 0).all() and (np.abs(obs["audio"][flags]).max() > 0)
    obs, _, _, _, _ = env.step(np.ones(8, np.int64))
    np.testing.assert_array_equal(obs["audio_present"], flags)  # per episode: unchanged
    obs, _, term, _, info = env.step(np.full(8, STOP))
    assert term.all() and info["_final_obs"].all()
    assert all(np.array_equal(info["final_obs"][i]["audio_present"], flags[i]) for i in range(8))
    assert env.observation_space.contains(obs)
