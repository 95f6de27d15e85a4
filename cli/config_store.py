"""Hydra structured configs: the config groups and each command's primary config.

Config groups (``env=...``; later ``fusion=``, ``agent=``) hold the typed
dataclasses that the packages define; this module only registers them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING

from envs.audiovisual_nav.config import AudioVisualNavConfig
from envs.modality_probe.config import ModalityProbeConfig
from envs.multimodal import MultimodalConfig

DEFAULT_ENV = "audiovisual_nav"


def env_group() -> dict[str, Any]:
    """The ``env`` group: option name -> config dataclass instance."""
    return {
        "audiovisual_nav": AudioVisualNavConfig(),
        "modality_probe": ModalityProbeConfig(),
        "cartpole": MultimodalConfig(env_id="CartPole-v1"),
        "reacher": MultimodalConfig(env_id="Reacher-v5"),
    }


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
    """Worlds stepped together."""
    episodes: int = 200
    """Expert episodes to evaluate."""
    seed: int = 0
    """Seed of the worlds."""
    out_dir: str = "reports/demo"
    """Where the video and the JSON report go."""


_registered = False


def register_configs() -> None:
    """Put every group option and primary config into Hydra's ConfigStore (once)."""
    global _registered
    if _registered:
        return
    cs = ConfigStore.instance()
    for name, node in env_group().items():
        cs.store(group="env", name=name, node=node)
    cs.store(name="envs_list", node=EnvsListConfig)
    cs.store(name="envs_show", node=EnvsShowConfig)
    cs.store(name="envs_bench", node=EnvsBenchConfig)
    cs.store(name="demo", node=DemoConfig)
    _registered = True
