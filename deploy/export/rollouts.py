"""Observations from a trained policy's own rollouts: the data an export is checked on.

Parity, int8 calibration and the int8 guard all need inputs the policy really
meets, not random arrays: the policy is run on its world (actions sampled from
its own distribution, so the states are the ones training visits), and every
step's observation, the recurrent state fed at that step, and where episodes
began are kept as (T, B, ...) sequences; on request also the env's privileged
expert's action at every step (for the data side of ``analysis.pid_of_run``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from envs.batched import BatchedEnv
from envs.factory import make_vector_env
from perception.spec import ObsSpec


@dataclass
class Rollout:
    """(T, B, ...) observations of one rollout of B worlds over T steps.

    Attributes:
        obs: the policy's modalities, raw dtypes.
        h: the recurrent state fed at each step (None without memory).
        starts: True where a step begins an episode (the state was zeroed).
        expert: (T, B) the env's expert action at each step's observation (before the
            step), or None when not recorded or the env has no expert.
    """

    obs: dict[str, np.ndarray]
    h: np.ndarray | None
    starts: np.ndarray
    expert: np.ndarray | None = None

    @property
    def steps(self) -> int:
        return int(self.starts.shape[0])

    @property
    def worlds(self) -> int:
        return int(self.starts.shape[1])

    def flat(self) -> tuple[dict[str, np.ndarray], np.ndarray | None]:
        """Observations and states as one (T*B, ...) batch."""
        n = self.steps * self.worlds
        obs = {k: v.reshape(n, *v.shape[2:]) for k, v in self.obs.items()}
        return obs, (self.h.reshape(n, -1) if self.h is not None else None)

    def flat_expert(self) -> np.ndarray | None:
        """The expert's actions as one (T*B,) batch, rows as :meth:`flat`'s; None if absent."""
        return None if self.expert is None else self.expert.reshape(-1)


def has_expert(env: object) -> bool:
    """True when the vector env's class defines ``expert_actions`` (BatchedEnv's own only
    raises NotImplementedError)."""
    fn = getattr(type(env), "expert_actions", None)
    return fn is not None and fn is not BatchedEnv.expert_actions


@torch.no_grad()
def record_rollout(policy: nn.Module, sample: nn.Module, obs_spec: ObsSpec,
                   env_cfg: dict, worlds: int, steps: int, seed: int, hidden: int,
                   expert: bool = False) -> Rollout:
    """Run `policy` (a DeterministicPolicy) on `worlds` worlds for `steps` steps.

    Args:
        policy: ``forward(obs, h) -> (action, head, ..., h_new)``.
        sample: the ActorCritic whose ``distribution(head)`` gives the actions
            taken (its ``clip_actions`` keeps them in bounds).
        hidden: recurrent state size (0 = none).
        expert: also keep ``env.expert_actions()`` at every step, read before the
            step (``Rollout.expert``; None for an env without an expert). It reads
            the worlds' state and draws nothing: the rollout is the same either way.
    """
    env = make_vector_env(env_cfg, worlds)
    names = obs_spec.names
    torch_state = torch.get_rng_state()
    torch.manual_seed(seed)  # Distribution.sample draws from the global generator
    try:
        obs, _ = env.reset(seed=seed)
        h = torch.zeros(worlds, hidden) if hidden else None
        starts = np.ones(worlds, bool)
        rec: dict[str, list[np.ndarray]] = {n: [] for n in names}
        rec_h, rec_starts, rec_expert = [], [], []
        keep_expert = expert and has_expert(env)
        for _ in range(steps):
            for n in names:
                rec[n].append(np.array(obs[n]))
            rec_starts.append(starts.copy())
            if keep_expert:
                rec_expert.append(np.asarray(env.expert_actions()).copy())
            if h is not None:
                rec_h.append(h.numpy().copy())
            x = {n: torch.as_tensor(np.asarray(obs[n])) for n in names}
            out = policy(x, h)
            actions = sample.clip_actions(sample.distribution(out[1]).sample())
            obs, _, term, trunc, _ = env.step(actions.numpy())
            starts = np.logical_or(term, trunc)
            if h is not None:
                h = out[-1].clone()
                h[torch.as_tensor(starts)] = 0.0
        return Rollout({n: np.stack(v) for n, v in rec.items()},
                       np.stack(rec_h) if rec_h else None, np.stack(rec_starts),
                       np.stack(rec_expert) if rec_expert else None)
    finally:
        torch.set_rng_state(torch_state)
        env.close()


def rollout_from_recording(path: str, spec: ObsSpec, hidden: int) -> Rollout:
    """The observations a recorded run fed its model, tick by tick, as a (T, 1, ...) rollout.

    A modality absent at a tick is zeros there (the presence patterns of the
    calibration switch modalities off anyway); recurrent states are zeros.
    """
    from deploy.record import RecordingError, read_recording

    rec = read_recording(path)
    missing = [n for n in spec.names if n not in rec.spec]
    if missing:
        raise RecordingError(f"calibration recording {path} has no {missing}; record a run of "
                             "a model with the same modalities")
    if not rec.ticks:
        raise RecordingError(f"calibration recording {path} has no tick records; record it "
                             "with `sensorium run ... record=FILE.mcap`")
    by_seq = {n: rec.sample_by_seq(n) for n in spec.names}
    obs: dict[str, list[np.ndarray]] = {n: [] for n in spec.names}
    for tick in rec.ticks:
        for m in spec:
            s = by_seq[m.name].get(tick["seq"].get(m.name))
            obs[m.name].append(s.data if s is not None else np.zeros(m.shape, m.dtype))
    t = len(rec.ticks)
    return Rollout({n: np.stack(v)[:, None] for n, v in obs.items()},
                   np.zeros((t, 1, hidden), np.float32) if hidden else None,
                   np.zeros((t, 1), bool))
