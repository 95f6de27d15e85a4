"""Per-modality sensor transforms that act on a batch of observations.

A transform changes ONE modality of a batch of observation rows and keeps
state per world (a delay line, a held sample, a per-episode dropout draw).
Each row names its world, so the same call transforms a whole batch or only
the ``final_obs`` rows of the worlds that just ended. The gymnasium adapters
in :mod:`envs.sensors.wrappers` only decide which rows start an episode.
"""

from __future__ import annotations

from dataclasses import replace
from typing import ClassVar

import numpy as np

from perception.settings import ConfigError, require, require_float, require_int
from perception.spec import ModalityKind, ModalitySpec, ObsSpec, presence_key

Obs = dict[str, np.ndarray]


class SensorTransform:
    """Base class: bind to a spec once, then apply to batches of rows.

    Attributes:
        modality: name of the modality this transform changes.
        rng: the transform's random generator; the wrapper replaces it on a
            seeded reset so that seeded runs repeat.
    """

    kinds: ClassVar[tuple[ModalityKind, ...] | None] = None  # None: any kind

    def __init__(self, modality: str) -> None:
        self.modality = modality
        require(self.where, "modality", modality, isinstance(modality, str), "a modality name")
        self.rng = np.random.default_rng()
        self.num_envs = 0
        self.has_flag = False

    @property
    def where(self) -> str:
        return f"{type(self).__name__}({self.modality!r})"

    @property
    def spec(self) -> ModalitySpec:
        """The bound modality's spec (as this transform receives it)."""
        try:
            return self._spec
        except AttributeError:
            raise RuntimeError(f"{self.where}: call bind(obs_spec, num_envs, rng) first") from None

    @property
    def flag(self) -> str:
        return presence_key(self.modality)

    def bind(self, obs_spec: ObsSpec, num_envs: int, rng: np.random.Generator) -> ObsSpec:
        """Check that the transform fits `obs_spec` and allocate state for `num_envs` worlds.

        Returns:
            The spec of the observations after this transform.
        """
        if self.modality not in obs_spec:
            raise ConfigError(
                f"{self.where}: unknown modality {self.modality!r}; "
                f"this env has: {', '.join(obs_spec.names)}"
            )
        spec = obs_spec[self.modality]
        if self.kinds is not None and spec.kind not in self.kinds:
            kinds = " or ".join(k.value for k in self.kinds)
            raise ConfigError(
                f"{self.where}: modality {self.modality!r} is of kind {spec.kind.value!r}; "
                f"{type(self).__name__} only applies to kind {kinds}; "
                "remove it for this modality"
            )
        self._spec = spec
        self.num_envs = int(num_envs)
        self.rng = rng
        self.has_flag = self.modality in obs_spec.presence
        self._allocate()
        return self._out_spec(obs_spec)

    def apply(self, obs: Obs, worlds: np.ndarray, new_episode: np.ndarray) -> Obs:
        """Transform the rows of `obs`; the input arrays are left untouched.

        Args:
            obs: batched observations, every array of shape (n, ...).
            worlds: (n,) world index of each row.
            new_episode: (n,) bool, rows that start an episode (state restarts there).
        """
        raise NotImplementedError

    def _allocate(self) -> None:
        """Allocate per-world state (after `spec` and `num_envs` are set)."""

    def _out_spec(self, obs_spec: ObsSpec) -> ObsSpec:
        return obs_spec

    def _present(self, obs: Obs) -> np.ndarray:
        """(n,) bool presence of the rows: the flag if the observation has one, else all True."""
        if self.has_flag:
            return np.asarray(obs[self.flag], dtype=bool)
        return np.ones(len(obs[self.modality]), dtype=bool)

    def _bounds(self) -> tuple[float, float]:
        """The modality's value bounds, narrowed to its dtype's range for integer types."""
        box = self.spec.to_space()
        return float(np.min(box.low)), float(np.max(box.high))

    def _keys(self) -> list[str]:
        """The data key, plus the presence flag if the observation carries one."""
        return [self.modality, self.flag] if self.has_flag else [self.modality]

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self._params().items())
        return f"{type(self).__name__}({self.modality!r}{', ' if args else ''}{args})"

    def _params(self) -> dict[str, object]:
        return {}


class GaussianNoise(SensorTransform):
    """Adds zero-mean Gaussian noise of standard deviation `std`, in the modality's units.

    Results are clipped to the spec's bounds; integer data (uint8 images, where
    `std` counts intensity levels) is rounded and keeps its dtype. Absent rows
    (flag False) stay as they are.
    """

    def __init__(self, modality: str, std: float) -> None:
        super().__init__(modality)
        require_float(self.where, "std", std, 0.0)
        self.std = float(std)

    def _params(self) -> dict[str, object]:
        return {"std": self.std}

    def apply(self, obs: Obs, worlds: np.ndarray, new_episode: np.ndarray) -> Obs:
        x = obs[self.modality]
        noise = self.rng.normal(0.0, self.std, size=x.shape)
        noise[~self._present(obs)] = 0.0
        y = x + noise
        if np.issubdtype(x.dtype, np.integer):
            y = np.rint(y)
        lo, hi = self._bounds()
        return {**obs, self.modality: np.clip(y, lo, hi).astype(x.dtype)}


class Dropout(SensorTransform):
    """Makes the modality absent with probability `p`, drawn per step or per episode.

    Absent rows have their data set to zero (or the bound nearest zero if zero
    is out of bounds) and the presence flag ``<modality>_present`` False; the
    flag is added to the observation, or ANDed with the one already there.
    """

    def __init__(self, modality: str, p: float, per: str = "step") -> None:
        super().__init__(modality)
        require_float(self.where, "p", p, 0.0, 1.0)
        require(self.where, "per", per, per in ("step", "episode"), "'step' or 'episode'")
        self.p = float(p)
        self.per = per

    def _params(self) -> dict[str, object]:
        return {"p": self.p, "per": self.per}

    def _allocate(self) -> None:
        self._dropped = np.zeros(self.num_envs, dtype=bool)

    def _out_spec(self, obs_spec: ObsSpec) -> ObsSpec:
        return obs_spec.with_presence(self.modality)

    def apply(self, obs: Obs, worlds: np.ndarray, new_episode: np.ndarray) -> Obs:
        if self.per == "episode":
            starts = worlds[new_episode]
            self._dropped[starts] = self.rng.random(len(starts)) < self.p
            dropped = self._dropped[worlds]
        else:
            dropped = self.rng.random(len(worlds)) < self.p
        present = self._present(obs) & ~dropped
        x = obs[self.modality].copy()
        lo, hi = self._bounds()
        x[~present] = np.clip(0, lo, hi)
        return {**obs, self.modality: x, self.flag: present}


class Delay(SensorTransform):
    """Returns the sample from `steps` steps earlier in the same episode.

    At an episode start the delay line is filled with the first sample, so the
    first `steps` observations of an episode repeat it. A presence flag, if
    the observation has one, is delayed with the data.
    """

    def __init__(self, modality: str, steps: int) -> None:
        super().__init__(modality)
        require_int(self.where, "steps", steps, 0)
        self.steps = steps

    def _params(self) -> dict[str, object]:
        return {"steps": self.steps}

    def _allocate(self) -> None:
        slots = self.steps + 1
        self._lines = {
            self.modality: np.zeros((self.num_envs, slots, *self.spec.shape), self.spec.dtype)
        }
        if self.has_flag:
            self._lines[self.flag] = np.zeros((self.num_envs, slots), dtype=bool)
        self._head = np.zeros(self.num_envs, dtype=np.int64)

    def apply(self, obs: Obs, worlds: np.ndarray, new_episode: np.ndarray) -> Obs:
        slots = self.steps + 1
        head = (self._head[worlds] + 1) % slots
        self._head[worlds] = head
        oldest = (head + 1) % slots  # written `steps` steps ago
        out = dict(obs)
        for key, line in self._lines.items():
            x = np.asarray(obs[key])
            line[worlds[new_episode]] = x[new_episode][:, None]
            line[worlds, head] = x
            out[key] = line[worlds, oldest]
        return out


class SampleAndHold(SensorTransform):
    """A sensor slower than the control loop: a new sample every `period` steps, held between.

    Every episode starts with a fresh sample and a random phase: the first
    update comes after 1 to `period` steps (uniformly), then every `period`
    steps. The spec's ``rate_hz`` is divided by `period`.
    """

    def __init__(self, modality: str, period: int) -> None:
        super().__init__(modality)
        require_int(self.where, "period", period, 1)
        self.period = period

    def _params(self) -> dict[str, object]:
        return {"period": self.period}

    def _allocate(self) -> None:
        self._held = {self.modality: np.zeros((self.num_envs, *self.spec.shape), self.spec.dtype)}
        if self.has_flag:
            self._held[self.flag] = np.zeros(self.num_envs, dtype=bool)
        self._until = np.zeros(self.num_envs, dtype=np.int64)  # steps to the next update

    def _out_spec(self, obs_spec: ObsSpec) -> ObsSpec:
        return obs_spec.replace(replace(self.spec, rate_hz=self.spec.rate_hz / self.period))

    def apply(self, obs: Obs, worlds: np.ndarray, new_episode: np.ndarray) -> Obs:
        until = self._until[worlds] - 1
        update = new_episode | (until <= 0)
        until[update] = self.period
        until[new_episode] = self.rng.integers(1, self.period + 1, size=int(new_episode.sum()))
        self._until[worlds] = until
        out = dict(obs)
        for key, held in self._held.items():
            held[worlds[update]] = np.asarray(obs[key])[update]
            out[key] = held[worlds]
        return out


class Occlusion(SensorTransform):
    """With probability `p` per step, covers a random rectangle of the image.

    The rectangle covers at most `max_fraction` of the pixels; it is filled
    with `value`, or with uniform noise over the spec's bounds if `value` is
    None. Images and depth maps only; absent rows stay as they are.
    """

    kinds = (ModalityKind.IMAGE, ModalityKind.DEPTH)

    def __init__(
        self, modality: str, p: float, max_fraction: float = 0.3, value: float | None = None
    ) -> None:
        super().__init__(modality)
        require_float(self.where, "p", p, 0.0, 1.0)
        require_float(self.where, "max_fraction", max_fraction, 0.0, 1.0, lo_open=True)
        require(
            self.where, "value", value,
            value is None or (isinstance(value, (int, float)) and not isinstance(value, bool)),
            "a number or None (uniform noise)",
        )
        self.p = float(p)
        self.max_fraction = float(max_fraction)
        self.value = value

    def _params(self) -> dict[str, object]:
        return {"p": self.p, "max_fraction": self.max_fraction, "value": self.value}

    def _allocate(self) -> None:
        h, w = self.spec.shape[:2]
        self._max_area = int(self.max_fraction * h * w)
        if self._max_area < 1:
            raise ConfigError(
                f"{self.where}: max_fraction={self.max_fraction} covers less than one pixel "
                f"of a {h}x{w} image; use at least {1 / (h * w):.2g}"
            )
        lo, hi = self._bounds()
        if self.value is None and not (np.isfinite(lo) and np.isfinite(hi)):
            raise ConfigError(
                f"{self.where}: noise fill needs finite bounds, but {self.modality!r} has "
                f"[{lo}, {hi}]; set value= to a constant fill"
            )

    def apply(self, obs: Obs, worlds: np.ndarray, new_episode: np.ndarray) -> Obs:
        x = obs[self.modality]
        rows = np.flatnonzero((self.rng.random(len(x)) < self.p) & self._present(obs))
        if len(rows) == 0:
            return obs
        h, w = x.shape[1:3]
        rng, m = self.rng, len(rows)
        rect_h = rng.integers(1, min(h, self._max_area) + 1, size=m)
        rect_w = rng.integers(1, np.minimum(w, self._max_area // rect_h) + 1)
        top = rng.integers(0, h - rect_h + 1)
        left = rng.integers(0, w - rect_w + 1)
        ys, xs = np.arange(h), np.arange(w)
        in_rows = (ys >= top[:, None]) & (ys < (top + rect_h)[:, None])
        in_cols = (xs >= left[:, None]) & (xs < (left + rect_w)[:, None])
        mask = in_rows[:, :, None] & in_cols[:, None, :]  # (m, h, w)
        sub = x[rows]
        lo, hi = self._bounds()
        size = (int(mask.sum()), *sub.shape[3:])  # one value per covered pixel and channel
        if self.value is not None:
            sub[mask] = np.clip(self.value, lo, hi)
        elif np.issubdtype(x.dtype, np.integer):
            sub[mask] = rng.integers(int(lo), int(hi) + 1, size=size)
        else:
            sub[mask] = rng.uniform(lo, hi, size=size)
        y = x.copy()
        y[rows] = sub
        return {**obs, self.modality: y}
