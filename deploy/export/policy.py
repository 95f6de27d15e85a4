"""Export a trained run's policy: one ONNX graph from raw sensors to the action, checked.

``model.onnx`` takes the modalities (raw dtypes), one ``<name>_present``
flag each, and ``h_in`` for recurrent policies; it returns ``action`` (the
greedy action), ``logits`` (or the continuous mean) and ``h_out``. The
parity check runs real observations of the run's world, every presence
pattern of one modality off, through torch and onnxruntime.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import torch

from agent.trained import load_trained, observation_batch
from deploy.export.onnx import export_onnx, input_names, onnx_session
from perception.spec import presence_key

TOLERANCE = 1e-4


def export_run(run_dir: Path, out: Path | None = None, batch: int = 16, seed: int = 7
               ) -> dict[str, Any]:
    """Write `out` (default run_dir/model.onnx) and run_dir/export.json; return the report."""
    trained = load_trained(Path(run_dir))
    policy = trained.deployable()
    spec = trained.obs_spec
    hidden = trained.policy.trunk.cfg.memory
    outputs = ["action", "logits", "h_out"] if hidden else ["action", "logits"]
    path = export_onnx(policy, spec, out or Path(run_dir) / "model.onnx", outputs, hidden,
                       metadata={"sensorium.action_spec": trained.action_spec.to_json(),
                                 "sensorium.run": str(run_dir),
                                 "sensorium.env_steps": trained.step})
    obs = observation_batch(trained, batch, seed)
    session = onnx_session(path)
    worst = 0.0
    patterns = [None, *spec.names]  # all present, then each modality absent in turn
    for absent in patterns:
        feed = {n: obs[n] for n in spec.names}
        for n in spec.names:
            feed[presence_key(n)] = np.full(batch, n != absent)
        h = np.random.default_rng(seed).normal(0, 0.3, (batch, hidden)).astype(np.float32)
        if hidden:
            feed["h_in"] = h
        got = session.run(None, {k: feed[k] for k in input_names(spec, bool(hidden))})
        with torch.no_grad():
            want = policy({k: torch.from_numpy(v) for k, v in feed.items() if k != "h_in"},
                          torch.from_numpy(h) if hidden else None)
        worst = max(worst, float(np.abs(got[1] - want[1].numpy()).max()))
        if not np.array_equal(got[0], want[0].numpy()) and not trained.policy.continuous:
            raise AssertionError(f"onnxruntime picks other actions than torch (absent={absent})")
    if worst > TOLERANCE:
        raise AssertionError(f"onnxruntime differs from torch by {worst:.2e} > {TOLERANCE}")
    report = {"model": str(path), "obs_spec": json.loads(spec.to_json()),
              "inputs": input_names(spec, bool(hidden)), "outputs": outputs,
              "max_abs_diff": worst, "tolerance": TOLERANCE, "patterns": len(patterns),
              "batch": batch, "env_steps": trained.step}
    (Path(run_dir) / "export.json").write_text(json.dumps(report, indent=2))
    return report
