"""``sensorium bench model=FILE``: the latency of an exported model on this machine.

One run measures, on the same input: onnxruntime at batch 1 on one thread
(the robot's case: the runtime's bound call, and a plain ``session.run`` with
a dict feed beside it) and on all cores, batch 64 (throughput), every other
execution provider this onnxruntime has, the int8 file when given, and torch
eager on the same weights when torch and the run folder are there. Each gets
p50/p90/p99/p99.9/max and calls/s; the session's load time and the first
(cold) call are reported apart. The compute floor is the model's
multiply-accumulates over this machine's single-core matmul rate, measured
with onnxruntime's own MatMul in the same alternating blocks as the model
(median rate; the peak is reported beside it).

Torch is imported only for the torch row (``run=DIR``).
"""

from __future__ import annotations

import os
import platform
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort

from deploy.model import Model, ModelFileError, ModelInfo
from deploy.plot import histogram_png
from deploy.timing import latency_stats, time_alternating, time_calls
from perception.settings import require_int
from perception.spec import ModalityKind

#: a one-node ONNX graph, ``c = MatMul(a, b)`` with dynamic shapes (opset 17), as
#: ``onnx.helper`` writes it; tests/deploy/test_bench.py rebuilds it with onnx and compares
MATMUL_ONNX = (b'\x08\x08:`\n\x11\n\x01a\n\x01b\x12\x01c"\x06MatMul\x12\x06matmulZ\x15\n\x01a'
               b'\x12\x10\n\x0e\x08\x01\x12\n\n\x03\x12\x01m\n\x03\x12\x01kZ\x15\n\x01b\x12\x10'
               b'\n\x0e\x08\x01\x12\n\n\x03\x12\x01k\n\x03\x12\x01nb\x15\n\x01c\x12\x10\n\x0e'
               b'\x08\x01\x12\n\n\x03\x12\x01m\n\x03\x12\x01nB\x04\n\x00\x10\x11')
#: providers that do not compute (remote endpoints) and are never benchmarked
NOT_COMPUTE = ("AzureExecutionProvider",)
#: floors of the default AudioVisualNav model (batch 1, one thread, preprocessing included)
FLOORS = {"p99_us": 300.0, "p50_over_floor": 3.0, "torch_over_onnxruntime_p50": 3.0}


@dataclass
class BenchSettings:
    """``sensorium bench``."""

    model: str = ""
    """The ONNX file (a sensorium export, or any ONNX model: it runs from its inputs)."""
    int8: str = ""
    """An int8 file of the same model to measure beside it."""
    run: str = ""
    """The run folder the model came from: adds torch eager on the same weights."""
    runs: int = 5000
    """Timed calls per batch-1 measurement (in 5 alternating blocks)."""
    batch_runs: int = 300
    """Timed calls at batch 64."""
    batch: int = 64
    """Batch of the throughput measurement."""
    warmup: int = 50
    """Untimed calls before each block."""
    seed: int = 0
    """Seed of the input."""
    out: str = "reports/bench.json"
    """The JSON report (the histogram: same name, .png)."""

    def validate(self) -> None:
        for key in ("runs", "batch_runs", "batch"):
            require_int("bench", key, getattr(self, key), 1)
        require_int("bench", "warmup", self.warmup, 0)
        if not self.model:
            raise ModelFileError("sensorium bench needs model=FILE (e.g. runs/NAME/model.onnx "
                                 "from `sensorium export run=runs/NAME`)")


def example_feed(info: ModelInfo, batch: int, seed: int = 0) -> dict[str, np.ndarray]:
    """A plausible input: sensor-like values for a sensorium file, else by declared dtype."""
    rng = np.random.default_rng(seed)
    feed: dict[str, np.ndarray] = {}
    kinds = {m.name: m for m in info.obs_spec} if info.obs_spec else {}
    for t in info.inputs:
        shape = tuple(batch if (i == 0 and d is None) else (d or 1) for i, d in enumerate(t.shape))
        spec = kinds.get(t.name)
        if t.dtype == np.bool_:
            x = np.ones(shape, bool)
        elif spec is not None and spec.kind is ModalityKind.IMAGE:
            x = rng.integers(0, 256, shape, dtype=np.uint8)
        elif spec is not None and spec.kind is ModalityKind.DEPTH:
            x = rng.uniform(0.2, min(float(spec.high), 10.0), shape)
        elif spec is not None and spec.kind is ModalityKind.AUDIO:
            x = np.clip(rng.normal(0, 0.1, shape), -1, 1)
        elif np.issubdtype(t.dtype, np.floating):
            x = rng.normal(0, 1, shape) * (0.0 if t.name == "h_in" else 1.0)
        else:
            x = np.zeros(shape)
        feed[t.name] = np.asarray(x).astype(t.dtype)
    return feed


MATMUL_N = 512


def matmul_call(n: int = MATMUL_N) -> Any:
    """A no-argument call of onnxruntime's float32 (n x n) @ (n x n) on one thread."""
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    so.add_session_config_entry("session.intra_op.allow_spinning", "0")
    session = ort.InferenceSession(MATMUL_ONNX, so, providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(0)
    feed = {"a": rng.random((n, n), np.float32), "b": rng.random((n, n), np.float32)}
    return lambda: session.run(None, feed)


def matmul_gflops(n: int = MATMUL_N, repeats: int = 30) -> float:
    """Peak single-thread float32 matmul rate of onnxruntime here (best of `repeats`)."""
    return 2.0 * n ** 3 / min(time_calls(matmul_call(n), repeats, warmup=3)) / 1e9


def count_graph_macs(path: Path) -> int | None:
    """MACs of Conv/MatMul/Gemm at batch 1 from the graph (needs the onnx package)."""
    try:
        import onnx
        from onnx import shape_inference
    except ImportError:
        return None
    model = onnx.load(str(path))
    for inp in model.graph.input:  # batch 1 everywhere
        dims = inp.type.tensor_type.shape.dim
        for d in dims[:1]:
            d.ClearField("dim_param")
            d.dim_value = 1
    model = shape_inference.infer_shapes(model)
    shapes = {v.name: [d.dim_value for d in v.type.tensor_type.shape.dim]
              for v in [*model.graph.value_info, *model.graph.input, *model.graph.output]}
    shapes.update({t.name: list(t.dims) for t in model.graph.initializer})
    macs = 0
    for node in model.graph.node:
        if node.op_type not in ("Conv", "MatMul", "Gemm"):
            continue
        out, w = shapes.get(node.output[0]), shapes.get(node.input[1])
        if not out or not w or 0 in out:
            continue
        if node.op_type == "Conv":
            macs += int(np.prod(out)) * int(np.prod(w[1:]))
        else:
            macs += int(np.prod(out)) * int(w[0] if node.op_type == "MatMul" else w[-1])
    return macs


def _bound(model: Model, feed: dict[str, np.ndarray]) -> Any:
    """`model` bound at batch 1 with `feed` copied into its input arrays."""
    bound = model.bind(1)
    for k, v in feed.items():
        bound.inputs[k][...] = v
    return bound


def _load(path: Path, threads: int, providers: tuple[str, ...]) -> tuple[Model, float]:
    t0 = time.perf_counter()
    model = Model(path, threads=threads, providers=providers, require_sensorium=False)
    return model, time.perf_counter() - t0


def bench(settings: BenchSettings) -> dict[str, Any]:
    """Measure; the report (JSON-ready), also written with its histogram PNG."""
    path = Path(settings.model)
    model, load_s = _load(path, 1, ("CPUExecutionProvider",))
    info = model.info
    feed1 = example_feed(info, 1, settings.seed)
    t0 = time.perf_counter()
    model.session.run(None, feed1)
    first_call_s = time.perf_counter() - t0
    feed_b = example_feed(info, settings.batch, settings.seed)
    cores = os.cpu_count() or 1
    all_cores, _ = _load(path, 0, ("CPUExecutionProvider",))
    bound = _bound(model, feed1)
    fns = {"onnxruntime": bound.run,  # the runtime's call: preallocated, bound arrays
           "onnxruntime_run": lambda: model.session.run(None, feed1),  # a dict feed
           "onnxruntime_all_cores": _bound(all_cores, feed1).run}
    int8 = None
    if settings.int8:
        int8, _ = _load(Path(settings.int8), 1, ("CPUExecutionProvider",))
        fns["int8"] = _bound(int8, example_feed(int8.info, 1, settings.seed)).run
    torch_note = None
    if settings.run:
        from deploy.export.latency import torch_eager_call

        fns["torch"], torch_note = torch_eager_call(Path(settings.run), info, feed1)
    providers = [p for p in ort.get_available_providers()
                 if p not in NOT_COMPUTE and p != "CPUExecutionProvider"]
    for p in providers:
        other, _ = _load(path, 1, (p, "CPUExecutionProvider"))
        fns[p] = _bound(other, feed1).run
    # the matmul rate is timed in the same alternating blocks: this shared machine has slow
    # phases of minutes, and the floor ratio must compare like with like
    matmul = matmul_call()
    samples = time_alternating(
        {**fns, "matmul": matmul}, settings.runs, settings.warmup,
        per_fn_runs={"matmul": 20 * 5})
    matmul_s = samples.pop("matmul")
    batch_s = time_calls(lambda: all_cores.session.run(None, feed_b), settings.batch_runs,
                         settings.warmup // 5)
    rows = {k: {**latency_stats(v)} for k, v in samples.items()}
    for k in rows:
        rows[k].update(batch=1, threads=1 if k != "onnxruntime_all_cores" else cores)
    rows["onnxruntime_batch"] = {**latency_stats(batch_s), "batch": settings.batch,
                                 "threads": cores}
    rows["onnxruntime_batch"]["observations_per_s"] = (
        rows["onnxruntime_batch"]["calls_per_s"] * settings.batch)
    macs = info.macs or count_graph_macs(path)
    flops = 2.0 * MATMUL_N ** 3
    gflops = flops / float(np.median(matmul_s)) / 1e9
    floor_us = 2.0 * macs / (gflops * 1e9) * 1e6 if macs else None
    report: dict[str, Any] = {
        "model": str(path), "is_sensorium": info.is_sensorium,
        "env_id": info.get("env_id"), "env_steps": info.get("env_steps"),
        "machine": {"processor": platform.processor() or platform.machine(),
                    "cores": cores, "onnxruntime": ort.__version__,
                    "providers_available": ort.get_available_providers()},
        "session_load_ms": load_s * 1e3, "first_call_us": first_call_s * 1e6,
        **rows, "macs": macs, "matmul_gflops_1thread": gflops,
        "matmul_gflops_1thread_peak": flops / min(matmul_s) / 1e9, "floor_us": floor_us,
        "providers_benchmarked": ["CPUExecutionProvider", *providers],
    }
    ort_p50 = rows["onnxruntime"]["p50_us"]
    if floor_us:
        report["p50_over_floor"] = ort_p50 / floor_us
    if "torch" in rows:
        report["torch_over_onnxruntime_p50"] = rows["torch"]["p50_us"] / ort_p50
        report["torch_note"] = torch_note
    if int8 is not None:
        report["int8_over_fp32_p50"] = rows["int8"]["p50_us"] / ort_p50
    report["floors"] = check_floors(report)
    out = Path(settings.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    png = histogram_png({k: np.asarray(v) * 1e6 for k, v in samples.items()},
                        out.with_suffix(".png"),
                        f"{path.name}: latency per call, batch 1 ({settings.runs} calls each)")
    report["histogram"] = str(png)
    return report


def check_floors(report: dict[str, Any]) -> dict[str, Any]:
    """The default model's floors, each with the figure and whether it holds."""
    got = {"p99_us": report["onnxruntime"]["p99_us"],
           "p50_over_floor": report.get("p50_over_floor"),
           "torch_over_onnxruntime_p50": report.get("torch_over_onnxruntime_p50")}
    out = {}
    for key, limit in FLOORS.items():
        value = got[key]
        if value is None:
            continue
        ok = value >= limit if key.startswith("torch") else value <= limit
        out[key] = {"value": value, "limit": limit, "holds": bool(ok)}
    return out


def table(report: dict[str, Any]) -> str:
    """The printed table: one row per measurement, µs."""
    head = f"{'':<40}{'p50':>9}{'p90':>9}{'p99':>9}{'p99.9':>9}{'max':>9}{'calls/s':>10}"
    lines = [head]
    for key, value in report.items():
        if isinstance(value, dict) and "p50_us" in value:
            label = f"{key} (batch {value['batch']}, {value['threads']} thr)"
            lines.append(f"{label:<40}" + "".join(
                f"{value[k]:>9,.0f}" for k in ("p50_us", "p90_us", "p99_us", "p99.9_us",
                                               "max_us")) + f"{value['calls_per_s']:>10,.0f}")
    lines.append(f"session load {report['session_load_ms']:.1f} ms, first call "
                 f"{report['first_call_us']:,.0f} us")
    if report.get("floor_us"):
        lines.append(f"compute floor {report['floor_us']:.1f} us ({report['macs']:,} MACs at "
                     f"{report['matmul_gflops_1thread']:.0f} GFLOP/s, one core); p50 / floor "
                     f"{report['p50_over_floor']:.2f}x")
    if "torch_over_onnxruntime_p50" in report:
        lines.append(f"torch eager / onnxruntime at p50: "
                     f"{report['torch_over_onnxruntime_p50']:.1f}x")
    return "\n".join(lines)
