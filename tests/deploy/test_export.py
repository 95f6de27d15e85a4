"""``sensorium export``: one self-describing file per run, proven equal to torch on the
policy's own rollouts and on every presence pattern, for every fusion method and a GRU."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import pytest

from deploy.export.metadata import resolve_safe_action, weights_sha256
from deploy.export.parity import TOLERANCE, presence_patterns
from deploy.export.policy import export_run, parity_path
from deploy.model import KEYS, PREFIX, Model
from perception.fusion import FUSIONS
from perception.settings import ConfigError
from perception.spec import ActionSpec

FEW = 256  # observations per export where the floor of 1,000 is not the subject


def _checked(path: Path) -> onnx.ModelProto:
    model = onnx.load(str(path))
    onnx.checker.check_model(model, full_check=True)
    assert max(o.version for o in model.opset_import if o.domain in ("", "ai.onnx")) >= 17
    for value in [*model.graph.input, *model.graph.output]:
        assert value.type.tensor_type.shape.dim[0].dim_param == "batch"
    return model


@pytest.mark.parametrize("method", sorted(FUSIONS))
def test_every_fusion_method_exports_and_proves_parity(tiny_runs, tmp_path: Path,
                                                       method: str) -> None:
    observations = 1024 if method == "concat" else FEW
    report = export_run(tiny_runs(method), {"out": str(tmp_path / "m.onnx"),
                                            "observations": observations})
    assert report["passed"] and not report["failures"]
    assert report["observations"] >= observations and report["patterns"] == 32
    assert len(report["per_pattern"]) == 32
    names = {r["pattern"] for r in report["per_pattern"]}
    assert {"none", "rgb+depth+audio+proprio+touch", "audio"} <= names
    assert report["max_abs_diff"] <= TOLERANCE
    assert report["mismatches"] == 0 and report["action_agreement"] >= 1 - report["ties"] / (
        report["observations"] * report["patterns"])
    for row in report["per_pattern"]:
        assert row["max_abs_diff_logits"] <= TOLERANCE and row["max_abs_diff_value"] <= TOLERANCE
    assert report["outputs"] == ["action", "logits", "value"]
    _checked(tmp_path / "m.onnx")
    saved = json.loads(parity_path(tmp_path / "m.onnx").read_text())
    for key in ("observations", "patterns", "max_abs_diff", "action_agreement"):
        assert saved[key] == report[key]


def test_a_recurrent_policy_carries_its_state_in_both_runtimes(tiny_runs, tmp_path: Path
                                                               ) -> None:
    report = export_run(tiny_runs("concat", memory=16), {"out": str(tmp_path / "r.onnx")})
    assert report["passed"]
    assert report["inputs"][-1] == "h_in" and report["outputs"][-1] == "h_out"
    assert report["observations"] >= 1000 and report["patterns"] == 32
    seq = report["sequences"]
    assert seq["steps"] == 200 and seq["worlds"] >= 8
    assert seq["max_drift"] <= TOLERANCE and seq["mismatches"] == 0
    assert set(seq["max_drift_per_output"]) == {"logits", "value", "h_out"}
    model = Model(tmp_path / "r.onnx")
    assert model.info.hidden_size == 16 and model.initial_state(3).shape == (3, 16)
    assert model.info.parity["recurrent_drift"] == seq["max_drift"]


def test_the_file_describes_itself(tiny_runs, tmp_path: Path) -> None:
    run = tiny_runs("concat")
    report = export_run(run, {"out": str(tmp_path / "m.onnx"), "observations": FEW})
    model = Model(tmp_path / "m.onnx")
    info = model.info
    config = json.loads(info.get("config"))
    assert info.is_sensorium and info.obs_spec.names == ("rgb", "depth", "audio", "proprio",
                                                         "touch")
    assert info.obs_spec["rgb"].shape == (16, 16, 3) and config["env"]["image_size"] == 16
    assert info.action_spec.names == ("stop", "forward", "turn_left", "turn_right")
    assert info.control_hz == info.obs_spec.control_hz
    assert int(info.safe_action) == 0 and info.get("safe_action_source") == \
        "the action named 'stop'"
    assert info.get("env_id") == "sensorium/AudioVisualNav-v0"
    assert int(info.get("env_steps")) == 128 and info.get("version")
    assert info.get("weights_sha256") == weights_sha256(onnx.load(str(tmp_path / "m.onnx")))
    assert info.get("weights_sha256") == report["weights_sha256"]
    assert json.loads(info.get("outputs")) == info.output_names == ["action", "logits", "value"]
    assert info.macs == report["macs"] > 0
    for key in ("observations", "patterns", "max_abs_diff", "action_agreement"):
        assert info.parity[key] == report[key]
    assert set(k[len(PREFIX):] for k in info.metadata) <= set(KEYS)
    assert "rgb_present" in info.description and "action" in info.description
    # a second export at another place: same weights, same hash
    again = export_run(run, {"out": str(tmp_path / "n.onnx"), "observations": FEW})
    assert again["weights_sha256"] == report["weights_sha256"]


def test_the_safe_action_is_settable_and_checked(tiny_runs, tmp_path: Path) -> None:
    export_run(tiny_runs("concat"), {"out": str(tmp_path / "m.onnx"), "observations": FEW,
                                     "safe_action": 2})
    info = Model(tmp_path / "m.onnx").info
    assert int(info.safe_action) == 2 and "safe_action=" in info.get("safe_action_source")
    with pytest.raises(ConfigError, match=r"safe_action=9 is invalid.*\[0, 4\)"):
        export_run(tiny_runs("concat"), {"out": str(tmp_path / "x.onnx"), "safe_action": 9})
    arm = ActionSpec("continuous", shape=(2,), low=(-1.0, 0.5), high=(1.0, 2.0))
    assert resolve_safe_action(arm, None) == ([0.0, 0.5], "zeros clipped to the action bounds")
    assert resolve_safe_action(arm, [0.2, 1.0])[0] == [0.2, 1.0]
    with pytest.raises(ConfigError, match="outside the action bounds"):
        resolve_safe_action(arm, [0.0, 0.0])
    unnamed = ActionSpec("discrete", n=2)
    assert resolve_safe_action(unnamed, None)[0] == 0
    assert "names no stop" in resolve_safe_action(unnamed, None)[1]


def test_presence_patterns_are_all_of_them_up_to_six_then_a_sample() -> None:
    five = presence_patterns(list("abcde"))
    assert len(five) == 32 == len(set(five)) and five[0] == (True,) * 5
    eight = presence_patterns(list("abcdefgh"))
    assert len(eight) == len(set(eight)) == 2 * 8 + 1 + 64
    assert (True,) * 8 in eight and all(sum(p) == 7 for p in eight if sum(p) == 7)
    assert sum(1 for p in eight if sum(p) == 1) == 8


def test_greedy_actions_of_onnxruntime_drive_the_same_episodes(tiny_runs, tmp_path: Path
                                                               ) -> None:
    """The file's actions, fed back to the world, give torch's trajectory."""
    from agent.trained import load_trained
    from deploy.export.closed_loop import evaluate_model

    run = tiny_runs("concat")
    export_run(run, {"out": str(tmp_path / "m.onnx"), "observations": FEW})
    trained = load_trained(run)
    want = trained.evaluate(8, num_envs=4, seed=3)
    got = evaluate_model(Model(tmp_path / "m.onnx"), trained.setup.env, 8, seed=3, num_envs=4)
    for key in ("mean_return", "mean_length", "success_rate", "spl", "collisions"):
        assert got[key] == pytest.approx(want[key], abs=1e-9), key
    assert np.isfinite(got["mean_return"])


def test_a_head_of_its_own_for_absent_audio_is_in_the_file(tmp_path: Path) -> None:
    """``policy.actor_when_absent=[audio]``: the file chooses the head by ``audio_present``,
    equal to torch on every presence pattern, and the deaf head is not the other one."""
    import torch

    from agent.trained import load_trained
    from envs.factory import make_vector_env
    from tests.deploy.conftest import AVN, train_tiny

    run = train_tiny(tmp_path / "run", actor_when_absent=["audio"])
    report = export_run(run, {"out": str(tmp_path / "m.onnx"), "observations": FEW})
    assert report["passed"] and report["patterns"] == 32
    assert report["max_abs_diff"] <= TOLERANCE and report["mismatches"] == 0
    policy = load_trained(run).policy
    env = make_vector_env(AVN, 4)
    obs, _ = env.reset(seed=1)
    env.close()
    model = Model(tmp_path / "m.onnx")
    heard = model.run(model.make_feed(obs))["logits"]
    deaf = model.run(model.make_feed(obs, present={"audio": False}))["logits"]
    with torch.no_grad():
        flags = {"audio_present": torch.zeros(4, dtype=torch.bool)}
        state, _ = policy.trunk({**{k: torch.as_tensor(v) for k, v in obs.items()}, **flags})
        want = policy.absent_actors["audio"](state).numpy()
    np.testing.assert_allclose(deaf, want, atol=TOLERANCE)
    assert not np.allclose(heard, deaf, atol=TOLERANCE)
