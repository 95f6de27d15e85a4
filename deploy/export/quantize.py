"""int8 export, guarded: static QDQ quantization kept only if the policy still works.

onnxruntime's tools: ``quant_pre_process`` (shape inference and graph
clean-up), then ``quantize_static`` in QDQ format with signed int8
activations and per-channel signed int8 weights (S8S8), activation ranges
calibrated on observations from the policy's own rollouts under varied
presence patterns. The in-graph preprocessing (log-mel, image and depth
scaling, running normalisation) stays in float: its inputs span orders of
magnitude that one int8 scale cannot hold. Dynamic quantization is not
offered: it turns Conv into ConvInteger, which the CPU provider lacks.

The int8 file is compared with the float32 file on the same data and the
same worlds (greedy-action agreement and logit error on held-out recorded
observations, also under every presence pattern, closed-loop success and
SPL, size, latency at batch 1 on one thread) and is refused, not written,
when success drops by more than ``max_success_drop`` or agreement falls under
``min_agreement``.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import onnx

from deploy.export.closed_loop import evaluate_model
from deploy.export.metadata import write_metadata
from deploy.export.parity import presence_patterns
from deploy.export.rollouts import Rollout
from deploy.export.settings import ExportSettings
from deploy.model import PREFIX, Model
from deploy.timing import latency_stats, time_alternating
from envs.episodes import EVAL_SEED
from perception.spec import presence_key

#: node-name fragments of what stays in float: the in-graph preprocessing, and the small
#: actor and critic heads (a few thousand MACs; int8 there moved greedy actions most)
FLOAT_PARTS = ("/log_mel/", "/frontend/", "/norm/", "/scale/", "/preprocess/", "/actor/",
               "/critic/")


def int8_path(model_path: Path) -> Path:
    return model_path.with_name(model_path.stem + ".int8.onnx")


def float_nodes(model: onnx.ModelProto) -> list[str]:
    """Names of the nodes that belong to in-graph preprocessing (kept in float)."""
    return [n.name for n in model.graph.node if any(p in n.name for p in FLOAT_PARTS)]


def _feeds(rollout: Rollout, names: tuple[str, ...], hidden: int, start: int, stop: int,
           mixed: bool, batch: int = 32, seed: int = 0) -> list[dict[str, np.ndarray]]:
    """Batches of recorded observations [start, stop): as recorded (every modality present),
    or `mixed`: each batch under another presence pattern."""
    obs, h = rollout.flat()
    stop = min(stop, len(next(iter(obs.values()))))
    patterns = presence_patterns(names, seed) if mixed else [(True,) * len(names)]
    feeds = []
    for i, lo in enumerate(range(start, stop, batch)):
        hi = min(stop, lo + batch)
        feed = {k: obs[k][lo:hi] for k in names}
        pattern = patterns[i % len(patterns)]
        feed.update({presence_key(k): np.full(hi - lo, on) for k, on in zip(names, pattern)})
        if hidden:
            feed["h_in"] = h[lo:hi]
        feeds.append(feed)
    return feeds


class _Reader:
    """onnxruntime's CalibrationDataReader protocol over recorded feeds."""

    def __init__(self, feeds: list[dict[str, np.ndarray]]) -> None:
        self.feeds = iter(feeds)

    def get_next(self) -> dict[str, np.ndarray] | None:
        return next(self.feeds, None)


def quantize_file(fp32: Path, out: Path, feeds: list[dict[str, np.ndarray]]) -> list[str]:
    """Write the QDQ int8 model of `fp32` to `out`; the nodes kept in float."""
    from onnxruntime.quantization import QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    logging.getLogger("onnxruntime.quantization").setLevel(logging.WARNING)  # its progress notes

    with tempfile.TemporaryDirectory() as tmp:
        pre = Path(tmp) / "pre.onnx"
        quant_pre_process(str(fp32), str(pre))
        keep_float = float_nodes(onnx.load(str(pre)))
        quantize_static(str(pre), str(out), _Reader(feeds), quant_format=QuantFormat.QDQ,
                        per_channel=True, activation_type=QuantType.QInt8,
                        weight_type=QuantType.QInt8, nodes_to_exclude=keep_float,
                        op_types_to_quantize=["Conv", "MatMul", "Gemm"])
    return keep_float


def compare_outputs(fp32: Model, int8: Model, feeds: list[dict[str, np.ndarray]]
                    ) -> dict[str, Any]:
    """Greedy-action agreement and head error of int8 against fp32 on the same feeds."""
    head = "mean" if fp32.action_spec.kind == "continuous" else "logits"
    agree = total = 0
    errs, worst = [], 0.0
    for feed in feeds:
        a, b = fp32.run(feed, validate=False), int8.run(feed, validate=False)
        if head == "mean":
            same = np.abs(a["action"] - b["action"]).max(-1) <= 1e-2 * np.maximum(
                1.0, np.abs(a["action"]).max(-1))
        else:
            same = a["action"] == b["action"]
        agree += int(same.sum())
        total += len(same)
        diff = np.abs(a[head] - b[head])
        errs.append(diff.mean())
        worst = max(worst, float(diff.max()))
    return {"observations": total, "action_agreement": agree / total,
            f"{head}_mean_abs_error": float(np.mean(errs)), f"{head}_max_abs_error": worst}


def latency_pair(fp32: Path, int8: Path, runs: int = 2000) -> dict[str, Any]:
    """Batch 1, one thread, alternating blocks: p50/p99 of each and the ratio."""
    models = {"fp32": Model(fp32, threads=1), "int8": Model(int8, threads=1)}
    feed = {}
    for m in models["fp32"].obs_spec:
        feed[m.name] = np.zeros((1, *m.shape), m.dtype)
    feed = models["fp32"].make_feed(feed)
    fns = {k: (lambda s=m.session: s.run(None, feed)) for k, m in models.items()}
    stats = {k: latency_stats(v) for k, v in time_alternating(fns, runs, warmup=50).items()}
    stats["int8_over_fp32_p50"] = stats["int8"]["p50_us"] / stats["fp32"]["p50_us"]
    return stats


def quantize_int8(fp32_path: Path, trained: Any, rollout: Rollout,
                  settings: ExportSettings) -> dict[str, Any]:
    """Quantize, compare, guard; the report (also written as <stem>.int8.json).

    Raises ExportError (after writing the report) when the guard refuses the file.
    """
    from deploy.export.policy import ExportError

    out = int8_path(fp32_path)
    tmp = out.with_name(f".{out.name}.tmp")
    names, hidden = trained.obs_spec.names, trained.policy.hidden_size
    n = rollout.steps * rollout.worlds
    cut = min(settings.calibration, n // 2)  # calibrate on the first part, compare on the rest
    if settings.calibration_file:
        from deploy.export.rollouts import rollout_from_recording

        recorded = rollout_from_recording(settings.calibration_file, trained.obs_spec, hidden)
        calib = _feeds(recorded, names, hidden, 0, settings.calibration, mixed=True,
                       seed=settings.seed)
        cut = 0  # the policy's own rollout is all held out for the comparison
    else:
        calib = _feeds(rollout, names, hidden, 0, cut, mixed=True, seed=settings.seed)
    keep_float = quantize_file(fp32_path, tmp, calib)
    fp32_props = {p.key: p.value for p in onnx.load(str(fp32_path)).metadata_props}
    quant = {"format": "QDQ", "activations": "int8", "weights": "int8 per-channel",
             "calibration_observations": sum(len(f[names[0]]) for f in calib),
             "calibration_source": settings.calibration_file or "the policy's rollouts",
             "float_nodes": len(keep_float)}
    fp32_props[PREFIX + "quantization"] = json.dumps(quant)
    write_metadata(tmp, fp32_props)
    fp32, int8 = Model(fp32_path, threads=1), Model(tmp, threads=1)
    # compared on observations not used for calibration: as recorded (the guard's figure),
    # and under every presence pattern in turn (reported; a policy trained without dropout
    # is near a tie on many patterns, where any rounding flips its argmax)
    outputs = compare_outputs(fp32, int8, _feeds(rollout, names, hidden, cut, n, mixed=False))
    mixed = compare_outputs(fp32, int8, _feeds(rollout, names, hidden, cut, n, mixed=True,
                                               seed=settings.seed + 1))
    outputs["all_patterns"] = mixed
    env = trained.setup.env
    closed = {k: evaluate_model(m, env, settings.eval_episodes, EVAL_SEED)
              for k, m in (("fp32", fp32), ("int8", int8))}
    report: dict[str, Any] = {
        "model": str(out), "quantization": quant, **outputs, "evaluation": closed,
        "bytes": {"fp32": fp32_path.stat().st_size, "int8": tmp.stat().st_size},
        "latency_batch1_1thread": latency_pair(fp32_path, tmp),
        "max_success_drop": settings.max_success_drop, "min_agreement": settings.min_agreement,
    }
    reasons = []
    if "success_rate" in closed["fp32"]:
        drop = closed["fp32"]["success_rate"] - closed["int8"]["success_rate"]
        report["success_drop"] = drop
        if drop > settings.max_success_drop:
            reasons.append(f"success {closed['fp32']['success_rate']:.3f} -> "
                           f"{closed['int8']['success_rate']:.3f} (drop {drop:.3f} > "
                           f"max_success_drop={settings.max_success_drop})")
    if outputs["action_agreement"] < settings.min_agreement:
        reasons.append(f"greedy actions agree with float32 on {outputs['action_agreement']:.3f}"
                       f" of {outputs['observations']} observations (< min_agreement="
                       f"{settings.min_agreement})")
    report["refused"] = bool(reasons)
    report["reasons"] = reasons
    report_path = out.with_suffix(".json")
    report_path.write_text(json.dumps(report, indent=2))
    report["report"] = str(report_path)
    if reasons:
        tmp.unlink()
        raise ExportError(f"int8 model refused, {out} not written: {'; '.join(reasons)}. "
                          f"Figures: {report_path}. The float32 file {fp32_path} is written.")
    os.replace(tmp, out)
    return report
