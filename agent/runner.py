"""The on-policy runner: PPO's collection (the env loop) and update on the run skeleton.

Everything algorithmic is in :mod:`agent.ppo`, buffers in :mod:`agent.storage`,
what every trainer shares in :mod:`agent.base_runner`. The loop follows the
env's declared autoreset mode (SAME_STEP: the observation after an episode's
end starts the next one, and the ended one's last observation is
``info["final_obs"]``, used to bootstrap truncations).
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch

from agent.algorithms import PPOConfig
from agent.base_runner import Runner
from agent.checkpoint import RNGState, load_checkpoint
from agent.distributed import DistInfo, average_buffers, broadcast_module
from agent.logger import RunLogger
from agent.observations import ObservationPipeline
from agent.ppo import PPO
from agent.run_setup import TrainSetup
from perception.settings import ConfigError


class OnPolicyRunner(Runner):
    """Trains an ActorCritic with PPO on a batched world; see the module docstring."""

    config_type = PPOConfig
    episode_window = 200

    def __init__(self, setup: TrainSetup, run_dir: Path, dist_info: DistInfo | None = None
                 ) -> None:
        super().__init__(setup, run_dir, dist_info)
        cfg, priv_dim = self.cfg, self.policy.privileged_dim
        # privileged state is collected for the critic and/or the auxiliary loss
        self.privileged_dim = (self.parts.env_privileged_dim
                               if (priv_dim or cfg.aux_privileged_coef) else 0)
        self._check_batching()
        if self.run.init and not self.run.resume:
            self._init_from(Path(self.run.init))
        broadcast_module(self.policy, self.dist)
        self.alg = PPO(self.policy, cfg, self.device, self.dist, self.privileged_dim)
        self.alg.generator.manual_seed(self.seed)
        torch.manual_seed(self.seed)  # weights made: each rank now samples actions of its own
        if self.run.compiles:
            self.alg.compile()
        self.pipeline = ObservationPipeline.for_training(self.obs_spec, self.policy, self.device,
                                                         self.run, self.parts.randomizer,
                                                         self.seed)
        self.teacher = self._kickstart_teacher()

    def _kickstart_teacher(self) -> Any:
        """The env's expert when ``agent.teacher_coef`` > 0 (kickstarting), else None."""
        if self.cfg.teacher_coef <= 0:
            return None
        if self.policy.continuous:
            raise ConfigError("agent.teacher_coef: kickstarting imitates discrete actions; "
                              "this env's are continuous (set agent.teacher_coef=0)")
        if self.cfg.teacher_on == "absent" and not self.pipeline.drops_episodes:
            raise ConfigError("agent.teacher_on=absent kickstarts episodes that lack a sense, "
                              "and run.episode_dropout=0 makes none; set run.episode_dropout "
                              "(or episode_dropout_of) > 0, or agent.teacher_on=all")
        from agent.teachers import ExpertTeacher

        return ExpertTeacher(self.env, self.device)

    def _teacher_labels(self, obs: Mapping[str, np.ndarray]) -> torch.Tensor | None:
        """The expert's actions for kickstarting; -1 where ``teacher_on='absent'`` leaves a
        world to PPO (its episode lacks no sense)."""
        if self.teacher is None:
            return None
        absent = self.pipeline.episode_absent()
        labels = self.teacher.actions(obs, absent)
        if self.cfg.teacher_on == "absent":
            lacking = (np.logical_or.reduce(list(absent.values())) if absent
                       else np.zeros(labels.shape[0], dtype=bool))
            labels = labels.clone()
            labels[torch.as_tensor(~lacking, device=labels.device)] = -1
        return labels

    def _init_from(self, run_dir: Path) -> None:
        """The policy's weights (and normalisers) from another run's last checkpoint."""
        if not (run_dir / "checkpoints").is_dir():
            raise ConfigError(f"init={run_dir}: no checkpoints there; name a finished run "
                              "(e.g. init=runs/<a dagger run>)")
        expect = {"obs_spec": self.obs_spec.to_json(), "action_spec": self.action_spec.to_json()}
        load_checkpoint(run_dir / "checkpoints", {"policy": self.policy}, expect,
                        map_location=self.device, strict=False)

    def _check_batching(self) -> None:
        """Refuse minibatch settings that could only fail after the first rollout."""
        cfg, n = self.cfg, self.run.num_envs
        if self.policy.recurrent:
            if cfg.num_steps % cfg.seq_len:
                raise ConfigError(f"agent.num_steps={cfg.num_steps} must be a multiple of "
                                  f"agent.seq_len={cfg.seq_len} for a recurrent policy")
            if (cfg.num_steps // cfg.seq_len) * n < cfg.minibatches:
                raise ConfigError(f"{(cfg.num_steps // cfg.seq_len) * n} sequences cannot fill "
                                  f"agent.minibatches={cfg.minibatches}; lower it")
            if cfg.coordination.weight > 0:
                raise ConfigError("agent.coordination.weight > 0 is not supported with a "
                                  "recurrent policy (model.memory > 0) yet; set one to 0")
        elif cfg.num_steps * n < cfg.minibatches:
            raise ConfigError(f"{cfg.num_steps * n} samples per rollout cannot fill "
                              f"agent.minibatches={cfg.minibatches}; lower it")

    def resume(self) -> None:
        """The run's last checkpoint, with its RNG states restored at once; the worlds
        restart from a seed of their own for this point of the run."""
        rng = super().resume()
        if rng is not None:
            rng.restore([])
        self.env_seed = self.run.rank_seed(self.dist.rank, self.iteration)
        self.alg.generator.manual_seed(self.env_seed)
        if not self.dist.is_main:  # the RNG states saved are rank 0's
            torch.manual_seed(self.env_seed)

    # -- collection and update -------------------------------------------------------------------

    def start(self, logger: RunLogger, rng: RNGState | None) -> None:
        n = self.env.num_envs
        self.obs, _ = self.env.reset(seed=self.env_seed)
        self.pipeline.new_episodes(np.ones(n, bool))
        self.x = self.pipeline(self.obs, train=True)
        if self.iteration == 0 and not self.run.init:
            self.policy.trunk.update_normalizers(self.x, frontend_done=True)
        self.priv = self._privileged()
        self.alg.init_storage(n, self.x, self.priv.shape[1] if self.priv is not None else 0)
        self.h = self.policy.initial_state(n)
        self.starts = torch.ones(n, dtype=torch.bool, device=self.device)

    def finished(self) -> bool:
        return self.env_steps >= self.run.total_steps

    def iterate(self, time_used: float) -> tuple[dict[str, float], int]:
        """A rollout of ``num_steps`` per world, then PPO's update. The learning-rate
        schedule runs on the fraction of the budget used: of the steps, or of the
        minutes when that is larger (so a run cut by ``max_minutes`` still anneals)."""
        t0 = time.perf_counter()
        self.policy.eval()
        with torch.inference_mode():
            for _ in range(self.cfg.num_steps):
                self._env_step()
            last_values = self.alg.value(self.x, self.h, self.priv)
        self.alg.compute_returns(last_values)
        t_collect = time.perf_counter() - t0
        self.policy.trunk.update_normalizers(self._storage_obs(), frontend_done=True)
        average_buffers(self.policy, self.dist)
        self.policy.train()
        lr = self.alg.set_progress(max(self.env_steps / self.run.total_steps, time_used))
        stats = self.alg.update(critic_only=self.iteration < self.cfg.critic_warmup)
        return ({**stats, "lr": lr, "collect_seconds": t_collect,
                 "update_seconds": time.perf_counter() - t0 - t_collect},
                self.cfg.num_steps * self.env.num_envs * self.dist.world_size)

    def _env_step(self) -> None:
        """Act in every world, store the transition (truncations bootstrapped)."""
        labels = self._teacher_labels(self.obs)
        actions, h_new = self.alg.act(self.x, self.h, self.starts, self.priv, labels)
        obs, reward, term, trunc, info = self.env.step(
            self.policy.clip_actions(actions).cpu().numpy())
        rewards = torch.as_tensor(reward, dtype=torch.float32, device=self.device)
        cut = trunc & ~term  # a time limit, not the world's end: bootstrap
        if cut.any():
            rows = np.flatnonzero(cut)
            final = self.pipeline(self.pipeline.stack_final(info["final_obs"], rows), train=False)
            h_rows = h_new[rows] if h_new is not None else None
            p_rows = self.priv[rows] if self.priv is not None else None
            rewards[rows] += self.cfg.gamma * self.alg.value(final, h_rows, p_rows)
        done = np.logical_or(term, trunc)
        done_t = torch.as_tensor(done, device=self.device)
        self.alg.process_env_step(rewards, done_t)
        self.episodes.step(reward, done, info)
        if done.any():
            self.pipeline.new_episodes(done)
            if h_new is not None:
                h_new[done_t] = 0.0
        self.obs, self.h, self.starts = obs, h_new, done_t
        self.x = self.pipeline(obs, train=True)
        self.priv = self._privileged()

    def _privileged(self) -> torch.Tensor | None:
        if not self.privileged_dim:
            return None
        return torch.as_tensor(self.env.privileged_state(), device=self.device)

    def _storage_obs(self) -> dict[str, torch.Tensor]:
        s = self.alg.storage
        return {k: v.reshape(s.T * s.N, *v.shape[2:]) for k, v in s.obs.items()}


__all__ = ["OnPolicyRunner"]
