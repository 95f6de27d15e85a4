"""Settings of ``sensorium export`` (torch-free, so the CLI registers them without torch)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from perception.settings import require, require_float, require_int

QUANTIZE = ("", "int8")


@dataclass
class ExportSettings:
    """How a run's policy becomes a file, and what the file must prove."""

    out: str = ""
    """The ONNX file; empty = <run>/model.onnx (parity report beside it: model.parity.json)."""
    quantize: str = ""
    """'' (float32 only) or 'int8': also write <stem>.int8.onnx if it passes the guard."""
    safe_action: Any = None
    """Action sent when inputs cannot be trusted; null = the world's stop/no-op (discrete) or
    zeros clipped to the bounds (continuous)."""
    observations: int = 1024
    """Observations from the policy's own rollouts for the parity proof (>= 1,000)."""
    sequence_steps: int = 200
    """Recurrent policies: steps of each sequence run with the state carried by each runtime."""
    seed: int = 7
    """Seed of the rollouts that give the observations (and int8 calibration)."""
    calibration: int = 512
    """int8: observations to calibrate the activation ranges on."""
    calibration_file: str = ""
    """int8: calibrate on a recording (sensorium run ... record=FILE.mcap) instead of the
    policy's simulated rollouts: the robot's own sensors."""
    eval_episodes: int = 200
    """int8: closed-loop episodes each of fp32 and int8 in onnxruntime (unseen worlds)."""
    max_success_drop: float = 0.02
    """int8 is refused if its success rate is lower than fp32's by more than this (a negative
    value demands that int8 be better by that much: a strict threshold forces a refusal)."""
    min_agreement: float = 0.98
    """int8 is refused if its greedy actions agree with fp32's less often than this."""

    def validate(self) -> None:
        w = "export"
        require(w, "quantize", self.quantize, self.quantize in QUANTIZE,
                "'' (float32 only) or 'int8'")
        require_int(w, "observations", self.observations, 1)
        require_int(w, "sequence_steps", self.sequence_steps, 1)
        require_int(w, "calibration", self.calibration, 1)
        require_int(w, "eval_episodes", self.eval_episodes, 1)
        require_float(w, "max_success_drop", self.max_success_drop, -1.0, 1.0)
        require_float(w, "min_agreement", self.min_agreement, 0.0, 1.0)
