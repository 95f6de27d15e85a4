"""Sound sources and binaural rendering.

Sources are looping signals made once per env (periodic, so filtering is
exact in the frequency domain): tonal goal sounds (a harmonic tone with a
tremolo, one of several pitches) and noise-like distractors (rumble, hiss,
broadband). What reaches the two ears each step:

- distance: amplitude ~ 1 / max(d, 0.5 m);
- interaural time difference: Woodworth's spherical head, a = 8.75 cm,
  applied with a fractional delay (linear interpolation);
- interaural level difference: the near ear up to +35 %, the far ear down
  as much, and low-passed (head shadow);
- walls: each wall on the straight path multiplies the amplitude by the
  transmission factor and muffles (mixes in a low-passed copy); sound also
  goes round walls, through doors, and arrives from the direction of the
  shortest open path, over its length (diffraction, as in real rooms: it is
  what lets a listener follow a sound out of a room);
- front/back: a source behind the head is slightly muffled (pinna cue);
- self-noise of the microphones, from a looping noise table.
"""

from __future__ import annotations

import math

import numpy as np

from envs.audiovisual_nav.maps import FINE, UNREACHABLE, walls_between
from envs.jit import kernel

HEAD_RADIUS_M = 0.0875
SPEED_OF_SOUND = 343.0
LOOP_S = 2  # loop length of every source, seconds
GOAL_PITCHES_HZ = (440.0, 523.5, 587.5, 659.0, 740.0, 784.0, 880.0, 987.5)
LOWPASS_HZ = 700.0
SOURCE_RMS = 0.2
NUM_DISTRACTOR_SOUNDS = 8


def _lowpass(signal: np.ndarray, sample_rate: int) -> np.ndarray:
    spec = np.fft.rfft(signal, axis=-1)
    f = np.fft.rfftfreq(signal.shape[-1], 1.0 / sample_rate)
    gain = 1.0 / np.sqrt(1.0 + (f / LOWPASS_HZ) ** 4)  # 2nd-order Butterworth magnitude
    return np.fft.irfft(spec * gain, n=signal.shape[-1], axis=-1)


def _normalise(x: np.ndarray) -> np.ndarray:
    return x * (SOURCE_RMS / np.sqrt(np.mean(x**2, axis=-1, keepdims=True)))


def make_sound_bank(sample_rate: int) -> tuple[np.ndarray, np.ndarray, int]:
    """(dry, muffled, number of goal sounds): loops of shape (sounds, LOOP_S * sample_rate).

    Rows [0, goals) are goal sounds, the rest distractors. Fixed (seeded), so
    a sound id means the same sound in every run.
    """
    n = LOOP_S * sample_rate
    t = np.arange(n) / sample_rate
    rng = np.random.default_rng(20261127)
    goals = []
    for f0 in GOAL_PITCHES_HZ:
        f0 = round(f0 * LOOP_S) / LOOP_S  # whole periods per loop
        tone = sum(a * np.sin(2 * np.pi * k * f0 * t + rng.uniform(0, 2 * np.pi))
                   for k, a in ((1, 1.0), (2, 0.5), (3, 0.3)))
        tremolo = 1.0 - 0.4 * (0.5 + 0.5 * np.sin(2 * np.pi * 4.0 * t))
        goals.append(tone * tremolo)
    f = np.fft.rfftfreq(n, 1.0 / sample_rate)
    distractors = []
    bands = [(40, 400), (2000, 6000), (100, 7000), (300, 1500)]
    for i in range(NUM_DISTRACTOR_SOUNDS):
        lo, hi = bands[i % len(bands)]
        mag = ((f >= lo) & (f <= hi)).astype(float) / np.sqrt(np.maximum(f, 1.0)) ** (i // 4)
        phase = rng.uniform(0, 2 * np.pi, f.shape)
        noise = np.fft.irfft(mag * np.exp(1j * phase), n=n)
        wobble = 1.0 - 0.3 * (0.5 + 0.5 * np.sin(2 * np.pi * (1.0 + i * 0.5) * t))
        distractors.append(noise * wobble)
    dry = _normalise(np.array(goals + distractors))
    return dry.astype(np.float32), _lowpass(dry, sample_rate).astype(np.float32), len(goals)


def make_noise_table(sample_rate: int) -> np.ndarray:
    """A looping table of unit white noise that microphones read at random offsets."""
    rng = np.random.default_rng(7)
    return rng.standard_normal(4 * sample_rate + 7919).astype(np.float32)


@kernel
def apparent_source(grid: np.ndarray, field: np.ndarray, x: float, y: float
                    ) -> tuple[float, float, float]:
    """Where sound that goes round walls seems to come from, and how far it travelled.

    Walks the source's geodesic field downhill from the listener and keeps the
    farthest point of that path still in line of sight (a door, a corner): the
    wavefront arrives from there. Returns (x, y, geodesic metres); the
    distance is infinite when no open path exists.
    """
    n = field.shape[0]
    ci, cj, best = int(x * FINE), int(y * FINE), 1e30
    for j in range(max(cj - 1, 0), min(cj + 2, n)):
        for i in range(max(ci - 1, 0), min(ci + 2, n)):
            if field[j, i] < UNREACHABLE:
                v = field[j, i] + math.hypot((i + 0.5) / FINE - x, (j + 0.5) / FINE - y)
                if v < best:
                    best, ci2, cj2 = v, i, j
    if best >= 1e30:
        return x, y, math.inf
    i, j = ci2, cj2
    px, py = (i + 0.5) / FINE, (j + 0.5) / FINE
    for _ in range(8 * n):
        ni, nj, nd = i, j, field[j, i]
        for dj in range(-1, 2):
            for di in range(-1, 2):
                ii, jj = i + di, j + dj
                if 0 <= ii < n and 0 <= jj < n and field[jj, ii] < nd:
                    ni, nj, nd = ii, jj, field[jj, ii]
        if ni == i and nj == j:
            break
        i, j = ni, nj
        qx, qy = (i + 0.5) / FINE, (j + 0.5) / FINE
        if walls_between(grid, x, y, qx, qy) > 0:
            break
        px, py = qx, qy
    return px, py, best


@kernel
def _add_source(out: np.ndarray, k: int, amp: float, muffle: float, dx: float, dy: float,
                fx: float, fy: float, cursor: int, dry: np.ndarray, muffled: np.ndarray,
                sample_rate: int) -> None:
    """Add sound `k` arriving from direction (dx, dy) with amplitude `amp` to both ears."""
    loop = dry.shape[1]
    rx, ry = -fy, fx  # the listener's right in a y-down map
    dist = math.sqrt(dx * dx + dy * dy)
    if dist > 1e-6:
        right = (dx * rx + dy * ry) / dist  # sin(azimuth), + = source on the right
        front = (dx * fx + dy * fy) / dist
    else:
        right, front = 0.0, 1.0
    theta = math.asin(max(-1.0, min(1.0, right)))
    itd = HEAD_RADIUS_M / SPEED_OF_SOUND * (theta + math.sin(theta))  # + = right ear leads
    muffle = min(1.0, muffle + (0.25 if front < 0.0 else 0.0))
    for e in range(2):
        side = -1.0 if e == 0 else 1.0  # left ear, right ear
        gain = amp * (1.0 + 0.35 * side * right)
        m = min(1.0, muffle + 0.3 * max(0.0, -side * right))
        delay = max(0.0, -side * itd) * sample_rate
        d_int = int(delay)
        frac = delay - d_int
        i0 = (cursor - d_int - 1) % loop  # one modulo, then a wrapping index (2x faster)
        for i in range(out.shape[1]):
            i1 = i0 + 1
            if i1 == loop:
                i1 = 0
            a = dry[k, i1] + frac * (dry[k, i0] - dry[k, i1])
            b = muffled[k, i1] + frac * (muffled[k, i0] - muffled[k, i1])
            out[e, i] += gain * (a + m * (b - a))
            i0 = i1


@kernel
def render_binaural(
    out: np.ndarray,
    grid: np.ndarray,
    fields: np.ndarray,
    ax: float,
    ay: float,
    heading: float,
    src_x: np.ndarray,
    src_y: np.ndarray,
    src_id: np.ndarray,
    src_gain: np.ndarray,
    cursor: int,
    dry: np.ndarray,
    muffled: np.ndarray,
    noise: np.ndarray,
    noise_offsets: tuple[int, int],
    noise_std: float,
    wall_transmission: float,
    diffraction_gain: float,
    sample_rate: int,
    heard_at: np.ndarray,
    heard_from: np.ndarray,
) -> None:
    """Write the (2, T) waveform heard at (ax, ay) facing `heading` into `out` (left, right).

    Each source reaches the ears along the straight line (through walls:
    attenuated and muffled per wall) and, when walls are in the way, also
    round them along the shortest open path (``fields[j]``, the geodesic field
    of source j): from that path's direction, over its length, muffled a little.
    `heard_at` (2,) and `heard_from` (sources, 3) cache that path's apparent source
    for one listener position (turning in place does not move it).
    """
    if heard_at[0] != ax or heard_at[1] != ay:  # moved (or never heard): recompute
        heard_at[0], heard_at[1] = ax, ay
        for j in range(heard_from.shape[0]):
            heard_from[j, 2] = math.nan
    fx, fy = math.cos(heading), math.sin(heading)
    for e in range(2):
        off = noise_offsets[e]
        n_noise = noise.shape[0]
        for i in range(out.shape[1]):
            out[e, i] = noise_std * noise[(off + i) % n_noise]
    for s in range(src_id.shape[0]):
        k = src_id[s]
        if k < 0:
            continue
        dx, dy = src_x[s] - ax, src_y[s] - ay
        dist = math.sqrt(dx * dx + dy * dy)
        walls = walls_between(grid, ax, ay, src_x[s], src_y[s])
        amp = src_gain[s] / max(dist, 0.5) * wall_transmission**walls
        _add_source(out, k, amp, min(1.0, 0.6 * walls), dx, dy, fx, fy, cursor, dry, muffled,
                    sample_rate)
        if walls > 0 and diffraction_gain > 0.0 and s < fields.shape[0]:
            if math.isnan(heard_from[s, 2]):
                heard_from[s, 0], heard_from[s, 1], heard_from[s, 2] = apparent_source(
                    grid, fields[s], ax, ay)
            px, py, geo = heard_from[s, 0], heard_from[s, 1], heard_from[s, 2]
            if geo < 1e29:
                amp = src_gain[s] * diffraction_gain / max(geo, 0.5)
                _add_source(out, k, amp, 0.3, px - ax, py - ay, fx, fy, cursor, dry, muffled,
                            sample_rate)
