"""Teachers for imitation: who labels each state with the action to imitate.

``agent.teacher=expert`` is the env's privileged expert; ``agent.teacher=<run dir>``
a trained run's greedy policy on the same observations (see :mod:`agent.imitation`).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch
from torch import Tensor

from agent.algorithms import EXPERT
from agent.observations import to_torch
from agent.policy import DeterministicPolicy
from perception.settings import ConfigError
from perception.spec import ActionSpec, ObsSpec


class Teacher(Protocol):
    """Labels the current state of every world with the action to imitate."""

    def actions(self, obs: Mapping[str, np.ndarray],
                absent: Mapping[str, np.ndarray] | None = None) -> Tensor:
        """Actions for the worlds' current state (call before stepping); `absent`: per
        modality, the worlds whose student lacks it all episode."""

    def episode_ends(self, done: np.ndarray) -> None:
        """Forget the memory of worlds whose episode just ended."""


class ExpertTeacher:
    """The env's privileged expert: ``env.expert_actions()``, or, for worlds whose student
    lacks a sense all episode, ``env.expert_actions_without(absent)``: a teacher whose
    actions the student can learn from what it senses (AudioVisualNav without hearing:
    turn until an object is in view, walk to it and stop, not the shortest path to an
    unheard goal)."""

    def __init__(self, env: Any, device: torch.device) -> None:
        fn = getattr(type(env), "expert_actions", None)
        from envs.batched import BatchedEnv

        if fn is None or fn is BatchedEnv.expert_actions:
            raise ConfigError(
                f"agent.teacher=expert needs an env with expert_actions(); {type(env).__name__} "
                "has none (AudioVisualNav and ModalityProbe have one); set agent.teacher to a "
                "trained run's folder instead")
        self.env, self.device = env, device

    def actions(self, obs: Mapping[str, np.ndarray],
                absent: Mapping[str, np.ndarray] | None = None) -> Tensor:
        without = getattr(self.env, "expert_actions_without", None)
        if without is not None and absent is not None and any(np.any(v) for v in
                                                                absent.values()):
            return torch.as_tensor(without(dict(absent)),
                                   device=self.device)
        return torch.as_tensor(self.env.expert_actions(), device=self.device)

    def episode_ends(self, done: np.ndarray) -> None:
        return None


class PolicyTeacher:
    """A trained run's greedy policy (its own frontend and memory) on the same observations."""

    def __init__(self, run_dir: Path, obs_spec: ObsSpec, action_spec: ActionSpec,
                 num_envs: int, device: torch.device) -> None:
        from agent.checkpoint import CheckpointError
        from agent.trained import load_trained

        where = f"agent.teacher={str(run_dir)!r}"
        if not (Path(run_dir) / "checkpoints").is_dir():
            raise ConfigError(f"{where}: no such run (no checkpoints folder there); use "
                              "'expert' or the folder of a finished `sensorium train` run")
        try:
            trained = load_trained(Path(run_dir), device=str(device.type))
        except CheckpointError as e:
            raise ConfigError(f"{where}: {e}") from e
        if trained.obs_spec != ObsSpec.from_json(obs_spec.to_json()):
            raise ConfigError(
                f"{where}: the teacher was trained on observations {trained.obs_spec.names} "
                f"of another spec than this run's env ({obs_spec.names}); train the student on "
                "the teacher's env settings (see its config.yaml)")
        if trained.action_spec != ActionSpec.from_json(action_spec.to_json()):
            raise ConfigError(f"{where}: the teacher's actions differ from this env's; use a "
                              "teacher trained on the same env")
        self.run_dir, self.device = Path(run_dir), device
        self.policy = DeterministicPolicy(trained.policy).eval()
        self.h = trained.policy.trunk.initial_state(num_envs)

    @torch.no_grad()
    def actions(self, obs: Mapping[str, np.ndarray],
                absent: Mapping[str, np.ndarray] | None = None) -> Tensor:
        # the teacher sees every sense; what the student lacks does not change its labels
        action, _, self.h = self.policy(to_torch(obs, self.device), self.h)
        return action

    def episode_ends(self, done: np.ndarray) -> None:
        if self.h is not None and done.any():
            self.h[torch.as_tensor(done, device=self.h.device)] = 0.0


def make_teacher(spec: str, env: Any, obs_spec: ObsSpec, action_spec: ActionSpec,
                 device: torch.device) -> ExpertTeacher | PolicyTeacher:
    """The teacher that ``agent.teacher`` names."""
    if spec == EXPERT:
        return ExpertTeacher(env, device)
    return PolicyTeacher(Path(spec), obs_spec, action_spec, env.num_envs, device)
__all__ = ["EXPERT", "ExpertTeacher", "PolicyTeacher", "Teacher", "make_teacher"]
