"""Build envs from a config: the one place that maps settings to gymnasium calls."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

import gymnasium as gym

from envs.metrics import declared
from perception.settings import ConfigError
from perception.spec import ObsSpec


def env_options() -> dict[str, Any]:
    """The ``env=`` config group: option name -> the world's default config (a dataclass).

    Imported here, not at the top: the worlds need the ``sim`` extra (numba), which
    the robot's commands (``sensorium run``, ``bench``, ``record``) must not need.
    """
    from envs.audiovisual_nav.config import AudioVisualNavConfig
    from envs.modality_probe.config import ModalityProbeConfig
    from envs.multimodal import MultimodalConfig

    return {
        "audiovisual_nav": AudioVisualNavConfig(),
        "modality_probe": ModalityProbeConfig(),
        "cartpole": MultimodalConfig(env_id="CartPole-v1"),
        "reacher": MultimodalConfig(env_id="Reacher-v5"),
    }


def env_config(cfg: Any) -> Any:
    """`cfg` as its world's config dataclass, typed and checked once; a config already is one.

    A mapping whose ``id`` has no config dataclass here (a world registered by a user)
    stays a plain dict of its settings.
    """
    if dataclasses.is_dataclass(cfg):
        return cfg
    _require_id(cfg)
    types = {option.id: type(option) for option in env_options().values()}
    cls = types.get(cfg["id"])
    if cls is None:
        return dict(cfg)
    from perception.settings import config_from_kwargs

    return config_from_kwargs(cls, cfg, f"env {cfg['id']}")


def _require_id(cfg: Mapping[str, Any]) -> None:
    if "id" not in cfg:
        raise ConfigError(
            "env config has no 'id'; pick one with env=<name> (see `sensorium envs list`)"
        )


def split_env_config(cfg: Any) -> tuple[str, dict[str, Any]]:
    """(gymnasium id, constructor kwargs) from an env config (a dataclass or a mapping with
    an ``id`` key)."""
    if dataclasses.is_dataclass(cfg):
        cfg = dataclasses.asdict(cfg)
    _require_id(cfg)
    kwargs = {k: v for k, v in cfg.items() if k != "id"}
    return str(cfg["id"]), kwargs


def make_vector_env(
    cfg: Any, num_envs: int, vectorization_mode: str = "auto"
) -> gym.vector.VectorEnv:
    """A vector env of `num_envs` worlds.

    ``vectorization_mode="auto"`` takes the natively batched class when the env
    registers one, else gymnasium's ``SyncVectorEnv``.
    """
    env_id, kwargs = split_env_config(cfg)
    if env_id not in gym.registry:
        raise ConfigError(f"unknown env id {env_id!r}; registered sensorium envs: "
                          + ", ".join(k for k in gym.registry if k.startswith("sensorium/")))
    if vectorization_mode == "auto":
        native = gym.registry[env_id].vector_entry_point is not None
        vectorization_mode = "vector_entry_point" if native else "sync"
    if vectorization_mode == "sync":
        from gymnasium.vector import AutoresetMode

        return gym.make_vec(
            env_id, num_envs=num_envs, vectorization_mode="sync",
            vector_kwargs={"autoreset_mode": AutoresetMode.SAME_STEP}, **kwargs,
        )
    return gym.make_vec(env_id, num_envs=num_envs, vectorization_mode=vectorization_mode, **kwargs)


def obs_spec_of(env: gym.Env | gym.vector.VectorEnv) -> ObsSpec:
    """The ObsSpec an env declares; the outermost wrapper that sets one wins."""
    spec = declared(env, "obs_spec")
    if isinstance(spec, ObsSpec):
        return spec
    raise ConfigError(
        f"{env} declares no obs_spec; wrap third-party envs with "
        "envs.multimodal.MultimodalWrapper"
    )
