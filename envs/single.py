"""One world of a natively batched env, as a plain ``gymnasium.Env``."""

from __future__ import annotations

from typing import Any, ClassVar

import gymnasium as gym
import numpy as np

from envs.batched import BatchedEnv, scalar_info


class SingleWorldEnv(gym.Env):
    """Runs a :class:`BatchedEnv` with one world and no autoreset.

    Subclasses set ``batched_cls``; constructor keyword arguments go to it
    unchanged, so ``gymnasium.make(id, **kw)`` and ``make_vec(id, n, **kw)``
    build the same world.
    """

    batched_cls: ClassVar[type[BatchedEnv]]
    metadata: dict[str, Any] = {"render_modes": ["rgb_array"], "render_fps": 10}

    def __init__(self, render_mode: str | None = None, **kwargs: Any) -> None:
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise ValueError(
                f"render_mode {render_mode!r} is not supported; use one of "
                f"{self.metadata['render_modes']} or None"
            )
        self.render_mode = render_mode
        self.batched = self.batched_cls(num_envs=1, autoreset=False, **kwargs)
        self.obs_spec = self.batched.obs_spec
        self.action_spec = self.batched.action_spec
        self.episode_metrics = self.batched.episode_metrics
        self.observation_space = self.batched.single_observation_space
        self.action_space = self.batched.single_action_space
        self._last_obs: dict[str, np.ndarray] | None = None

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        super().reset(seed=seed)
        # The batched env keeps its own per-world RNG: a seed restarts it, no
        # seed continues it.
        obs, info = self.batched.reset(seed=seed, options=options)
        self._last_obs = {k: v[0] for k, v in obs.items()}
        return self._last_obs, scalar_info(info)

    def step(
        self, action: Any
    ) -> tuple[dict[str, np.ndarray], float, bool, bool, dict[str, Any]]:
        obs, reward, terminated, truncated, info = self.batched.step(np.asarray([action]))
        self._last_obs = {k: v[0] for k, v in obs.items()}
        return (
            self._last_obs,
            float(reward[0]),
            bool(terminated[0]),
            bool(truncated[0]),
            scalar_info(info),
        )

    def expert_action(self) -> int:
        return int(self.batched.expert_actions()[0])

    def render(self) -> np.ndarray | None:
        if self.render_mode != "rgb_array" or self._last_obs is None:
            return None
        return self.batched.render_world(0)

    def close(self) -> None:
        self.batched.close()
