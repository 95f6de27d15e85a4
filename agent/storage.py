"""Rollout buffers: observations as dicts of tensors, GAE, and minibatches.

Layout is time-major, (T, N, ...). Observations are stored after the
policy's parameter-free frontend (e.g. audio as log-mel), so the update does
not recompute it every epoch.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import NamedTuple

import torch
from torch import Tensor


class Minibatch(NamedTuple):
    obs: dict[str, Tensor]
    actions: Tensor
    old_log_prob: Tensor
    old_value: Tensor
    advantages: Tensor
    returns: Tensor
    privileged: Tensor | None
    h0: Tensor | None  # recurrent: state at each sequence's first step, (B, H)
    starts: Tensor | None  # recurrent: (T, B) episode starts
    teacher: Tensor | None = None  # the expert's action for each sample (kickstarting)


class RolloutStorage:
    """Fixed-size buffers for `num_steps` steps of `num_envs` worlds."""

    def __init__(self, num_steps: int, num_envs: int, obs_example: Mapping[str, Tensor],
                 action_shape: tuple[int, ...], action_dtype: torch.dtype, hidden: int = 0,
                 privileged_dim: int = 0, device: torch.device | str = "cpu") -> None:
        self.T, self.N = num_steps, num_envs
        t, n, dev = num_steps, num_envs, device
        self.obs = {k: torch.zeros((t, n, *v.shape[1:]), dtype=v.dtype, device=dev)
                    for k, v in obs_example.items()}
        self.actions = torch.zeros((t, n, *action_shape), dtype=action_dtype, device=dev)
        self.log_prob = torch.zeros(t, n, device=dev)
        self.values = torch.zeros(t, n, device=dev)
        self.rewards = torch.zeros(t, n, device=dev)
        self.dones = torch.zeros(t, n, dtype=torch.bool, device=dev)
        self.starts = torch.zeros(t, n, dtype=torch.bool, device=dev)
        self.advantages = torch.zeros(t, n, device=dev)
        self.returns = torch.zeros(t, n, device=dev)
        self.hidden = torch.zeros(t, n, hidden, device=dev) if hidden else None
        self.privileged = (torch.zeros(t, n, privileged_dim, device=dev)
                           if privileged_dim else None)
        self.teacher: Tensor | None = None  # made on the first add() that brings labels
        self.step = 0

    def add(self, obs: Mapping[str, Tensor], actions: Tensor, log_prob: Tensor, values: Tensor,
            rewards: Tensor, dones: Tensor, starts: Tensor, hidden: Tensor | None = None,
            privileged: Tensor | None = None, teacher: Tensor | None = None) -> None:
        """Store step `self.step`: what was seen (``starts``: first step of an episode),
        done, and what came of it (``rewards`` include any truncation bootstrap)."""
        if self.step >= self.T:
            raise RuntimeError("rollout storage is full; call clear() after the update")
        i = self.step
        for k, buf in self.obs.items():
            buf[i].copy_(obs[k])
        self.actions[i].copy_(actions)
        self.log_prob[i].copy_(log_prob)
        self.values[i].copy_(values)
        self.rewards[i].copy_(rewards)
        self.dones[i].copy_(dones)
        self.starts[i].copy_(starts)
        if self.hidden is not None and hidden is not None:
            self.hidden[i].copy_(hidden)
        if self.privileged is not None and privileged is not None:
            self.privileged[i].copy_(privileged)
        if teacher is not None:
            if self.teacher is None:
                self.teacher = torch.zeros_like(self.actions)
            self.teacher[i].copy_(teacher)
        self.step += 1

    def clear(self) -> None:
        self.step = 0

    def compute_returns(self, last_values: Tensor, gamma: float, lam: float) -> None:
        """Generalised advantage estimation (Schulman et al. 2016), backwards in time.

        ``dones[t]`` cuts the bootstrap from step t to t+1 (the next observation
        belongs to a new episode: autoreset in the same step).
        """
        gae = torch.zeros_like(last_values)
        for t in reversed(range(self.T)):
            next_values = last_values if t == self.T - 1 else self.values[t + 1]
            not_done = (~self.dones[t]).float()
            delta = self.rewards[t] + gamma * next_values * not_done - self.values[t]
            gae = delta + gamma * lam * not_done * gae
            self.advantages[t] = gae
        self.returns = self.advantages + self.values

    def minibatches(self, num_minibatches: int, generator: torch.Generator | None = None
                    ) -> Iterator[Minibatch]:
        """Feed-forward: random, equal-sized minibatches of (T * N) samples."""
        total = self.T * self.N
        size = total // num_minibatches
        perm = torch.randperm(total, generator=generator)[: size * num_minibatches]
        perm = perm.to(self.values.device)
        flat = {k: v.reshape(total, *v.shape[2:]) for k, v in self.obs.items()}
        flat_priv = None if self.privileged is None else self.privileged.reshape(total, -1)
        flat_teacher = (None if self.teacher is None
                        else self.teacher.reshape(total, *self.teacher.shape[2:]))
        for i in range(num_minibatches):
            idx = perm[i * size:(i + 1) * size]
            yield Minibatch(
                {k: v[idx] for k, v in flat.items()},
                self.actions.reshape(total, *self.actions.shape[2:])[idx],
                self.log_prob.reshape(total)[idx], self.values.reshape(total)[idx],
                self.advantages.reshape(total)[idx], self.returns.reshape(total)[idx],
                None if flat_priv is None else flat_priv[idx], None, None,
                None if flat_teacher is None else flat_teacher[idx])

    def sequences(self, num_minibatches: int, seq_len: int,
                  generator: torch.Generator | None = None) -> Iterator[Minibatch]:
        """Recurrent: (seq_len, B) chunks of consecutive steps, state from the rollout.

        The rollout is cut into T / seq_len chunks per world (truncated
        backpropagation through time); each chunk starts from the hidden state
        the policy had there, and the memory restarts inside a chunk where an
        episode starts.
        """
        if self.T % seq_len:
            raise ValueError(f"rollout length {self.T} is not a multiple of seq_len {seq_len}")
        chunks = self.T // seq_len

        def chunked(x: Tensor) -> Tensor:  # (T, N, ...) -> (L, chunks * N, ...)
            return (x.reshape(chunks, seq_len, self.N, *x.shape[2:]).transpose(0, 1)
                    .reshape(seq_len, chunks * self.N, *x.shape[2:]))

        count = chunks * self.N
        size = count // num_minibatches
        if size < 1:
            raise ValueError(f"{count} sequences cannot fill {num_minibatches} minibatches")
        perm = torch.randperm(count, generator=generator)[: size * num_minibatches]
        perm = perm.to(self.values.device)
        obs = {k: chunked(v) for k, v in self.obs.items()}
        first = chunked(self.hidden)[0] if self.hidden is not None else None
        starts = chunked(self.starts).clone()
        starts[0] = False  # h0 already holds the state at the chunk's first step
        fields = [chunked(x) for x in (self.actions, self.log_prob, self.values,
                                       self.advantages, self.returns)]
        priv = chunked(self.privileged) if self.privileged is not None else None
        teacher = chunked(self.teacher) if self.teacher is not None else None
        for i in range(num_minibatches):
            idx = perm[i * size:(i + 1) * size]
            yield Minibatch({k: v[:, idx] for k, v in obs.items()}, *(f[:, idx] for f in fields),
                            None if priv is None else priv[:, idx],
                            None if first is None else first[idx], starts[:, idx],
                            None if teacher is None else teacher[:, idx])
