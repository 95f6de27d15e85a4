"""Shared parts of sensorium's natively batched worlds (gymnasium VectorEnvs)."""

from __future__ import annotations

from typing import Any

import numpy as np
from gymnasium.vector import AutoresetMode, VectorEnv
from gymnasium.vector.utils import batch_space

from envs.metrics import EpisodeMetric
from perception.settings import ConfigError
from perception.spec import ActionSpec, ObsSpec

__all__ = ["BatchedEnv", "ConfigError", "seed_states"]


def seed_states(seed: int | None, num_envs: int) -> np.ndarray:
    """One 64-bit RNG state per world, all distinct, reproducible from `seed`."""
    seq = np.random.SeedSequence(seed)
    states = seq.generate_state(num_envs, dtype=np.uint64)
    return states | np.uint64(1)  # xorshift needs a non-zero state


class BatchedEnv(VectorEnv):
    """Base for worlds that step N copies in numpy arrays at once.

    Autoreset: with ``autoreset=True`` (the default for vector use) a world that
    ends is reset in the same step, as gymnasium's ``AutoresetMode.SAME_STEP``:
    the returned observation starts the next episode, ``info["final_obs"]`` and
    ``info["final_info"]`` hold the last observation and info of the one that
    ended (object array and dict of arrays, masked by ``info["_final_obs"]`` and
    ``info["_final_info"]``), exactly as ``SyncVectorEnv`` lays them out.
    """

    metadata: dict[str, Any] = {"autoreset_mode": AutoresetMode.SAME_STEP, "render_modes": []}

    obs_spec: ObsSpec
    action_spec: ActionSpec
    episode_metrics: tuple[EpisodeMetric, ...] = ()
    """What ``final_info`` reports per ended episode besides return and length."""

    def _init_spaces(self, num_envs: int, obs_spec: ObsSpec, action_spec: ActionSpec) -> None:
        if not isinstance(num_envs, (int, np.integer)) or num_envs < 1:
            raise ConfigError(f"num_envs must be an integer >= 1, got {num_envs!r}")
        self.num_envs = int(num_envs)
        self.obs_spec = obs_spec
        self.action_spec = action_spec
        self.single_observation_space = obs_spec.to_space()
        self.observation_space = batch_space(self.single_observation_space, self.num_envs)
        self.single_action_space = action_spec.to_space()
        self.action_space = batch_space(self.single_action_space, self.num_envs)

    def check_actions(self, actions: Any) -> np.ndarray:
        """Actions as an int64 array of shape (num_envs,), or a clear error."""
        n = self.action_spec.n
        arr = np.asarray(actions)
        if arr.shape != (self.num_envs,) or not (
            np.issubdtype(arr.dtype, np.integer)
            or (np.issubdtype(arr.dtype, np.floating) and np.all(arr == np.round(arr)))
        ):
            raise ValueError(
                f"{type(self).__name__}: actions must be {self.num_envs} integers in [0, {n}), "
                f"got shape {arr.shape} dtype {arr.dtype}"
            )
        arr = arr.astype(np.int64)
        bad = (arr < 0) | (arr >= n)
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            names = f" ({', '.join(self.action_spec.names)})" if self.action_spec.names else ""
            raise ValueError(
                f"{type(self).__name__}: invalid action {arr[i]} for world {i}; "
                f"actions are integers in [0, {n}){names}"
            )
        return arr

    def render_world(self, index: int) -> np.ndarray:
        """An RGB picture of world `index` for people (not an observation)."""
        raise NotImplementedError

    def expert_actions(self) -> np.ndarray:
        """The privileged expert's action for every world, shape (num_envs,)."""
        raise NotImplementedError

    def expert_actions_without(self, absent: dict[str, np.ndarray]) -> np.ndarray:
        """The expert for a student lacking, per world, the senses `absent` marks (name ->
        (N,) bool) for the whole episode; by default the expert needs none of them."""
        return self.expert_actions()

    @staticmethod
    def final_infos(
        done: np.ndarray, final_obs: dict[str, np.ndarray], final_info: dict[str, np.ndarray]
    ) -> dict[str, Any]:
        """`final_obs`/`final_info` entries laid out as SyncVectorEnv's SAME_STEP mode.

        Args:
            done: (N,) bool, worlds whose episode ended this step.
            final_obs: batched last observations, rows of worlds in `done` only
                (shape (len(idx), ...)).
            final_info: per-world episode metrics, arrays of shape (N,).
        """
        idx = np.flatnonzero(done)
        obs_objs = np.full(done.shape[0], None, dtype=object)
        for j, i in enumerate(idx):
            obs_objs[i] = {k: v[j] for k, v in final_obs.items()}
        info: dict[str, Any] = {}
        for k, v in final_info.items():
            info[k] = v
            info["_" + k] = done.copy()
        return {
            "final_obs": obs_objs,
            "_final_obs": done.copy(),
            "final_info": info,
            "_final_info": done.copy(),
        }


def scalar_info(info: dict[str, Any]) -> dict[str, Any]:
    """World 0 of a batched info dict of (N,) arrays, as Python scalars."""
    return {k: np.asarray(v)[0].item() for k, v in info.items() if not k.startswith("_")}
