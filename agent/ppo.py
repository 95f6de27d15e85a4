"""Proximal policy optimisation (Schulman et al. 2017) on an ActorCritic.

The algorithm only: ``act`` (sample and remember), ``process_env_step``
(store what came of it), ``compute_returns`` (GAE) and ``update() -> dict``.
The runner owns the env loop, logging and checkpoints.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import Tensor, nn

from agent.algorithms import PPOConfig
from agent.distributed import DistInfo, all_mean, average_gradients
from agent.policy import ActorCritic
from agent.storage import RolloutStorage
from perception.augment import CoordinationLoss


class PPO:
    """PPO with GAE, clipped surrogate and value losses, entropy bonus, LR schedule."""

    def __init__(self, policy: ActorCritic, cfg: PPOConfig, device: torch.device,
                 dist_info: DistInfo | None = None, privileged_dim: int = 0) -> None:
        self.policy, self.cfg, self.device = policy, cfg, device
        self.dist = dist_info or DistInfo()
        params = list(policy.parameters())
        self.coordination: CoordinationLoss | None = None
        if cfg.coordination.weight > 0:
            dims = {n: e.out_dim for n, e in policy.trunk.encoders.items()}
            self.coordination = CoordinationLoss.from_config(cfg.coordination, dims).to(device)
            params += list(self.coordination.parameters())
        self.aux_head: nn.Linear | None = None
        if cfg.aux_privileged_coef > 0 and privileged_dim:
            self.aux_head = nn.Linear(policy.trunk.out_dim, privileged_dim).to(device)
            params += list(self.aux_head.parameters())
        self.params = params
        self.optimizer = torch.optim.Adam(params, lr=cfg.lr, eps=1e-5)
        self.storage: RolloutStorage | None = None
        # the calls the hot loops make; compile() swaps in compiled versions
        self._act = policy.act
        self._evaluate = policy.evaluate
        self.generator = torch.Generator().manual_seed(0)
        self._pending: dict[str, Tensor | None] = {}

    def compile(self) -> None:
        """torch.compile the rollout's and the update's policy calls (fixed batch shapes)."""
        self._act = torch.compile(self.policy.act, dynamic=False)
        self._evaluate = torch.compile(self.policy.evaluate, dynamic=False)

    def modules(self) -> dict[str, nn.Module | torch.optim.Optimizer]:
        """Everything with state, for checkpoints."""
        out: dict[str, nn.Module | torch.optim.Optimizer] = {
            "policy": self.policy, "optimizer": self.optimizer}
        if self.coordination is not None:
            out["coordination"] = self.coordination
        if self.aux_head is not None:
            out["aux_head"] = self.aux_head
        return out

    def init_storage(self, num_envs: int, obs_example: Mapping[str, Tensor],
                     privileged_dim: int = 0) -> None:
        shape, dtype = self.policy.action_layout()
        self.storage = RolloutStorage(self.cfg.num_steps, num_envs, obs_example, shape, dtype,
                                      self.policy.hidden_size, privileged_dim, self.device)

    @torch.no_grad()
    def act(self, obs: Mapping[str, Tensor], h: Tensor | None, starts: Tensor,
            privileged: Tensor | None = None, teacher: Tensor | None = None
            ) -> tuple[Tensor, Tensor | None]:
        """Sample actions for frontend-processed `obs`; remember the transition's first half
        (with the expert's `teacher` actions where kickstarting)."""
        out = self._act(obs, h, privileged, frontend_done=True)
        self._pending = {"obs": obs, "actions": out.actions, "log_prob": out.log_prob,
                         "values": out.value, "hidden": h, "starts": starts,
                         "privileged": privileged, "teacher": teacher}
        return out.actions, out.h

    def process_env_step(self, rewards: Tensor, dones: Tensor) -> None:
        """Store the pending transition with its reward (truncation bootstrap included)."""
        p = self._pending
        self.storage.add(p["obs"], p["actions"], p["log_prob"], p["values"], rewards, dones,
                         p["starts"], p["hidden"], p["privileged"], p.get("teacher"))

    @torch.no_grad()
    def value(self, obs: Mapping[str, Tensor], h: Tensor | None,
              privileged: Tensor | None = None) -> Tensor:
        return self.policy.act(obs, h, privileged, frontend_done=True).value

    def compute_returns(self, last_values: Tensor) -> None:
        self.storage.compute_returns(last_values, self.cfg.gamma, self.cfg.lam)

    def set_progress(self, fraction: float) -> float:
        """Apply the learning-rate schedule for `fraction` of the run done; return the LR."""
        lr = self.cfg.lr * (1.0 - fraction if self.cfg.lr_schedule == "linear" else 1.0)
        lr = max(lr, 1e-3 * self.cfg.lr)
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        return lr

    def update(self, critic_only: bool = False) -> dict[str, float]:
        """Epochs of minibatch updates on the stored rollout; returns mean losses and stats.
        `critic_only`: only the critic's head learns (``critic_warmup``)."""
        cfg, policy, storage = self.cfg, self.policy, self.storage
        sums: dict[str, float] = {}
        count = 0
        stop = False
        for _ in range(cfg.epochs):
            batches = (storage.sequences(cfg.minibatches, cfg.seq_len, self.generator)
                       if policy.recurrent else storage.minibatches(cfg.minibatches,
                                                                    self.generator))
            for mb in batches:
                stats = self._step(mb, critic_only)
                for k, v in stats.items():
                    sums[k] = sums.get(k, 0.0) + v
                count += 1
                # one decision for all ranks (each measured the KL on its own minibatch)
                if cfg.target_kl and all_mean([stats["approx_kl"]], self.dist)[0] > cfg.target_kl:
                    stop = True
                    break
            if stop:
                break
        storage.clear()
        out = {k: v / max(count, 1) for k, v in sums.items()}
        out["minibatch_updates"] = float(count)
        return out

    def _step(self, mb, critic_only: bool = False) -> dict[str, float]:
        cfg, policy = self.cfg, self.policy
        want_features = self.coordination is not None and not policy.recurrent
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=cfg.bf16):
            ev = self._evaluate(mb.obs, mb.actions, mb.h0, mb.starts, mb.privileged,
                                 frontend_done=True, with_features=want_features)
        log_prob, entropy, value = ev.log_prob.float(), ev.entropy.float(), ev.value.float()
        adv = mb.advantages
        if cfg.normalize_advantages:
            adv = (adv - adv.mean()) / (adv.std() + 1e-8)
        ratio = torch.exp(log_prob - mb.old_log_prob)
        surrogate = torch.min(ratio * adv, ratio.clamp(1 - cfg.clip, 1 + cfg.clip) * adv)
        policy_loss = -surrogate.mean()
        if cfg.value_clip > 0:
            clipped = mb.old_value + (value - mb.old_value).clamp(-cfg.value_clip, cfg.value_clip)
            value_loss = torch.max((value - mb.returns) ** 2, (clipped - mb.returns) ** 2).mean()
        else:
            value_loss = ((value - mb.returns) ** 2).mean()
        entropy_mean = entropy.mean()
        loss = policy_loss + cfg.value_coef * value_loss - cfg.entropy_coef * entropy_mean
        stats = {}
        if self.aux_head is not None:
            aux = ((self.aux_head(ev.state.float()) - mb.privileged) ** 2).mean()
            loss = loss + cfg.aux_privileged_coef * aux
            stats["aux_privileged_loss"] = float(aux.detach())
        if mb.teacher is not None and cfg.teacher_coef > 0:
            logits = policy.head(ev.state.float(), mb.obs)
            labels = mb.teacher.reshape(-1)  # -1: a state kickstarting leaves to PPO
            kick = nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), labels,
                                               ignore_index=-1, reduction="sum")
            kick = kick / (labels >= 0).sum().clamp(min=1)
            loss = loss + cfg.teacher_coef * kick
            stats["teacher_loss"] = float(kick.detach())
        if want_features:
            coord = self.coordination({k: v.float() for k, v in ev.features.items()}, ev.present)
            loss = loss + cfg.coordination.weight * coord
            stats["coordination_loss"] = float(coord.detach())
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if critic_only:  # no gradient: Adam leaves the parameter (and its moments) alone
            head = {id(p) for p in policy.critic.parameters()}
            for p in self.params:
                if id(p) not in head:
                    p.grad = None
        average_gradients(self.params, self.dist)
        grad_norm = nn.utils.clip_grad_norm_(self.params, cfg.max_grad_norm)
        self.optimizer.step()
        with torch.no_grad():
            log_ratio = log_prob - mb.old_log_prob
            approx_kl = float(((ratio - 1) - log_ratio).mean())
            clip_frac = float(((ratio - 1).abs() > cfg.clip).float().mean())
        stats.update(policy_loss=float(policy_loss.detach()),
                     value_loss=float(value_loss.detach()),
                     entropy=float(entropy_mean.detach()), approx_kl=approx_kl,
                     clip_fraction=clip_frac, grad_norm=float(grad_norm))
        return stats
