"""The ``agent=`` config group: every training algorithm's settings by name."""

from __future__ import annotations

from typing import Any

from agent.imitation import BCConfig, DAggerConfig
from agent.ppo import PPOConfig


def agent_configs() -> dict[str, Any]:
    """Option name -> default settings (a dataclass instance) of each algorithm."""
    return {"ppo": PPOConfig(), "bc": BCConfig(), "dagger": DAggerConfig()}
