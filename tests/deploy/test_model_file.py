"""The torch-free reader of exported files: it opens, checks and validates, and a plain
onnxruntime user with no torch drives the file from its metadata alone."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import onnx
import pytest

from deploy.export.policy import ExportError, export_run
from deploy.model import Model, ModelFileError

REPO = Path(__file__).resolve().parents[2]
#: a meta-path hook that makes ``import torch`` (and anything under it) fail
NO_TORCH = textwrap.dedent("""
    import sys
    class _NoTorch:
        def find_spec(self, name, path=None, target=None):
            if name == "torch" or name.startswith("torch."):
                raise ImportError("torch is blocked in this test")
    sys.meta_path.insert(0, _NoTorch())
""")


@pytest.fixture(scope="module")
def exported(tiny_runs, tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("file") / "m.onnx"
    export_run(tiny_runs("concat"), {"out": str(path), "observations": 256})
    return path


def _feed(model: Model, batch: int = 3) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    obs = {m.name: (rng.integers(0, 256, (batch, *m.shape)).astype(m.dtype) if m.dtype == "uint8"
                    else rng.uniform(0, 1, (batch, *m.shape)).astype(m.dtype))
           for m in model.obs_spec}
    return model.make_feed(obs)


def run_python(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120, cwd=REPO)


def test_plain_onnxruntime_without_torch_drives_the_file_from_its_metadata(exported: Path
                                                                           ) -> None:
    code = NO_TORCH + textwrap.dedent(f"""
        import json
        import numpy as np
        import onnxruntime as ort
        try:
            import torch
        except ImportError:
            pass
        else:
            raise SystemExit("torch should not import here")
        sess = ort.InferenceSession({str(exported)!r}, providers=["CPUExecutionProvider"])
        meta = sess.get_modelmeta().custom_metadata_map
        spec = json.loads(meta["sensorium.obs_spec"])
        actions = json.loads(meta["sensorium.action_spec"])
        feed = {{}}
        for m in spec["modalities"]:
            feed[m["name"]] = np.zeros([2, *m["shape"]], m["dtype"])
            feed[m["name"] + "_present"] = np.array([True, False])
        out = dict(zip([o.name for o in sess.get_outputs()], sess.run(None, feed)))
        print(json.dumps({{"action": out["action"].tolist(), "n": actions["n"],
                          "safe": json.loads(meta["sensorium.safe_action"]),
                          "hz": float(meta["sensorium.control_hz"]),
                          "outputs": json.loads(meta["sensorium.outputs"]),
                          "doc": sess.get_modelmeta().description}}))
    """)
    proc = run_python(code)
    assert proc.returncode == 0, proc.stderr
    got = json.loads(proc.stdout)
    assert len(got["action"]) == 2 and all(0 <= a < got["n"] for a in got["action"])
    assert got["safe"] == 0 and got["hz"] > 0 and got["outputs"] == ["action", "logits", "value"]
    assert "Inputs:" in got["doc"]


def test_the_reader_imports_and_runs_where_torch_cannot_be_imported(exported: Path) -> None:
    code = NO_TORCH + textwrap.dedent(f"""
        import sys
        import numpy as np
        from deploy.model import Model
        m = Model({str(exported)!r}, threads=1)
        feed = m.make_feed({{s.name: np.zeros((1, *s.shape), s.dtype) for s in m.obs_spec}})
        out = m.bind(1)
        for k, v in feed.items():
            out.inputs[k][...] = v
        assert out.run()["action"].shape == (1,)
        assert m.run(feed)["action"].shape == (1,)
        assert "torch" not in sys.modules, "torch was imported"
        print("ok", int(m.info.safe_action))
    """)
    proc = run_python(code)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["ok", "0"]


def test_feeds_are_validated_with_messages_that_name_the_input(exported: Path) -> None:
    model = Model(exported)
    feed = _feed(model)
    model.validate(feed)  # a good feed passes
    with pytest.raises(ModelFileError, match="feed has input 'sonar'.*its inputs: rgb, depth"):
        model.validate({**feed, "sonar": feed["touch"]})
    with pytest.raises(ModelFileError, match=r"feed lacks input 'depth' \(expected "
                                             r"float32\[batch, 16, 16, 1\]\)"):
        model.validate({k: v for k, v in feed.items() if k != "depth"})
    with pytest.raises(ModelFileError, match=r"input 'rgb': expected dtype uint8, got float32; "
                                             r"convert with .astype\(np.uint8\)"):
        model.validate({**feed, "rgb": feed["rgb"].astype(np.float32)})
    with pytest.raises(ModelFileError, match=r"input 'audio': expected shape "
                                             r"float32\[batch, 2, 1600\], got \[2, 1600\] "
                                             r"\(add the batch axis"):
        model.validate({**feed, "audio": feed["audio"][0]})
    with pytest.raises(ModelFileError, match="input 'touch' has batch 2, the others 3"):
        model.validate({**feed, "touch": feed["touch"][:2]})
    bad = feed["depth"].copy()
    bad[1, 0, 0, 0] = np.nan
    bad[2, 3, 3, 0] = np.inf
    with pytest.raises(ModelFileError, match="input 'depth' holds 2 NaN/Inf value.*"
                                             "depth_present=False"):
        model.validate({**feed, "depth": bad})
    absent = {**feed, "depth": bad, "depth_present": np.array([True, False, False])}
    model.validate(absent)  # NaN only where depth is absent: the model does not read it
    out = model.run(absent)
    assert np.isfinite(out["logits"]).all()
    with pytest.raises(ModelFileError, match="expected a numpy array"):
        model.validate({**feed, "touch": feed["touch"].tolist()})


def test_bound_calls_give_the_same_outputs_as_session_run(exported: Path) -> None:
    model = Model(exported)
    feed = _feed(model, batch=2)
    bound = model.bind(2)
    for k, v in feed.items():
        bound.inputs[k][...] = v
    got, want = bound.run(), model.run(feed)
    for k in want:
        np.testing.assert_array_equal(got[k], want[k])


def test_bad_files_get_messages_that_name_them_and_the_fix(exported: Path, tmp_path: Path
                                                           ) -> None:
    with pytest.raises(ModelFileError, match=r"model file .*nowhere.onnx does not exist; "
                                             r"export one with `sensorium export run=DIR`"):
        Model(tmp_path / "nowhere.onnx")
    (tmp_path / "empty.onnx").write_bytes(b"")
    with pytest.raises(ModelFileError, match="is empty; export it again"):
        Model(tmp_path / "empty.onnx")
    data = exported.read_bytes()
    (tmp_path / "half.onnx").write_bytes(data[: len(data) // 2])
    with pytest.raises(ModelFileError, match="half.onnx is not a readable ONNX model.*truncated"):
        Model(tmp_path / "half.onnx")
    (tmp_path / "notes.onnx").write_text("these are not the weights you are looking for\n")
    with pytest.raises(ModelFileError, match="notes.onnx is not a readable ONNX model"):
        Model(tmp_path / "notes.onnx")
    plain = onnx.load(str(exported))
    del plain.metadata_props[:]
    onnx.save(plain, str(tmp_path / "plain.onnx"))
    with pytest.raises(ModelFileError, match="without sensorium metadata.*`sensorium bench "
                                             "model=FILE`"):
        Model(tmp_path / "plain.onnx")
    assert not Model(tmp_path / "plain.onnx", require_sensorium=False).info.is_sensorium
    broken = onnx.load(str(exported))
    for p in broken.metadata_props:
        if p.key == "sensorium.obs_spec":
            p.value = '{"version": 1, "modalities": [{"name": "rgb"'
    onnx.save(broken, str(tmp_path / "broken.onnx"))
    with pytest.raises(ModelFileError, match="broken.onnx: its observation/action spec cannot be "
                                             "read.*export the model again"):
        Model(tmp_path / "broken.onnx")
    with pytest.raises(ModelFileError, match=r"execution provider\(s\) \['NoSuchProvider'\]"):
        Model(exported, providers=("NoSuchProvider",))


def test_runs_that_cannot_be_exported_say_why(tmp_path: Path) -> None:
    from agent.checkpoint import CheckpointError
    from perception.settings import ConfigError

    with pytest.raises(ExportError, match="run=.*nothing: no such folder; train one first"):
        export_run(tmp_path / "nothing")
    (tmp_path / "empty_run").mkdir()
    with pytest.raises(CheckpointError, match="no complete checkpoint in .*empty_run/checkpoints;"
                                              " train first"):
        export_run(tmp_path / "empty_run")
    with pytest.raises(ConfigError, match="export: quantize='int4' is invalid; it must be '' "
                                          r"\(float32 only\) or 'int8'"):
        export_run(tmp_path / "empty_run", {"quantize": "int4"})
