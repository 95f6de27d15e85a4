"""int8 export with its guard, and ``sensorium bench``'s report."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import onnx
import pytest
from onnx import TensorProto, helper

from deploy.bench import MATMUL_ONNX, BenchSettings, bench, count_graph_macs, table
from deploy.export.policy import ExportError, export_run
from deploy.export.quantize import int8_path
from deploy.model import Model

FAST = {"observations": 256, "calibration": 128, "eval_episodes": 8}


@pytest.fixture(scope="module")
def exported_int8(tiny_runs, tmp_path_factory) -> tuple[Path, dict]:
    path = tmp_path_factory.mktemp("int8") / "m.onnx"
    report = export_run(tiny_runs("concat"), {"out": str(path), "quantize": "int8", **FAST})
    return path, report


def test_int8_is_static_qdq_and_reports_against_fp32(exported_int8) -> None:
    path, report = exported_int8
    q = report["int8"]
    assert Path(q["model"]) == int8_path(path) and int8_path(path).exists()
    assert not q["refused"] and q["reasons"] == []
    ops = {n.op_type for n in onnx.load(str(int8_path(path))).graph.node}
    assert {"QuantizeLinear", "DequantizeLinear"} <= ops and "ConvInteger" not in ops
    assert q["quantization"]["format"] == "QDQ" and q["quantization"]["float_nodes"] > 0
    assert 0.0 <= q["action_agreement"] <= 1.0 and q["logits_max_abs_error"] >= 0
    for side in ("fp32", "int8"):
        ev = q["evaluation"][side]
        assert ev["episodes"] == 8 and 0 <= ev["spl"] <= ev["success_rate"] <= 1
        assert q["latency_batch1_1thread"][side]["p50_us"] > 0
    assert q["bytes"]["int8"] < q["bytes"]["fp32"]
    assert json.loads(Path(q["report"]).read_text())["action_agreement"] == q["action_agreement"]
    info = Model(int8_path(path)).info  # the int8 file describes itself too
    assert info.obs_spec == Model(path).info.obs_spec
    assert json.loads(info.get("quantization"))["activations"] == "int8"
    assert info.get("weights_sha256") != Model(path).info.get("weights_sha256")


def test_int8_is_refused_when_the_guard_fails(tiny_runs, tmp_path: Path) -> None:
    """A strict threshold (int8 must beat fp32 by 0.5 success) forces the refusal."""
    out = tmp_path / "m.onnx"
    with pytest.raises(ExportError, match=r"int8 model refused, .*m.int8.onnx not written: "
                                          r"success .* \(drop .* > max_success_drop=-0.5\).*"
                                          r"The float32 file .*m.onnx is written"):
        export_run(tiny_runs("concat"), {"out": str(out), "quantize": "int8",
                                         "max_success_drop": -0.5, **FAST})
    assert out.exists() and not int8_path(out).exists()
    report = json.loads(int8_path(out).with_suffix(".json").read_text())
    assert report["refused"] and report["reasons"]


def test_bench_measures_every_runtime_and_the_floor(exported_int8, tiny_runs,
                                                    tmp_path: Path) -> None:
    path, _ = exported_int8
    report = bench(BenchSettings(model=str(path), int8=str(int8_path(path)),
                                 run=str(tiny_runs("concat")), runs=100, batch_runs=10,
                                 warmup=5, out=str(tmp_path / "b.json")))
    for key in ("onnxruntime", "onnxruntime_run", "onnxruntime_all_cores", "int8", "torch"):
        row = report[key]
        assert 0 < row["p50_us"] <= row["p90_us"] <= row["p99_us"] <= row["p99.9_us"] <= \
            row["max_us"]
        assert row["calls"] == 100 and row["calls_per_s"] > 0
    assert report["onnxruntime_batch"]["batch"] == 64
    assert report["onnxruntime_batch"]["observations_per_s"] > 0
    assert report["floor_us"] > 0 and report["macs"] == Model(path).info.macs
    assert report["matmul_gflops_1thread"] > 1
    assert report["p50_over_floor"] == pytest.approx(report["onnxruntime"]["p50_us"]
                                                     / report["floor_us"])
    assert report["session_load_ms"] > 0 and report["first_call_us"] > 0
    assert "CPUExecutionProvider" in report["providers_benchmarked"]
    assert set(report["floors"]) == {"p99_us", "p50_over_floor", "torch_over_onnxruntime_p50"}
    assert "torch eager / onnxruntime" in table(report)
    png = cv2.imread(report["histogram"])
    assert png is not None and png.shape[2] == 3


def test_bench_runs_a_plain_onnx_file_from_its_declared_inputs(tmp_path: Path) -> None:
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 8])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 4])
    w = helper.make_tensor("w", TensorProto.FLOAT, [8, 4], [0.5] * 32)
    graph = helper.make_graph([helper.make_node("MatMul", ["x", "w"], ["y"])], "g", [x], [y],
                              [w])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    onnx.save(model, str(tmp_path / "plain.onnx"))
    assert count_graph_macs(tmp_path / "plain.onnx") == 32
    report = bench(BenchSettings(model=str(tmp_path / "plain.onnx"), runs=50, batch_runs=5,
                                 warmup=2, out=str(tmp_path / "p.json")))
    assert not report["is_sensorium"] and report["onnxruntime"]["p50_us"] > 0
    assert report["macs"] == 32 and report["floor_us"] > 0


def test_the_embedded_matmul_graph_is_what_onnx_writes() -> None:
    a = helper.make_tensor_value_info("a", TensorProto.FLOAT, ["m", "k"])
    b = helper.make_tensor_value_info("b", TensorProto.FLOAT, ["k", "n"])
    c = helper.make_tensor_value_info("c", TensorProto.FLOAT, ["m", "n"])
    graph = helper.make_graph([helper.make_node("MatMul", ["a", "b"], ["c"])], "matmul", [a, b],
                              [c])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    assert model.SerializeToString() == MATMUL_ONNX


def test_a_recording_can_be_the_int8_calibration_data(tiny_runs, exported_tiny,
                                                      tmp_path: Path) -> None:
    from deploy.launch import run
    from deploy.loop import RealtimeSettings
    from deploy.run_settings import RunCommandSettings

    rec = tmp_path / "robot.mcap"
    run(RunCommandSettings(model=str(exported_tiny), source="sim", hz=50, duration=1.5,
                           record=str(rec), status=False, out=str(tmp_path / "r.json"),
                           rt=RealtimeSettings(gc_freeze=False)), print_fn=lambda *a: None)
    report = export_run(tiny_runs("concat"), {"out": str(tmp_path / "m.onnx"),
                                              "quantize": "int8", "calibration_file": str(rec),
                                              **FAST})
    quant = report["int8"]["quantization"]
    assert quant["calibration_source"] == str(rec)
    assert 0 < quant["calibration_observations"] <= FAST["calibration"]
    assert report["int8"]["observations"] == report["observations"]  # all held out
