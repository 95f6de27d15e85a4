"""Actor-critic on the fused state: the policy trained by PPO and imitation, and exported.

The actor and the critic share the perception trunk (encoders, fusion,
memory) unless ``separate_critic``; the critic may also read privileged
simulator state that the actor never sees (it is not exported).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, NamedTuple

import torch
from torch import Tensor, nn
from torch.distributions import Categorical, Distribution, Normal

from agent.config import PolicyConfig
from perception.model import PerceptionModel
from perception.settings import ConfigError
from perception.spec import ActionSpec, ObsSpec, presence_key


def mlp(sizes: list[int], out: int, gain_last: float = 1.0) -> nn.Sequential:
    """Linear-ReLU layers ending in a linear layer, orthogonally initialised."""
    layers: list[nn.Module] = []
    for a, b in zip(sizes[:-1], sizes[1:]):
        lin = nn.Linear(a, b)
        nn.init.orthogonal_(lin.weight, 2 ** 0.5)
        nn.init.zeros_(lin.bias)
        layers += [lin, nn.ReLU()]
    last = nn.Linear(sizes[-1], out)
    nn.init.orthogonal_(last.weight, gain_last)
    nn.init.zeros_(last.bias)
    layers.append(last)
    return nn.Sequential(*layers)


def select_absent_actor(actor: nn.Module, absent_actors: nn.ModuleDict, state: Tensor,
                        obs: Mapping[str, Tensor]) -> Tensor:
    """``actor(state)``, replaced row by row by ``absent_actors[m](state)`` where
    modality m's presence flag is False (flags (B,) or (T, B), like ``state``'s leading
    dimensions); a modality whose flag the observation lacks is present."""
    head = actor(state)
    for name in reversed(list(absent_actors.keys())):
        flag = obs.get(presence_key(name))
        if flag is None:
            continue
        present = flag if flag.dtype == torch.bool else flag.to(torch.bool)
        head = torch.where(present.unsqueeze(-1), head, absent_actors[name](state))
    return head


class Act(NamedTuple):
    actions: Tensor
    log_prob: Tensor
    value: Tensor
    h: Tensor | None


class Evaluation(NamedTuple):
    log_prob: Tensor
    entropy: Tensor
    value: Tensor
    state: Tensor  # the actor's fused state, for auxiliary losses
    features: dict[str, Tensor] | None
    present: dict[str, Tensor] | None


class ActorCritic(nn.Module):
    """Perception trunk + actor head (+ critic head).

    Args:
        obs_spec, action_spec: the env's contract.
        model: PerceptionConfig settings (encoders, memory).
        fusion: fusion settings (``method`` and its options).
        policy: PolicyConfig settings.
        privileged_dim: size of the privileged state the critic reads (0 = none).
    """

    def __init__(self, obs_spec: ObsSpec, action_spec: ActionSpec,
                 model: Mapping[str, Any] | None = None, fusion: Mapping[str, Any] | None = None,
                 policy: PolicyConfig | None = None, privileged_dim: int = 0) -> None:
        super().__init__()
        self.obs_spec, self.action_spec = obs_spec, action_spec
        self.cfg = policy or PolicyConfig()
        self.trunk = PerceptionModel(obs_spec, model, fusion)
        self.critic_trunk = (PerceptionModel(obs_spec, model, fusion)
                             if self.cfg.separate_critic else None)
        d = self.trunk.out_dim
        actor_sizes = [d] if self.trunk.fusion.linear_readout else [d, *self.cfg.actor_hidden]
        self.actor = mlp(actor_sizes, action_spec.dim, gain_last=0.01)
        unknown = sorted(set(self.cfg.actor_when_absent) - set(obs_spec.names))
        if unknown:
            raise ConfigError(f"policy.actor_when_absent names {unknown}, which the "
                              f"observation lacks; it has {', '.join(obs_spec.names)}")
        self.absent_actors = nn.ModuleDict({m: mlp(actor_sizes, action_spec.dim, gain_last=0.01)
                                            for m in self.cfg.actor_when_absent})
        self.privileged_dim = privileged_dim if self.cfg.privileged_critic else 0
        self.critic = mlp([d + self.privileged_dim, *self.cfg.critic_hidden], 1)
        self.continuous = action_spec.kind == "continuous"
        if self.continuous:
            self.log_std = nn.Parameter(torch.full((action_spec.dim,), self.cfg.init_log_std))
            self.register_buffer("low", torch.tensor(action_spec.low).expand(action_spec.dim))
            self.register_buffer("high", torch.tensor(action_spec.high).expand(action_spec.dim))

    # -- pieces --------------------------------------------------------------------------

    @property
    def recurrent(self) -> bool:
        return self.trunk.recurrent

    @property
    def hidden_size(self) -> int:
        """Size of the recurrent state (actor, and critic when separate); 0 = none."""
        h = self.trunk.cfg.memory
        return h * (2 if self.critic_trunk is not None else 1) if h else 0

    def initial_state(self, batch: int) -> Tensor | None:
        if not self.hidden_size:
            return None
        return torch.zeros(batch, self.hidden_size, device=self.actor[-1].weight.device)

    def frontend(self, obs: Mapping[str, Tensor]) -> dict[str, Tensor]:
        return self.trunk.frontend(obs)

    def action_layout(self) -> tuple[tuple[int, ...], torch.dtype]:
        """(shape, dtype) of one stored action: an index, or a continuous vector."""
        if self.continuous:
            return (self.action_spec.dim,), torch.float32
        return (), torch.long

    def head(self, state: Tensor, obs: Mapping[str, Tensor]) -> Tensor:
        """The actor's output: ``actor``, or where a modality of ``actor_when_absent`` is
        absent (its ``<name>_present`` flag False) that modality's own head; the first
        listed wins where several are absent."""
        return select_absent_actor(self.actor, self.absent_actors, state, obs)

    def distribution(self, head: Tensor) -> Distribution:
        if self.continuous:
            return Normal(head, self.log_std.exp().expand_as(head))
        return Categorical(logits=head)

    def _split_h(self, h: Tensor | None) -> tuple[Tensor | None, Tensor | None]:
        if h is None or self.critic_trunk is None:
            return h, h
        m = self.trunk.cfg.memory
        return h[..., :m], h[..., m:]

    def _value(self, state: Tensor, privileged: Tensor | None) -> Tensor:
        if self.privileged_dim:
            if privileged is None:
                raise ValueError("this critic reads privileged state; pass privileged=...")
            state = torch.cat([state, privileged], dim=-1)
        return self.critic(state).squeeze(-1)

    # -- acting and evaluating --------------------------------------------------------------

    def act(self, obs: Mapping[str, Tensor], h: Tensor | None = None,
            privileged: Tensor | None = None, deterministic: bool = False,
            frontend_done: bool = False) -> Act:
        """Sample (or take the mode of) actions for a batch; also the value and new state."""
        h_actor, h_critic = self._split_h(h)
        state, h_actor = self.trunk(obs, h_actor, frontend_done)
        if self.critic_trunk is not None:
            cstate, h_critic = self.critic_trunk(obs, h_critic, frontend_done)
            h_new = torch.cat([h_actor, h_critic], -1) if h_actor is not None else None
        else:
            cstate, h_new = state, h_actor
        head = self.head(state, obs)
        dist = self.distribution(head)
        if deterministic:
            actions = head if self.continuous else head.argmax(-1)
        else:
            actions = dist.sample()
        log_prob = dist.log_prob(actions)
        if self.continuous:
            log_prob = log_prob.sum(-1)
        return Act(actions, log_prob, self._value(cstate, privileged), h_new)

    def evaluate(self, obs: Mapping[str, Tensor], actions: Tensor, h0: Tensor | None = None,
                 starts: Tensor | None = None, privileged: Tensor | None = None,
                 frontend_done: bool = False, with_features: bool = False) -> Evaluation:
        """Log-probabilities, entropies and values of taken actions.

        Feed-forward: a flat batch (B, ...). Recurrent: (T, B, ...) sequences
        with the state ``h0`` (B, H) at their first step and ``starts`` (T, B)
        marking steps that begin an episode; outputs are (T, B).
        """
        features = present = None
        if self.recurrent:
            if starts is None:
                raise ValueError("a recurrent policy evaluates (T, B) sequences; pass starts")
            h_actor, h_critic = self._split_h(h0)
            state = self.trunk.forward_sequence(obs, h_actor, starts, frontend_done)
            cstate = (self.critic_trunk.forward_sequence(obs, h_critic, starts, frontend_done)
                      if self.critic_trunk is not None else state)
        else:
            features, present = self.trunk.encode(obs, frontend_done)
            state = self.trunk.fuse(features, present)
            cstate = (self.critic_trunk(obs, None, frontend_done)[0]
                      if self.critic_trunk is not None else state)
        dist = self.distribution(self.head(state, obs))
        log_prob, entropy = dist.log_prob(actions), dist.entropy()
        if self.continuous:
            log_prob, entropy = log_prob.sum(-1), entropy.sum(-1)
        value = self._value(cstate, privileged)
        if not with_features:
            features = present = None
        return Evaluation(log_prob, entropy, value, state, features, present)

    def clip_actions(self, actions: Tensor) -> Tensor:
        """Continuous actions within the action space's bounds (discrete: unchanged)."""
        if not self.continuous:
            return actions
        return torch.maximum(torch.minimum(actions, self.high), self.low)


class DeterministicPolicy(nn.Module):
    """What a robot runs: raw observations (+ state) -> the greedy action (and new state).

    Discrete: the logits and the argmax action; continuous: the mean clipped
    to the bounds. With ``value`` it also returns the critic's value (the
    critic must read sensors only). Exported by ``deploy.export`` as one graph.
    """

    def __init__(self, policy: ActorCritic, value: bool = False) -> None:
        super().__init__()
        if value and policy.privileged_dim:
            raise ValueError("this critic reads privileged state, which a robot lacks; "
                             "export without the value (value=False)")
        self.trunk = policy.trunk
        self.actor = policy.actor
        self.absent_actors = policy.absent_actors
        self.continuous = policy.continuous
        self.with_value = value
        self.critic = policy.critic if value else None
        self.critic_trunk = policy.critic_trunk if value else None
        self.memory = policy.trunk.cfg.memory if policy.recurrent else 0
        if self.continuous:
            self.register_buffer("low", policy.low.clone())
            self.register_buffer("high", policy.high.clone())

    def forward(self, obs: Mapping[str, Tensor], h: Tensor | None = None
                ) -> tuple[Tensor, ...]:
        """``(action, head, h_new)``; with ``value``: ``(action, head, value, h_new)``.

        With a separate recurrent critic, ``h`` holds the actor's state then
        the critic's (as in training).
        """
        h_actor = h_critic = h
        if h is not None and self.critic_trunk is not None:
            h_actor, h_critic = h[..., :self.memory], h[..., self.memory:]
        state, h_new = self.trunk(obs, h_actor)
        head = select_absent_actor(self.actor, self.absent_actors, state, obs)
        if self.continuous:
            action = torch.maximum(torch.minimum(head, self.high), self.low)
        else:
            action = head.argmax(-1)
        if not self.with_value:
            return action, head, h_new
        cstate = state
        if self.critic_trunk is not None:
            cstate, h_critic = self.critic_trunk(obs, h_critic)
            if h_new is not None:
                h_new = torch.cat([h_new, h_critic], -1)
        value = self.critic(cstate).squeeze(-1)
        return action, head, value, h_new
