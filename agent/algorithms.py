"""The ``agent=`` config group: every training algorithm's settings by name."""

from __future__ import annotations

import dataclasses
from typing import Any

from agent.imitation import BCConfig, DAggerConfig
from agent.ppo import PPOConfig
from perception.settings import ConfigError, config_from_kwargs


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
