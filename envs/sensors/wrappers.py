"""Gymnasium adapters that run sensor transforms on a single env or a vector env.

Both adapters hold one :class:`SensorChain`; they differ only in which rows
they hand it and which rows start an episode.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium.vector import AutoresetMode, VectorEnv, VectorWrapper
from gymnasium.vector.utils import batch_space

from envs.factory import obs_spec_of
from envs.sensors.config import SensorsConfig, build_transforms
from envs.sensors.transforms import Obs, SensorTransform
from perception.spec import ObsSpec

Seed = int | Sequence[int | None] | None
Transforms = Sequence[SensorTransform] | SensorsConfig | Mapping[str, Any]


class SensorChain:
    """Transforms bound in order to one spec and `num_envs` worlds.

    Takes transforms or a sensors config to build them from. The transforms
    are copied, so one list can configure several envs.
    Each transform draws from its own generator, spawned from the reset seed:
    adding a transform does not change the random draws of the others.
    """

    def __init__(self, transforms: Transforms, obs_spec: ObsSpec, num_envs: int) -> None:
        if isinstance(transforms, (SensorsConfig, Mapping)):
            transforms = build_transforms(transforms)
        for t in transforms:
            if not isinstance(t, SensorTransform):
                raise TypeError(
                    f"expected SensorTransform instances, got {type(t).__name__}; "
                    "build them with envs.sensors.build_transforms(config)"
                )
        self.transforms = [copy.deepcopy(t) for t in transforms]
        self.num_envs = num_envs
        self.input_spec = obs_spec
        rngs = self._generators(None)
        for t, rng in zip(self.transforms, rngs):
            obs_spec = t.bind(obs_spec, num_envs, rng)
        self.obs_spec = obs_spec

    def _generators(self, entropy: int | list[int] | None) -> list[np.random.Generator]:
        seqs = np.random.SeedSequence(entropy).spawn(len(self.transforms))
        return [np.random.default_rng(s) for s in seqs]

    def seed(self, seed: Seed) -> None:
        """Restart every transform's generator from `seed` (None: keep the current ones)."""
        if seed is None:
            return
        if isinstance(seed, (int, np.integer)):
            entropy: int | list[int] = int(seed)
        elif any(s is None for s in seed):
            return
        else:
            entropy = [int(s) for s in seed]  # type: ignore[arg-type]
        for t, rng in zip(self.transforms, self._generators(entropy)):
            t.rng = rng

    def __call__(self, obs: Obs, worlds: np.ndarray, new_episode: np.ndarray) -> Obs:
        """Apply every transform to rows `worlds` of the batch `obs`; see SensorTransform.apply."""
        out = dict(obs)
        for t in self.transforms:
            out = t.apply(out, worlds, new_episode)
        return out


class SensorWrapper(gym.Wrapper, gym.utils.RecordConstructorArgs):
    """Sensor transforms on a single Dict-observation env (a batch of one world)."""

    def __init__(self, env: gym.Env, transforms: Transforms) -> None:
        gym.utils.RecordConstructorArgs.__init__(self, transforms=transforms)
        super().__init__(env)
        self.chain = SensorChain(transforms, obs_spec_of(env), num_envs=1)
        self.obs_spec = self.chain.obs_spec
        self.observation_space = self.obs_spec.to_space()
        self._world = np.zeros(1, dtype=np.int64)

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[Obs, dict[str, Any]]:
        obs, info = self.env.reset(seed=seed, options=options)
        self.chain.seed(seed)
        return self._apply(obs, new_episode=True), info

    def step(self, action: Any) -> tuple[Obs, Any, bool, bool, dict[str, Any]]:
        obs, reward, terminated, truncated, info = self.env.step(action)
        return self._apply(obs, new_episode=False), reward, terminated, truncated, info

    def _apply(self, obs: Obs, new_episode: bool) -> Obs:
        batch = {k: np.asarray(v)[None] for k, v in obs.items()}
        out = self.chain(batch, self._world, np.array([new_episode]))
        return {k: v[0, ...] for k, v in out.items()}  # [0, ...] keeps 0-d flags ndarrays


class SensorVectorWrapper(VectorWrapper):
    """Sensor transforms on a vector env, in the autoreset mode that it declares.

    ``SAME_STEP``: rows of worlds that ended this step start an episode, and
    ``info["final_obs"]`` is transformed first, with the state of the episode
    that ended. ``NEXT_STEP``: rows of worlds that ended on the previous step
    start one. ``DISABLED``: ``reset(options={"reset_mask": m})`` restarts the
    worlds in ``m`` and leaves the others' observations as they were.
    """

    def __init__(self, env: VectorEnv, transforms: Transforms) -> None:
        super().__init__(env)
        mode = env.metadata.get("autoreset_mode", AutoresetMode.NEXT_STEP)
        self.autoreset_mode = mode if isinstance(mode, AutoresetMode) else AutoresetMode(mode)
        self.chain = SensorChain(transforms, obs_spec_of(env), env.num_envs)
        self.obs_spec = self.chain.obs_spec
        self.single_observation_space = self.obs_spec.to_space()
        self.observation_space = batch_space(self.single_observation_space, env.num_envs)
        self._worlds = np.arange(env.num_envs)
        self._ended = np.zeros(env.num_envs, dtype=bool)  # NEXT_STEP: reset on the next step
        self._last: Obs | None = None

    def reset(
        self, *, seed: Seed = None, options: dict[str, Any] | None = None
    ) -> tuple[Obs, dict[str, Any]]:
        mask = None if options is None else options.get("reset_mask")  # the env pops it
        obs, info = self.env.reset(seed=seed, options=options)
        self.chain.seed(seed)
        if mask is None or self._last is None:
            rows = self._worlds
        else:
            rows = np.flatnonzero(mask)
        self._ended[rows] = False
        part = self.chain({k: np.asarray(v)[rows] for k, v in obs.items()}, rows,
                          np.ones(len(rows), dtype=bool))
        if len(rows) == self.num_envs:
            self._last = part
        else:
            self._last = {k: v.copy() for k, v in self._last.items()}  # type: ignore[union-attr]
            for k, v in part.items():
                self._last[k][rows] = v
        return self._last, info

    def step(self, actions: Any) -> tuple[Obs, Any, Any, Any, dict[str, Any]]:
        obs, reward, terminated, truncated, info = self.env.step(actions)
        done = np.logical_or(terminated, truncated)
        if self.autoreset_mode is AutoresetMode.SAME_STEP:
            info = self._transform_final_obs(info)
            new_episode = done
        elif self.autoreset_mode is AutoresetMode.NEXT_STEP:
            new_episode, self._ended = self._ended, done
        else:
            new_episode = np.zeros(self.num_envs, dtype=bool)
        self._last = self.chain(obs, self._worlds, np.asarray(new_episode, dtype=bool))
        return self._last, reward, terminated, truncated, info

    def _transform_final_obs(self, info: dict[str, Any]) -> dict[str, Any]:
        """`info` with its ``final_obs`` rows transformed by the episodes that just ended."""
        mask = info.get("_final_obs")
        if mask is None or not np.any(mask):
            return info
        rows = np.flatnonzero(mask)
        finals = info["final_obs"]
        batch = {k: np.stack([np.asarray(finals[i][k]) for i in rows]) for k in finals[rows[0]]}
        out = self.chain(batch, rows, np.zeros(len(rows), dtype=bool))
        objs = np.full(self.num_envs, None, dtype=object)
        for j, i in enumerate(rows):
            objs[i] = {k: v[j] for k, v in out.items()}
        return {**info, "final_obs": objs}


def with_sensors(env: gym.Env | VectorEnv, transforms: Transforms) -> gym.Env | VectorEnv:
    """`env` with sensor transforms, through the adapter for its API.

    Args:
        env: a Dict-observation env that declares an ``obs_spec``, single or vector.
        transforms: the transforms, or a sensors config to build them from.

    Returns:
        A SensorWrapper for a gymnasium Env, a SensorVectorWrapper for a VectorEnv.
    """
    if isinstance(env, VectorEnv):
        return SensorVectorWrapper(env, transforms)
    if isinstance(env, gym.Env):
        return SensorWrapper(env, transforms)
    raise TypeError(f"with_sensors needs a gymnasium Env or VectorEnv, got {type(env).__name__}")
