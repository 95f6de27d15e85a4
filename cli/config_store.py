"""Hydra structured configs: the config groups and each command's primary config.

Config groups (``env=...``; later ``fusion=``, ``agent=``) hold the typed
dataclasses that the packages define; this module only registers them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING

DEFAULT_ENV = "audiovisual_nav"
DEFAULT_FUSION = "concat"


def env_group() -> dict[str, Any]:
    """The ``env`` group (:func:`envs.factory.env_options`)."""
    from envs.factory import env_options

    return env_options()


def _defaults(env: str = DEFAULT_ENV) -> list[Any]:
    return [{"env": env}, "_self_"]


@dataclass
class EnvsListConfig:
    """``sensorium envs list``."""

    defaults: list[Any] = field(default_factory=_defaults)
    env: Any = MISSING
    """Unused by the listing; present so that ``--help`` shows the env group."""


@dataclass
class EnvsShowConfig:
    """``sensorium envs show``: a video of the expert for people."""

    defaults: list[Any] = field(default_factory=_defaults)
    env: Any = MISSING
    """The world (config group ``env``) and its settings."""
    out: str = "reports/envs_show.mp4"
    """Where the mp4 goes."""
    still: str = ""
    """If set, also write one frame of the video here as PNG."""
    episodes: int = 2
    """Episodes of the expert to record."""
    max_frames: int = 400
    """Stop after this many frames whatever the episode count."""
    scale: int = 4
    """Upscaling of the egocentric view in the video."""
    fps: float = 10.0
    """Frames per second of the video (the control rate plays in real time)."""
    seed: int = 0
    """Seed of the world."""


@dataclass
class EnvsBenchConfig:
    """``sensorium envs bench``: env-steps/s, batched vs SyncVectorEnv, in one run."""

    defaults: list[Any] = field(default_factory=_defaults)
    env: Any = MISSING
    """The world to measure."""
    num_envs: list[int] = field(default_factory=lambda: [1, 16, 64, 256])
    """Batch sizes to measure (each with the native batch and with SyncVectorEnv)."""
    sync: bool = True
    """Also measure gymnasium's SyncVectorEnv over the single env at each size."""
    steps: int = 100
    """Batched steps in one timed window."""
    repeats: int = 7
    """Timed windows per measurement; the report gives their median."""
    stop_prob: float = 0.02
    """Chance that a random action is 'stop' (ends the episode), so episodes last ~50 steps."""
    seed: int = 0
    """Seed of the worlds and the random actions."""
    out: str = "reports/envs_bench.json"
    """Where the JSON report goes."""


@dataclass
class DemoConfig:
    """``sensorium demo``: the main job on the embedded default."""

    defaults: list[Any] = field(default_factory=_defaults)
    env: Any = MISSING
    """The world."""
    num_envs: int = 64
    """Worlds stepped together by the reference policies."""
    episodes: int = 200
    """Evaluation episodes of each policy."""
    seed: int = 0
    """Seed of the worlds and of training."""
    minutes: float = 20.0
    """Wall-clock training budget, every phase counted (DAgger, then PPO for the rest)."""
    route: str = "distill"
    """'distill': DAgger from the privileged expert to a sensors-only student, then PPO
    fine-tuning of the student; 'ppo': PPO from scratch for the whole budget."""
    dagger_rounds: int = 6
    """DAgger rounds of the first phase (each trains over the growing aggregate: in a
    5-minute budget, 3 rounds left PPO more minutes and 5 scored no better)."""
    dagger_steps: int = 16384
    """Env-steps each DAgger round collects."""
    dagger_epochs: int = 4
    """DAgger's passes over the aggregate after each round."""
    finetune_lr: float = 1.5e-4
    """PPO's learning rate when it fine-tunes the student (from scratch: PPO's default)."""
    finetune_entropy: float = 0.003
    """PPO's entropy bonus when it fine-tunes the student."""
    finetune_epochs: int = 2
    """PPO's epochs per rollout when it fine-tunes the student (1 took 124 s where 2 took
    163 s for the same 299 k steps, at 0.900 against 0.930 success, one run each; in a
    budget of minutes, one pass buys about a third more steps)."""
    finetune_teacher: float = 0.0
    """Weight of the teachers' cross-entropy while PPO fine-tunes the student (kickstarting,
    agent.teacher_coef; 0 = off). 0.05 took depth-absent success from 0.78 to 0.90 but
    clean and proprio-absent lower, one run each (README, *Real sensors*)."""
    finetune_teacher_on: str = "all"
    """Where that cross-entropy applies (agent.teacher_on): 'all' visited states, or
    'absent', only the episodes that lack a sense."""
    actor_when_absent: list[str] = field(default_factory=list)
    """policy.actor_when_absent of both phases, e.g. ``[audio]``: without hearing the
    policy acts through a head of its own."""
    episode_dropout_of: dict[str, float] = field(default_factory=dict)
    """run.episode_dropout_of of both phases, e.g. ``+episode_dropout_of.audio=0.35``."""
    modality_dropout_of: dict[str, float] = field(default_factory=dict)
    """run.modality_dropout_of of both phases, e.g. ``+modality_dropout_of.audio=0.0``."""
    max_steps: int = 5_000_000
    """Env-steps cap of the PPO phase (the minutes usually end it first)."""
    train_envs: int = 128
    """Worlds stepped together while training."""
    fusion: str = DEFAULT_FUSION
    """Fusion method of the trained policy."""
    compile: bool | None = None
    """torch.compile the PPO phase (faster steps after a compile of ~30 s); null: only when
    its minutes repay the compile (``compile`` of ``sensorium train``)."""
    progress: bool = True
    """Show a progress bar while training."""
    bench_runs: int = 5000
    """Timed calls per latency measurement of the exported file (sensorium bench)."""
    runtime_hz: float = 100.0
    """Rate of the runtime's loop on the sim source."""
    runtime_seconds: float = 5.0
    """How long the runtime drives the exported file on the sim source."""
    curve_every: int = 15
    """Learning curve: the PPO phase keeps a checkpoint every this many updates (DAgger:
    every round), each evaluated after training on `curve_episodes` unseen episodes
    (curve.json, curve_minutes.png, curve_steps.png); 0 = no curve."""
    curve_episodes: int = 50
    """Evaluation episodes of each point of the learning curve."""
    out_dir: str = "reports/demo"
    """Where the run, the videos and the JSON report go."""


def _model_defaults() -> list[Any]:
    return [{"env": DEFAULT_ENV}, {"fusion": DEFAULT_FUSION}, "_self_"]


def _perception_config() -> Any:
    from perception.configs.model import PerceptionConfig

    return PerceptionConfig()


def _all_fusions() -> list[str]:
    from perception.configs.fusion import FUSION_CONFIGS

    return sorted(FUSION_CONFIGS)


@dataclass
class PerceptionBenchConfig:
    """``sensorium perception bench``: size and latency of every fusion method."""

    defaults: list[Any] = field(default_factory=_model_defaults)
    env: Any = MISSING
    """The world whose spec the models are built for."""
    fusion: Any = MISSING
    """The default model's fusion method (config group ``fusion``)."""
    model: Any = field(default_factory=_perception_config)
    """Encoder settings (the default model's)."""
    methods: list[str] = field(default_factory=_all_fusions)
    """Fusion methods to measure besides the default one (with their default settings)."""
    memory: int = 64
    """Also measure every method with a GRU of this size after fusion; 0 = skip."""
    runs: int = 2000
    """Timed calls per runtime and model (in 5 alternating blocks)."""
    warmup: int = 50
    """Untimed calls before each block."""
    seed: int = 0
    """Seed of the weights and of the world that gives the input observation."""
    out: str = "reports/perception_bench.json"
    """Where the JSON report goes."""


@dataclass
class ProbeTask:
    """One ModalityProbe task of ``sensorium perception probe``."""

    interaction: str = "synergy"
    """ModalityProbe interaction."""
    modality_dropout: float = 0.0
    """Probability of dropping each modality per training sample."""


@dataclass
class PerceptionProbeConfig:
    """``sensorium perception probe``: does each fusion method fuse? (supervised, seconds each)"""

    methods: list[str] = field(default_factory=_all_fusions)
    """Fusion methods to train (default settings each)."""
    tasks: list[ProbeTask] = field(default_factory=lambda: [
        ProbeTask("synergy", 0.0), ProbeTask("redundant", 0.3)])
    """Tasks; accuracy is measured with every modality, and with each one absent."""
    probe: dict[str, Any] = field(
        default_factory=lambda: {"modality_a": "vector", "modality_b": "audio"})
    """ModalityProbe settings (which modalities carry the bits, noise...)."""
    steps: int = 300
    """Adam steps per run."""
    batch: int = 128
    """Fresh episodes per step."""
    lr: float = 3e-3
    """Adam learning rate."""
    seed: int = 0
    """Seed of data and weights."""
    out: str = "reports/perception_probe.json"
    """Where the JSON report goes."""


def _train_defaults() -> list[Any]:
    return [{"env": DEFAULT_ENV}, {"fusion": DEFAULT_FUSION}, {"agent": "ppo"}, "_self_"]


def _policy_config() -> Any:
    from agent.config import PolicyConfig

    return PolicyConfig()


def _run_settings() -> type:
    from agent.config import RunSettings

    return RunSettings


@dataclass
class EvalConfig:
    """``sensorium eval``: evaluate a trained run."""

    run: str = ""
    """The run folder (runs/<name>)."""
    episodes: int = 200
    """Evaluation episodes."""
    num_envs: int = 32
    """Worlds stepped together."""
    seed: int = 12345
    """Seed of the evaluation worlds (unseen in training)."""
    deterministic: bool = True
    """Greedy actions (else sampled)."""
    video_episodes: int = 3
    """Episodes in the mp4 next to the JSON (0 = no video)."""
    device: str = "cpu"
    """Where the policy runs."""
    out: str = ""
    """JSON report path; empty = <run>/eval.json (the video: same name, .mp4)."""


def export_config() -> type:
    """``sensorium export``: a run's policy as one self-describing ONNX file, proven."""
    from dataclasses import make_dataclass

    from deploy.export.settings import ExportSettings

    return make_dataclass("ExportConfig", [("run", str, "")], bases=(ExportSettings,))


def train_config() -> type:
    """``sensorium train``'s primary config: the run settings plus the model groups."""
    from dataclasses import make_dataclass

    base = _run_settings()
    return make_dataclass("TrainConfig", [
        ("defaults", list[Any], field(default_factory=_train_defaults)),
        ("env", Any, MISSING),
        ("fusion", Any, MISSING),
        ("agent", Any, MISSING),
        ("model", Any, field(default_factory=_perception_config)),
        ("policy", Any, field(default_factory=_policy_config)),
    ], bases=(base,))


def group_options(group: str) -> dict[str, Any]:
    """Option name -> config node of a config group (torch-free, as every config)."""
    if group == "env":
        return env_group()
    if group == "fusion":
        from perception.configs.fusion import fusion_configs

        return fusion_configs()
    if group == "agent":
        from agent.algorithms import agent_configs

        return agent_configs()
    raise KeyError(group)


def register_configs(name: str, node: Any, groups: tuple[str, ...]) -> None:
    """Put a command's primary config `node` (a dataclass, or a function that makes one: it
    imports only that command's packages) and the groups it uses into Hydra's ConfigStore."""
    if not isinstance(node, type):
        node = node()
    cs = ConfigStore.instance()
    for group in groups:
        for option, config in group_options(group).items():
            cs.store(group=group, name=option, node=config)
    cs.store(name=name, node=node)
