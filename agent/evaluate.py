"""Evaluation of a policy: episodes on fresh worlds, metrics as JSON, and a video."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch

from agent.observations import ObservationPipeline
from agent.policy import ActorCritic
from envs.episodes import EpisodeQuota
from envs.factory import make_vector_env
from envs.metrics import EpisodeTally, episode_metrics_of
from perception.spec import presence_key

#: A change made to every step's raw observation before the policy reads it
Perturbation = Callable[[dict[str, np.ndarray]], dict[str, np.ndarray]]


def evaluate_on_new_worlds(policy: ActorCritic, env_cfg: Mapping[str, Any],
                           pipeline: ObservationPipeline, episodes: int, seed: int,
                           num_envs: int = 32, deterministic: bool = True,
                           absent: Sequence[str] = (), per_episode: bool = False,
                           perturb: Perturbation | None = None) -> dict[str, Any]:
    """:func:`evaluate_policy` on a batch of at most `num_envs` worlds made for it, then closed."""
    env = make_vector_env(env_cfg, min(num_envs, episodes))
    try:
        return evaluate_policy(policy, env, pipeline, episodes, seed, deterministic, absent,
                               per_episode, perturb)
    finally:
        env.close()


@torch.no_grad()
def evaluate_policy(policy: ActorCritic, env: gym.vector.VectorEnv,
                    pipeline: ObservationPipeline, episodes: int, seed: int,
                    deterministic: bool = True, absent: Sequence[str] = (),
                    per_episode: bool = False, perturb: Perturbation | None = None
                    ) -> dict[str, Any]:
    """Run exactly `episodes` episodes (a fixed share per world, see EpisodeQuota); means.

    Besides return and length, the result has the mean of each metric the world
    declares (:func:`envs.metrics.episode_metrics_of`). The modalities in `absent`
    are switched off every step (presence flag False: the policy's own absent
    path). `per_episode` adds ``per_episode``: every episode's return, length and
    metrics, in the order they ended. `perturb` (e.g. sensor noise) gets every step's raw
    observation and returns the one the policy reads (presence flags
    ``<name>_present`` in it are honoured); None reads the world's own.
    """
    unknown = [m for m in absent if m not in pipeline.names]
    if unknown:
        raise ValueError(f"absent={list(absent)} names {unknown}, which the policy lacks; it "
                         f"reads {', '.join(pipeline.names)}")
    policy.eval()
    obs, _ = env.reset(seed=seed)
    n = env.num_envs
    h = policy.initial_state(n)
    tally = EpisodeTally(n, episode_metrics_of(env))
    quota = EpisodeQuota(n, episodes)
    while not quota.complete:
        x = pipeline(obs if perturb is None else perturb(obs), train=False)
        for m in absent:
            x[presence_key(m)] = torch.zeros_like(x[presence_key(m)])
        priv = (torch.as_tensor(env.privileged_state(), device=x[pipeline.names[0]].device)
                if policy.privileged_dim else None)  # a privileged critic's input (unused here)
        out = policy.act(x, h, priv, deterministic=deterministic, frontend_done=True)
        actions = policy.clip_actions(out.actions).cpu().numpy()
        obs, reward, term, trunc, info = env.step(actions)
        done = np.logical_or(term, trunc)
        tally.step(reward, done, info, counted=quota.count(done))
        if done.any() and out.h is not None:
            out.h[torch.as_tensor(done, device=out.h.device)] = 0.0
        h = out.h
    result: dict[str, Any] = {"episodes": episodes, **tally.report()}
    if per_episode:
        result["per_episode"] = {k: list(v) for k, v in tally.ended.items()
                                 if v or k in ("return", "length")}
    return result


def record_policy_video(policy: ActorCritic, env_cfg: Mapping[str, Any],
                        pipeline: ObservationPipeline, out: Path, episodes: int, seed: int,
                        deterministic: bool = True) -> dict[str, Any]:
    """An mp4 of `episodes` episodes of one world driven by `policy`."""
    from envs.show import record_video

    state = {"h": policy.initial_state(1)}
    # a privileged critic's input: its value is not used here, so zeros do
    priv = (torch.zeros(1, policy.privileged_dim, device=policy.actor[-1].weight.device)
            if policy.privileged_dim else None)

    @torch.no_grad()
    def act(obs: dict[str, np.ndarray]) -> np.ndarray:
        step = policy.act(pipeline(obs, train=False), state["h"], priv,
                          deterministic=deterministic, frontend_done=True)
        state["h"] = step.h
        return policy.clip_actions(step.actions).cpu().numpy()

    def reset() -> None:
        state["h"] = policy.initial_state(1)

    return record_video(env_cfg, out, episodes=episodes, seed=seed, policy=act,
                        label="policy  ", max_frames=600, on_episode_end=reset)
