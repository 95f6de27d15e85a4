"""Vector envs of MultimodalWrapper worlds, in the mode ``MultimodalConfig.vector_mode`` picks.

``sensorium/Multimodal-v0``'s ``vector_entry_point`` (so ``make_vector_env`` and
``gymnasium.make_vec(..., vectorization_mode="vector_entry_point")`` land here):

- ``native`` (``auto``): :class:`MultimodalVectorEnv`, one loop over the wrapped
  worlds that writes straight into the batch (SAME_STEP autoreset, the layout of
  SyncVectorEnv); each world renders only on its camera's ticks (``rgb_hz``).
- ``sync``: gymnasium's SyncVectorEnv (SAME_STEP) over the same wrapped worlds.
- ``async``: gymnasium's AsyncVectorEnv (SAME_STEP), one process per world: renders
  run in parallel when there are cores to spare.

Every one carries ``obs_spec``, ``vector_mode`` and ``metadata["vector_mode"]``, and
the choice is logged.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium.vector import AutoresetMode, VectorEnv
from gymnasium.vector.utils import batch_space, iterate

from envs.multimodal import MultimodalConfig, MultimodalWrapper, make_multimodal
from perception.settings import ConfigError

log = logging.getLogger(__name__)


class MultimodalVectorEnv(VectorEnv):
    """N MultimodalWrapper worlds stepped in one loop, SAME_STEP autoreset.

    Observations, rewards, flags and infos (``final_obs``/``final_info`` included)
    are those of ``SyncVectorEnv(..., autoreset_mode=SAME_STEP)`` over the same
    worlds with the same seeds; it saves that class's per-step concatenation and
    deep copy. ``frames_rendered`` sums the worlds' renders; ``cost()`` says what
    stepping has cost so far (env-steps/s), and closing logs it.
    """

    metadata: dict[str, Any] = {"autoreset_mode": AutoresetMode.SAME_STEP,
                                "render_modes": ["rgb_array"], "vector_mode": "native"}
    vector_mode = "native"

    def __init__(self, env_fns: list[Callable[[], MultimodalWrapper]]) -> None:
        if not env_fns:
            raise ConfigError("MultimodalVectorEnv needs at least one world (num_envs >= 1)")
        self.envs = [fn() for fn in env_fns]
        first = self.envs[0]
        self.num_envs = len(self.envs)
        self.obs_spec = first.obs_spec
        self.single_observation_space = first.observation_space
        self.single_action_space = first.action_space
        self.observation_space = batch_space(self.single_observation_space, self.num_envs)
        self.action_space = batch_space(self.single_action_space, self.num_envs)
        self.render_mode = "rgb_array"
        self._obs = {m.name: np.zeros((self.num_envs, *m.shape), m.dtype) for m in self.obs_spec}
        self._rewards = np.zeros(self.num_envs, np.float64)
        self._terms = np.zeros(self.num_envs, np.bool_)
        self._truncs = np.zeros(self.num_envs, np.bool_)
        self._env_steps = 0
        self._step_seconds = 0.0

    @property
    def frames_rendered(self) -> int:
        return sum(env.frames_rendered for env in self.envs)

    def cost(self) -> dict[str, Any]:
        """Env-steps taken by step(), their env-steps/s (wall-clock inside step) and renders."""
        rate = self._env_steps / self._step_seconds if self._step_seconds else 0.0
        renders = self.frames_rendered
        return {"vector_mode": self.vector_mode, "env_steps": self._env_steps,
                "env_steps_per_s": rate, "frames_rendered": renders,
                "renders_per_env_step": renders / self._env_steps if self._env_steps else 0.0}

    def reset(self, *, seed: int | list[int | None] | None = None,
              options: dict[str, Any] | None = None) -> tuple[dict[str, np.ndarray], dict]:
        """Reset every world; an int seed gives world i ``seed + i`` (as SyncVectorEnv)."""
        if seed is None or isinstance(seed, (int, np.integer)):
            seeds = [None if seed is None else int(seed) + i for i in range(self.num_envs)]
        else:
            seeds = list(seed)
            if len(seeds) != self.num_envs:
                raise ValueError(f"{len(seeds)} seeds for {self.num_envs} worlds")
        infos: dict[str, Any] = {}
        for i, (env, s) in enumerate(zip(self.envs, seeds, strict=True)):
            obs, info = env.reset(seed=s, options=options)
            self._write(i, obs)
            infos = self._add_info(infos, info, i)
        return self._batch(), infos

    def step(self, actions: Any) -> tuple[dict[str, np.ndarray], np.ndarray, np.ndarray,
                                          np.ndarray, dict[str, Any]]:
        t0 = time.perf_counter()
        infos: dict[str, Any] = {}
        for i, action in enumerate(iterate(self.action_space, actions)):
            env = self.envs[i]
            obs, reward, term, trunc, info = env.step(action)
            self._rewards[i], self._terms[i], self._truncs[i] = reward, term, trunc
            if term or trunc:
                infos = self._add_info(infos, {"final_obs": obs, "final_info": info}, i)
                obs, info = env.reset()
            self._write(i, obs)
            infos = self._add_info(infos, info, i)
        out = (self._batch(), self._rewards.copy(), self._terms.copy(), self._truncs.copy(), infos)
        self._step_seconds += time.perf_counter() - t0
        self._env_steps += self.num_envs
        return out

    def _write(self, i: int, obs: Mapping[str, np.ndarray]) -> None:
        for k, buf in self._obs.items():
            buf[i] = obs[k]

    def _batch(self) -> dict[str, np.ndarray]:
        return {k: v.copy() for k, v in self._obs.items()}

    def render(self) -> tuple[np.ndarray, ...]:
        """Every world's full-size picture, for people (renders now; not an observation)."""
        return tuple(env.render() for env in self.envs)

    def close_extras(self, **kwargs: Any) -> None:
        c = self.cost()
        if c["env_steps"]:
            log.info("vector_mode=native: %d env-steps at %.0f env-steps/s (inside step), "
                     "%.3f renders per env-step", c["env_steps"], c["env_steps_per_s"],
                     c["renders_per_env_step"])
        for env in self.envs:
            env.close()


def make_multimodal_vector(num_envs: int, vector_mode: str = "auto",
                           max_episode_steps: int | None = None, **kwargs: Any) -> VectorEnv:
    """`num_envs` :func:`make_multimodal` worlds in the vector mode `vector_mode`.

    Args:
        num_envs: worlds.
        vector_mode: 'auto' | 'native' | 'sync' | 'async' (see the module docstring).
        max_episode_steps: passed on by ``gymnasium.make_vec``; the wrapped env's own
            time limit applies, so it is ignored.
        **kwargs: :func:`make_multimodal`'s arguments (``env_id``, ``image_size``, ...).
    """
    del max_episode_steps
    cfg = MultimodalConfig(vector_mode=vector_mode,
                           **{k: v for k, v in kwargs.items()
                              if k in ("env_id", "image_size", "rate_hz", "rgb_hz")})
    cfg.validate()
    if not isinstance(num_envs, (int, np.integer)) or num_envs < 1:
        raise ConfigError(f"num_envs must be an integer >= 1, got {num_envs!r}")
    mode = "native" if vector_mode == "auto" else vector_mode

    def make_one() -> MultimodalWrapper:
        return make_multimodal(**kwargs)

    fns = [make_one] * int(num_envs)
    env: VectorEnv
    if mode == "native":
        env = MultimodalVectorEnv(fns)
    else:
        cls = gym.vector.SyncVectorEnv if mode == "sync" else gym.vector.AsyncVectorEnv
        env = cls(fns, autoreset_mode=AutoresetMode.SAME_STEP)
        env.metadata = {**env.metadata, "vector_mode": mode}
        env.vector_mode = mode  # type: ignore[attr-defined]
        probe = make_one()  # for the spec only
        env.obs_spec = probe.obs_spec  # type: ignore[attr-defined]
        probe.close()
    spec = env.obs_spec  # type: ignore[attr-defined]
    control, camera = spec.control_hz, spec["rgb"].rate_hz
    log.info("%s: vector_mode=%s%s, %d x %s; camera %g Hz at %g Hz control (a render every "
             "%.3g steps per world)", cfg.id, mode, " (auto)" if vector_mode == "auto" else "",
             num_envs, cfg.env_id, camera, control, control / camera)
    return env
