"""Training runs by algorithm: ``sensorium train agent=...`` calls :func:`run_training`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from agent.distributed import DistInfo
from agent.runner import TrainSetup
from perception.settings import ConfigError

IMITATION = ("bc", "dagger")


def run_training(setup: TrainSetup, run_dir: Path, dist_info: DistInfo | None = None
                 ) -> dict[str, Any]:
    """Train the algorithm ``setup.agent["name"]`` names into `run_dir`; its summary.

    The summary holds at least ``env_steps`` and ``train_seconds``; the run
    folder gets checkpoints, ``metrics.jsonl``, TensorBoard events and
    ``train_summary.json``.
    """
    name = setup.agent.get("name")
    if name == "ppo":
        from agent.runner import OnPolicyRunner

        return OnPolicyRunner(setup, run_dir, dist_info).learn()
    if name in IMITATION:
        from agent.imitation_runner import ImitationRunner

        return ImitationRunner(setup, run_dir, dist_info).learn()
    raise ConfigError(f"agent.name={name!r} is not a training algorithm; use agent=ppo, "
                      f"{', '.join(f'agent={n}' for n in IMITATION)}")


__all__ = ["run_training"]
