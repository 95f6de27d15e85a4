"""The on-policy runner: the env loop, logging, checkpoints and evaluation.

Everything algorithmic is in :mod:`agent.ppo`; buffers in :mod:`agent.storage`.
The loop follows the env's declared autoreset mode (SAME_STEP: the
observation after an episode's end starts the next one, and the ended one's
last observation is ``info["final_obs"]``, used to bootstrap truncations).
"""

from __future__ import annotations

import dataclasses
import json
import time
from collections import deque
from collections.abc import Mapping
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import torch
from gymnasium.vector import AutoresetMode

from agent.checkpoint import (
    CheckpointError,
    capture_rng,
    check_run_dir,
    load_checkpoint,
    save_checkpoint,
)
from agent.config import ROBUST_RANDOMIZER, RunSettings
from agent.distributed import DistInfo, all_mean, average_buffers, broadcast_module
from agent.evaluate import evaluate_on_new_worlds
from agent.logger import RunLogger
from agent.observations import ObservationPipeline, select_modalities
from agent.policy import ActorCritic, PolicyConfig
from agent.ppo import PPO, PPOConfig
from envs.factory import make_vector_env, obs_spec_of
from perception.augment import RandomizerConfig
from perception.settings import ConfigError, config_from_kwargs
from perception.spec import ActionSpec, ObsSpec


def pick_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ConfigError("device=cuda but torch sees no CUDA device; use device=auto or cpu")
    return torch.device(name)


def action_spec_of(env: Any) -> ActionSpec:
    spec = getattr(env, "action_spec", None)
    return spec if isinstance(spec, ActionSpec) else ActionSpec.from_space(
        env.single_action_space)


class RunParts(NamedTuple):
    """What every training algorithm builds first, the same way."""

    device: torch.device
    env: Any  # the batched env, SAME_STEP autoreset
    env_spec: ObsSpec  # every sensor of the env
    obs_spec: ObsSpec  # the policy's sensors (run.modalities)
    action_spec: ActionSpec
    env_privileged_dim: int  # size of the env's privileged_state() (0 = none)
    policy: ActorCritic  # on `device`; its critic reads privileged state when configured
    randomizer: RandomizerConfig | None


def build_run_parts(setup: TrainSetup, who: str) -> RunParts:
    """Device, threads, the env (SAME_STEP checked) and the policy, for algorithm `who`.

    Seeds torch with ``run.seed`` before the weights are made, so every rank
    builds the same policy; the caller reseeds per rank afterwards.
    """
    run = setup.run
    device = pick_device(run.device)
    if run.threads:
        torch.set_num_threads(run.threads)
    torch.manual_seed(run.seed)  # same initial weights on every rank
    env = make_vector_env(setup.env, run.num_envs)
    mode = env.metadata.get("autoreset_mode")
    if mode != AutoresetMode.SAME_STEP:
        raise ConfigError(
            f"{who} needs an env with SAME_STEP autoreset, got {mode}; "
            "make it with envs.make_vector_env (which asks for SAME_STEP)")
    env_spec = obs_spec_of(env)
    obs_spec = select_modalities(env_spec, run.modalities)
    action_spec = action_spec_of(env)
    policy_cfg = config_from_kwargs(PolicyConfig, setup.policy, "policy")
    env_priv = int(getattr(env, "privileged_dim", 0))
    if policy_cfg.privileged_critic and not env_priv:
        raise ConfigError("policy.privileged_critic=true needs an env with privileged_state()"
                          " (AudioVisualNav has one)")
    policy = ActorCritic(obs_spec, action_spec, setup.model, setup.fusion, policy_cfg,
                         env_priv if policy_cfg.privileged_critic else 0).to(device)
    randomizer = (config_from_kwargs(RandomizerConfig,
                                     {**ROBUST_RANDOMIZER, **(run.randomizer or {})},
                                     "randomizer")
                  if run.randomize else None)
    return RunParts(device, env, env_spec, obs_spec, action_spec, env_priv, policy, randomizer)


@dataclasses.dataclass
class TrainSetup:
    """Everything a run is built from (plain settings; the CLI composes them with Hydra)."""

    env: dict[str, Any]
    fusion: dict[str, Any]
    agent: dict[str, Any]
    model: dict[str, Any]
    policy: dict[str, Any]
    run: RunSettings

    def to_dict(self) -> dict[str, Any]:
        return {"env": self.env, "fusion": self.fusion, "agent": self.agent,
                "model": self.model, "policy": self.policy,
                "run": dataclasses.asdict(self.run)}


class OnPolicyRunner:
    """Trains an ActorCritic with PPO on a batched world; see the module docstring."""

    def __init__(self, setup: TrainSetup, run_dir: Path, dist_info: DistInfo | None = None
                 ) -> None:
        self.setup, self.run_dir = setup, Path(run_dir)
        self.run: RunSettings = setup.run
        self.dist = dist_info or DistInfo()
        self.agent_cfg = config_from_kwargs(PPOConfig, setup.agent, "agent ppo")
        check_run_dir(self.run_dir, self.run.resume)
        seed = self.run.seed + 7919 * self.dist.rank
        parts = build_run_parts(setup, "the runner")
        self.device, self.env, self.policy = parts.device, parts.env, parts.policy
        self.obs_spec, self.action_spec = parts.obs_spec, parts.action_spec
        priv_dim = self.policy.privileged_dim
        # privileged state is collected for the critic and/or the auxiliary loss
        self.privileged_dim = (parts.env_privileged_dim
                               if (priv_dim or self.agent_cfg.aux_privileged_coef) else 0)
        self._check_batching()
        if self.run.init and not self.run.resume:
            self._init_from(Path(self.run.init))
        broadcast_module(self.policy, self.dist)
        self.alg = PPO(self.policy, self.agent_cfg, self.device, self.dist, self.privileged_dim)
        self.alg.generator.manual_seed(seed)
        torch.manual_seed(seed)  # weights made: each rank now samples actions of its own
        if self.run.compile:
            self.alg.compile()
        self.pipeline = ObservationPipeline.for_training(self.obs_spec, self.policy, self.device,
                                                         self.run, parts.randomizer, seed)
        self.teacher = self._kickstart_teacher()
        self.env_seed = seed
        self.iteration = 0
        self.env_steps = 0
        self.meta = {"config": setup.to_dict(), "obs_spec": self.obs_spec.to_json(),
                     "action_spec": self.action_spec.to_json(), "privileged_dim": priv_dim}

    def _kickstart_teacher(self) -> Any:
        """The env's expert when ``agent.teacher_coef`` > 0 (kickstarting), else None."""
        if self.agent_cfg.teacher_coef <= 0:
            return None
        if self.policy.continuous:
            raise ConfigError("agent.teacher_coef: kickstarting imitates discrete actions; "
                              "this env's are continuous (set agent.teacher_coef=0)")
        if self.agent_cfg.teacher_on == "absent" and not self.pipeline.drops_episodes:
            raise ConfigError("agent.teacher_on=absent kickstarts episodes that lack a sense, "
                              "and run.episode_dropout=0 makes none; set run.episode_dropout "
                              "(or episode_dropout_of) > 0, or agent.teacher_on=all")
        from agent.imitation import ExpertTeacher

        return ExpertTeacher(self.env, self.device)

    def _teacher_labels(self, obs: Mapping[str, np.ndarray]) -> torch.Tensor | None:
        """The expert's actions for kickstarting; -1 where ``teacher_on='absent'`` leaves a
        world to PPO (its episode lacks no sense)."""
        if self.teacher is None:
            return None
        absent = self.pipeline.episode_absent()
        labels = self.teacher.actions(obs, absent)
        if self.agent_cfg.teacher_on == "absent":
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
        loaded = load_checkpoint(run_dir / "checkpoints", {"policy": self.policy}, expect,
                                 map_location=self.device, strict=False)
        self.init_step = loaded.step

    def _check_batching(self) -> None:
        """Refuse minibatch settings that could only fail after the first rollout."""
        cfg, n = self.agent_cfg, self.run.num_envs
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

    def close(self) -> None:
        self.env.close()

    # -- checkpoints ---------------------------------------------------------------------------

    def modules(self) -> dict[str, Any]:
        return self.alg.modules()

    def save(self) -> Path | None:
        if not self.dist.is_main:
            return None
        meta = {**self.meta, "iteration": self.iteration, "env_steps": self.env_steps}
        return save_checkpoint(self.run_dir / "checkpoints", self.env_steps, self.modules(), meta,
                               rng=capture_rng([]), keep=self.run.keep_checkpoints)

    def resume(self) -> None:
        """Load the run's last checkpoint: weights, optimizer, counters and RNG states."""
        expect = {k: self.meta[k] for k in ("obs_spec", "action_spec", "privileged_dim")}
        loaded = load_checkpoint(self.run_dir / "checkpoints", self.modules(), expect,
                                 map_location=self.device)
        self.iteration = int(loaded.meta["iteration"])
        self.env_steps = int(loaded.meta["env_steps"])
        if loaded.rng is not None:
            loaded.rng.restore([])
        # the worlds restart from a seed of their own for this point of the run
        self.env_seed = self.env_seed + 104729 * self.iteration
        self.alg.generator.manual_seed(self.env_seed)
        if not self.dist.is_main:  # the RNG states saved are rank 0's
            torch.manual_seed(self.env_seed)

    # -- the loop ------------------------------------------------------------------------------

    def learn(self) -> dict[str, Any]:
        """Train until total_steps (or max_minutes); save at the end (and every interval).

        The learning-rate schedule runs on the fraction of the budget used: of the
        steps, or of the minutes when that is larger (so a run cut by ``max_minutes``
        still anneals). ``max_minutes`` counts from this process's start (a resumed
        run gets the minutes again).
        """
        run, cfg = self.run, self.agent_cfg
        if run.resume:
            self.resume()
        logger = RunLogger(self.run_dir, run.total_steps, enabled=self.dist.is_main,
                           tensorboard=run.tensorboard, progress=run.progress,
                           resume_step=self.env_steps if run.resume else None,
                           return_key="episode_return", success_key="episode_success")
        n = self.env.num_envs
        obs, _ = self.env.reset(seed=self.env_seed)
        self.pipeline.new_episodes(np.ones(self.env.num_envs, bool))
        x = self.pipeline(obs, train=True)
        if self.iteration == 0 and not self.run.init:
            self.policy.trunk.update_normalizers(x, frontend_done=True)
        priv = self._privileged()
        self.alg.init_storage(n, x, priv.shape[1] if priv is not None else 0)
        h = self.policy.initial_state(n)
        starts = torch.ones(n, dtype=torch.bool, device=self.device)
        ret = np.zeros(n)
        length = np.zeros(n, np.int64)
        recent: dict[str, deque] = {k: deque(maxlen=200) for k in
                                    ("return", "length", "success", "spl", "collisions")}
        t_start = time.perf_counter()
        speeds: list[float] = []  # env-steps/s of each iteration, updates included
        steps_per_iter = cfg.num_steps * n * self.dist.world_size
        while self.env_steps < run.total_steps:
            # the budget left: steps, or time when max_minutes runs out first (the LR
            # schedule follows it); one figure for all ranks, so they stop together
            time_done = ((time.perf_counter() - t_start) / (60 * run.max_minutes)
                         if run.max_minutes else 0.0)
            time_done = all_mean([time_done], self.dist)[0] if run.max_minutes else 0.0
            if time_done >= 1.0:
                break
            t0 = time.perf_counter()
            self.policy.eval()
            with torch.inference_mode():
                for _ in range(cfg.num_steps):
                    labels = self._teacher_labels(obs)
                    actions, h_new = self.alg.act(x, h, starts, priv, labels)
                    env_actions = self.policy.clip_actions(actions).cpu().numpy()
                    obs, reward, term, trunc, info = self.env.step(env_actions)
                    rewards = torch.as_tensor(reward, dtype=torch.float32, device=self.device)
                    cut = trunc & ~term  # a time limit, not the world's end: bootstrap
                    if cut.any():
                        rows = np.flatnonzero(cut)
                        final = self.pipeline(self.pipeline.stack_final(info["final_obs"], rows),
                                              train=False)
                        h_rows = h_new[rows] if h_new is not None else None
                        p_rows = priv[rows] if priv is not None else None
                        rewards[rows] += cfg.gamma * self.alg.value(final, h_rows, p_rows)
                    done = np.logical_or(term, trunc)
                    done_t = torch.as_tensor(done, device=self.device)
                    self.alg.process_env_step(rewards, done_t)
                    ret += reward
                    length += 1
                    if done.any():
                        self._record_episodes(done, info, ret, length, recent)
                        ret[done], length[done] = 0.0, 0
                        self.pipeline.new_episodes(done)
                        if h_new is not None:
                            h_new[done_t] = 0.0
                    h, starts = h_new, done_t
                    x = self.pipeline(obs, train=True)
                    priv = self._privileged()
                last_values = self.alg.value(x, h, priv)
            self.alg.compute_returns(last_values)
            t_collect = time.perf_counter() - t0
            self.policy.trunk.update_normalizers(self._storage_obs(), frontend_done=True)
            average_buffers(self.policy, self.dist)
            self.policy.train()
            lr = self.alg.set_progress(max(self.env_steps / run.total_steps, time_done))
            stats = self.alg.update()
            self.iteration += 1
            self.env_steps += steps_per_iter
            elapsed = time.perf_counter() - t0
            speeds.append(steps_per_iter / elapsed)
            metrics = {**stats, "lr": lr, "collect_seconds": t_collect,
                       "update_seconds": elapsed - t_collect,
                       "env_steps_per_s": steps_per_iter / elapsed}
            keys = sorted(metrics)
            metrics = dict(zip(keys, all_mean([metrics[k] for k in keys], self.dist)))
            # episode stats as sums and counts: every rank sends the same list, also while
            # some rank has not finished an episode yet
            ep = sorted(recent)
            totals = all_mean([x for k in ep for x in (float(np.sum(recent[k])),
                                                       float(len(recent[k])))], self.dist)
            for i, k in enumerate(ep):
                if totals[2 * i + 1] > 0:
                    metrics[f"episode_{k}"] = totals[2 * i] / totals[2 * i + 1]
            logger.log(self.env_steps, metrics)
            if self.iteration % run.checkpoint_every == 0:
                self.save()
            if run.eval_every and self.iteration % run.eval_every == 0 and self.dist.is_main:
                logger.log(self.env_steps, {f"eval/{k}": v for k, v in self.evaluate(
                    run.eval_episodes).items() if isinstance(v, float)})
        self.save()
        logger.close()
        summary = {"iterations": self.iteration, "env_steps": self.env_steps,
                   "train_seconds": time.perf_counter() - t_start,
                   # the first iterations compile and warm up: left out of the median
                   "median_env_steps_per_s": float(np.median(speeds[2:] or speeds or [0.0]))}
        if self.dist.is_main:
            (self.run_dir / "train_summary.json").write_text(json.dumps(summary, indent=2))
        return summary

    def _privileged(self) -> torch.Tensor | None:
        if not self.privileged_dim:
            return None
        return torch.as_tensor(self.env.privileged_state(), device=self.device)

    def _storage_obs(self) -> dict[str, torch.Tensor]:
        s = self.alg.storage
        return {k: v.reshape(s.T * s.N, *v.shape[2:]) for k, v in s.obs.items()}

    @staticmethod
    def _record_episodes(done: np.ndarray, info: Mapping[str, Any], ret: np.ndarray,
                         length: np.ndarray, recent: dict[str, deque]) -> None:
        recent["return"].extend(ret[done].tolist())
        recent["length"].extend(length[done].tolist())
        fi = info.get("final_info", {})
        for k in ("success", "spl", "collisions"):
            if k in fi:
                recent[k].extend(np.asarray(fi[k])[done].astype(float).tolist())

    def evaluate(self, episodes: int, num_envs: int = 32) -> dict[str, Any]:
        return evaluate_on_new_worlds(self.policy, self.setup.env, self.pipeline, episodes,
                                      seed=10_000 + self.run.seed, num_envs=num_envs)


def default_run_name(setup: TrainSetup) -> str:
    env_id = setup.env.get("env_id") or setup.env.get("id", "env")  # wrapped third-party envs
    env = str(env_id).split("/")[-1].split("-")[0].lower()
    return f"{env}-{setup.fusion.get('method', 'fusion')}-{setup.agent.get('name', 'agent')}" \
           f"-s{setup.run.seed}"


__all__ = ["CheckpointError", "OnPolicyRunner", "TrainSetup", "default_run_name", "pick_device"]
