"""Settings of a training run and of its policy's heads (all but the algorithm, the
perception model and the world); torch-free, as every config Hydra registers."""

from __future__ import annotations

from dataclasses import dataclass, field

from perception.configs.augment import RandomizerConfig
from perception.settings import ConfigError, require, require_float, require_int

#: The randomizers training uses by default: ranges that cover real devices (an audio gain
#: of x0.5..x2, a microphone noise floor up to 0.015, camera noise up to 12 grey levels,
#: brightness and contrast +-20 %, depth noise 5 cm). No image shift: it did not pay for
#: its cost here.
ROBUST_RANDOMIZER = {"image_shift_px": 0, "colour_jitter": 0.2, "image_noise": 12.0,
                     "audio_gain_db": 6.0, "audio_noise": 0.0, "audio_noise_max": 0.015,
                     "vector_noise": 0.01, "depth_noise_m": 0.05}

#: Runs at least this long compile the policy by default (the compile takes ~30 s)
COMPILE_MINUTES = 5.0
COMPILE_STEPS = 2_000_000  # the plain command: 19.6 minutes here (README)


@dataclass
class RunSettings:
    """How a run is driven, saved and watched."""

    name: str = ""
    """Run name: runs/<name>; empty = <env>-<fusion>-<agent>-s<seed>."""
    root: str = "runs"
    """Folder that holds the runs."""
    num_envs: int = 128
    """Worlds stepped together (per rank)."""
    total_steps: int = 2_000_000
    """Env-steps to train for (all ranks together)."""
    max_minutes: float = 0.0
    """Stop after this much wall-clock time (0 = no limit); the run saves and exports."""
    seed: int = 0
    """Seed of worlds, weights and sampling; seeded runs repeat."""
    resume: bool = False
    """Continue the run in runs/<name> from its last checkpoint."""
    init: str = ""
    """Start from the policy of this run's last checkpoint (e.g. PPO fine-tuning a DAgger
    student); its observation and action specs and model must match."""
    checkpoint_every: int = 10
    """Save every this many updates (a killed run loses at most this much)."""
    keep_checkpoints: int = 2
    """Checkpoints kept on disk; 0 = all (a learning curve evaluates each, agent.curves)."""
    eval_every: int = 0
    """Evaluate every this many updates (0 = only at the end)."""
    eval_episodes: int = 100
    """Episodes of each evaluation."""
    device: str = "auto"
    """'auto' (CUDA when there is one), 'cpu' or 'cuda'."""
    threads: int = 0
    """torch intra-op threads (0 = torch's default)."""
    compile: bool | None = None
    """torch.compile the policy (faster steps after a compile of ~30 s); null: only for runs
    long enough to repay it (see `compiles`)."""
    modalities: list[str] = field(default_factory=list)
    """Train on these modalities only (ablations, e.g. [audio, proprio, touch]); empty = all."""
    modality_dropout: float = 0.1
    """Probability of switching each modality off per sample while collecting (a policy that
    survives a missing or dead sensor; 0 = off)."""
    modality_dropout_of: dict[str, float] = field(default_factory=dict)
    """Per-step probabilities that replace `modality_dropout` for these modalities (names
    the world lacks are ignored), e.g. ``+modality_dropout_of.audio=0.0``: a memoryless
    policy cannot tell an audio tick dropped in a heard episode (walk on to the goal) from
    a deaf episode (stop at an object), and on the robot the synchroniser bridges a late
    window (its max age). Tried on the demo's route, it did not bring back stopping
    without audio (README)."""
    episode_dropout: float = 0.15
    """Probability that a modality is off for a whole episode of a world while collecting
    (a sensor missing on the robot; one modality always stays; 0 = off). The expert
    teacher labels such episodes with what a student without that sense can do."""
    episode_dropout_of: dict[str, float] = field(default_factory=dict)
    """Whole-episode probabilities that replace `episode_dropout` for these modalities
    (names the world lacks are ignored), e.g. ``+episode_dropout_of.audio=0.35``: more
    deaf episodes."""
    randomize: bool = True
    """Apply the per-kind observation randomizers while collecting (real sensors' gain and
    noise; see ROBUST_RANDOMIZER)."""
    randomizer: RandomizerConfig | None = None
    """Randomizer settings over ROBUST_RANDOMIZER (null: those)."""
    tensorboard: bool = True
    """Write TensorBoard events under runs/<name>/tb."""
    progress: bool = True
    """Show a progress bar."""
    export: bool = True
    """Write runs/<name>/model.onnx (with a parity check) at the end."""

    def rank_seed(self, rank: int, iteration: int = 0) -> int:
        """The seed of rank `rank`'s worlds and draws; a run resumed after `iteration`
        restarts its worlds from one of their own."""
        return self.seed + 7919 * rank + 104729 * iteration

    @property
    def compiles(self) -> bool:
        """`compile`, or when null whether the run is long enough to repay the compile: a
        time budget of at least COMPILE_MINUTES, or without one COMPILE_STEPS env-steps."""
        if self.compile is not None:
            return bool(self.compile)
        if self.max_minutes:
            return self.max_minutes >= COMPILE_MINUTES
        return self.total_steps >= COMPILE_STEPS

    @property
    def eval_seed(self) -> int:
        """The seed of evaluations during and after training: worlds training never saw."""
        return 10_000 + self.seed

    def validate(self) -> None:
        w = "train"
        for key in ("num_envs", "total_steps", "checkpoint_every", "eval_episodes"):
            require_int(w, key, getattr(self, key), 1)
        require_int(w, "keep_checkpoints", self.keep_checkpoints, 0)
        require_int(w, "eval_every", self.eval_every, 0)
        require_int(w, "threads", self.threads, 0)
        require_float(w, "max_minutes", self.max_minutes, 0.0)
        require_float(w, "modality_dropout", self.modality_dropout, 0.0, 1.0)
        require_float(w, "episode_dropout", self.episode_dropout, 0.0, 1.0)
        for key in ("modality_dropout_of", "episode_dropout_of"):
            for name, p in getattr(self, key).items():
                require_float(w, f"{key}.{name}", p, 0.0, 1.0)
        require(w, "device", self.device, self.device in ("auto", "cpu", "cuda"),
                "'auto', 'cpu' or 'cuda'")


@dataclass
class PolicyConfig:
    """Heads on the fused state."""

    actor_hidden: list[int] = field(default_factory=lambda: [64])
    """Hidden layers of the actor head (ignored for late fusion: its readout is linear)."""
    critic_hidden: list[int] = field(default_factory=lambda: [64])
    """Hidden layers of the critic head."""
    separate_critic: bool = False
    """Give the critic its own perception trunk instead of sharing the actor's."""
    privileged_critic: bool = False
    """Let the critic also read the simulator's privileged state (the env must provide it)."""
    init_log_std: float = -0.5
    """Initial log standard deviation of continuous actions."""
    actor_when_absent: list[str] = field(default_factory=list)
    """Modalities whose absence hands the action to an actor head of its own, chosen in
    the graph by the ``<name>_present`` flag (e.g. ``[audio]``: without hearing the task
    is another one, walk to what is seen, and a shared head learns it badly)."""

    def validate(self) -> None:
        for h in [*self.actor_hidden, *self.critic_hidden]:
            require_int("policy", "hidden layer size", h, 1)
        if len(set(self.actor_when_absent)) != len(self.actor_when_absent):
            raise ConfigError(f"policy.actor_when_absent={self.actor_when_absent} names a "
                              "modality twice; name each once")
        require_float("policy", "init_log_std", self.init_log_std, -10.0, 5.0)
