"""AudioVisualNav: the gymnasium contract, the expert, the physics of the cues, and errors."""

from __future__ import annotations

import math

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env
from gymnasium.vector import AutoresetMode

import envs  # noqa: F401  (registers the envs)
from envs import ConfigError
from envs.audiovisual_nav import AudioVisualNavVectorEnv, audiovisual_nav_spec
from envs.audiovisual_nav import world as W
from envs.audiovisual_nav.heuristics import ObjectSeeker, audio_only_actions
from envs.audiovisual_nav.maps import FINE, distance_field, free_subcells, generate_map
from envs.audiovisual_nav.render import objects_in_view

ENV_ID = "sensorium/AudioVisualNav-v0"


def run_policy(env: AudioVisualNavVectorEnv, policy, episodes: int, seed: int) -> dict:
    """Step `policy(obs) -> actions` until `episodes` episodes ended; mean final_info metrics."""
    obs, _ = env.reset(seed=seed)
    ended: dict[str, list] = {"success": [], "spl": [], "collisions": []}
    for _ in range(100_000):
        obs, _, _, _, info = env.step(policy(obs))
        if "final_info" in info:
            mask = info["_final_info"]
            for key in ended:
                ended[key].extend(info["final_info"][key][mask])
            if hasattr(policy, "ended"):
                policy.ended(np.flatnonzero(mask))
        if len(ended["success"]) >= episodes:
            break
    return {k: float(np.mean(v[:episodes])) for k, v in ended.items()}


def empty_room(env: AudioVisualNavVectorEnv, world: int = 0) -> None:
    """Turn world `world` into one empty room (border walls only), objects silent and far."""
    w = env.worlds
    w.grid[world] = 0
    w.grid[world, 0, :] = w.grid[world, -1, :] = 1
    w.grid[world, :, 0] = w.grid[world, :, -1] = 1
    w.src_id[world] = -1
    w.obj_pos[world] = 0.5  # inside the corner wall cell: never drawn in view


def place(env, agent, heading_idx, source=None, world: int = 0, sound: int = 0) -> dict:
    """Put the agent (and one goal sound) somewhere; return the observation of that world."""
    w = env.worlds
    w.pos[world] = agent
    w.heading[world] = heading_idx
    if source is not None:
        w.obj_pos[world, 0] = source
        w.src_id[world, 0] = sound
        w.src_gain[world, 0] = 1.0
    env.recompute(world)
    obs = env.observe(np.array([world]))
    return {k: v[0] for k, v in obs.items()}


def rms(audio: np.ndarray) -> np.ndarray:
    return np.sqrt(np.mean(audio.astype(np.float64) ** 2, axis=-1))


@pytest.fixture(scope="module")
def lab() -> AudioVisualNavVectorEnv:
    env = AudioVisualNavVectorEnv(num_envs=1, map_size=11, mic_noise=0.0)
    env.reset(seed=0)
    empty_room(env)
    return env


# -- the gymnasium contract ---------------------------------------------------------------

def test_single_env_passes_gymnasium_check_env() -> None:
    env = gym.make(ENV_ID)
    check_env(env.unwrapped, skip_render_check=False)
    obs, _ = env.reset(seed=1)
    assert env.observation_space.contains(obs)


def test_make_vec_gives_the_native_batched_env_with_spaces_from_the_spec() -> None:
    env = gym.make_vec(ENV_ID, num_envs=5, vectorization_mode="vector_entry_point", image_size=32)
    assert isinstance(env, AudioVisualNavVectorEnv)
    assert env.metadata["autoreset_mode"] is AutoresetMode.SAME_STEP
    assert env.single_observation_space == audiovisual_nav_spec(env.cfg).to_space()
    obs, _ = env.reset(seed=0)
    assert env.observation_space.contains(obs)
    assert obs["rgb"].shape == (5, 32, 32, 3) and obs["audio"].shape == (5, 2, 1600)
    obs, reward, term, trunc, _ = env.step(np.ones(5, np.int64))
    assert env.observation_space.contains(obs)
    assert reward.shape == term.shape == trunc.shape == (5,)


def test_sync_vectorisation_still_works_for_comparison() -> None:
    env = gym.make_vec(ENV_ID, num_envs=3, vectorization_mode="sync",
                       vector_kwargs={"autoreset_mode": AutoresetMode.SAME_STEP})
    obs, _ = env.reset(seed=0)
    assert obs["depth"].shape == (3, 64, 64, 1)
    env.step(np.array([1, 2, 3]))


def test_autoreset_same_step_reports_the_final_observation_and_metrics() -> None:
    env = AudioVisualNavVectorEnv(num_envs=3)
    env.reset(seed=4)
    env.step(np.array([W.FORWARD, W.LEFT, W.RIGHT]))
    obs, reward, term, trunc, info = env.step(np.array([W.STOP, W.FORWARD, W.FORWARD]))
    assert term.tolist() == [True, False, False] and not trunc.any()
    assert info["_final_obs"].tolist() == [True, False, False]
    final = info["final_obs"][0]
    assert final["proprio"][2 + W.STOP] == 1.0  # the last observation saw the stop
    assert obs["proprio"][0, 2:].sum() == 0.0  # the returned one starts a new episode
    fi = info["final_info"]
    assert fi["episode_length"][0] == 2 and not fi["success"][0] and fi["spl"][0] == 0.0
    assert env.worlds.steps[0] == 0 and env.worlds.steps[1] == 2


def test_truncation_after_max_steps() -> None:
    env = AudioVisualNavVectorEnv(num_envs=2, max_steps=3)
    env.reset(seed=0)
    for _ in range(3):
        _, _, term, trunc, info = env.step(np.array([W.LEFT, W.RIGHT]))
    assert trunc.all() and not term.any() and info["_final_info"].all()


def test_seeding_repeats_rollouts_and_different_seeds_differ() -> None:
    def rollout(seed: int) -> list[np.ndarray]:
        env = AudioVisualNavVectorEnv(num_envs=4, max_steps=20)
        obs, _ = env.reset(seed=seed)
        rng = np.random.default_rng(0)
        out = [obs["rgb"], obs["audio"]]
        for _ in range(40):  # crosses episode ends and autoresets
            obs, reward, *_ = env.step(rng.integers(0, 4, size=4))
            out += [obs["rgb"], obs["audio"], obs["depth"], reward]
        return out

    a, b, c = rollout(7), rollout(7), rollout(8)
    assert all(np.array_equal(x, y) for x, y in zip(a, b))
    assert not all(np.array_equal(x, y) for x, y in zip(a, c))


# -- the expert, and why fusion is needed ---------------------------------------------------

def test_expert_succeeds_at_least_98_percent_with_high_spl() -> None:
    env = AudioVisualNavVectorEnv(num_envs=64)
    res = run_policy(env, lambda obs: env.expert_actions(), episodes=300, seed=11)
    assert res["success"] >= 0.98
    assert res["spl"] >= 0.9
    assert res["collisions"] < 0.5


def test_audio_alone_cannot_see_walls() -> None:
    env = AudioVisualNavVectorEnv(num_envs=64)
    expert = run_policy(env, lambda obs: env.expert_actions(), episodes=100, seed=3)
    audio = run_policy(env, lambda obs: audio_only_actions(obs["audio"]), episodes=100, seed=3)
    assert audio["collisions"] > 20 * max(expert["collisions"], 0.5)
    assert audio["success"] < expert["success"] - 0.5


def test_vision_alone_cannot_tell_which_object_is_the_goal() -> None:
    # The goal's look is drawn like every other object's ...
    env = AudioVisualNavVectorEnv(num_envs=256, num_objects=4)
    env.reset(seed=5)
    shapes, colours = env.worlds.obj_shape, env.worlds.obj_rgb[..., 0]
    for j in range(1, 4):
        for kind in (shapes, colours):
            values = np.unique(kind)
            goal = np.array([(kind[:, 0] == v).mean() for v in values])
            other = np.array([(kind[:, j] == v).mean() for v in values])
            assert np.abs(goal - other).max() < 0.12
    # ... so even perfect vision plus shortest-path driving finds it only by luck.
    env = AudioVisualNavVectorEnv(num_envs=64, num_objects=4)
    env.reset(seed=9)
    seeker = ObjectSeeker(env, seed=9)
    policy = lambda obs: seeker.actions()  # noqa: E731
    policy.ended = seeker.new_episode
    res = run_policy(env, policy, episodes=300, seed=9)
    assert 0.12 < res["success"] < 0.38  # chance is 1/4


# -- the physics of the cues -----------------------------------------------------------------

def test_the_ear_facing_the_source_is_louder_and_leads(lab) -> None:
    # agent at (5.5, 5.5) facing +x (heading 0); +y is the agent's right in a y-down map
    right = place(lab, (5.5, 5.5), 0, source=(5.5, 7.5))["audio"]
    left = place(lab, (5.5, 5.5), 0, source=(5.5, 3.5))["audio"]
    assert rms(right)[1] > 1.5 * rms(right)[0]
    assert rms(left)[0] > 1.5 * rms(left)[1]
    # interaural time difference: the right ear leads for a source on the right
    a, b = right[0].astype(np.float64), right[1].astype(np.float64)
    lags = np.arange(-20, 21)
    xcorr = [np.dot(a[20:-20], np.roll(b, lag)[20:-20]) for lag in lags]
    lag = lags[int(np.argmax(xcorr))]
    assert 6 <= lag <= 13  # left = right delayed by ~0.66 ms = ~10 samples at 16 kHz


def test_farther_is_quieter(lab) -> None:
    levels = [rms(place(lab, (2.5, 5.5), 0, source=(2.5 + d, 5.5))["audio"]).mean()
              for d in (1.0, 2.0, 4.0)]
    assert levels[0] > 1.6 * levels[1] > 1.6 * 1.6 * levels[2] * 0.9
    assert levels[1] / levels[2] == pytest.approx(2.0, rel=0.2)


def test_a_wall_between_attenuates_and_muffles(lab) -> None:
    free = rms(place(lab, (3.5, 5.5), 0, source=(7.5, 5.5))["audio"]).mean()
    lab.worlds.grid[0, 1:10, 5] = 1  # a wall across the room between agent and source
    try:
        walled = place(lab, (3.5, 5.5), 0, source=(7.5, 5.5))["audio"]
    finally:
        lab.worlds.grid[0, 1:10, 5] = 0
    assert rms(walled).mean() < 0.5 * free
    # muffled: relatively less energy above 1 kHz (the tone's third harmonic)
    open_ = place(lab, (3.5, 5.5), 0, source=(7.5, 5.5))["audio"]

    def high_fraction(x: np.ndarray) -> float:
        spec = np.abs(np.fft.rfft(x[0])) ** 2
        f = np.fft.rfftfreq(x.shape[1], 1 / 16000)
        return spec[f > 1000].sum() / spec.sum()

    assert high_fraction(walled) < 0.7 * high_fraction(open_)


def test_sound_goes_round_walls_through_the_door() -> None:
    # a wall across the room at x = 5 with a door at y = 2; the source is straight ahead of
    # the agent (east), behind the wall; the open path leaves through the door, to the left
    def heard(diffraction: float, door: bool) -> np.ndarray:
        env = AudioVisualNavVectorEnv(num_envs=1, mic_noise=0.0, diffraction_gain=diffraction)
        env.reset(seed=0)
        empty_room(env)
        env.worlds.grid[0, 1:10, 5] = 1
        if door:
            env.worlds.grid[0, 2, 5] = 0
        return rms(place(env, (3.5, 7.5), 0, source=(7.5, 7.5))["audio"])

    through_door = heard(0.7, door=True)
    assert through_door[0] > 1.3 * through_door[1]  # arrives from the door: the left ear
    straight = heard(0.0, door=True)
    assert straight[0] == pytest.approx(straight[1], rel=0.05)  # no diffraction: dead ahead
    sealed = heard(0.7, door=False)
    assert sealed.mean() < 0.7 * through_door.mean()  # no open path: only through the wall
    assert sealed[0] == pytest.approx(sealed[1], rel=0.05)


def test_the_cached_diffracted_path_is_the_one_computed_afresh() -> None:
    # the apparent source is reused while the listener stays put (turns, bumps, stop);
    # a twin world that forgets it before every step must hear exactly the same
    cached, fresh = (AudioVisualNavVectorEnv(num_envs=8) for _ in range(2))
    obs_c, _ = cached.reset(seed=5)
    obs_f, _ = fresh.reset(seed=5)
    rng = np.random.default_rng(0)
    reused = 0
    for _ in range(120):
        actions = rng.choice(4, size=8, p=[0.02, 0.38, 0.3, 0.3])
        before = cached.worlds.heard_at.copy()
        fresh.worlds.heard_at[:] = np.nan
        obs_c, *_ = cached.step(actions)
        obs_f, *_ = fresh.step(actions)
        reused += int((cached.worlds.heard_at == before).all(axis=1).sum())
        assert np.array_equal(obs_c["audio"], obs_f["audio"])
    assert reused > 100  # the cache was used, not just filled


def test_the_view_turns_with_the_agent(lab) -> None:
    # facing a wall 4.5 m ahead (x = 10) in the empty room
    before = place(lab, (5.5, 5.5), 0)
    c = lab.cfg.image_size // 2
    row = lab.cfg.image_size // 2
    assert before["depth"][row, c, 0] == pytest.approx(4.5, abs=0.05)
    # turn right by 30 degrees: the old centre ray is now 30 degrees to the left,
    # at column W/2 * (1 - tan 30 / tan 45), and its z-depth is 4.5 * cos 30.
    after = place(lab, (5.5, 5.5), 1)
    col = int(c * (1 - math.tan(math.radians(30))))
    assert after["depth"][row, col, 0] == pytest.approx(4.5 * math.cos(math.radians(30)), rel=0.06)
    assert not np.array_equal(before["rgb"], after["rgb"])
    # turning back restores the view exactly
    assert np.array_equal(place(lab, (5.5, 5.5), 0)["rgb"], before["rgb"])


def test_an_object_is_in_view_ahead_not_behind_or_behind_a_wall() -> None:
    """What the deaf teacher may walk to: objects the camera shows (the renderer draws the
    one in view nearer than the wall, and nothing where it says none is)."""
    env = AudioVisualNavVectorEnv(num_envs=1, map_size=11, mic_noise=0.0)
    env.reset(seed=0)
    empty_room(env)
    w, seen = env.worlds, np.zeros(1, np.bool_)
    c, row = env.cfg.image_size // 2, env.cfg.image_size // 2 + 4  # below the horizon

    def look(obj: tuple[float, float], heading_idx: int) -> tuple[bool, float]:
        w.obj_pos[0, :] = obj
        obs = place(env, (5.5, 5.5), heading_idx)
        objects_in_view(w.grid[0], 5.5, 5.5, heading_idx * env._turn, env._tan_half_fov,
                        5.0, w.obj_pos[0, :1], seen)
        return bool(seen[0]), float(obs["depth"][row, c, 0])

    assert look((8.5, 5.5), 0) == (True, pytest.approx(3.0, abs=0.05))  # drawn, 3 m ahead
    assert look((2.5, 5.5), 0)[0] is False  # behind the camera
    assert look((8.5, 5.5), 6)[0] is False  # turned away (180 degrees)
    w.grid[0, 5, 7] = 1  # a wall cell between
    env.recompute(0)
    hidden, depth = look((8.5, 5.5), 0)
    assert not hidden and depth == pytest.approx(1.5, abs=0.05)  # the wall, not the object
    env.close()


def test_forward_motion_bump_and_touch() -> None:
    env = AudioVisualNavVectorEnv(num_envs=1)
    env.reset(seed=0)
    empty_room(env)
    env.worlds.pos[0] = (9.5, 5.5)
    env.worlds.heading[0] = 0  # facing the wall at x = 10, 0.5 m away
    env.worlds.dist[0] = 0.0
    obs, *_ = env.step(np.array([W.FORWARD]))
    assert env.worlds.pos[0, 0] == pytest.approx(10 - env.cfg.agent_radius_m, abs=0.26)
    assert obs["proprio"][0, 2 + W.FORWARD] == 1.0
    obs, *_ = env.step(np.array([W.FORWARD]))  # now blocked
    assert obs["touch"][0, 0] == 1.0 and env.worlds.collisions[0] >= 1
    assert obs["proprio"][0, 0] == 0.0


def test_generated_maps_are_connected() -> None:
    states = np.arange(1, 51, dtype=np.uint64) * np.uint64(7919)
    for w in range(50):
        grid = np.zeros((13, 13), np.uint8)
        generate_map(grid, states, w, 2)
        free = np.zeros((13 * FINE, 13 * FINE), np.uint8)
        free_subcells(grid, 0.18, free)
        ys, xs = np.nonzero(free)
        dist = np.zeros_like(free, dtype=np.float32)
        distance_field(free, (xs[0] + 0.5) / FINE, (ys[0] + 0.5) / FINE, dist)
        assert (dist[free == 1] < 1e5).all(), f"map {w} has unreachable space"
        assert grid[1:-1, 1:-1].mean() > 0.1  # there are interior walls


# -- bad input ------------------------------------------------------------------------------

def test_invalid_actions_get_clear_errors() -> None:
    env = AudioVisualNavVectorEnv(num_envs=2)
    env.reset(seed=0)
    with pytest.raises(ValueError, match=r"invalid action 4 for world 1.*\[0, 4\)"):
        env.step(np.array([1, 4]))
    with pytest.raises(ValueError, match="actions must be 2 integers"):
        env.step(np.array([1]))
    with pytest.raises(ValueError, match="actions must be 2 integers"):
        env.step(np.array([0.5, 1.0]))
    single = gym.make(ENV_ID)
    single.reset(seed=0)
    with pytest.raises(ValueError, match="invalid action -1"):
        single.unwrapped.step(-1)


@pytest.mark.parametrize(
    ("kwargs", "pattern"),
    [
        ({"image_size": -1}, r"image_size=-1 is invalid; it must be an integer >= 8"),
        ({"map_size": 0}, r"map_size=0"),
        ({"num_distractors": 4, "num_objects": 4}, r"num_distractors=4.*<= 3"),
        ({"turn_deg": 25.0}, r"turn_deg=25.0.*divisor of 360"),
        ({"deaf_expert": "seen"}, r"deaf_expert='seen' is invalid.*'nearest' or 'in_view'"),
        ({"imagesize": 32}, r"unknown setting\(s\) \['imagesize'\].*image_size"),
    ],
)
def test_bad_settings_get_clear_errors(kwargs, pattern) -> None:
    with pytest.raises(ConfigError, match=pattern):
        AudioVisualNavVectorEnv(num_envs=1, **kwargs)
    with pytest.raises(ConfigError, match=pattern):
        gym.make(ENV_ID, **kwargs)


def test_bad_num_envs_gets_a_clear_error() -> None:
    with pytest.raises(ConfigError, match="num_envs must be an integer >= 1"):
        AudioVisualNavVectorEnv(num_envs=0)
