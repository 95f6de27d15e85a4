"""An exported file driving its own world: closed-loop episodes in onnxruntime, no torch.

Used to judge a variant of a file (int8) by what matters, the policy's
success on worlds it never saw, next to the float32 file on the same worlds.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from deploy.model import Model
from envs.episodes import EpisodeQuota
from envs.factory import make_vector_env
from envs.metrics import EpisodeTally, episode_metrics_of


def evaluate_model(model: Model, env_cfg: Mapping[str, Any], episodes: int, seed: int,
                   num_envs: int = 32) -> dict[str, Any]:
    """Greedy episodes of `model` on fresh worlds: mean return, length and the world's metrics.

    Each world runs a fixed share of the episodes (:class:`EpisodeQuota`), so
    short episodes are not over-counted.
    """
    env = make_vector_env(env_cfg, min(num_envs, episodes))
    try:
        obs, _ = env.reset(seed=seed)
        n = env.num_envs
        names = model.obs_spec.names
        h = model.initial_state(n)
        tally = EpisodeTally(n, episode_metrics_of(env))
        quota = EpisodeQuota(n, episodes)
        while not quota.complete:
            out = model.run(model.make_feed({k: obs[k] for k in names}, h=h), validate=False)
            obs, reward, term, trunc, info = env.step(out["action"])
            done = np.logical_or(term, trunc)
            tally.step(reward, done, info, counted=quota.count(done))
            if h is not None:
                h = out["h_out"].copy()
                h[done] = 0.0
    finally:
        env.close()
    return {"episodes": episodes, "seed": seed, **tally.report()}
