"""Latency of exported models: onnxruntime vs torch eager, batch 1, one thread, same run.

Used by ``sensorium perception bench``: for each fusion method on a world's
spec it reports parameters, multiply-accumulates, and p50/p99 latency of the
whole model (preprocessing included) in both runtimes.
"""

from __future__ import annotations

import platform
import tempfile
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort
import torch
from torch import Tensor, nn
from torch.utils.flop_counter import FlopCounterMode

from deploy.export.onnx import ObsInputs, export_onnx, input_names, onnx_session, to_feed
from deploy.timing import latency_stats, time_calls


def percentiles(samples_s: Sequence[float]) -> dict[str, float]:
    stats = latency_stats(samples_s)
    return {k: stats[k] for k in ("p50_us", "p99_us", "mean_us")}


def count_macs(module: nn.Module, inputs: Sequence[Tensor]) -> int:
    """Multiply-accumulates of one forward (matmuls and convolutions, as torch counts them)."""
    with FlopCounterMode(display=False) as counter:
        module(*inputs)
    return int(counter.get_total_flops() // 2)


def bench_model(model: nn.Module, obs_spec, inputs: Sequence[Tensor], output_names: list[str],
                hidden: int, runs: int, warmup: int, work_dir: Path) -> dict[str, Any]:
    """Params, MACs and latency (ORT and torch eager, alternating blocks) of one model."""
    model = model.eval()
    wrapper = ObsInputs(model, obs_spec, recurrent=bool(hidden)).eval()
    path = export_onnx(model, obs_spec, work_dir / "model.onnx", output_names, hidden)
    session = onnx_session(path, threads=1)
    feed = to_feed(inputs, input_names(obs_spec, bool(hidden)))
    torch_threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with torch.inference_mode():
            ort_s, eager_s = [], []
            # alternate in blocks so that both see the same machine state
            for _ in range(5):
                ort_s += time_calls(lambda: session.run(None, feed), runs // 5, warmup)
                eager_s += time_calls(lambda: wrapper(*inputs), runs // 5, warmup)
        macs = count_macs(wrapper, inputs)
    finally:
        torch.set_num_threads(torch_threads)
    ort_p, eager_p = percentiles(ort_s), percentiles(eager_s)
    return {
        "params": sum(p.numel() for p in model.parameters()),
        "macs": macs,
        "onnx_bytes": path.stat().st_size,
        "onnxruntime": ort_p,
        "torch_eager": eager_p,
        "eager_over_onnxruntime_p50": eager_p["p50_us"] / ort_p["p50_us"],
    }


def bench_fusions(obs_spec, inputs_fn: Callable[[int], list[Tensor]],
                  build: Callable[[Mapping[str, Any], int], nn.Module],
                  fusions: Sequence[Mapping[str, Any]], memory: int, runs: int,
                  warmup: int) -> dict[str, Any]:
    """One row per fusion setting (and with memory, if `memory` > 0)."""
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for fusion in fusions:
            for hidden in sorted({0, memory}):
                model = build(fusion, hidden)
                inputs = inputs_fn(hidden)
                row = bench_model(model, obs_spec, inputs,
                                  ["state", "h_out"] if hidden else ["state"], hidden, runs,
                                  warmup, Path(tmp))
                rows.append({"fusion": dict(fusion), "memory": hidden, **row})
    return {
        "machine": {"processor": platform.processor(), "python": platform.python_version(),
                    "torch": torch.__version__, "onnxruntime": ort.__version__,
                    "threads": 1, "batch": 1},
        "runs": runs,
        "results": rows,
    }


def torch_eager_call(run_dir: Path, info: Any, feed: dict[str, np.ndarray]
                     ) -> tuple[Callable[[], Any], str]:
    """A no-argument call of the run's policy in torch eager (one thread) on `feed`.

    The note says whether the run's checkpoint is the one the file was exported from.
    """
    from agent.policy import DeterministicPolicy
    from agent.trained import load_trained

    trained = load_trained(run_dir)
    value = "value" in info.output_names
    module = DeterministicPolicy(trained.policy, value=value).eval()
    torch.set_num_threads(1)
    obs = {k: torch.from_numpy(v) for k, v in feed.items() if k != "h_in"}
    h = torch.from_numpy(feed["h_in"]) if "h_in" in feed else None
    steps = info.get("env_steps")
    note = (f"checkpoint at {trained.step:,} env-steps"
            + ("" if steps is None or int(steps) == trained.step else
               f", but the file was exported at {int(steps):,}: other weights"))

    def call() -> Any:
        with torch.inference_mode():
            return module(obs, h)

    return call, note
