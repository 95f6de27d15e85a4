"""Imitation from a teacher: behaviour cloning and DAgger (Ross et al. 2011).

The algorithm only: the settings (``agent=bc``, ``agent=dagger``), the
memory-bounded dataset and the supervised update. The loop,
logging and checkpoints are in :mod:`agent.imitation_runner`.

Teacher and student. The student is always the run's ``ActorCritic`` on the
env's sensors. The teacher is either

- ``teacher=expert``: the env's privileged expert (``expert_actions()``, e.g.
  AudioVisualNav's shortest path on the map, which no sensor shows), or
- ``teacher=<run dir>``: a trained run's deterministic policy
  (:func:`agent.trained.load_trained` + ``DeterministicPolicy``) acting on the
  same observations, e.g. a PPO run with a bigger model, another fusion or
  memory, or a privileged critic. The teacher sees every sensor of the env;
  the student only those of ``run.modalities`` (all when empty), so a
  vision-free student can learn from a teacher that sees. Our ActorCritic
  never lets the *actor* read privileged state (only the critic may), so a
  "privileged teacher" is the env expert; a run teacher is a distillation
  source.

Losses. The actor maximises the log-likelihood of the teacher's action under
the student's distribution (``ActorCritic.evaluate``): cross-entropy for
discrete actions, the Gaussian negative log-likelihood for continuous ones
(it fits the mean and the standard deviation). The critic is regressed on
Monte-Carlo discounted returns of the collected episodes (``value_coef``;
0 leaves it untrained): steps of episodes that had not ended when their block
of data ended are left out of the value loss, and time-limit truncations are
taken as episode ends (no bootstrap). The returns are those of the policy that
acted (the teacher in BC, the beta-mixture in DAgger), so the critic is a
starting point for fine-tuning with PPO, not the student's exact value. The
weight is small by default: the returns' squared error (~100 at the start on
AudioVisualNav) shares the trunk's gradient with the cross-entropy (~1).

Data. Observations are stored after the policy's parameter-free frontend
(``ObservationPipeline``: audio as log-mel), in preallocated tensors, as
blocks of (T, N) consecutive steps of N worlds; floating-point inputs in
float16 with ``half_storage``. DAgger's aggregate is a ring of blocks bounded
by ``max_dataset`` samples: the oldest round's block is overwritten.
Recurrent students (``model.memory > 0``) train on whole blocks as (T, B)
sequences from a zero state with the episode starts marked; each block then
begins with freshly reset worlds, so that zero is the true state there.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from typing import Any, NamedTuple

import torch
from torch import Tensor, nn

from agent.algorithms import ImitationSettings
from agent.distributed import DistInfo, average_gradients
from agent.policy import ActorCritic

# --------------------------------------------------------------------------- dataset


class Batch(NamedTuple):
    obs: dict[str, Tensor]
    actions: Tensor  # the teacher's
    returns: Tensor  # Monte-Carlo returns
    value_mask: Tensor  # True where the return is complete
    privileged: Tensor | None
    h0: Tensor | None  # recurrent: zeros (B, H)
    starts: Tensor | None  # recurrent: (T, B)


def discounted_returns(rewards: Tensor, dones: Tensor, gamma: float) -> tuple[Tensor, Tensor]:
    """Monte-Carlo returns of (T, N) rewards, and where they are complete.

    ``dones[t]``: the episode ended at step t (the next step starts another).
    A return is complete when its episode ended within the block.
    """
    t_len = rewards.shape[0]
    returns = torch.zeros_like(rewards)
    complete = torch.zeros_like(dones)
    g = torch.zeros_like(rewards[0])
    ended = torch.zeros_like(dones[0])
    for t in reversed(range(t_len)):
        g = rewards[t] + gamma * g * (~dones[t]).float()
        ended = dones[t] | ended
        returns[t], complete[t] = g, ended
    return returns, complete


class ImitationDataset:
    """A ring of `blocks` blocks of (T, N) steps: frontend observations, teacher actions,
    Monte-Carlo returns; all in preallocated tensors on `device`."""

    def __init__(self, blocks: int, steps: int, num_envs: int, obs_example: Mapping[str, Tensor],
                 action_shape: tuple[int, ...], action_dtype: torch.dtype, privileged_dim: int = 0,
                 half: bool = True, device: torch.device | str = "cpu") -> None:
        self.capacity, self.T, self.N = blocks, steps, num_envs
        shape = (blocks, steps, num_envs)
        dev = device

        def store_dtype(t: Tensor) -> torch.dtype:
            return torch.float16 if half and t.dtype == torch.float32 else t.dtype

        self.obs = {k: torch.zeros((*shape, *v.shape[1:]), dtype=store_dtype(v), device=dev)
                    for k, v in obs_example.items()}
        self.obs_dtypes = {k: v.dtype for k, v in obs_example.items()}
        self.actions = torch.zeros((*shape, *action_shape), dtype=action_dtype, device=dev)
        self.starts = torch.zeros(shape, dtype=torch.bool, device=dev)
        self.returns = torch.zeros(shape, device=dev)
        self.value_mask = torch.zeros(shape, dtype=torch.bool, device=dev)
        self.privileged = (torch.zeros((*shape, privileged_dim), device=dev)
                           if privileged_dim else None)
        self.filled = 0  # complete blocks
        self.cursor = 0  # the block written next

    @property
    def size(self) -> int:
        """Samples held."""
        return self.filled * self.T * self.N

    @property
    def nbytes(self) -> int:
        tensors = [*self.obs.values(), self.actions, self.starts, self.returns, self.value_mask]
        if self.privileged is not None:
            tensors.append(self.privileged)
        return sum(t.numel() * t.element_size() for t in tensors)

    def write(self, t: int, obs: Mapping[str, Tensor], actions: Tensor, starts: Tensor,
              privileged: Tensor | None = None) -> None:
        """Step `t` of the block being collected."""
        b = self.cursor
        for k, buf in self.obs.items():
            buf[b, t].copy_(obs[k])
        self.actions[b, t].copy_(actions)
        self.starts[b, t].copy_(starts)
        if self.privileged is not None and privileged is not None:
            self.privileged[b, t].copy_(privileged)

    def finish_block(self, rewards: Tensor, dones: Tensor, gamma: float) -> None:
        """Complete the block being collected with its (T, N) rewards and episode ends."""
        returns, complete = discounted_returns(rewards, dones, gamma)
        self.returns[self.cursor].copy_(returns)
        self.value_mask[self.cursor].copy_(complete)
        self.cursor = (self.cursor + 1) % self.capacity
        self.filled = min(self.filled + 1, self.capacity)

    def _obs(self, index: Any) -> dict[str, Tensor]:
        return {k: v[index].to(self.obs_dtypes[k]) for k, v in self.obs.items()}

    def _split(self, batch_size: int, recurrent: bool) -> tuple[int, int]:
        """(minibatches a pass, samples or sequences each)."""
        if not recurrent:
            count = max(1, self.size // batch_size)
            return count, self.size // count
        sequences = self.filled * self.N
        per_batch = max(1, min(sequences, batch_size // self.T))
        return max(1, sequences // per_batch), per_batch

    def minibatch_count(self, batch_size: int, recurrent: bool) -> int:
        """Minibatches in one pass (0 while empty)."""
        return self._split(batch_size, recurrent)[0] if self.filled else 0

    def minibatches(self, batch_size: int, recurrent: bool, hidden: int,
                    generator: torch.Generator) -> Iterator[Batch]:
        """One shuffled pass: random samples, or (recurrent) whole (T, B) block sequences."""
        if not self.filled:
            return
        count, size = self._split(batch_size, recurrent)
        if not recurrent:
            perm = torch.randperm(self.size, generator=generator)[: size * count].to(
                self.returns.device)
            for i in range(count):
                flat = perm[i * size:(i + 1) * size]
                idx = (flat // (self.T * self.N), (flat // self.N) % self.T, flat % self.N)
                yield Batch(self._obs(idx), self.actions[idx], self.returns[idx],
                            self.value_mask[idx],
                            None if self.privileged is None else self.privileged[idx], None, None)
            return
        perm = torch.randperm(self.filled * self.N, generator=generator)[: size * count].to(
            self.returns.device)
        for i in range(count):
            seq = perm[i * size:(i + 1) * size]
            blk, world = seq // self.N, seq % self.N
            # (B, T, ...) gathered per sequence, then time-major (T, B, ...)
            idx = (blk[:, None], torch.arange(self.T, device=seq.device)[None, :], world[:, None])
            obs = {k: v.transpose(0, 1) for k, v in self._obs(idx).items()}
            starts = self.starts[idx].transpose(0, 1).clone()
            starts[0] = True  # every block begins with reset worlds
            yield Batch(obs, self.actions[idx].transpose(0, 1),
                        self.returns[idx].transpose(0, 1), self.value_mask[idx].transpose(0, 1),
                        None if self.privileged is None else self.privileged[idx].transpose(0, 1),
                        torch.zeros(len(seq), hidden, device=seq.device), starts)


# --------------------------------------------------------------------------- update


class Imitation:
    """The supervised update of the student on the dataset (shared by BC and DAgger)."""

    def __init__(self, policy: ActorCritic, cfg: ImitationSettings, device: torch.device,
                 dist_info: DistInfo | None = None) -> None:
        self.policy, self.cfg, self.device = policy, cfg, device
        self.dist = dist_info or DistInfo()
        self.params = list(policy.parameters())
        self.optimizer = torch.optim.AdamW(self.params, lr=cfg.lr,
                                           weight_decay=cfg.weight_decay, eps=1e-5)
        self.generator = torch.Generator().manual_seed(0)

    def modules(self) -> dict[str, nn.Module | torch.optim.Optimizer]:
        """Everything with state, for checkpoints."""
        return {"policy": self.policy, "optimizer": self.optimizer}

    def set_lr(self, fraction: float) -> float:
        """Apply the learning rate for `fraction` of the training done; return it."""
        lr = self.cfg.lr
        if self.cfg.lr_schedule == "cosine":
            lr = self.cfg.lr * 0.5 * (1.0 + math.cos(math.pi * min(max(fraction, 0.0), 1.0)))
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        return lr

    def update(self, data: ImitationDataset, epochs: int = 1,
               progress: tuple[float, float] = (0.0, 0.0)) -> dict[str, float]:
        """`epochs` shuffled passes over `data`; mean losses and stats.

        The learning rate follows the schedule from fraction ``progress[0]`` of the
        whole training to ``progress[1]``, minibatch by minibatch.
        """
        self.policy.train()
        sums: dict[str, float] = {}
        count = 0
        per_epoch = data.minibatch_count(self.cfg.batch_size, self.policy.recurrent)
        total = max(1, per_epoch * epochs)
        for _ in range(epochs):
            for batch in data.minibatches(self.cfg.batch_size, self.policy.recurrent,
                                          self.policy.hidden_size, self.generator):
                lr = self.set_lr(progress[0] + (progress[1] - progress[0]) * count / total)
                stats = self._step(batch)
                stats["lr"] = lr
                for k, v in stats.items():
                    sums[k] = sums.get(k, 0.0) + v
                count += 1
        out = {k: v / max(count, 1) for k, v in sums.items()}
        out["minibatch_updates"] = float(count)
        return out

    def _step(self, b: Batch) -> dict[str, float]:
        cfg, policy = self.cfg, self.policy
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=cfg.bf16):
            ev = policy.evaluate(b.obs, b.actions, b.h0, b.starts, b.privileged,
                                 frontend_done=True)
        log_prob, entropy, value = ev.log_prob.float(), ev.entropy.float(), ev.value.float()
        imitation_loss = -log_prob.mean()
        entropy_mean = entropy.mean()
        mask = b.value_mask.float()
        value_loss = (((value - b.returns) ** 2) * mask).sum() / mask.sum().clamp(min=1.0)
        loss = imitation_loss - cfg.entropy_coef * entropy_mean
        if cfg.value_coef > 0:
            loss = loss + cfg.value_coef * value_loss
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        average_gradients(self.params, self.dist)
        if cfg.max_grad_norm > 0:
            grad_norm = float(nn.utils.clip_grad_norm_(self.params, cfg.max_grad_norm))
        else:
            grad_norm = float(torch.linalg.vector_norm(torch.stack(
                [p.grad.norm() for p in self.params if p.grad is not None])))
        self.optimizer.step()
        stats = {"imitation_loss": imitation_loss.item(), "entropy": entropy_mean.item(),
                 "value_loss": value_loss.item(), "grad_norm": grad_norm}
        if not policy.continuous:
            stats["teacher_prob"] = float(log_prob.detach().exp().mean())
        return stats


__all__ = ["Imitation", "ImitationDataset", "discounted_returns"]
