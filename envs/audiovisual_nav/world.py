"""The state of N AudioVisualNav worlds and the compiled kernels that advance them.

All per-world state lives in the arrays of :class:`Worlds` (first axis =
world); the kernels run one world per iteration of ``numba.prange``, so a
batch of worlds costs one call.
"""

from __future__ import annotations

import math

import numba
import numpy as np

from envs.audiovisual_nav.config import AudioVisualNavConfig
from envs.audiovisual_nav.maps import (
    FINE,
    UNREACHABLE,
    clearance,
    distance_field,
    free_subcells,
    generate_map,
    geodesic_at,
    move_agent,
    random_free_point,
)
from envs.audiovisual_nav.render import render_view
from envs.audiovisual_nav.sound import render_binaural
from envs.jit import kernel, parallel_kernel, randint, uniform

STOP, FORWARD, LEFT, RIGHT = 0, 1, 2, 3
ACTION_NAMES = ("stop", "forward", "turn_left", "turn_right")
PROPRIO_DIM = 2 + len(ACTION_NAMES)
TOUCH_DIM = 4  # contact at front, right, back, left
OBJECT_COLOURS = np.array(
    [[200, 40, 40], [40, 160, 60], [50, 80, 210], [220, 190, 40], [160, 60, 190], [40, 180, 190]],
    np.float32,
)
NUM_SHAPES = 3
MIN_START_EXTRA_M = 1.0  # the start is at least this far (geodesic) beyond the success radius


class Worlds:
    """Arrays holding the state of `n` worlds built from one config."""

    def __init__(self, cfg: AudioVisualNavConfig, n: int) -> None:
        s, k, f = cfg.map_size, cfg.num_objects, cfg.map_size * FINE
        self.grid = np.ones((n, s, s), np.uint8)
        self.free = np.zeros((n, f, f), np.uint8)
        # geodesic fields of the sounding objects: [:, 0] the goal's, [:, j] distractor j's
        self.fields = np.zeros((n, 1 + cfg.num_distractors, f, f), np.float32)
        self.dist = self.fields[:, 0]  # the goal's field (a view)
        self.palette = np.zeros((n, 4, 3), np.float32)
        self.pos = np.zeros((n, 2))
        self.heading = np.zeros(n, np.int64)
        self.obj_pos = np.zeros((n, k, 2))
        self.obj_rgb = np.zeros((n, k, 3), np.float32)
        self.obj_shape = np.zeros((n, k), np.int64)
        self.src_id = np.full((n, k), -1, np.int64)
        self.src_gain = np.zeros((n, k))
        self.cursor = np.zeros(n, np.int64)
        self.steps = np.zeros(n, np.int64)
        self.path_len = np.zeros(n)
        self.start_geo = np.zeros(n)
        self.geo = np.zeros(n)
        self.collisions = np.zeros(n, np.int64)
        self.last_action = np.full(n, -1, np.int64)
        self.velocity = np.zeros((n, 2))  # forward m/s, yaw rad/s (+ = right)
        self.bumped = np.zeros(n, np.bool_)
        self.ep_return = np.zeros(n)
        self.rng = np.ones(n, np.uint64)
        # where the diffracted sound of each source seemed to come from (x, y, metres), for
        # the listener position `heard_at`: a turn in place reuses it (NaN = not computed)
        self.heard_at = np.full((n, 2), np.nan)
        self.heard_from = np.full((n, 1 + cfg.num_distractors, 3), np.nan)


@kernel
def _place_world(w, grid, free, fields, palette, pos, heading, obj_pos, obj_rgb, obj_shape,
                 src_id, src_gain, cursor, rng, min_room, radius, success_radius, headings,
                 n_goal_sounds, n_sounds, num_distractors, loop_len, colours) -> float:
    """Make a new map and episode in world `w`; return the start's geodesic distance."""
    for _attempt in range(50):
        generate_map(grid[w], rng, w, min_room)
        free_subcells(grid[w], radius, free[w])
        k = obj_pos.shape[1]
        placed = 0
        for _try in range(200):
            if placed == k:
                break
            x, y = random_free_point(grid[w], free[w], rng, w, 0.2)
            ok = True
            for j in range(placed):
                if math.hypot(obj_pos[w, j, 0] - x, obj_pos[w, j, 1] - y) < 1.2:
                    ok = False
            if ok:
                obj_pos[w, placed, 0] = x
                obj_pos[w, placed, 1] = y
                placed += 1
        if placed < k:
            continue
        for j in range(fields.shape[1]):  # the goal's field, then each distractor's
            distance_field(free[w], obj_pos[w, j, 0], obj_pos[w, j, 1], fields[w, j])
        for _try in range(200):
            x, y = random_free_point(grid[w], free[w], rng, w, 0.3)
            g = geodesic_at(fields[w, 0], x, y)
            if success_radius + MIN_START_EXTRA_M < g < UNREACHABLE:
                pos[w, 0], pos[w, 1] = x, y
                heading[w] = randint(rng, w, headings)
                for c in range(palette.shape[1]):
                    for ch in range(3):
                        palette[w, c, ch] = 70.0 + 170.0 * uniform(rng, w)
                # every object, the goal (index 0) included, looks like a random draw
                for j in range(k):
                    ci = randint(rng, w, colours.shape[0])
                    for ch in range(3):
                        obj_rgb[w, j, ch] = colours[ci, ch]
                    obj_shape[w, j] = randint(rng, w, NUM_SHAPES)
                    if j == 0:
                        src_id[w, j] = randint(rng, w, n_goal_sounds)
                        src_gain[w, j] = 0.8 + 0.4 * uniform(rng, w)
                    elif j <= num_distractors:
                        src_id[w, j] = n_goal_sounds + randint(rng, w, n_sounds - n_goal_sounds)
                        src_gain[w, j] = 0.6 + 0.4 * uniform(rng, w)
                    else:
                        src_id[w, j] = -1
                        src_gain[w, j] = 0.0
                cursor[w] = randint(rng, w, loop_len)
                return g
    return -1.0  # unreachable with sane settings; validated configs never get here


@parallel_kernel
def reset_worlds(idx, grid, free, fields, palette, pos, heading, obj_pos, obj_rgb, obj_shape,
                 src_id, src_gain, cursor, steps, path_len, start_geo, geo, collisions,
                 last_action, velocity, bumped, ep_return, rng, min_room, radius,
                 success_radius, headings, n_goal_sounds, n_sounds, num_distractors, loop_len,
                 colours) -> None:
    """Start a new episode (and map) in each world of `idx`."""
    for t in numba.prange(idx.shape[0]):
        w = idx[t]
        g = _place_world(w, grid, free, fields, palette, pos, heading, obj_pos, obj_rgb,
                         obj_shape, src_id, src_gain, cursor, rng, min_room, radius,
                         success_radius, headings, n_goal_sounds, n_sounds, num_distractors,
                         loop_len, colours)
        start_geo[w] = g
        geo[w] = g
        steps[w] = 0
        path_len[w] = 0.0
        collisions[w] = 0
        last_action[w] = -1
        velocity[w, 0] = 0.0
        velocity[w, 1] = 0.0
        bumped[w] = False
        ep_return[w] = 0.0


@parallel_kernel
def step_worlds(actions, grid, dist, pos, heading, steps, path_len, geo, collisions,
                last_action, velocity, bumped, ep_return, cursor, forward_m, turn_rad, headings,
                radius, success_radius, control_hz, max_steps, success_bonus, wrong_stop_penalty,
                step_cost, distance_scale, audio_samples, reward, terminated, truncated,
                success) -> None:
    """Apply one action per world: motion, collisions, reward and episode end."""
    for w in numba.prange(actions.shape[0]):
        a = actions[w]
        moved = 0.0
        yaw = 0.0
        bumped[w] = False
        if a == FORWARD:
            th = heading[w] * turn_rad
            x0, y0 = pos[w, 0], pos[w, 1]
            x, y, hit = move_agent(grid[w], x0, y0, forward_m * math.cos(th),
                                   forward_m * math.sin(th), radius)
            pos[w, 0], pos[w, 1] = x, y
            moved = math.hypot(x - x0, y - y0)
            if hit:
                bumped[w] = True
                collisions[w] += 1
        elif a == LEFT:
            heading[w] = (heading[w] - 1) % headings
            yaw = -turn_rad
        elif a == RIGHT:
            heading[w] = (heading[w] + 1) % headings
            yaw = turn_rad
        path_len[w] += moved
        velocity[w, 0] = moved * control_hz
        velocity[w, 1] = yaw * control_hz
        last_action[w] = a
        steps[w] += 1
        cursor[w] += audio_samples
        new_geo = geodesic_at(dist[w], pos[w, 0], pos[w, 1])
        r = distance_scale * (geo[w] - new_geo) - step_cost
        geo[w] = new_geo
        terminated[w] = a == STOP
        success[w] = a == STOP and new_geo <= success_radius
        if success[w]:
            r += success_bonus
        elif a == STOP:
            r -= wrong_stop_penalty
        truncated[w] = a != STOP and steps[w] >= max_steps
        reward[w] = r
        ep_return[w] += r


@parallel_kernel
def observe_worlds(idx, grid, fields, palette, pos, heading, obj_pos, obj_rgb, obj_shape,
                   src_id, src_gain, cursor, last_action, velocity, bumped, rng, heard_at,
                   heard_from, turn_rad,
                   tan_half_fov, max_depth, radius, dry, muffled, noise, mic_noise,
                   wall_transmission, diffraction_gain, sample_rate, rgb, depth, audio, proprio,
                   touch) -> None:
    """Render the observation of each world in `idx` into row t of the output arrays."""
    for t in numba.prange(idx.shape[0]):
        w = idx[t]
        x, y = pos[w, 0], pos[w, 1]
        th = heading[w] * turn_rad
        zbuf = np.empty(rgb.shape[2])
        render_view(rgb[t], depth[t], zbuf, grid[w], palette[w], x, y, th, tan_half_fov,
                    max_depth, obj_pos[w, :, 0], obj_pos[w, :, 1], obj_rgb[w], obj_shape[w])
        n_noise = noise.shape[0]
        offsets = (randint(rng, w, n_noise), randint(rng, w, n_noise))
        render_binaural(audio[t], grid[w], fields[w], x, y, th, obj_pos[w, :, 0],
                        obj_pos[w, :, 1], src_id[w], src_gain[w], cursor[w], dry, muffled, noise,
                        offsets, mic_noise, wall_transmission, diffraction_gain, sample_rate,
                        heard_at[w], heard_from[w])
        proprio[t, 0] = velocity[w, 0]
        proprio[t, 1] = velocity[w, 1]
        for j in range(2, proprio.shape[1]):
            proprio[t, j] = 0.0
        if last_action[w] >= 0:
            proprio[t, 2 + last_action[w]] = 1.0
        for d in range(4):  # front, right, back, left
            ang = th + d * 0.5 * math.pi
            px = x + (radius + 0.05) * math.cos(ang)
            py = y + (radius + 0.05) * math.sin(ang)
            touch[t, d] = 1.0 if clearance(grid[w], px, py) == 0.0 else 0.0
        if bumped[w]:
            touch[t, 0] = 1.0


@parallel_kernel
def expert_worlds(grid, dist, pos, heading, forward_m, turn_rad, headings, radius, stop_within,
                  out) -> None:
    """Shortest-path expert on the true dynamics.

    For each of the headings it tries one forward move (collisions and sliding
    included) and scores the geodesic distance reached; it walks when the
    current heading is (nearly) the best, else turns the short way towards the
    best. Stops once within `stop_within` of the goal.
    """
    for w in numba.prange(pos.shape[0]):
        x, y = pos[w, 0], pos[w, 1]
        here = geodesic_at(dist[w], x, y)
        if here <= stop_within:
            out[w] = STOP
            continue
        cur = heading[w]
        best_h, best_g, cur_g = cur, here, here
        for h in range(headings):
            th = h * turn_rad
            nx, ny, _ = move_agent(grid[w], x, y, forward_m * math.cos(th),
                                   forward_m * math.sin(th), radius)
            g = geodesic_at(dist[w], nx, ny)
            if h == cur:
                cur_g = g
            if g < best_g - 1e-9:
                best_h, best_g = h, g
        # keep walking straight when that is within 2 cm of the best progress
        if cur_g < here - 1e-6 and cur_g <= best_g + 0.02:
            out[w] = FORWARD
            continue
        turn = (best_h - cur) % headings
        if turn == 0:
            out[w] = FORWARD
        elif turn <= headings // 2:
            out[w] = RIGHT
        else:
            out[w] = LEFT
