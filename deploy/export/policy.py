"""Export a trained run's policy: one self-describing ONNX file, proven equal to torch.

The file takes the modalities (raw dtypes), one ``<name>_present`` flag each
and ``h_in`` for recurrent policies; it returns ``action`` (greedy),
``logits`` (or the continuous ``mean``), ``value`` (when the critic reads
sensors only) and ``h_out``. Its metadata carries everything the runtime
needs (:data:`deploy.model.KEYS`). The proof (:mod:`deploy.export.parity`) runs
on the policy's own rollouts; the file only takes its place when it passes,
and the report is written beside it either way.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

from agent.policy import DeterministicPolicy
from agent.trained import Trained, load_trained
from deploy.export.latency import count_macs
from deploy.export.metadata import (
    build_metadata,
    doc_string,
    resolve_safe_action,
    write_metadata,
)
from deploy.export.onnx import ObsInputs, example_inputs, export_onnx
from deploy.export.parity import parity_report
from deploy.export.rollouts import Rollout, record_rollout
from deploy.export.settings import ExportSettings
from deploy.model import PREFIX, open_session
from perception.settings import UserError, config_from_kwargs

SEQUENCE_WORLDS = 8


class ExportError(UserError):
    """An export could not be made or did not prove itself; the message gives the figures."""


def output_names(continuous: bool, value: bool, hidden: int) -> list[str]:
    return ["action", "mean" if continuous else "logits", *(["value"] if value else []),
            *(["h_out"] if hidden else [])]


def parity_path(model_path: Path) -> Path:
    """Where the parity report of `model_path` goes (``model.onnx`` -> ``model.parity.json``)."""
    return model_path.with_name(model_path.stem + ".parity.json")


def load_run(run_dir: Path) -> Trained:
    """The run's policy, or an ExportError that says what is missing."""
    if not run_dir.is_dir():
        raise ExportError(f"run={run_dir}: no such folder; train one first "
                          "(`sensorium train name=NAME` writes runs/NAME)")
    return load_trained(run_dir)


def rollout_for(trained: Trained, module: DeterministicPolicy, observations: int,
                sequence_steps: int, seed: int) -> Rollout:
    """Enough of the policy's own steps: >= `observations`, in sequences when recurrent."""
    hidden = trained.policy.hidden_size
    if hidden:  # sequences of `sequence_steps`, as many worlds as reach `observations`
        worlds = max(SEQUENCE_WORLDS, -(-observations // sequence_steps))
        steps = sequence_steps
    else:
        worlds = 32
        steps = -(-observations // worlds)
    return record_rollout(module, trained.policy, trained.obs_spec, trained.setup.env, worlds,
                          steps, seed, hidden)


def export_run(run_dir: Path, settings: ExportSettings | dict[str, Any] | None = None
               ) -> dict[str, Any]:
    """Write the run's ONNX file (and int8 file, when asked and good enough); the report."""
    if not isinstance(settings, ExportSettings):
        settings = config_from_kwargs(ExportSettings, settings or {}, "export")
    run_dir = Path(run_dir)
    t0 = time.perf_counter()
    trained = load_run(run_dir)
    policy = trained.policy
    spec, action_spec = trained.obs_spec, trained.action_spec
    hidden = policy.hidden_size
    with_value = not policy.privileged_dim
    module = DeterministicPolicy(policy, value=with_value).eval()
    outputs = output_names(policy.continuous, with_value, hidden)
    safe = resolve_safe_action(action_spec, settings.safe_action)
    out = Path(settings.out) if settings.out else run_dir / "model.onnx"
    tmp = out.with_name(f".{out.name}.tmp")
    macs = count_macs(ObsInputs(module, spec, bool(hidden)), example_inputs(spec, 1, hidden))
    export_onnx(module, spec, tmp, outputs, hidden)
    props = build_metadata(spec, action_spec, outputs, hidden, safe, trained.setup.to_dict(),
                           trained.step, macs, run_dir)
    doc = doc_string(spec, action_spec, outputs, hidden)
    write_metadata(tmp, props, doc)
    rollout = rollout_for(trained, module, settings.observations, settings.sequence_steps,
                          settings.seed)
    session = open_session(tmp, threads=1)
    report = parity_report(module, session, spec, rollout, outputs, hidden,
                           policy.continuous, settings.seed)
    summary = {k: report[k] for k in ("observations", "patterns", "max_abs_diff",
                                      "action_agreement", "ties", "tolerance", "passed")}
    if "sequences" in report:
        summary["recurrent_drift"] = report["sequences"]["max_drift"]
        summary["sequence_steps"] = report["sequences"]["steps"]
    digest = write_metadata(tmp, {PREFIX + "parity": json.dumps(summary)})
    report = {"model": str(out), "run": str(run_dir), "env_steps": trained.step,
              "inputs": [*spec.names, *(f"{n}_present" for n in spec.names),
                         *(["h_in"] if hidden else [])],
              "outputs": outputs, "obs_spec": json.loads(spec.to_json()),
              "safe_action": safe[0], "safe_action_source": safe[1], "macs": macs,
              "weights_sha256": digest, "bytes": tmp.stat().st_size, **report,
              "seconds": time.perf_counter() - t0}
    report_path = parity_path(out)
    report_path.write_text(json.dumps(report, indent=2))
    report["report"] = str(report_path)
    if not report["passed"]:
        rejected = out.with_name(out.stem + ".parity_failed.onnx")
        os.replace(tmp, rejected)
        raise ExportError(f"{out} was not written: onnxruntime does not reproduce torch: "
                          f"{'; '.join(report['failures'])}. The file is kept as {rejected}, "
                          f"the figures in {report_path}")
    os.replace(tmp, out)
    if settings.quantize == "int8":
        from deploy.export.quantize import quantize_int8

        report["int8"] = quantize_int8(out, trained, rollout, settings)
    return report

