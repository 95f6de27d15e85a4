"""The ``agent=`` config group: every training algorithm's settings by name."""

from __future__ import annotations

from typing import Any

from agent.ppo import PPOConfig


def agent_configs() -> dict[str, Any]:
    """Option name -> default settings (a dataclass instance) of each algorithm."""
    options: dict[str, Any] = {"ppo": PPOConfig()}
    try:
        from agent.imitation import BCConfig, DAggerConfig
    except ImportError:  # imitation not built yet
        return options
    options.update(bc=BCConfig(), dagger=DAggerConfig())
    return options
