"""AudioVisualNav: find the sounding object in a procedurally generated flat."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from envs.audiovisual_nav import world as W
from envs.audiovisual_nav.config import WHERE, AudioVisualNavConfig
from envs.audiovisual_nav.maps import distance_field, free_subcells, geodesic_at
from envs.audiovisual_nav.render import objects_in_view
from envs.audiovisual_nav.sound import LOOP_S, make_noise_table, make_sound_bank
from envs.batched import BatchedEnv, seed_states
from envs.metrics import EpisodeMetric
from envs.single import SingleWorldEnv
from perception.settings import config_from_kwargs
from perception.spec import ActionSpec, ModalityKind, ModalitySpec, ObsSpec


def audiovisual_nav_spec(cfg: AudioVisualNavConfig) -> ObsSpec:
    """The observation contract of AudioVisualNav for settings `cfg`."""
    s, hz = cfg.image_size, cfg.control_hz
    yaw_max = math.radians(cfg.turn_deg) * hz
    motion_max = max(yaw_max, cfg.forward_m * hz, 1.0)
    return ObsSpec(
        (
            ModalitySpec("rgb", ModalityKind.IMAGE, (s, s, 3), "uint8", hz, 0, 255,
                         description=f"egocentric colour view, {cfg.fov_deg:g} deg FOV"),
            ModalitySpec("depth", ModalityKind.DEPTH, (s, s, 1), "float32", hz, 0.0,
                         cfg.max_depth_m, description="z-depth along the view axis, metres"),
            ModalitySpec("audio", ModalityKind.AUDIO, (2, cfg.audio_samples), "float32", hz,
                         -1.0, 1.0, sample_rate=cfg.sample_rate,
                         description="binaural waveform of the last control period: "
                                     "rows left, right ear"),
            ModalitySpec("proprio", ModalityKind.VECTOR, (W.PROPRIO_DIM,), "float32", hz,
                         -yaw_max, motion_max,
                         description="forward speed m/s, yaw rate rad/s (+ right), "
                                     "one-hot last action (stop, forward, left, right)"),
            ModalitySpec("touch", ModalityKind.TOUCH, (W.TOUCH_DIM,), "float32", hz, 0.0, 1.0,
                         description="contact at front (or bump), right, back, left"),
        ),
        control_hz=hz,
    )


#: How near an object must be to count as seen by the hearing-free expert (farther ones
#: are a few pixels wide in the 64x64 view)
SEEN_WITHIN_M = 5.0


METRICS = (
    EpisodeMetric("success", "stopped within success_radius_m of the goal", True, "success_rate"),
    EpisodeMetric("spl", "success weighted by shortest path over the path walked", True),
    EpisodeMetric("collisions", "steps whose move hit an obstacle", False),
)


class AudioVisualNavVectorEnv(BatchedEnv):
    """## Description

    Audio-visual navigation in the spirit of SoundSpaces, light enough to train
    on a CPU. Each episode draws a new flat (rooms, doors, corridors, by
    recursive division) with `num_objects` objects. One object, the goal,
    plays a tonal sound; `num_distractors` others play noise-like sounds; all
    objects look alike in distribution, so vision alone cannot tell which is
    the goal, and audio alone cannot see walls.

    ## Observation space
    A ``Dict`` declared by :func:`audiovisual_nav_spec`: ``rgb`` (S, S, 3)
    uint8, ``depth`` (S, S, 1) float32 metres, ``audio`` (2, T) float32
    binaural waveform of the last control period (T = sample_rate /
    control_hz), ``proprio`` (6,) float32, ``touch`` (4,) float32.

    ## Action space
    ``Discrete(4)``: 0 stop, 1 forward `forward_m`, 2 turn left, 3 turn right
    (`turn_deg`).

    ## Rewards
    ``distance_reward_scale`` x (decrease of the geodesic distance to the goal)
    - ``step_cost`` every step, + ``success_bonus`` on a successful stop,
    - ``wrong_stop_penalty`` for a stop outside the success radius.

    ## Episode end
    Terminated by the stop action (a success when the geodesic distance to the
    goal is within ``success_radius_m``); truncated after ``max_steps``.
    ``final_info`` (or ``info`` of the single env) reports ``success``,
    ``spl`` (success weighted by path length: shortest distance to the success
    region over the path walked), ``collisions``, ``episode_return``,
    ``episode_length``.

    ## Arguments
    See :class:`AudioVisualNavConfig`; ``num_envs`` worlds step in one call.
    ``autoreset=True`` resets ended worlds in the same step
    (``AutoresetMode.SAME_STEP``).

    ## Version history
    - v0: first version.
    """

    episode_metrics = METRICS

    def __init__(self, num_envs: int = 1, autoreset: bool = True, **kwargs: Any) -> None:
        self.cfg = config_from_kwargs(AudioVisualNavConfig, kwargs, WHERE)
        cfg = self.cfg
        spec = audiovisual_nav_spec(cfg)
        actions = ActionSpec("discrete", n=len(W.ACTION_NAMES), names=W.ACTION_NAMES)
        self._init_spaces(num_envs, spec, actions)
        self.autoreset = autoreset
        self.worlds = W.Worlds(cfg, self.num_envs)
        # expert_actions_without: per world, the field to the object it walks to
        # ("nearest") or every object's field and the turns made looking ("in_view"), and
        # the episode (its start distance) they belong to
        self._walk_field = np.zeros_like(self.worlds.dist)
        self._object_fields = (np.zeros(self.worlds.obj_pos.shape[:2]
                                        + self.worlds.dist.shape[1:], self.worlds.dist.dtype)
                               if cfg.deaf_expert == "in_view" else None)
        self._walk_start = np.full(self.num_envs, -1.0)
        self._turned = np.zeros(self.num_envs, np.int64)
        self._in_view = np.zeros(self.worlds.obj_pos.shape[1], np.bool_)
        self._dry, self._muffled, self._n_goal_sounds = make_sound_bank(cfg.sample_rate)
        self._noise = make_noise_table(cfg.sample_rate)
        self._turn = math.radians(cfg.turn_deg)
        self._tan_half_fov = math.tan(math.radians(cfg.fov_deg) / 2)
        self._all = np.arange(self.num_envs)
        self.worlds.rng[:] = seed_states(None, self.num_envs)
        self._needs_reset = True

    # -- episode control -------------------------------------------------------------------

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        """Start new episodes in every world; a seed restarts the worlds' RNG streams."""
        if seed is not None:
            self.worlds.rng[:] = seed_states(seed, self.num_envs)
        self._reset(self._all)
        self._needs_reset = False
        info = {} if self.autoreset else self._metrics(np.zeros(self.num_envs, bool))
        return self._observe(self._all), info

    def step(
        self, actions: Any
    ) -> tuple[dict[str, np.ndarray], np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]:
        if self._needs_reset:
            raise RuntimeError("AudioVisualNav: call reset() before step()")
        a = self.check_actions(actions)
        cfg, w = self.cfg, self.worlds
        n = self.num_envs
        reward = np.empty(n)
        terminated = np.empty(n, np.bool_)
        truncated = np.empty(n, np.bool_)
        success = np.empty(n, np.bool_)
        W.step_worlds(a, w.grid, w.dist, w.pos, w.heading, w.steps, w.path_len, w.geo,
                      w.collisions, w.last_action, w.velocity, w.bumped, w.ep_return, w.cursor,
                      cfg.forward_m, self._turn, cfg.headings, cfg.agent_radius_m,
                      cfg.success_radius_m, cfg.control_hz, cfg.max_steps, cfg.success_bonus,
                      cfg.wrong_stop_penalty, cfg.step_cost, cfg.distance_reward_scale,
                      cfg.audio_samples, reward, terminated, truncated, success)
        done = terminated | truncated
        if not self.autoreset:
            return self._observe(self._all), reward, terminated, truncated, self._metrics(success)
        info: dict[str, Any] = {}
        if done.any():
            idx = np.flatnonzero(done)
            final_obs = self._observe(idx)
            metrics = self._metrics(success)
            info = self.final_infos(done, final_obs, metrics)
            self._reset(idx)
        return self._observe(self._all), reward, terminated, truncated, info

    def _metrics(self, success: np.ndarray) -> dict[str, np.ndarray]:
        """Per-world episode metrics (meaningful where the episode just ended)."""
        w, cfg = self.worlds, self.cfg
        shortest = np.maximum(w.start_geo - cfg.success_radius_m, 0.0)
        spl = success * shortest / np.maximum(np.maximum(shortest, w.path_len), 1e-9)
        return {
            "success": success.copy(),
            "spl": np.where(shortest > 0, spl, success.astype(float)),
            "collisions": w.collisions.copy(),
            "episode_return": w.ep_return.copy(),
            "episode_length": w.steps.copy(),
            "geodesic_distance": w.geo.copy(),
        }

    def _reset(self, idx: np.ndarray) -> None:
        cfg, w = self.cfg, self.worlds
        W.reset_worlds(idx, w.grid, w.free, w.fields, w.palette, w.pos, w.heading, w.obj_pos,
                       w.obj_rgb, w.obj_shape, w.src_id, w.src_gain, w.cursor, w.steps,
                       w.path_len, w.start_geo, w.geo, w.collisions, w.last_action, w.velocity,
                       w.bumped, w.ep_return, w.rng, cfg.min_room, cfg.agent_radius_m,
                       cfg.success_radius_m, cfg.headings, self._n_goal_sounds,
                       self._dry.shape[0], cfg.num_distractors, LOOP_S * cfg.sample_rate,
                       W.OBJECT_COLOURS)
        w.heard_at[idx] = np.nan  # new maps and sources: nothing heard yet
        if (w.start_geo[idx] < 0).any():
            raise RuntimeError(
                f"{WHERE}: could not place {cfg.num_objects} objects and a start in a "
                f"{cfg.map_size}x{cfg.map_size} map; raise map_size or lower num_objects"
            )

    def _observe(self, idx: np.ndarray) -> dict[str, np.ndarray]:
        cfg, w = self.cfg, self.worlds
        m, s = len(idx), cfg.image_size
        obs = {
            "rgb": np.empty((m, s, s, 3), np.uint8),
            "depth": np.empty((m, s, s, 1), np.float32),
            "audio": np.empty((m, 2, cfg.audio_samples), np.float32),
            "proprio": np.empty((m, W.PROPRIO_DIM), np.float32),
            "touch": np.empty((m, W.TOUCH_DIM), np.float32),
        }
        W.observe_worlds(idx, w.grid, w.fields, w.palette, w.pos, w.heading, w.obj_pos, w.obj_rgb,
                         w.obj_shape, w.src_id, w.src_gain, w.cursor, w.last_action, w.velocity,
                         w.bumped, w.rng, w.heard_at, w.heard_from, self._turn,
                         self._tan_half_fov, cfg.max_depth_m,
                         cfg.agent_radius_m, self._dry, self._muffled, self._noise, cfg.mic_noise,
                         cfg.wall_transmission, cfg.diffraction_gain, cfg.sample_rate, obs["rgb"],
                         obs["depth"],
                         obs["audio"], obs["proprio"], obs["touch"])
        np.clip(obs["audio"], -1.0, 1.0, out=obs["audio"])
        return obs

    # -- privileged access -----------------------------------------------------------------

    def expert_actions(self) -> np.ndarray:
        """The shortest-path expert's action in every world."""
        cfg, w = self.cfg, self.worlds
        out = np.empty(self.num_envs, np.int64)
        W.expert_worlds(w.grid, w.dist, w.pos, w.heading, cfg.forward_m, self._turn,
                        cfg.headings, cfg.agent_radius_m, cfg.success_radius_m - 0.05, out)
        return out

    def expert_actions_without(self, absent: dict[str, np.ndarray]) -> np.ndarray:
        """The expert for a student that lacks, in some worlds, a sense all episode.

        `absent` maps modality names to (N,) bools. Without ``audio`` the goal is
        unknowable (it looks like the other objects), so the shortest path to it is
        an action no such student can learn; what it can do is walk to an object and
        stop there (right with chance 1 / objects). Those worlds get that walk, as
        `deaf_expert` says; the others, and worlds lacking another sense, the
        privileged expert.
        """
        out = self.expert_actions()
        deaf = absent.get("audio")
        if deaf is None or not np.any(deaf):
            return out
        if self.cfg.deaf_expert == "in_view":
            rows, targets = self._walk_to_what_is_seen(np.flatnonzero(deaf), out)
            fields = self._object_fields[rows, targets]
        else:
            rows = np.flatnonzero(deaf)
            for i in rows:
                if self._walk_start[i] != self.worlds.start_geo[i] or self.worlds.steps[i] == 0:
                    self._aim_at_nearest_object(int(i))
            fields = self._walk_field[rows]
        if len(rows):
            cfg, w = self.cfg, self.worlds
            sub = np.empty(len(rows), np.int64)
            W.expert_worlds(w.grid[rows], fields, w.pos[rows], w.heading[rows], cfg.forward_m,
                            self._turn, cfg.headings, cfg.agent_radius_m,
                            cfg.success_radius_m - 0.05, sub)
            out[rows] = sub
        return out

    def _aim_at_nearest_object(self, i: int) -> None:
        """World i's walk field: geodesic to the object nearest the agent now."""
        w = self.worlds
        here = np.empty_like(w.dist[i])
        distance_field(w.free[i], w.pos[i, 0], w.pos[i, 1], here)
        reach = [geodesic_at(here, x, y) for x, y in w.obj_pos[i]]
        j = int(np.argmin(reach))
        distance_field(w.free[i], w.obj_pos[i, j, 0], w.obj_pos[i, j, 1], self._walk_field[i])
        self._walk_start[i] = w.start_geo[i]

    def _walk_to_what_is_seen(self, deaf: np.ndarray, out: np.ndarray
                              ) -> tuple[np.ndarray, np.ndarray]:
        """``deaf_expert=in_view``, decided afresh each step as a memoryless student must:
        with an object in view (within `SEEN_WITHIN_M`, no wall between), walk to the one
        nearest the middle of the view; with none, turn right (written into `out`); after
        a whole turn with none in view, walk to the nearest object anyway. The worlds
        that walk, and the object each walks to."""
        cfg, w = self.cfg, self.worlds
        rows, targets = [], []
        for i in deaf:
            if self._walk_start[i] != w.start_geo[i] or w.steps[i] == 0:  # a new episode
                self._walk_start[i], self._turned[i] = w.start_geo[i], 0
                for j in range(w.obj_pos.shape[1]):
                    distance_field(w.free[i], w.obj_pos[i, j, 0], w.obj_pos[i, j, 1],
                                   self._object_fields[i, j])
            objects_in_view(w.grid[i], w.pos[i, 0], w.pos[i, 1], w.heading[i] * self._turn,
                            self._tan_half_fov, SEEN_WITHIN_M, w.obj_pos[i], self._in_view)
            seen = np.flatnonzero(self._in_view)
            if len(seen):
                self._turned[i] = 0
                d = w.obj_pos[i, seen] - w.pos[i]
                off = (np.arctan2(d[:, 1], d[:, 0]) - w.heading[i] * self._turn + np.pi) \
                    % (2 * np.pi) - np.pi
                target = seen[int(np.argmin(np.abs(off)))]  # nearest the middle: it stays
            elif self._turned[i] < cfg.headings:
                out[i] = W.RIGHT
                self._turned[i] += 1
                continue
            else:
                target = int(np.argmin([geodesic_at(self._object_fields[i, j], *w.pos[i])
                                        for j in range(w.obj_pos.shape[1])]))
            rows.append(i)
            targets.append(target)
        return np.asarray(rows, np.int64), np.asarray(targets, np.int64)

    def recompute(self, world: int) -> None:
        """Redo world `world`'s free space and geodesic fields after editing its grid or
        object positions by hand (tests, tools); the episode goes on from there."""
        w, cfg = self.worlds, self.cfg
        free_subcells(w.grid[world], cfg.agent_radius_m, w.free[world])
        for j in range(w.fields.shape[1]):
            distance_field(w.free[world], w.obj_pos[world, j, 0], w.obj_pos[world, j, 1],
                           w.fields[world, j])
        w.geo[world] = geodesic_at(w.dist[world], w.pos[world, 0], w.pos[world, 1])

    privileged_dim = 4

    def privileged_state(self) -> np.ndarray:
        """(N, 4) float32 simulator truth a privileged critic or teacher may read.

        The goal's position in the agent's frame (forward, right), the
        straight-line and the geodesic distance, all divided by the map size.
        Never an observation: a robot has none of it.
        """
        w = self.worlds
        th = w.heading * self._turn
        d = w.obj_pos[:, 0] - w.pos
        forward = d[:, 0] * np.cos(th) + d[:, 1] * np.sin(th)
        right = -d[:, 0] * np.sin(th) + d[:, 1] * np.cos(th)
        out = np.stack([forward, right, np.hypot(d[:, 0], d[:, 1]), w.geo], axis=1)
        return (out / self.cfg.map_size).astype(np.float32)

    def observe(self, worlds: np.ndarray | None = None) -> dict[str, np.ndarray]:
        """Observations of the current state of `worlds` (default all), without stepping.

        The worlds' RNG streams are left as they were, so looking does not
        change what a seeded run does next.
        """
        idx = self._all if worlds is None else np.asarray(worlds, np.int64)
        saved = self.worlds.rng[idx].copy()
        obs = self._observe(idx)
        self.worlds.rng[idx] = saved
        return obs

    def render_world(self, index: int) -> np.ndarray:
        """The egocentric view of world `index` (the rgb observation), for people."""
        return self.observe(np.array([index]))["rgb"][0]


class AudioVisualNavEnv(SingleWorldEnv):
    __doc__ = AudioVisualNavVectorEnv.__doc__
    batched_cls = AudioVisualNavVectorEnv
