"""The imitation runners: collection with a teacher and the supervised update, for BC and DAgger.

Everything algorithmic is in :mod:`agent.imitation`, what every trainer shares
(seeding, logging with step = env-steps, checkpoints, resume, evaluation,
``max_minutes``, ``train_summary.json``, DDP) in :mod:`agent.base_runner`.
``ImitationRunner(setup, ...)`` makes the runner ``agent.name`` names.

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

import math
import time
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch

from agent.algorithms import BCConfig, DAggerConfig
from agent.base_runner import Runner
from agent.checkpoint import RNGState
from agent.distributed import DistInfo, average_buffers, broadcast_module
from agent.imitation import Imitation, ImitationDataset
from agent.logger import METRICS_FILE, RunLogger, truncate_after
from agent.observations import ObservationPipeline
from agent.run_setup import TrainSetup
from agent.teachers import make_teacher
from perception.settings import ConfigError

BC_BLOCK_STEPS = 256  # BC collects in blocks of at most this many steps per world


class ImitationRunner(Runner):
    """Trains an ActorCritic student from a teacher; see the module docstring."""

    who = "imitation"
    config_type: ClassVar[type[BCConfig] | type[DAggerConfig]]

    def __new__(cls, setup: TrainSetup, *args: Any, **kwargs: Any) -> ImitationRunner:
        if cls is ImitationRunner:
            name = setup.agent.name
            by_name = {c.config_type.name: c for c in (BCRunner, DAggerRunner)}
            if name not in by_name:
                raise ConfigError(f"agent.name={name!r} is not an imitation algorithm; "
                                  f"use one of {sorted(by_name)}")
            cls = by_name[name]
        return super().__new__(cls)

    def __init__(self, setup: TrainSetup, run_dir: Path, dist_info: DistInfo | None = None
                 ) -> None:
        super().__init__(setup, run_dir, dist_info)
        broadcast_module(self.policy, self.dist)
        self.teacher = make_teacher(self.cfg.teacher, self.env, self.parts.env_spec,
                                    self.action_spec, self.device)  # sees every sensor
        self.alg = Imitation(self.policy, self.cfg, self.device, self.dist)
        self.alg.generator.manual_seed(self.seed)
        self.mix_generator = torch.Generator().manual_seed(self.seed + 1)
        torch.manual_seed(self.seed)  # weights made: each rank now samples actions of its own
        self.pipeline = ObservationPipeline.for_training(self.obs_spec, self.policy, self.device,
                                                         self.run, self.parts.randomizer,
                                                         self.seed + 2)
        self.data: ImitationDataset | None = None
        # collection state
        self.obs: dict[str, np.ndarray] | None = None
        self.h: torch.Tensor | None = None
        self.starts: torch.Tensor | None = None
        self._fresh = False  # the worlds were just reset

    @property
    def worlds(self) -> int:
        """Worlds stepped per batch step over all ranks."""
        return self.env.num_envs * self.dist.world_size

    def block_plan(self) -> tuple[int, int]:
        """(blocks the dataset holds, steps per world in each block)."""
        raise NotImplementedError

    # -- checkpoints ---------------------------------------------------------------------------

    def generators(self) -> list[torch.Generator]:
        return [self.alg.generator, self.mix_generator, self.pipeline.generator]

    def checkpoint_meta(self) -> dict[str, Any]:
        return {"dataset_size": self.data.size if self.data is not None else 0}

    def _restore_rng(self, rng: RNGState | None) -> None:
        """Put the RNGs back as saved; the states saved are rank 0's, so other ranks
        draw streams of their own for this point of the run."""
        if rng is None:
            return
        rng.restore(self.generators())
        if not self.dist.is_main:
            s = self.run.rank_seed(self.dist.rank, self.iteration)
            for i, g in enumerate(self.generators()):
                g.manual_seed(s + i)
            torch.manual_seed(s)

    # -- collection ----------------------------------------------------------------------------

    def start(self, logger: RunLogger, rng: RNGState | None) -> None:
        blocks, steps = self.block_plan()
        self.data = self._new_dataset(blocks, steps)
        logger.message(f"{self.algorithm}: teacher {self.cfg.teacher}; dataset of up to "
                       f"{self.data.capacity * steps * self.env.num_envs:,} samples "
                       f"({self.data.nbytes / 2 ** 20:,.0f} MiB per rank)")
        self._reset_worlds(self.env_seed)

    def _reset_worlds(self, seed: int | None) -> None:
        self.obs, _ = self.env.reset(seed=seed)
        n = self.env.num_envs
        self.h = self.policy.initial_state(n)
        self.teacher.episode_ends(np.ones(n, bool))
        self.pipeline.new_episodes(np.ones(n, bool))
        self.starts = torch.ones(n, dtype=torch.bool, device=self.device)
        self.episodes.restart()
        self._fresh = True

    @torch.no_grad()
    def collect_block(self, steps: int, beta: float, update_normalizers: bool) -> None:
        """`steps` batch steps; the teacher labels each state, acts with probability `beta`."""
        data, n = self.data, self.env.num_envs
        if self.policy.recurrent and not self._fresh:  # sequences start at episode starts
            self._reset_worlds(None)
        self._fresh = False
        self.episodes.clear()  # episode statistics of this block's policy
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
                mask = (torch.rand(n, generator=self.mix_generator) < beta).to(self.device)
                if student.dim() > 1:
                    mask = mask[:, None]
                actions = torch.where(mask, labels.to(student.dtype), student)
            self.obs, reward, term, trunc, info = self.env.step(actions.cpu().numpy())
            done = np.logical_or(term, trunc)
            rewards[t] = torch.as_tensor(reward, dtype=torch.float32, device=self.device)
            done_t = torch.as_tensor(done, device=self.device)
            dones[t] = done_t
            self.episodes.step(reward, done, info)
            if done.any():
                self.pipeline.new_episodes(done)
                self.teacher.episode_ends(done)
                if self.h is not None:
                    self.h[done_t] = 0.0
            self.starts = done_t
        if data is not None:
            data.finish_block(rewards, dones, self.cfg.gamma)

    def _new_dataset(self, blocks: int, steps: int) -> ImitationDataset:
        obs, _ = self.env.reset(seed=self.env_seed)
        example = self.pipeline(obs, train=False)
        shape, dtype = self.policy.action_layout()
        return ImitationDataset(blocks, steps, self.env.num_envs, example, shape, dtype,
                                self.policy.privileged_dim, self.cfg.half_storage, self.device)

    # -- the end -------------------------------------------------------------------------------

    def final_evaluation(self, logger: RunLogger) -> dict[str, Any]:
        """Greedy and sampled actions on new worlds, logged as ``eval/...``."""
        final = self.evaluate(self.run.eval_episodes)
        sampled = self.evaluate(self.run.eval_episodes, deterministic=False)
        final.update({f"sampled_{k}": v for k, v in sampled.items() if isinstance(v, float)})
        self.log_eval(logger, final)
        return final

    def summary_extra(self, final: dict[str, Any]) -> dict[str, Any]:
        return {"agent": self.algorithm, "teacher": self.cfg.teacher,
                "dataset_size": self.data.size if self.data is not None else 0,
                "final_eval": final}


class BCRunner(ImitationRunner):
    """Behaviour cloning: the teacher's dataset first (:meth:`start`), then its epochs."""

    config_type = BCConfig
    logs_episodes = False  # the epochs act in no world

    def block_plan(self) -> tuple[int, int]:
        steps = min(self.cfg.dataset_steps, self.run.total_steps)
        per_world = math.ceil(steps / self.worlds)
        blocks = math.ceil(per_world / BC_BLOCK_STEPS)
        return blocks, math.ceil(per_world / blocks)

    def planned_steps(self) -> int:
        blocks, steps = self.block_plan()
        return blocks * steps * self.worlds

    def resume(self) -> RNGState | None:
        rng = super().resume()
        if self.dist.is_main:  # its epochs share one step: drop the killed run's later ones
            truncate_after(self.run_dir / METRICS_FILE, self.iteration, key="epoch")
        return rng

    def start(self, logger: RunLogger, rng: RNGState | None) -> None:
        """Collect the dataset (a resumed run collects the same data again, silently)."""
        super().start(logger, rng)
        blocks, steps = self.block_plan()
        resumed = self.run.resume
        t0 = time.perf_counter()
        for _ in range(blocks):
            if self.time_used() >= 1.0:
                return
            self.collect_block(steps, 1.0, update_normalizers=not resumed)
            if not resumed:
                self.env_steps += steps * self.worlds
                self.log(logger, {"epoch": 0.0, "dataset_size": float(self.data.size),
                                  "collect_seconds": time.perf_counter() - t0}, episodes=True)
        average_buffers(self.policy, self.dist)
        self._restore_rng(rng)

    def finished(self) -> bool:
        return self.iteration >= self.cfg.epochs

    def iterate(self, time_used: float) -> tuple[dict[str, float], int]:
        t0, epochs = time.perf_counter(), self.cfg.epochs
        stats = self.alg.update(self.data, 1, (self.iteration / epochs,
                                               (self.iteration + 1) / epochs))
        return {**stats, "epoch": float(self.iteration + 1),
                "update_seconds": time.perf_counter() - t0}, 0

    def record_tags(self) -> dict[str, float]:
        return {"epoch": float(self.iteration)}


class DAggerRunner(ImitationRunner):
    """DAgger: rounds of acting with the beta-mixture, labelling, aggregating and fitting."""

    config_type = DAggerConfig

    def block_plan(self) -> tuple[int, int]:
        steps = math.ceil(self.cfg.steps_per_round / self.worlds)
        return max(1, self.cfg.max_dataset // (steps * self.env.num_envs)), steps

    @property
    def round_steps(self) -> int:
        return self.block_plan()[1] * self.worlds

    def planned_steps(self) -> int:
        return min(self.cfg.rounds * self.round_steps, self.run.total_steps)

    def resume(self) -> RNGState | None:
        rng = super().resume()  # the worlds restart from a seed of their own for this round
        self.env_seed = self.run.rank_seed(self.dist.rank, self.iteration)
        return rng

    def start(self, logger: RunLogger, rng: RNGState | None) -> None:
        super().start(logger, rng)
        self._restore_rng(rng)

    def finished(self) -> bool:
        n = self.round_steps
        return (self.iteration >= self.cfg.rounds
                or self.env_steps + n > max(self.run.total_steps, n))

    def iterate(self, time_used: float) -> tuple[dict[str, float], int]:
        cfg, n = self.cfg, self.round_steps
        rounds = min(cfg.rounds, max(1, self.run.total_steps // n))  # for the LR
        t0 = time.perf_counter()
        beta = cfg.beta(self.iteration)
        self.collect_block(n // self.worlds, beta, update_normalizers=True)
        average_buffers(self.policy, self.dist)
        t_collect = time.perf_counter() - t0
        stats = self.alg.update(self.data, cfg.epochs, (self.iteration / rounds,
                                                        (self.iteration + 1) / rounds))
        return {**stats, "beta": beta, "round": float(self.iteration + 1),
                "dataset_size": float(self.data.size), "collect_seconds": t_collect,
                "update_seconds": time.perf_counter() - t0 - t_collect}, n


__all__ = ["BCRunner", "DAggerRunner", "ImitationRunner"]
