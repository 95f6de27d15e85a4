"""One dispatch from ``agent=`` to its trainer; ``sensorium train`` and every caller use it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from agent.base_runner import Runner
from agent.distributed import DistInfo
from agent.imitation_runner import BCRunner, DAggerRunner
from agent.run_setup import TrainSetup
from agent.runner import OnPolicyRunner

RUNNERS: dict[str, type[Runner]] = {"ppo": OnPolicyRunner, "bc": BCRunner,
                                    "dagger": DAggerRunner}


def make_runner(setup: TrainSetup, run_dir: Path, dist_info: DistInfo | None = None) -> Runner:
    """The trainer of the algorithm ``setup.agent`` is the settings of."""
    return RUNNERS[setup.agent.name](setup, run_dir, dist_info)


def run_training(setup: TrainSetup, run_dir: Path, dist_info: DistInfo | None = None
                 ) -> dict[str, Any]:
    """Train into `run_dir`; its summary (see :meth:`agent.base_runner.Runner.learn`).

    The run folder gets checkpoints, ``metrics.jsonl``, TensorBoard events and
    ``train_summary.json``.
    """
    runner = make_runner(setup, run_dir, dist_info)
    try:
        return runner.learn()
    finally:
        runner.close()


__all__ = ["RUNNERS", "make_runner", "run_training"]
