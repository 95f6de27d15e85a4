"""The ``agent=`` config group: every training algorithm's settings by name (torch-free)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from perception.configs.augment import CoordinationConfig
from perception.settings import (
    ConfigError,
    config_from_kwargs,
    require,
    require_float,
    require_int,
)

EXPERT = "expert"


@dataclass
class PPOConfig:
    """PPO settings (config group ``agent=ppo``)."""

    name: str = "ppo"
    """Algorithm; keep it."""
    num_steps: int = 32
    """Rollout length per world between updates."""
    epochs: int = 2
    """Passes over each rollout."""
    minibatches: int = 4
    """Minibatches per pass."""
    lr: float = 5e-4
    """Adam learning rate (start value under a schedule)."""
    lr_schedule: str = "linear"
    """'constant', or 'linear' decay to 0 over the run."""
    gamma: float = 0.99
    """Discount."""
    lam: float = 0.95
    """GAE lambda."""
    clip: float = 0.2
    """Clip range of the policy ratio."""
    value_clip: float = 0.2
    """Clip range of the value update around the old value; 0 = unclipped."""
    value_coef: float = 0.5
    """Weight of the value loss."""
    entropy_coef: float = 0.01
    """Weight of the entropy bonus."""
    max_grad_norm: float = 0.5
    """Gradient clipping (global norm)."""
    target_kl: float = 0.0
    """Stop an update's epochs early once the approximate KL exceeds this; 0 = never."""
    normalize_advantages: bool = True
    """Normalise advantages per minibatch."""
    seq_len: int = 16
    """Recurrent policies: length of the backpropagation-through-time chunks."""
    coordination: CoordinationConfig = field(default_factory=CoordinationConfig)
    """Cross-modal InfoNCE added to the loss with this weight (0 = off)."""
    aux_privileged_coef: float = 1.0
    """Weight of an auxiliary loss: predict the simulator's privileged state (e.g. where
    the goal is) from the actor's fused state; used when the env has ``privileged_state()``
    (0 = off). Training only: the actor never reads it, and it is not exported."""
    teacher_coef: float = 0.0
    """Weight of a cross-entropy loss toward the env's expert on the states PPO visits
    (kickstarting, Schmitt et al. 2018; discrete actions, an env with ``expert_actions``;
    0 = off). A world whose episode lacks a sense gets the expert for what is left
    (``expert_actions_without``), so fine-tuning keeps what a student without it can do."""
    teacher_on: str = "all"
    """Where kickstarting applies: 'all' visited states, or 'absent': only in episodes
    that lack a sense all episode (``run.episode_dropout``), where PPO alone unlearns
    what a student without that sense can still do; the other episodes are plain PPO."""
    bf16: bool = False
    """Autocast the update's forward to bfloat16 (AMX/AVX-512 CPUs, recent GPUs)."""
    critic_warmup: int = 0
    """The first this many updates train the critic's head only (actor, trunk and the other
    heads untouched): fine-tuning a student from imitation, whose critic has not learnt its
    values yet, starts from advantages that mean something (0 = off)."""

    def validate(self) -> None:
        w = "agent ppo"
        require(w, "name", self.name, self.name == "ppo", "'ppo'")
        for key in ("num_steps", "epochs", "minibatches", "seq_len"):
            require_int(w, key, getattr(self, key), 1)
        require_int(w, "critic_warmup", self.critic_warmup, 0)
        require_float(w, "lr", self.lr, 0.0, lo_open=True)
        require(w, "lr_schedule", self.lr_schedule, self.lr_schedule in ("constant", "linear"),
                "'constant' or 'linear'")
        for key in ("gamma", "lam"):
            require_float(w, key, getattr(self, key), 0.0, 1.0)
        for key in ("clip", "value_clip", "value_coef", "entropy_coef", "max_grad_norm",
                    "target_kl", "aux_privileged_coef", "teacher_coef"):
            require_float(w, key, getattr(self, key), 0.0)
        require(w, "teacher_on", self.teacher_on, self.teacher_on in ("all", "absent"),
                "'all' or 'absent'")
        self.coordination.validate()


@dataclass
class ImitationSettings:
    """What BC and DAgger share: the teacher and the supervised fit."""

    name: str = ""
    """Algorithm; keep it."""
    teacher: str = EXPERT
    """'expert' (the env's privileged expert_actions()) or a trained run's folder."""
    epochs: int = 10
    """Passes over the dataset (DAgger: over the aggregate, after each round)."""
    batch_size: int = 256
    """Samples per minibatch (recurrent students: whole sequences adding up to about this)."""
    lr: float = 3e-3
    """AdamW learning rate (start value of the schedule)."""
    lr_schedule: str = "cosine"
    """'constant', or 'cosine' decay to 0 over the epochs (DAgger: over the rounds)."""
    weight_decay: float = 0.0
    """AdamW decoupled weight decay."""
    entropy_coef: float = 0.0
    """Weight of an entropy bonus (a soft-label regulariser; 0 = off)."""
    value_coef: float = 0.01
    """Weight of the critic's regression on Monte-Carlo returns (0 = critic left untrained)."""
    gamma: float = 0.99
    """Discount of those returns."""
    max_grad_norm: float = 1.0
    """Gradient clipping (global norm); 0 = off."""
    half_storage: bool = True
    """Store floating-point observations as float16 (half the memory; log-mel and depth
    lose nothing that matters)."""
    bf16: bool = False
    """Autocast the update's forward to bfloat16 (AMX/AVX-512 CPUs, recent GPUs)."""

    def validate(self) -> None:
        where = f"agent {self.name or 'imitation'}"
        require(where, "teacher", self.teacher,
                isinstance(self.teacher, str) and self.teacher != "",
                "'expert' or the folder of a trained run (runs/<name>)")
        for key in ("epochs", "batch_size"):
            require_int(where, key, getattr(self, key), 1)
        require_float(where, "lr", self.lr, 0.0, lo_open=True)
        require(where, "lr_schedule", self.lr_schedule,
                self.lr_schedule in ("constant", "cosine"), "'constant' or 'cosine'")
        for key in ("weight_decay", "entropy_coef", "value_coef", "max_grad_norm"):
            require_float(where, key, getattr(self, key), 0.0)
        require_float(where, "gamma", self.gamma, 0.0, 1.0)


@dataclass
class BCConfig(ImitationSettings):
    """Behaviour cloning settings (config group ``agent=bc``): collect, then fit."""

    name: str = "bc"
    """Algorithm; keep it."""
    dataset_steps: int = 20_000
    """Teacher env-steps to collect (all ranks together; capped by the run's total_steps)."""

    def validate(self) -> None:
        require("agent bc", "name", self.name, self.name == "bc", "'bc'")
        super().validate()
        require_int("agent bc", "dataset_steps", self.dataset_steps, 1)


@dataclass
class DAggerConfig(ImitationSettings):
    """DAgger settings (config group ``agent=dagger``): rounds of act, label, aggregate, fit."""

    name: str = "dagger"
    """Algorithm; keep it."""
    epochs: int = 4
    """Passes over the aggregated dataset after each round."""
    rounds: int = 5
    """Rounds of collection and training (also capped by the run's total_steps)."""
    steps_per_round: int = 8192
    """Env-steps each round collects (all ranks together; rounded up to whole batches of
    worlds). Recurrent students: the worlds restart every round, so keep it >= num_envs x
    a typical episode length."""
    beta_start: float = 1.0
    """Probability that the teacher's action is executed in round 0 (1 = round 0 is BC)."""
    beta_decay: float = 0.5
    """beta of round i = beta_start x beta_decay^i (per step and world, the rest the student)."""
    sample_student: bool = False
    """Execute sampled student actions (else its greedy action; sampled ones wander off to
    states the student never reaches when deployed greedily, and AudioVisualNav students
    learnt worse from them)."""
    max_dataset: int = 50_000
    """Samples the aggregate keeps (per rank), oldest rounds overwritten first; must hold a
    round."""

    def validate(self) -> None:
        w = "agent dagger"
        require(w, "name", self.name, self.name == "dagger", "'dagger'")
        super().validate()
        require_int(w, "rounds", self.rounds, 1)
        require_int(w, "steps_per_round", self.steps_per_round, 1)
        require_float(w, "beta_start", self.beta_start, 0.0, 1.0)
        require_float(w, "beta_decay", self.beta_decay, 0.0, 1.0)
        require_int(w, "max_dataset", self.max_dataset, 1)
        require(w, "max_dataset", self.max_dataset, self.max_dataset >= self.steps_per_round,
                f">= steps_per_round ({self.steps_per_round}): the aggregate must hold a round")

    def beta(self, round_index: int) -> float:
        """Probability that the teacher acts in round `round_index` (0-based)."""
        return self.beta_start * self.beta_decay ** round_index


def agent_configs() -> dict[str, Any]:
    """Option name -> default settings (a dataclass instance) of each algorithm."""
    return {"ppo": PPOConfig(), "bc": BCConfig(), "dagger": DAggerConfig()}


def algorithm_config(settings: Any) -> Any:
    """`settings` as the settings dataclass of the algorithm ``settings["name"]`` names,
    typed and checked once; a settings dataclass already is one."""
    if dataclasses.is_dataclass(settings):
        return settings
    name, options = settings.get("name"), agent_configs()
    if name not in options:
        raise ConfigError(f"agent.name={name!r} is not a training algorithm; use "
                          + ", ".join(f"agent={n}" for n in options))
    return config_from_kwargs(type(options[name]), settings, f"agent {name}")
