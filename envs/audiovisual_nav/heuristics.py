"""Scripted single-modality policies that show why AudioVisualNav needs fusion.

- :func:`audio_only_actions` hears but cannot see: it turns towards the louder
  ear and walks, so it finds the sound's direction but walks into walls.
- :class:`ObjectSeeker` is the best a vision-only agent can do: it sees every
  object and walks the shortest path to one, but cannot tell which object is
  the goal, so it picks one at random.
"""

from __future__ import annotations

import numpy as np

from envs.audiovisual_nav import world as W
from envs.audiovisual_nav.env import AudioVisualNavVectorEnv
from envs.audiovisual_nav.maps import distance_field


def audio_only_actions(
    audio: np.ndarray, ild_db: float = 1.0, stop_rms: float = 0.12
) -> np.ndarray:
    """Actions from binaural audio (N, 2, T) alone: turn to the louder ear, walk, stop when loud."""
    rms = np.sqrt(np.mean(audio.astype(np.float64) ** 2, axis=2)) + 1e-9
    ild = 20.0 * np.log10(rms[:, 1] / rms[:, 0])  # + = right ear louder
    actions = np.full(audio.shape[0], W.FORWARD, np.int64)
    actions[ild > ild_db] = W.RIGHT
    actions[ild < -ild_db] = W.LEFT
    actions[rms.mean(axis=1) > stop_rms] = W.STOP
    return actions


class ObjectSeeker:
    """Walks the shortest path to one object chosen uniformly per episode, then stops."""

    def __init__(self, env: AudioVisualNavVectorEnv, seed: int = 0) -> None:
        self.env = env
        self.rng = np.random.default_rng(seed)
        self.fields = np.zeros_like(env.worlds.dist)
        self.target = np.zeros(env.num_envs, np.int64)
        self.new_episode(np.arange(env.num_envs))

    def new_episode(self, worlds: np.ndarray) -> None:
        w = self.env.worlds
        for i in worlds:
            self.target[i] = self.rng.integers(w.obj_pos.shape[1])
            x, y = w.obj_pos[i, self.target[i]]
            distance_field(w.free[i], x, y, self.fields[i])

    def actions(self) -> np.ndarray:
        env, w = self.env, self.env.worlds
        out = np.empty(env.num_envs, np.int64)
        W.expert_worlds(w.grid, self.fields, w.pos, w.heading, env.cfg.forward_m, env._turn,
                        env.cfg.headings, env.cfg.agent_radius_m, 0.5, out)
        return out
