"""An actor head of its own for a modality's absence (``policy.actor_when_absent``)."""

from __future__ import annotations

import pytest
import torch

from agent.config import PolicyConfig
from agent.policy import ActorCritic
from agent.run_setup import action_spec_of
from envs.factory import make_vector_env, obs_spec_of
from perception.settings import ConfigError
from perception.spec import presence_key
from tests.agent.test_ppo_runner import AVN

WORLDS = 8


def _policy_and_obs(memory: int = 0) -> tuple[ActorCritic, dict[str, torch.Tensor]]:
    """A deaf-head policy on the small world and one observation; worlds 1, 3, 5, 7 deaf."""
    torch.manual_seed(0)
    env = make_vector_env(AVN, WORLDS)
    raw, _ = env.reset(seed=0)
    spec, actions = obs_spec_of(env), action_spec_of(env)
    env.close()
    policy = ActorCritic(spec, actions, model={"memory": memory},
                         policy=PolicyConfig(actor_when_absent=["audio"]))
    obs = {k: torch.as_tensor(v) for k, v in raw.items()}
    obs[presence_key("audio")] = torch.arange(WORLDS) % 2 == 0
    return policy, obs


def test_the_absent_modalitys_head_acts_exactly_where_it_is_absent() -> None:
    policy, obs = _policy_and_obs()
    deaf = ~obs[presence_key("audio")]
    with torch.no_grad():
        state, _ = policy.trunk(obs)
        head = policy.head(state, obs)
        torch.testing.assert_close(head[~deaf], policy.actor(state)[~deaf])
        torch.testing.assert_close(head[deaf], policy.absent_actors["audio"](state)[deaf])
        before = policy.act(obs, deterministic=True).log_prob
        for p in policy.absent_actors["audio"].parameters():
            p.add_(torch.randn_like(p))  # another deaf head: only the deaf rows change
        after = policy.act(obs, deterministic=True).log_prob
        torch.testing.assert_close(after[~deaf], before[~deaf])
        assert not torch.allclose(after[deaf], before[deaf])
        flagless = {k: v for k, v in obs.items() if k != presence_key("audio")}
        torch.testing.assert_close(policy.head(state, flagless), policy.actor(state))


def test_only_the_deaf_rows_train_the_deaf_head() -> None:
    policy, obs = _policy_and_obs()
    deaf = ~obs[presence_key("audio")]
    actions = torch.zeros(WORLDS, dtype=torch.long)
    ev = policy.evaluate({k: v[~deaf] for k, v in obs.items()}, actions[~deaf])
    ev.log_prob.sum().backward()
    assert all(p.grad is None or not p.grad.any() for p in policy.absent_actors.parameters())
    assert all(p.grad is not None and p.grad.any() for p in policy.actor.parameters())
    policy.zero_grad(set_to_none=True)
    policy.evaluate({k: v[deaf] for k, v in obs.items()}, actions[deaf]).log_prob.sum().backward()
    assert all(p.grad is None or not p.grad.any() for p in policy.actor.parameters())
    assert all(p.grad is not None and p.grad.any() for p in policy.absent_actors.parameters())


def test_a_recurrent_policy_selects_the_head_per_step_of_a_sequence() -> None:
    """evaluate on (T, B) sequences gives the log-probs act gave step by step."""
    policy, obs = _policy_and_obs(memory=8)
    steps = 3
    h = policy.initial_state(WORLDS)
    h0, acted, taken = h, [], []
    seq = []
    with torch.no_grad():
        for t in range(steps):
            step = dict(obs)
            step[presence_key("audio")] = (torch.arange(WORLDS) + t) % 2 == 0  # flips
            out = policy.act(step, h)
            h = out.h
            seq.append(step)
            acted.append(out.log_prob)
            taken.append(out.actions)
        stacked = {k: torch.stack([s[k] for s in seq]) for k in obs}
        starts = torch.zeros(steps, WORLDS, dtype=torch.bool)
        ev = policy.evaluate(stacked, torch.stack(taken), h0, starts)
    torch.testing.assert_close(ev.log_prob, torch.stack(acted), atol=1e-5, rtol=1e-5)


def test_a_head_for_a_modality_the_world_lacks_or_named_twice_is_refused() -> None:
    env = make_vector_env(AVN, 2)
    spec, actions = obs_spec_of(env), action_spec_of(env)
    env.close()
    with pytest.raises(ConfigError, match=r"actor_when_absent names \['sonar'\].*rgb"):
        ActorCritic(spec, actions, policy=PolicyConfig(actor_when_absent=["sonar"]))
    with pytest.raises(ConfigError, match="names a modality twice"):
        PolicyConfig(actor_when_absent=["audio", "audio"]).validate()
