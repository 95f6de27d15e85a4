"""Third-party gymnasium envs as multimodal ones: the render as ``rgb``, the state as ``proprio``.

``gymnasium.make("sensorium/Multimodal-v0", env_id="Reacher-v5")`` (after
``import envs``) gives a Dict-observation env with an ``obs_spec``, so every
sensorium layer, the sensor wrappers included, works on it.
"""

from __future__ import annotations

import inspect
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import cv2
import gymnasium as gym
import numpy as np
from gymnasium import spaces
from gymnasium.envs.registration import load_env_creator

from perception.settings import ConfigError, require, require_float, require_int
from perception.spec import ModalityKind, ModalitySpec, ObsSpec

# MuJoCo picks its GL backend when first imported (by gymnasium.make of a MuJoCo env, below):
# render offscreen on the CPU unless the user chose otherwise.
os.environ.setdefault("MUJOCO_GL", "egl")
# pygame envs (CartPole) start SDL's video at their first rgb_array render: without a
# display, SDL's dummy driver draws the same frames (and says nothing on stderr).
if not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
    os.environ.setdefault("SDL_VIDEODRIVER", "dummy")

ENV_ID = "sensorium/Multimodal-v0"
#: MultimodalConfig.vector_mode's choices ('auto' = 'native')
VECTOR_MODES = ("auto", "native", "sync", "async")


@dataclass
class MultimodalConfig:
    """A third-party gymnasium env made multimodal (``rgb`` + ``proprio``)."""

    id: str = ENV_ID
    """gymnasium id of the multimodal wrapper env; keep it."""
    env_id: str = "CartPole-v1"
    """The gymnasium env to wrap (``CartPole-v1``, ``Reacher-v5``...); it must render rgb_array."""
    image_size: int = 64
    """Side of the square ``rgb`` observation, in pixels."""
    env_kwargs: dict[str, Any] = field(default_factory=dict)
    """Further keyword arguments for ``gymnasium.make(env_id, ...)``."""
    rate_hz: float | None = None
    """Observation and control rate; null takes the env's ``render_fps`` (else ``1 / dt``)."""
    rgb_hz: float | None = None
    """Camera rate (<= the control rate): the env renders only on camera ticks and the
    ``rgb`` observation holds the last frame in between, as a real 10-15 Hz camera seen by
    a faster control loop; null = a new frame every step."""
    vector_mode: str = "auto"
    """How vector envs step the worlds: 'native' (one loop over the wrapped envs, SAME_STEP
    autoreset, no SyncVectorEnv copies), 'sync' (gymnasium's SyncVectorEnv), 'async'
    (AsyncVectorEnv: one process per world); 'auto' = 'native'. Single envs ignore it."""

    def validate(self) -> None:
        where = f"env {self.id}"
        require(
            where, "env_id", self.env_id, isinstance(self.env_id, str) and bool(self.env_id),
            "a gymnasium env id such as 'CartPole-v1'",
        )
        require_int(where, "image_size", self.image_size, 1)
        if self.rate_hz is not None:
            require_float(where, "rate_hz", self.rate_hz, 0.0, lo_open=True)
        if self.rgb_hz is not None:
            require_float(where, "rgb_hz", self.rgb_hz, 0.0, lo_open=True)
        require(
            where, "vector_mode", self.vector_mode, self.vector_mode in VECTOR_MODES,
            " or ".join(repr(m) for m in VECTOR_MODES),
        )
        require(
            where, "env_kwargs", self.env_kwargs,
            isinstance(self.env_kwargs, Mapping)
            and self.env_kwargs.get("render_mode", "rgb_array") == "rgb_array",
            "a mapping of gymnasium.make keyword arguments (render_mode is always rgb_array)",
        )


class MultimodalWrapper(gym.ObservationWrapper, gym.utils.RecordConstructorArgs):
    """A Box-observation env that renders rgb_array, as a Dict-observation multimodal env.

    Observations: ``rgb``, the render resized to ``image_size`` x ``image_size``
    (``cv2.INTER_AREA``, aspect not kept), uint8; ``proprio``, the env's own
    observation as float32. Both come at the env's render rate
    (``metadata["render_fps"]``, else ``1 / dt``) unless `rate_hz` is given.
    A slower camera (`rgb_hz` < the control rate) renders at reset and then
    on its ticks only (step k ticks when ``floor(k * rgb_hz / rate_hz)`` grows:
    every 5th step for 10 Hz at 50 Hz); between ticks ``rgb`` is the last frame.
    ``frames_rendered`` counts the renders. Invalid actions raise a ValueError
    that says what actions the env takes.
    """

    def __init__(self, env: gym.Env, image_size: int = 64, rate_hz: float | None = None,
                 rgb_hz: float | None = None) -> None:
        gym.utils.RecordConstructorArgs.__init__(self, image_size=image_size, rate_hz=rate_hz,
                                                 rgb_hz=rgb_hz)
        super().__init__(env)
        self.env_id = env.spec.id if env.spec is not None else type(env.unwrapped).__name__
        where = f"MultimodalWrapper({self.env_id})"
        self._where = where
        require_int(where, "image_size", image_size, 1)
        space = env.observation_space
        if not isinstance(space, spaces.Box) or len(space.shape) != 1:
            raise ConfigError(
                f"{where}: the env's observation space {space} is not a 1-D Box, so it cannot be "
                "the proprio vector; wrap the env in gymnasium.wrappers.FlattenObservation first"
            )
        if env.render_mode != "rgb_array":
            raise ConfigError(
                f"{where}: the env renders {env.render_mode!r}, not 'rgb_array'; create it with "
                "gymnasium.make(..., render_mode='rgb_array') or use make_multimodal"
            )
        if rate_hz is None:
            rate_hz = _rate_of(env, where)
        require_float(where, "rate_hz", rate_hz, 0.0, lo_open=True)
        if rgb_hz is None:
            rgb_hz = rate_hz
        require_float(where, "rgb_hz", rgb_hz, 0.0, rate_hz, lo_open=True)
        self.image_size = image_size
        self.rgb_hz = float(rgb_hz)
        self._ticks_per_step = float(rgb_hz) / float(rate_hz)  # camera ticks per control step
        self._steps = 0  # control steps since reset
        self._frame: np.ndarray | None = None  # the camera's last frame
        self.frames_rendered = 0
        self.obs_spec = ObsSpec(
            (
                ModalitySpec(
                    "rgb", ModalityKind.IMAGE, (image_size, image_size, 3), "uint8", rgb_hz,
                    low=0.0, high=255.0, description=f"{self.env_id} rgb_array render, resized",
                ),
                ModalitySpec(
                    "proprio", ModalityKind.VECTOR, space.shape, "float32", rate_hz,
                    low=float(np.min(space.low)), high=float(np.max(space.high)),
                    description=f"{self.env_id} observation",
                ),
            ),
            control_hz=rate_hz,
        )
        self.observation_space = self.obs_spec.to_space()

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None
              ) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        self._steps = 0
        self._frame = None  # a new episode starts with a fresh frame
        return super().reset(seed=seed, options=options)

    def step(self, action: Any) -> tuple[dict[str, np.ndarray], Any, bool, bool, dict[str, Any]]:
        checked = self._checked(action)
        self._steps += 1
        if self._camera_ticks():
            self._frame = None
        return super().step(checked)

    def _camera_ticks(self) -> bool:
        """Whether the camera takes a new frame at this control step (since reset)."""
        k, r = self._steps, self._ticks_per_step
        return int(k * r + 1e-9) > int((k - 1) * r + 1e-9)

    def observation(self, observation: np.ndarray) -> dict[str, np.ndarray]:
        if self._frame is None:
            self._frame = self._rgb(self.env.render())
            self.frames_rendered += 1
        return {
            "rgb": self._frame.copy(),
            "proprio": np.asarray(observation, dtype=np.float32),
        }

    def _rgb(self, frame: Any) -> np.ndarray:
        arr = np.asarray(frame) if frame is not None else None
        if arr is None or arr.ndim != 3 or arr.shape[2] not in (3, 4) or arr.dtype != np.uint8:
            got = "None" if arr is None else f"shape {arr.shape} dtype {arr.dtype}"
            raise ConfigError(
                f"{self._where}: render() must return an (H, W, 3) uint8 image, got {got}"
            )
        rgb = np.ascontiguousarray(arr[:, :, :3])
        size = self.image_size
        if rgb.shape[:2] != (size, size):
            rgb = cv2.resize(rgb, (size, size), interpolation=cv2.INTER_AREA)
        return rgb

    def _checked(self, action: Any) -> Any:
        """`action` as the env takes it (integral numbers as int for Discrete), or a ValueError."""
        space = self.action_space
        arr = np.asarray(action)
        if isinstance(space, spaces.Discrete):
            lo, hi = int(space.start), int(space.start + space.n)
            integral = np.issubdtype(arr.dtype, np.integer) or (
                np.issubdtype(arr.dtype, np.floating) and arr.ndim == 0 and float(arr).is_integer()
            )
            if arr.ndim == 0 and integral and lo <= int(arr) < hi:
                return int(arr)
            rule = f"an integer in [{lo}, {hi})"
        elif isinstance(space, spaces.Box):
            if arr.shape == space.shape and np.issubdtype(arr.dtype, np.number) and np.all(
                np.isfinite(arr)
            ):
                return action
            rule = (
                f"a finite numeric array of shape {space.shape} "
                f"(bounds {np.min(space.low):g} to {np.max(space.high):g})"
            )
        elif space.contains(action):
            return action
        else:
            rule = f"in {space}"
        raise ValueError(f"{self._where}: invalid action {action!r}; an action is {rule}")


def _rate_of(env: gym.Env, where: str) -> float:
    fps = env.metadata.get("render_fps")
    if fps:
        return float(fps)
    dt = getattr(env.unwrapped, "dt", None)
    if dt:
        return 1.0 / float(dt)
    raise ConfigError(
        f"{where}: the env declares neither metadata['render_fps'] nor dt; pass rate_hz="
    )


def _renders_at_size(env_id: str) -> bool:
    """Whether the env's constructor takes ``width`` and ``height`` (MuJoCo envs do)."""
    entry = gym.spec(env_id).entry_point
    creator = entry if callable(entry) else load_env_creator(entry)
    if not inspect.isclass(creator):
        return False
    for cls in creator.__mro__:
        init = cls.__dict__.get("__init__")
        if init is not None and {"width", "height"} <= set(inspect.signature(init).parameters):
            return True
    return False


def make_multimodal(
    env_id: str,
    image_size: int = 64,
    env_kwargs: Mapping[str, Any] | None = None,
    rate_hz: float | None = None,
    rgb_hz: float | None = None,
    vector_mode: str = "auto",
    **kwargs: Any,
) -> MultimodalWrapper:
    """``gymnasium.make(env_id, render_mode="rgb_array", ...)`` wrapped by MultimodalWrapper.

    Envs whose constructor takes ``width``/``height`` (MuJoCo) render at
    `image_size` directly unless those are given.

    Args:
        env_id: the gymnasium env to wrap.
        image_size: side of the square ``rgb`` observation, in pixels.
        env_kwargs: keyword arguments for ``gymnasium.make`` (as a config carries them).
        rate_hz: observation rate; by default the env's render rate.
        rgb_hz: camera rate (<= `rate_hz`); by default `rate_hz`.
        vector_mode: how vector envs of it step (MultimodalConfig); a single env ignores it.
        **kwargs: more keyword arguments for ``gymnasium.make``.
    """
    merged = {**(env_kwargs or {}), **kwargs}
    cfg = MultimodalConfig(env_id=env_id, image_size=image_size, env_kwargs=merged,
                           rate_hz=rate_hz, rgb_hz=rgb_hz, vector_mode=vector_mode)
    cfg.validate()
    merged.pop("render_mode", None)
    try:
        sized = _renders_at_size(env_id)
    except gym.error.Error as e:
        raise ConfigError(
            f"env {cfg.id}: env_id={env_id!r} is not a gymnasium env ({e}); "
            "use a registered id such as 'CartPole-v1' or 'Reacher-v5'"
        ) from e
    if sized:
        merged.setdefault("width", image_size)
        merged.setdefault("height", image_size)
    env = gym.make(env_id, render_mode="rgb_array", **merged)
    return MultimodalWrapper(env, image_size=image_size, rate_hz=rate_hz, rgb_hz=rgb_hz)
