"""The perception model: built from the spec, trained end to end, exported faithfully."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pytest
import torch

from deploy.export.onnx import export_onnx, input_names, onnx_session, read_obs_spec
from envs.audiovisual_nav import AudioVisualNavVectorEnv
from perception.fusion import FUSIONS
from perception.model import PerceptionModel
from perception.settings import ConfigError
from perception.spec import ModalitySpec, ObsSpec, SpecError, presence_key


@pytest.fixture(scope="module")
def world():
    """AudioVisualNav's spec and 32 real observations (after a few expert steps)."""
    env = AudioVisualNavVectorEnv(num_envs=32)
    obs, _ = env.reset(seed=0)
    for _ in range(3):
        obs, *_ = env.step(env.expert_actions())
    return env.obs_spec, obs


def torch_obs(obs: dict[str, np.ndarray]) -> dict[str, torch.Tensor]:
    return {k: torch.from_numpy(v) for k, v in obs.items()}


def test_out_dims_come_from_the_spec_without_a_forward(world) -> None:
    spec, obs = world
    model = PerceptionModel(spec, {"memory": 16}, {"method": "attention", "out_dim": 48})
    assert {n: e.out_dim for n, e in model.encoders.items()} == {
        "rgb": 64, "depth": 32, "audio": 64, "proprio": 32, "touch": 16}
    assert model.fusion.out_dim == 48 and model.out_dim == 16
    feats, present = model.encode(torch_obs(obs))
    assert all(feats[n].shape == (32, model.encoders[n].out_dim) for n in spec.names)
    state, h = model(torch_obs(obs))
    assert state.shape == (32, 16) and h.shape == (32, 16)


@pytest.mark.parametrize("method", sorted(FUSIONS))
def test_gradients_reach_every_encoder(world, method: str) -> None:
    spec, obs = world
    torch.manual_seed(0)
    model = PerceptionModel(spec, None, {"method": method})
    x = torch_obs(obs)
    model.update_normalizers(x)
    state, _ = model(x)
    state.pow(2).mean().backward()
    for name, enc in model.encoders.items():
        grads = [p.grad for p in enc.parameters() if p.requires_grad]
        assert grads and all(g is not None for g in grads), name
        assert sum(float(g.abs().sum()) for g in grads) > 0, f"no gradient reaches {name}"


def test_absent_raw_data_does_not_matter_even_as_nan(world) -> None:
    spec, obs = world
    torch.manual_seed(0)
    model = PerceptionModel(spec, None, {"method": "gated"})
    x = torch_obs(obs)
    x[presence_key("audio")] = torch.arange(32) % 2 == 0
    y = dict(x)
    y["audio"] = x["audio"].clone()
    y["audio"][1::2] = float("nan")
    model.eval()
    with torch.no_grad():
        a, _ = model(x)
        b, _ = model(y)
    torch.testing.assert_close(a, b)
    assert torch.isfinite(b).all()


@pytest.mark.parametrize("memory", [0, 16])
@pytest.mark.parametrize("method", sorted(FUSIONS))
def test_export_matches_torch_for_every_presence_pattern(world, tmp_path: Path, method: str,
                                                         memory: int) -> None:
    spec, obs = world
    torch.manual_seed(1)
    model = PerceptionModel(spec, {"memory": memory}, {"method": method})
    model.update_normalizers(torch_obs(obs))
    model.eval()
    outputs = ["state", "h_out"] if memory else ["state"]
    path = export_onnx(model, spec, tmp_path / "m.onnx", outputs, hidden=memory)
    assert read_obs_spec(path) == spec
    session = onnx_session(path)
    patterns = np.array(list(itertools.product([False, True], repeat=len(spec))))  # 32 rows
    gen = np.random.default_rng(0)
    for source in ("real", "random"):
        batch = {k: v.copy() for k, v in obs.items()}
        if source == "random":
            batch["rgb"] = gen.integers(0, 256, batch["rgb"].shape, dtype=np.uint8)
            batch["depth"] = gen.uniform(0, 10, batch["depth"].shape).astype(np.float32)
            batch["audio"] = gen.uniform(-1, 1, batch["audio"].shape).astype(np.float32)
            batch["proprio"] = gen.normal(0, 3, batch["proprio"].shape).astype(np.float32)
        for j, name in enumerate(spec.names):
            batch[presence_key(name)] = patterns[:, j].copy()
        h = gen.normal(0, 0.5, (32, memory)).astype(np.float32) if memory else None
        feed = {n: batch[n] for n in input_names(spec, False)}
        if memory:
            feed["h_in"] = h
        got = session.run(None, feed)
        with torch.no_grad():
            want_state, want_h = model(torch_obs(batch), torch.from_numpy(h) if memory else None)
        np.testing.assert_allclose(got[0], want_state.numpy(), atol=1e-4, rtol=0)
        assert np.isfinite(got[0]).all()
        if memory:
            np.testing.assert_allclose(got[1], want_h.numpy(), atol=1e-4, rtol=0)


def test_specs_the_model_cannot_take_get_clear_errors() -> None:
    rgb = ModalitySpec("rgb", "image", (4, 4, 3), "uint8", 10.0, 0, 255)
    with pytest.raises(SpecError, match="image 4x4 is too small.*at least 8x8"):
        PerceptionModel(ObsSpec((rgb,)))
    mic = ModalitySpec("mic", "audio", (1, 100), "float32", 10.0, -1, 1, sample_rate=16000)
    with pytest.raises(ConfigError, match="mic|samples|window"):
        PerceptionModel(ObsSpec((mic,)))
    data = ObsSpec((ModalitySpec("x", "vector", (3,), "float32", 10.0),)).to_dict()
    data["modalities"][0]["kind"] = "smell"
    with pytest.raises(SpecError, match="unknown modality kind 'smell'"):
        PerceptionModel(ObsSpec.from_dict(data))
    data["modalities"][0].update(kind="vector", shape=[3, 2])
    with pytest.raises(SpecError, match="rank-1 shape"):
        PerceptionModel(ObsSpec.from_dict(data))
    with pytest.raises(ConfigError, match="unknown fusion method 'sum'.*attention"):
        PerceptionModel(ObsSpec((ModalitySpec("x", "vector", (3,), "float32", 10.0),)), None,
                        {"method": "sum"})
    with pytest.raises(ConfigError, match=r"perception: unknown setting\(s\) \['imagee'\]"):
        PerceptionModel(ObsSpec((ModalitySpec("x", "vector", (3,), "float32", 10.0),)),
                        {"imagee": {}})


def test_missing_modality_in_the_observation(world) -> None:
    spec, obs = world
    model = PerceptionModel(spec)
    x = torch_obs(obs)
    del x["touch"]
    with pytest.raises(SpecError, match="lacks modality 'touch'"):
        model(x)
