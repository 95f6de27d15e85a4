"""The run skeleton every trainer shares; a trainer supplies how it collects and updates.

:class:`Runner` owns per-rank seeding, the run-folder guard, checkpoint meta,
save and resume, the logger, episode statistics (recorded per world and
all-reduced across ranks), the evaluation cadence, the time budget,
``train_summary.json`` and closing the env. A trainer (PPO in
:mod:`agent.runner`, BC and DAgger in :mod:`agent.imitation_runner`) sets
``config_type`` and implements :meth:`Runner.start` (what happens before the
first iteration), :meth:`Runner.iterate` (one collection and update) and
:meth:`Runner.finished`.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch

from agent.checkpoint import RNGState, check_run_dir, load_checkpoint, save_checkpoint
from agent.distributed import DistInfo, all_mean
from agent.evaluate import evaluate_on_new_worlds
from agent.logger import RunLogger
from agent.run_setup import RunParts, TrainSetup, build_run_parts
from envs.metrics import EpisodeTally, episode_metrics_of
from perception.settings import ConfigError


class Runner:
    """A training run of one algorithm into `run_dir`; see the module docstring."""

    config_type: ClassVar[type]  # the algorithm's settings (its `name` is agent=...)
    who: ClassVar[str] = "the runner"  # names the trainer in messages about the env
    episode_window: ClassVar[int | None] = None  # EpisodeTally's window
    logs_episodes: ClassVar[bool] = True  # each iteration's record has episode statistics

    def __init__(self, setup: TrainSetup, run_dir: Path, dist_info: DistInfo | None = None
                 ) -> None:
        self.setup, self.run_dir = setup, Path(run_dir)
        self.run = setup.run
        self.dist = dist_info or DistInfo()
        self.algorithm = self.config_type().name
        if not isinstance(setup.agent, self.config_type):
            raise ConfigError(f"agent={setup.agent.name} is not trained by the "
                              f"{self.algorithm} runner; train it with agent.training.make_runner")
        self.cfg = setup.agent
        check_run_dir(self.run_dir, self.run.resume)
        self.seed = self.run.rank_seed(self.dist.rank)
        self.parts: RunParts = build_run_parts(setup, self.who)
        self.device, self.env, self.policy = self.parts.device, self.parts.env, self.parts.policy
        self.obs_spec, self.action_spec = self.parts.obs_spec, self.parts.action_spec
        self.env_seed = self.seed
        self.iteration = 0
        self.env_steps = 0
        self.metrics = episode_metrics_of(self.env)
        self.episodes = EpisodeTally(self.env.num_envs, self.metrics, self.episode_window)
        self.meta = {"config": setup.to_dict(), "obs_spec": self.obs_spec.to_json(),
                     "action_spec": self.action_spec.to_json(),
                     "privileged_dim": self.policy.privileged_dim}
        self._t_start = time.perf_counter()
        self._seconds_before = 0.0  # a resumed run's training seconds before the kill

    # -- what a trainer supplies ---------------------------------------------------------------

    def start(self, logger: RunLogger, rng: RNGState | None) -> None:
        """Before the first iteration: reset the worlds, make buffers; `rng` is a resumed
        run's saved RNG state, to restore where this trainer's draws continue."""
        raise NotImplementedError

    def iterate(self, time_used: float) -> tuple[dict[str, float], int]:
        """One collection and update: (metrics to log, env-steps it took, all ranks).

        `time_used` is the fraction of ``max_minutes`` gone (0 without a limit).
        """
        raise NotImplementedError

    def finished(self) -> bool:
        raise NotImplementedError

    def planned_steps(self) -> int:
        """Env-steps the run will take (the progress bar's total)."""
        return self.run.total_steps

    def modules(self) -> dict[str, Any]:
        """What a checkpoint holds (state_dicts by name)."""
        return self.alg.modules()

    def generators(self) -> list[torch.Generator]:
        """RNG streams a checkpoint saves besides torch's, numpy's and Python's global ones."""
        return []

    def checkpoint_meta(self) -> dict[str, Any]:
        return {}

    def record_tags(self) -> dict[str, float]:
        """Added to every evaluation record (BC: its epoch)."""
        return {}

    def final_evaluation(self, logger: RunLogger) -> dict[str, Any]:
        """Rank 0, after the last save: the run's closing evaluation (none by default)."""
        return {}

    def summary_extra(self, final: dict[str, Any]) -> dict[str, Any]:
        return {}

    # -- the skeleton ----------------------------------------------------------------------------

    def learn(self) -> dict[str, Any]:
        """Train until the trainer is finished or ``max_minutes`` run out; save, summarise.

        ``max_minutes`` counts from this call (a resumed run gets the minutes again).
        The summary holds ``iterations``, ``env_steps``, ``train_seconds`` and
        ``median_env_steps_per_s``; it is also written to ``train_summary.json``.
        """
        run = self.run
        self._t_start = time.perf_counter()
        rng = self.resume() if run.resume else None
        logger = RunLogger(self.run_dir, self.planned_steps(), enabled=self.dist.is_main,
                           tensorboard=run.tensorboard, progress=run.progress,
                           resume_step=self.env_steps if run.resume else None,
                           bar=("episode_return", *(f"episode_{m.name}" for m in self.metrics)))
        speeds: list[float] = []  # env-steps/s of each iteration, updates included
        try:
            self.start(logger, rng)
            while not self.finished():
                used = self.time_used()
                if used >= 1.0:
                    break
                t0 = time.perf_counter()
                metrics, steps = self.iterate(used)
                self.iteration += 1
                self.env_steps += steps
                if steps:
                    speeds.append(steps / (time.perf_counter() - t0))
                    metrics["env_steps_per_s"] = speeds[-1]
                self.log(logger, metrics, episodes=self.logs_episodes)
                self.after_iteration(logger)
            self.save()
            train_seconds = time.perf_counter() - self._t_start
            final = self.final_evaluation(logger) if self.dist.is_main else {}
        finally:
            logger.close()
        summary = {"iterations": self.iteration, "env_steps": self.env_steps,
                   "train_seconds": train_seconds,
                   # the first iterations compile and warm up: left out of the median
                   "median_env_steps_per_s": float(np.median(speeds[2:] or speeds or [0.0])),
                   **self.summary_extra(final)}
        if self.dist.is_main:
            (self.run_dir / "train_summary.json").write_text(json.dumps(summary, indent=2))
        return summary

    def time_used(self) -> float:
        """Fraction of ``max_minutes`` gone, the mean over ranks (so they stop together)."""
        if not self.run.max_minutes:
            return 0.0
        used = (time.perf_counter() - self._t_start) / (60 * self.run.max_minutes)
        return all_mean([used], self.dist)[0]

    def log(self, logger: RunLogger, metrics: Mapping[str, float], episodes: bool) -> None:
        """Log on rank 0 the means over ranks (every rank calls it), with `episodes` the
        recent episodes' statistics too."""
        keys = sorted(metrics)
        out = dict(zip(keys, all_mean([metrics[k] for k in keys], self.dist)))
        if episodes:
            out.update(self.episodes.means(lambda xs: all_mean(xs, self.dist)))
        logger.log(self.env_steps, out)

    def after_iteration(self, logger: RunLogger) -> None:
        """Save and evaluate at the run's cadence."""
        run = self.run
        if self.iteration % run.checkpoint_every == 0:
            self.save()
        if run.eval_every and self.iteration % run.eval_every == 0 and self.dist.is_main:
            self.log_eval(logger, self.evaluate(run.eval_episodes))

    def log_eval(self, logger: RunLogger, result: Mapping[str, Any]) -> None:
        """Rank 0 only: an evaluation's numbers as ``eval/...``."""
        logger.log(self.env_steps, {**{f"eval/{k}": v for k, v in result.items()
                                       if isinstance(v, float)}, **self.record_tags()})

    def evaluate(self, episodes: int, num_envs: int = 32, deterministic: bool = True
                 ) -> dict[str, Any]:
        """The policy on worlds it never trained on (``run.eval_seed``)."""
        try:
            return evaluate_on_new_worlds(self.policy, self.setup.env, self.pipeline, episodes,
                                          seed=self.run.eval_seed, num_envs=num_envs,
                                          deterministic=deterministic)
        finally:
            self.policy.train()

    # -- checkpoints -----------------------------------------------------------------------------

    def save(self) -> Path | None:
        if not self.dist.is_main:
            return None
        meta = {**self.meta, "iteration": self.iteration, "env_steps": self.env_steps,
                "train_seconds": self._seconds_before + time.perf_counter() - self._t_start,
                **self.checkpoint_meta()}
        return save_checkpoint(self.run_dir / "checkpoints", self.env_steps, self.modules(), meta,
                               RNGState.capture(self.generators()),
                               self.run.keep_checkpoints or None)

    def resume(self) -> RNGState | None:
        """Load the run's last checkpoint: weights, optimizer and counters (RNG: returned)."""
        expect = {k: self.meta[k] for k in ("obs_spec", "action_spec", "privileged_dim")}
        loaded = load_checkpoint(self.run_dir / "checkpoints", self.modules(), expect,
                                 map_location=self.device)
        agent = loaded.meta.get("config", {}).get("agent", {}).get("name")
        if agent not in (None, self.algorithm):
            raise ConfigError(f"run {self.run_dir} was trained with agent={agent}; resume it "
                              f"with agent={agent} or start a new run (name=...)")
        self.iteration = int(loaded.meta["iteration"])
        self._seconds_before = float(loaded.meta.get("train_seconds", 0.0))
        self.env_steps = int(loaded.meta["env_steps"])
        return loaded.rng

    def close(self) -> None:
        self.env.close()


__all__ = ["Runner"]
