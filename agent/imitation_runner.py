"""The imitation runner: collection with a teacher, the training loop, logging, checkpoints.

Everything algorithmic is in :mod:`agent.imitation`. A run is managed as
:class:`agent.runner.OnPolicyRunner` manages one: seeding, ``metrics.jsonl``
and TensorBoard through ``RunLogger`` (step = env-steps), checkpoints with the
same meta keys (``load_trained`` loads them), resume, periodic and final
evaluation, ``max_minutes``, ``train_summary.json``, DDP.

BC collects ``dataset_steps`` teacher steps, then trains ``epochs`` epochs;
its epochs all happen at the same env-step count, so their records share that
step (each carries ``epoch``; TensorBoard's wall-time axis separates them) and
each checkpoint replaces the previous one. A resumed BC run collects its
dataset again (the teacher and the worlds are seeded, so it is the same data)
and continues with the next epoch. DAgger's round i executes the teacher's
action with probability ``beta_i`` (per step and world), else the student's,
labels every visited state with the teacher's action, adds the round to the
aggregate and trains on it. The aggregate is not checkpointed (it can take
gigabytes): a resumed DAgger run continues its rounds with a fresh aggregate.
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from agent.checkpoint import capture_rng, check_run_dir, load_checkpoint, save_checkpoint
from agent.config import RunSettings
from agent.distributed import DistInfo, all_mean, average_buffers, broadcast_module
from agent.evaluate import evaluate_on_new_worlds
from agent.imitation import BCConfig, DAggerConfig, Imitation, ImitationDataset, make_teacher
from agent.logger import METRICS_FILE, RunLogger, read_metrics
from agent.observations import ObservationPipeline
from agent.runner import TrainSetup, build_run_parts
from perception.settings import ConfigError, config_from_kwargs

CONFIGS: dict[str, type] = {"bc": BCConfig, "dagger": DAggerConfig}
BC_BLOCK_STEPS = 256  # BC collects in blocks of at most this many steps per world


class ImitationRunner:
    """Trains an ActorCritic student by BC or DAgger; see the module docstring."""

    def __init__(self, setup: TrainSetup, run_dir: Path, dist_info: DistInfo | None = None
                 ) -> None:
        self.setup, self.run_dir = setup, Path(run_dir)
        self.run: RunSettings = setup.run
        self.dist = dist_info or DistInfo()
        name = setup.agent.get("name")
        if name not in CONFIGS:
            raise ConfigError(f"agent.name={name!r} is not an imitation algorithm; "
                              f"use one of {sorted(CONFIGS)}")
        self.cfg: BCConfig | DAggerConfig = config_from_kwargs(CONFIGS[name], setup.agent,
                                                               f"agent {name}")
        self.is_bc = isinstance(self.cfg, BCConfig)
        check_run_dir(self.run_dir, self.run.resume)
        seed = self.run.seed + 7919 * self.dist.rank
        parts = build_run_parts(setup, "imitation")
        self.device, self.env, self.policy = parts.device, parts.env, parts.policy
        self.obs_spec, self.action_spec = parts.obs_spec, parts.action_spec  # the student's
        priv_dim = self.policy.privileged_dim
        broadcast_module(self.policy, self.dist)
        self.teacher = make_teacher(self.cfg.teacher, self.env, parts.env_spec, self.action_spec,
                                    self.device)  # sees every sensor of the env
        self.alg = Imitation(self.policy, self.cfg, self.device, self.dist)
        self.seed = seed
        self.alg.generator.manual_seed(seed)
        self.mix_generator = torch.Generator().manual_seed(seed + 1)
        torch.manual_seed(seed)  # weights made: each rank now samples actions of its own
        self.pipeline = ObservationPipeline.for_training(self.obs_spec, self.policy, self.device,
                                                         self.run, parts.randomizer, seed + 2)
        self.env_seed = seed
        self.iteration = 0  # epochs (BC) or rounds (DAgger) done
        self.env_steps = 0
        self.data: ImitationDataset | None = None
        self.meta = {"config": setup.to_dict(), "obs_spec": self.obs_spec.to_json(),
                     "action_spec": self.action_spec.to_json(), "privileged_dim": priv_dim}
        # collection state
        self.obs: dict[str, np.ndarray] | None = None
        self.h: torch.Tensor | None = None
        self.starts: torch.Tensor | None = None
        self._fresh = False  # the worlds were just reset
        n = self.env.num_envs
        self.ret, self.length = np.zeros(n), np.zeros(n, np.int64)
        self.recent: dict[str, list[float]] = {k: [] for k in
                                               ("return", "length", "success", "spl",
                                                "collisions")}

    def close(self) -> None:
        self.env.close()

    # -- sizes -------------------------------------------------------------------------------

    @property
    def worlds(self) -> int:
        """Worlds stepped per batch step over all ranks."""
        return self.env.num_envs * self.dist.world_size

    def _block_plan(self) -> tuple[int, int]:
        """(blocks to collect, steps per world in each block) for BC, or per round."""
        if self.is_bc:
            steps = min(self.cfg.dataset_steps, self.run.total_steps)
            per_world = math.ceil(steps / self.worlds)
            blocks = math.ceil(per_world / BC_BLOCK_STEPS)
            return blocks, math.ceil(per_world / blocks)
        return 1, math.ceil(self.cfg.steps_per_round / self.worlds)

    # -- checkpoints ---------------------------------------------------------------------------

    def _generators(self) -> list[torch.Generator]:
        return [self.alg.generator, self.mix_generator, self.pipeline.generator]

    def save(self) -> Path | None:
        if not self.dist.is_main:
            return None
        meta = {**self.meta, "iteration": self.iteration, "env_steps": self.env_steps,
                "dataset_size": self.data.size if self.data is not None else 0}
        return save_checkpoint(self.run_dir / "checkpoints", self.env_steps, self.alg.modules(),
                               meta, rng=capture_rng(self._generators()),
                               keep=self.run.keep_checkpoints)

    def resume(self) -> Any:
        """Load the run's last checkpoint: weights, optimizer and counters (RNG: returned)."""
        expect = {k: self.meta[k] for k in ("obs_spec", "action_spec", "privileged_dim")}
        loaded = load_checkpoint(self.run_dir / "checkpoints", self.alg.modules(), expect,
                                 map_location=self.device)
        agent = loaded.meta.get("config", {}).get("agent", {}).get("name")
        if agent != self.cfg.name:
            raise ConfigError(f"run {self.run_dir} was trained with agent={agent}; resume it "
                              f"with agent={agent} or start a new run (name=...)")
        self.iteration = int(loaded.meta["iteration"])
        self.env_steps = int(loaded.meta["env_steps"])
        if not self.is_bc:  # the worlds restart from a seed of their own for this round
            self.env_seed = self.env_seed + 104729 * self.iteration
        return loaded.rng

    def _restore_rng(self, rng: Any) -> None:
        """Put the RNGs back as saved; the states saved are rank 0's, so other ranks
        draw streams of their own for this point of the run."""
        if rng is None:
            return
        rng.restore(self._generators())
        if not self.dist.is_main:
            s = self.seed + 104729 * self.iteration
            for i, g in enumerate(self._generators()):
                g.manual_seed(s + i)
            torch.manual_seed(s)

    def _drop_records_after(self, epoch: int) -> None:
        """BC resume: its epochs share one step, so drop the killed run's later epochs here."""
        path = self.run_dir / METRICS_FILE
        if not self.dist.is_main or not path.exists():
            return
        kept = [r for r in read_metrics(path) if r.get("epoch", 0) <= epoch]
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text("".join(json.dumps(r) + "\n" for r in kept), encoding="utf-8")
        tmp.replace(path)

    # -- collection ----------------------------------------------------------------------------

    def _reset_worlds(self, seed: int | None) -> None:
        self.obs, _ = self.env.reset(seed=seed)
        n = self.env.num_envs
        self.h = self.policy.initial_state(n)
        self.teacher.episode_ends(np.ones(n, bool))
        self.pipeline.new_episodes(np.ones(n, bool))
        self.starts = torch.ones(n, dtype=torch.bool, device=self.device)
        self.ret[:], self.length[:] = 0.0, 0
        self._fresh = True

    @torch.no_grad()
    def _collect_block(self, steps: int, beta: float, update_normalizers: bool) -> None:
        """`steps` batch steps; the teacher labels each state, acts with probability `beta`."""
        data, n = self.data, self.env.num_envs
        if self.policy.recurrent and not self._fresh:  # sequences start at episode starts
            self._reset_worlds(None)
        self._fresh = False
        for v in self.recent.values():  # episode statistics of this block's policy
            v.clear()
        rewards = torch.zeros(steps, n, device=self.device)
        dones = torch.zeros(steps, n, dtype=torch.bool, device=self.device)
        self.policy.eval()
        for t in range(steps):
            x = self.pipeline(self.obs, train=True)
            if update_normalizers:
                self.policy.trunk.update_normalizers(x, frontend_done=True)
            labels = self.teacher.actions(self.obs, self.pipeline.episode_absent())
            priv = (torch.as_tensor(self.env.privileged_state(), device=self.device)
                    if self.policy.privileged_dim else None)
            if data is not None:
                data.write(t, x, labels, self.starts, priv)
            actions = labels
            if beta < 1.0:
                out = self.policy.act(x, self.h, priv, deterministic=not self.cfg.sample_student,
                                      frontend_done=True)
                self.h = out.h
                student = self.policy.clip_actions(out.actions)
                teacher_acts = torch.rand(n, generator=self.mix_generator) < beta
                mask = teacher_acts.to(self.device)
                if student.dim() > 1:
                    mask = mask[:, None]
                actions = torch.where(mask, labels.to(student.dtype), student)
            self.obs, reward, term, trunc, info = self.env.step(actions.cpu().numpy())
            done = np.logical_or(term, trunc)
            rewards[t] = torch.as_tensor(reward, dtype=torch.float32, device=self.device)
            done_t = torch.as_tensor(done, device=self.device)
            dones[t] = done_t
            self.ret += reward
            self.length += 1
            if done.any():
                self._record_episodes(done, info)
                self.pipeline.new_episodes(done)
                self.teacher.episode_ends(done)
                if self.h is not None:
                    self.h[done_t] = 0.0
            self.starts = done_t
        if data is not None:
            data.finish_block(rewards, dones, self.cfg.gamma)

    def _record_episodes(self, done: np.ndarray, info: dict[str, Any]) -> None:
        self.recent["return"].extend(self.ret[done].tolist())
        self.recent["length"].extend(self.length[done].tolist())
        fi = info.get("final_info", {})
        for k in ("success", "spl", "collisions"):
            if k in fi:
                self.recent[k].extend(np.asarray(fi[k])[done].astype(float).tolist())
        self.ret[done], self.length[done] = 0.0, 0

    def _new_dataset(self, blocks: int, steps: int) -> ImitationDataset:
        obs, _ = self.env.reset(seed=self.env_seed)
        example = self.pipeline(obs, train=False)
        shape = (self.action_spec.dim,) if self.policy.continuous else ()
        dtype = torch.float32 if self.policy.continuous else torch.long
        return ImitationDataset(blocks, steps, self.env.num_envs, example, shape, dtype,
                                self.policy.privileged_dim, self.cfg.half_storage, self.device)

    # -- the loop ------------------------------------------------------------------------------

    def _time_up(self, t_start: float) -> bool:
        limit = 60 * self.run.max_minutes
        up = bool(limit) and time.perf_counter() - t_start > limit
        return all_mean([float(up)], self.dist)[0] > 0  # every rank stops together

    def _log(self, logger: RunLogger, metrics: dict[str, float], episodes: bool = False
             ) -> None:
        """Log on rank 0 the means over ranks (every rank calls it).

        With `episodes`, the recent episodes' statistics too, reduced as sums and counts,
        so every rank sends the same list while some rank has not ended an episode yet.
        """
        keys = sorted(metrics)
        out = dict(zip(keys, all_mean([metrics[k] for k in keys], self.dist)))
        if episodes:
            names = sorted(self.recent)
            totals = all_mean([x for k in names for x in (float(np.sum(self.recent[k])),
                                                          float(len(self.recent[k])))],
                              self.dist)
            for i, k in enumerate(names):
                if totals[2 * i + 1] > 0:
                    out[f"episode_{k}"] = totals[2 * i] / totals[2 * i + 1]
        logger.log(self.env_steps, out)

    def learn(self) -> dict[str, Any]:
        """Collect, train, save and evaluate; returns the run's summary."""
        run, cfg = self.run, self.cfg
        t_start = time.perf_counter()
        rng = self.resume() if run.resume else None
        resumed = bool(run.resume)
        if self.is_bc and resumed:
            self._drop_records_after(self.iteration)
        blocks, steps = self._block_plan()
        total = blocks * steps * self.worlds if self.is_bc else min(
            cfg.rounds * steps * self.worlds, run.total_steps)
        logger = RunLogger(self.run_dir, total, enabled=self.dist.is_main,
                           tensorboard=run.tensorboard, progress=run.progress,
                           resume_step=self.env_steps if run.resume else None,
                           return_key="episode_return", success_key="episode_success")
        if self.is_bc:
            self.data = self._new_dataset(blocks, steps)
        else:
            capacity = max(1, cfg.max_dataset // (steps * self.env.num_envs))
            self.data = self._new_dataset(capacity, steps)
        logger.message(f"{cfg.name}: teacher {cfg.teacher}; dataset of up to "
                       f"{self.data.capacity * steps * self.env.num_envs:,} samples "
                       f"({self.data.nbytes / 2 ** 20:,.0f} MiB per rank)")
        self._reset_worlds(self.env_seed)
        try:
            if self.is_bc:
                self._learn_bc(logger, blocks, steps, resumed, rng, t_start)
            else:
                self._restore_rng(rng)
                self._learn_dagger(logger, steps, t_start)
            self.save()
            train_seconds = time.perf_counter() - t_start
            final: dict[str, Any] = {}
            if self.dist.is_main:
                final = self.evaluate(run.eval_episodes)
                sampled = self.evaluate(run.eval_episodes, deterministic=False)
                final.update({f"sampled_{k}": v for k, v in sampled.items()
                              if isinstance(v, float)})
                self._log_eval(logger, final)
        finally:
            logger.close()
        summary = {"agent": cfg.name, "teacher": cfg.teacher, "iterations": self.iteration,
                   "env_steps": self.env_steps, "dataset_size": self.data.size,
                   "train_seconds": train_seconds, "final_eval": final}
        if self.dist.is_main:
            (self.run_dir / "train_summary.json").write_text(json.dumps(summary, indent=2))
        return summary

    def _learn_bc(self, logger: RunLogger, blocks: int, steps: int, resumed: bool, rng: Any,
                  t_start: float) -> None:
        cfg = self.cfg
        t0 = time.perf_counter()
        for _ in range(blocks):  # a resumed run collects the same data again, silently
            if self._time_up(t_start):
                return
            self._collect_block(steps, 1.0, update_normalizers=not resumed)
            if not resumed:
                self.env_steps += steps * self.worlds
                self._log(logger, {"epoch": 0.0, "dataset_size": float(self.data.size),
                                   "collect_seconds": time.perf_counter() - t0}, episodes=True)
        average_buffers(self.policy, self.dist)
        self._restore_rng(rng)
        while self.iteration < cfg.epochs and not self._time_up(t_start):
            t0 = time.perf_counter()
            stats = self.alg.update(self.data, 1, (self.iteration / cfg.epochs,
                                                   (self.iteration + 1) / cfg.epochs))
            self.iteration += 1
            self._log(logger, {**stats, "epoch": float(self.iteration),
                               "update_seconds": time.perf_counter() - t0})
            self._after_iteration(logger)

    def _learn_dagger(self, logger: RunLogger, steps: int, t_start: float) -> None:
        cfg = self.cfg
        round_steps = steps * self.worlds
        rounds = min(cfg.rounds, max(1, self.run.total_steps // round_steps))  # for the LR
        while (self.iteration < cfg.rounds and self.env_steps + round_steps <= max(
                self.run.total_steps, round_steps) and not self._time_up(t_start)):
            t0 = time.perf_counter()
            beta = cfg.beta(self.iteration)
            self._collect_block(steps, beta, update_normalizers=True)
            average_buffers(self.policy, self.dist)
            t_collect = time.perf_counter() - t0
            stats = self.alg.update(self.data, cfg.epochs, (self.iteration / rounds,
                                                            (self.iteration + 1) / rounds))
            self.iteration += 1
            self.env_steps += round_steps
            self._log(logger, {**stats, "beta": beta,
                               "round": float(self.iteration),
                               "dataset_size": float(self.data.size),
                               "collect_seconds": t_collect,
                               "update_seconds": time.perf_counter() - t0 - t_collect,
                               "env_steps_per_s": round_steps / (time.perf_counter() - t0)},
                      episodes=True)
            self._after_iteration(logger)

    def _after_iteration(self, logger: RunLogger) -> None:
        run = self.run
        if self.iteration % run.checkpoint_every == 0:
            self.save()
        if run.eval_every and self.iteration % run.eval_every == 0 and self.dist.is_main:
            self._log_eval(logger, self.evaluate(run.eval_episodes))

    def _log_eval(self, logger: RunLogger, result: dict[str, Any]) -> None:
        """Rank 0 only: an evaluation's numbers as ``eval/...``."""
        metrics = {f"eval/{k}": v for k, v in result.items() if isinstance(v, float)}
        if self.is_bc:
            metrics["epoch"] = float(self.iteration)
        logger.log(self.env_steps, metrics)

    def evaluate(self, episodes: int, num_envs: int = 32, deterministic: bool = True
                 ) -> dict[str, Any]:
        try:
            return evaluate_on_new_worlds(self.policy, self.setup.env, self.pipeline, episodes,
                                          seed=10_000 + self.run.seed, num_envs=num_envs,
                                          deterministic=deterministic)
        finally:
            self.policy.train()


__all__ = ["ImitationRunner"]
