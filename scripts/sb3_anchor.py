"""The Stable-Baselines3 anchor of the learning curves: SB3's PPO on the same world.

SB3's PPO with ``MultiInputPolicy`` (its NatureCNN on the camera, MLPs on the
rest) and 8 ``SubprocVecEnv`` workers of the single AudioVisualNav env, its
default hyper-parameters, for a wall-clock budget. A model is saved every
``--every`` seconds of training (the saves are not counted); afterwards each
is evaluated greedily on the same unseen worlds as ours (seed 12345, a fixed
share of episodes per world), so its points sit on the same axes as
``sensorium demo``'s curve. Needs ``pip install stable-baselines3`` (not a
dependency of sensorium).

    python scripts/sb3_anchor.py --minutes 9 --out reports/curves/sb3.json
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time
from pathlib import Path
from typing import Any

import numpy as np

from envs.episodes import EVAL_SEED


def make_env(rank: int, seed: int) -> Any:
    def thunk() -> Any:
        import gymnasium as gym

        import envs  # noqa: F401  (registers the worlds)
        from envs.audiovisual_nav.config import AudioVisualNavConfig

        cfg = dataclasses.asdict(AudioVisualNavConfig())
        env = gym.make(cfg.pop("id"), **cfg)
        env.reset(seed=seed + rank)
        return env

    return thunk


def train(minutes: float, every: float, seed: int, root: Path) -> list[dict[str, Any]]:
    """SB3 PPO for `minutes` of training; a saved model every `every` seconds of it."""
    from stable_baselines3 import PPO
    from stable_baselines3.common.callbacks import BaseCallback
    from stable_baselines3.common.vec_env import SubprocVecEnv

    class Snapshots(BaseCallback):
        """Saves the model every `every` training seconds; stops at the budget."""

        def __init__(self) -> None:
            super().__init__()
            self.trained = 0.0  # training seconds, saves excluded
            self.last = time.perf_counter()
            self.saves: list[dict[str, Any]] = []

        def _on_step(self) -> bool:
            now = time.perf_counter()
            self.trained += now - self.last
            if self.trained >= every * (len(self.saves) + 1) or self.trained >= minutes * 60:
                path = root / f"sb3_{self.num_timesteps:09d}.zip"
                self.model.save(path)
                self.saves.append({"env_steps": int(self.num_timesteps),
                                   "minutes": self.trained / 60, "model": str(path)})
            self.last = time.perf_counter()
            return self.trained < minutes * 60

    root.mkdir(parents=True, exist_ok=True)
    venv = SubprocVecEnv([make_env(i, seed) for i in range(8)])
    try:
        model = PPO("MultiInputPolicy", venv, seed=seed, verbose=0, device="cpu")
        snapshots = Snapshots()
        model.learn(total_timesteps=10**9, callback=snapshots)
    finally:
        venv.close()
    return snapshots.saves


def evaluate(model_path: str, episodes: int) -> dict[str, Any]:
    """Greedy episodes of a saved SB3 model on our evaluation worlds (our batched env)."""
    from stable_baselines3 import PPO

    from envs.audiovisual_nav.config import AudioVisualNavConfig
    from envs.episodes import EpisodeQuota
    from envs.factory import make_vector_env
    from envs.metrics import EpisodeTally, episode_metrics_of

    model = PPO.load(model_path, device="cpu")
    env = make_vector_env(dataclasses.asdict(AudioVisualNavConfig()), min(32, episodes))
    try:
        obs, _ = env.reset(seed=EVAL_SEED)
        tally = EpisodeTally(env.num_envs, episode_metrics_of(env))
        quota = EpisodeQuota(env.num_envs, episodes)
        keys = list(model.observation_space.spaces)
        while not quota.complete:
            action, _ = model.predict({k: obs[k] for k in keys}, deterministic=True)
            obs, reward, term, trunc, info = env.step(np.asarray(action))
            done = np.logical_or(term, trunc)
            tally.step(reward, done, info, counted=quota.count(done))
    finally:
        env.close()
    return {"episodes": episodes, **tally.report()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=9.0)
    parser.add_argument("--every", type=float, default=60.0, help="seconds between saves")
    parser.add_argument("--episodes", type=int, default=50)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--root", default="runs/sb3_anchor")
    parser.add_argument("--out", default="reports/curves/sb3.json")
    args = parser.parse_args()
    t0 = time.perf_counter()
    saves = train(args.minutes, args.every, args.seed, Path(args.root))
    points = [{**s, **evaluate(s["model"], args.episodes)} for s in saves]
    report = {"anchor": "stable-baselines3 PPO, MultiInputPolicy, 8 SubprocVecEnv workers",
              "seed": args.seed, "minutes": args.minutes, "eval_seed": EVAL_SEED,
              "wall_seconds": time.perf_counter() - t0,
              "env_steps_per_s": saves[-1]["env_steps"] / (saves[-1]["minutes"] * 60),
              "points": points}
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2))
    for p in points:
        print(f"{p['minutes']:6.2f} min {p['env_steps']:>9,} steps: success "
              f"{p['success_rate']:.3f} SPL {p['spl']:.3f}")
    print(f"report: {out}")


if __name__ == "__main__":
    main()
