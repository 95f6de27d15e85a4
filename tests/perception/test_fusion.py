"""Every fusion method against the contract (any subset absent, NaN-safe, ONNX parity); memory."""

from __future__ import annotations

import dataclasses
import io
import math
import warnings

import numpy as np
import onnxruntime as ort
import pytest
import torch
from torch import Tensor, nn

from perception.fusion import FUSIONS, Fusion, build_fusion, fusion_configs
from perception.fusion.film import FiLMFusion
from perception.fusion.gated import GatedFusion
from perception.fusion.late import LateFusion
from perception.memory import Memory
from perception.settings import ConfigError

DIMS = {"rgb": 64, "depth": 32, "audio": 64, "proprio": 32, "touch": 16}
NAMES = tuple(DIMS)
METHODS = sorted(FUSIONS)
HIDDEN = 16
# row i of a 32-row batch has modality j present iff bit j of i is set: every pattern once
PATTERNS = torch.tensor([[(i >> j) & 1 == 1 for j in range(len(NAMES))]
                         for i in range(2 ** len(NAMES))])


def presence(patterns: Tensor = PATTERNS) -> dict[str, Tensor]:
    return {n: patterns[:, j].clone() for j, n in enumerate(NAMES)}


def random_features(seed: int, batch: int = len(PATTERNS),
                    dims: dict[str, int] = DIMS) -> dict[str, Tensor]:
    g = torch.Generator().manual_seed(seed)
    return {n: torch.randn(batch, d, generator=g) for n, d in dims.items()}


def poisoned(features: dict[str, Tensor], present: dict[str, Tensor]) -> dict[str, Tensor]:
    """Absent rows set to NaN, +inf or -inf (by row), as a dead sensor might send."""
    out = {}
    for n, f in features.items():
        bad = torch.tensor([math.nan, math.inf, -math.inf])[torch.arange(len(f)) % 3]
        out[n] = torch.where(present[n][:, None], f, bad[:, None])
    return out


class Exported(nn.Module):
    """Fusion (and optional memory) with positional inputs, as ONNX sees it.

    Inputs: features in NAMES order, then presence flags, then h if there is memory.
    """

    def __init__(self, fusion: Fusion, memory: Memory | None) -> None:
        super().__init__()
        self.fusion, self.memory = fusion, memory

    def forward(self, *args: Tensor) -> Tensor | tuple[Tensor, Tensor]:
        m = len(NAMES)
        state = self.fusion(dict(zip(NAMES, args[:m])), dict(zip(NAMES, args[m:2 * m])))
        return state if self.memory is None else self.memory(state, args[2 * m])

    def input_names(self) -> list[str]:
        return list(NAMES) + [f"{n}_present" for n in NAMES] + (["h"] if self.memory else [])

    def output_names(self) -> list[str]:
        return ["state"] + (["h_new"] if self.memory else [])


def make(settings: dict[str, object], gru: bool, seed: int = 0) -> Exported:
    torch.manual_seed(seed)
    fusion = build_fusion(settings, DIMS)
    return Exported(fusion, Memory(fusion.out_dim, HIDDEN) if gru else None)


def run(model: Exported, features: dict[str, Tensor], present: dict[str, Tensor],
        h: Tensor | None = None) -> Tensor:
    """The model's outputs, concatenated (state, or out and h_new)."""
    args = [features[n] for n in NAMES] + [present[n] for n in NAMES]
    if model.memory is not None:
        args.append(torch.full((len(present[NAMES[0]]), HIDDEN), 0.3) if h is None else h)
    out = model(*args)
    return torch.cat(out, dim=1) if isinstance(out, tuple) else out


GRU = pytest.mark.parametrize("gru", [False, True], ids=["nogru", "gru"])
METHOD = pytest.mark.parametrize("method", METHODS)
# every method's defaults, and the options that change the graph
VARIANTS = [{"method": m} for m in METHODS] + [
    {"method": "late", "combine": "poe"}, {"method": "gated", "gate": "vector"},
    {"method": "film", "conditioner": "rgb"}, {"method": "attention", "layers": 2},
    {"method": "tensor", "proj_dim": 2}]
VARIANT = pytest.mark.parametrize(
    "settings", VARIANTS, ids=["-".join(str(v) for v in s.values()) for s in VARIANTS])


def test_registry_is_full() -> None:
    assert set(FUSIONS) == {"concat", "late", "gated", "film", "tensor", "lowrank", "attention"}
    for name, cls in FUSIONS.items():
        assert cls.name == name and dataclasses.fields(cls.Config)[0].name == "method"
    assert [n for n, cls in FUSIONS.items() if cls.linear_readout] == ["late"]


@VARIANT
@GRU
def test_shape_and_no_nan_with_garbage_in_absent_rows(settings: dict, gru: bool) -> None:
    model = make(settings, gru)
    present = presence()
    out = run(model, poisoned(random_features(1), present), present)
    width = 2 * HIDDEN if gru else model.fusion.out_dim  # (out, h_new) or state
    assert out.shape == (len(PATTERNS), width) and out.dtype == torch.float32
    assert torch.isfinite(out).all()


@VARIANT
@GRU
def test_absent_data_is_ignored_and_present_data_is_used(settings: dict, gru: bool) -> None:
    model = make(settings, gru)
    present = presence()
    features = random_features(1)
    with torch.no_grad():
        base = run(model, features, present)
        assert torch.equal(run(model, poisoned(features, present), present), base)
        for name in NAMES:
            changed = run(model, {**features, name: random_features(2)[name] * 3}, present)
            same = (changed == base).all(dim=1)
            assert torch.equal(same, ~present[name]), f"{name}: rows that changed != present rows"


@VARIANT
@GRU
def test_gradients_reach_present_features_and_every_parameter(settings: dict, gru: bool) -> None:
    model = make(settings, gru)
    present = presence()
    features = {n: f.requires_grad_() for n, f in poisoned(random_features(1), present).items()}
    out = run(model, features, present)
    (out * torch.randn(out.shape, generator=torch.Generator().manual_seed(0))).sum().backward()
    for n, f in features.items():
        assert torch.isfinite(f.grad).all(), n
        per_row = f.grad.abs().sum(dim=1)
        assert torch.equal(per_row > 0, present[n]), f"{n}: gradient rows != present rows"
    for name, p in model.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), name
        assert p.grad.abs().sum() > 0, f"{name} gets no gradient"


@VARIANT
@GRU
def test_onnx_matches_torch_on_every_presence_pattern(settings: dict, gru: bool) -> None:
    model = make(settings, gru).eval()
    present = presence()
    features = random_features(1)
    h = torch.randn(len(PATTERNS), HIDDEN)
    args = [features[n] for n in NAMES] + [present[n] for n in NAMES] + ([h] if gru else [])
    names = model.input_names()
    buf = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation notice
        torch.onnx.export(model, tuple(args), buf, dynamo=False, opset_version=17,
                          input_names=names, output_names=model.output_names(),
                          dynamic_axes={k: {0: "batch"} for k in names + model.output_names()})
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    session = ort.InferenceSession(buf.getvalue(), options, providers=["CPUExecutionProvider"])
    with torch.no_grad():
        want = run(model, features, present, h).numpy()
    outs = []
    for feats in (features, poisoned(features, present)):
        feed = {k: v.numpy() for k, v in zip(names, [feats[n] for n in NAMES] + args[len(NAMES):])}
        outs.append(np.concatenate(session.run(None, feed), axis=1))
    assert np.isfinite(outs[1]).all()
    np.testing.assert_allclose(outs[0], want, atol=1e-4, rtol=0)
    np.testing.assert_allclose(outs[1], want, atol=1e-4, rtol=0)


@METHOD
def test_one_modality(method: str) -> None:
    dims = {"proprio": 6}
    if method == "film":
        with pytest.raises(ConfigError, match="at least two modalities"):
            build_fusion({"method": "film"}, dims)
        return
    fusion = build_fusion({"method": method}, dims)
    present = {"proprio": torch.tensor([True, False])}
    out = fusion(poisoned(random_features(0, 2, dims), present), present)
    assert out.shape == (2, fusion.out_dim) and torch.isfinite(out).all()


@pytest.mark.parametrize("gate", ["scalar", "vector"])
def test_gated_exposes_gates_and_absent_gates_are_zero(gate: str) -> None:
    torch.manual_seed(0)
    fusion = build_fusion({"method": "gated", "gate": gate}, DIMS)
    assert isinstance(fusion, GatedFusion)
    present = presence()
    features = poisoned(random_features(1), present)
    fusion(features, present)
    gates = fusion.gates(features, present)
    assert fusion.last_gates is not None and torch.equal(fusion.last_gates, gates.detach())
    assert gates.shape == (len(PATTERNS), len(NAMES))
    assert (gates[~PATTERNS] == 0).all()
    assert ((gates[PATTERNS] > 0) & (gates[PATTERNS] < 1)).all()


def test_film_absent_conditioner_means_identity_modulation() -> None:
    torch.manual_seed(0)
    fusion = build_fusion({"method": "film"}, DIMS)
    assert isinstance(fusion, FiLMFusion) and fusion.conditioner == "audio"
    present = presence()
    features = poisoned(random_features(1), present)
    gamma, beta = fusion.film_params(features, present)
    absent = ~present["audio"]
    assert (gamma[absent] == 1).all() and (beta[absent] == 0).all()
    assert (gamma[~absent] != 1).any() and (beta[~absent] != 0).any()
    out = fusion(features, present)
    identity = fusion.modulate(features, present, torch.ones_like(gamma), torch.zeros_like(beta))
    assert torch.equal(out[absent], identity[absent])
    assert not torch.allclose(out[~absent], identity[~absent])


def test_film_conditioner_choice() -> None:
    no_audio = {"rgb": 8, "proprio": 4, "touch": 2}
    assert build_fusion({"method": "film"}, no_audio).conditioner == "touch"
    assert build_fusion({"method": "film", "conditioner": "rgb"}, no_audio).conditioner == "rgb"
    with pytest.raises(ConfigError, match=r"conditioner='sonar'.*rgb, proprio, touch"):
        build_fusion({"method": "film", "conditioner": "sonar"}, no_audio)


@pytest.mark.parametrize("layers", [1, 2])
def test_attention_masks_absent_tokens_out(layers: int) -> None:
    """An absent token is not attended to: its modality embedding has no effect there."""
    torch.manual_seed(0)
    fusion = build_fusion({"method": "attention", "layers": layers}, DIMS)
    present = presence()
    features = random_features(1)
    with torch.no_grad():
        base = fusion(features, present)
        saved = fusion.modality_embedding.clone()
        for j, n in enumerate(NAMES):
            fusion.modality_embedding[j] += 1.0
            same = (fusion(features, present) == base).all(dim=1)
            fusion.modality_embedding.copy_(saved)
            assert torch.equal(same, ~present[n]), n


@pytest.mark.parametrize("method", ["tensor", "lowrank"])
def test_absent_modality_has_z_zero(method: str) -> None:
    """An absent modality enters the product as [0; 1]: its projection has no effect there."""
    torch.manual_seed(0)
    fusion = build_fusion({"method": method}, DIMS)
    present = presence()
    features = random_features(1)
    with torch.no_grad():
        base = fusion(features, present)
        for n in NAMES:
            saved = fusion.proj[n].bias.clone()
            fusion.proj[n].bias += 1.0
            same = (fusion(features, present) == base).all(dim=1)
            fusion.proj[n].bias.copy_(saved)
            assert torch.equal(same, ~present[n]), n


def test_late_average_and_product_of_experts() -> None:
    present = presence()
    features = poisoned(random_features(1), present)
    outs = {}
    for combine in ("average", "poe"):
        torch.manual_seed(0)
        fusion = build_fusion({"method": "late", "combine": combine}, DIMS)
        assert isinstance(fusion, LateFusion)
        with torch.no_grad():
            out, heads = fusion(features, present), fusion.head_outputs(features, present)
        assert torch.isfinite(out).all()
        assert (out[0] == 0).all()  # all absent: the average of none / the prior mean
        d = fusion.out_dim
        for j, n in enumerate(NAMES):  # row 2**j: only modality j present
            head = heads[n][2 ** j]
            if combine == "average":
                want = head
            else:
                precision = torch.exp(head[d:].clamp(-6, 6))
                want = precision * head[:d] / (1 + precision)
            torch.testing.assert_close(out[2 ** j], want)
        outs[combine] = out
    assert not torch.allclose(outs["average"][1:], outs["poe"][1:], atol=1e-3)


def test_config_defaults_validate_and_build() -> None:
    configs = fusion_configs()
    assert set(configs) == set(FUSIONS)
    for name, cfg in configs.items():
        assert cfg.method == name
        cfg.validate()
        fusion = build_fusion(dataclasses.asdict(cfg), DIMS)
        assert type(fusion) is FUSIONS[name] and fusion.out_dim == cfg.out_dim
    fusion = build_fusion({"method": "late", "combine": "poe"}, DIMS)
    assert isinstance(fusion, LateFusion) and fusion.poe


@pytest.mark.parametrize(("settings", "match"), [
    ({"method": "nope"}, r"unknown fusion method 'nope'; choose one of: attention, concat"),
    ({}, r"unknown fusion method None"),
    ({"method": "concat", "size": 3}, r"unknown setting\(s\) \['size'\]"),
    ({"method": "late", "combine": "max"}, r"combine='max'.*average, poe"),
    ({"method": "gated", "gate": "matrix"}, r"gate='matrix'.*scalar, vector"),
    ({"method": "attention", "heads": 3}, r"heads=3.*divisor of d_model=32"),
    ({"method": "tensor", "proj_dim": -1}, r"proj_dim=-1"),
    ({"method": "lowrank", "rank": 0}, r"rank=0"),
] + [({"method": m, "out_dim": 0}, rf"fusion {m}: out_dim=0 is invalid") for m in METHODS])
def test_bad_settings_name_the_setting(settings: dict, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        build_fusion(settings, DIMS)


def test_tensor_proj_dim_keeps_the_product_small() -> None:
    five = build_fusion({"method": "tensor"}, DIMS)
    assert five.proj_dim == 3 and five.out.in_features == 4 ** 5  # <= max_product 1024
    two = build_fusion({"method": "tensor"}, {"a": 8, "b": 8})
    assert two.proj_dim == 31 and two.out.in_features == 1024
    assert build_fusion({"method": "tensor", "proj_dim": 4}, DIMS).out.in_features == 5 ** 5


# ---- memory


def test_memory_is_a_gru_cell() -> None:
    torch.manual_seed(0)
    memory = Memory(12, HIDDEN)
    cell = nn.GRUCell(12, HIDDEN)
    cell.load_state_dict(memory.state_dict())
    x, h = torch.randn(5, 12), torch.randn(5, HIDDEN)
    out, h_new = memory(x, h)
    torch.testing.assert_close(h_new, cell(x, h))
    assert out is h_new and memory.initial_state(3).shape == (3, HIDDEN)


def test_memory_onnx_carries_the_state_over_three_steps() -> None:
    torch.manual_seed(0)
    memory = Memory(12, HIDDEN).eval()
    x = torch.randn(3, 4, 12)
    buf = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(memory, (x[0], memory.initial_state(4)), buf, dynamo=False,
                          opset_version=17, input_names=["x", "h"], output_names=["out", "h_new"],
                          dynamic_axes={k: {0: "batch"} for k in ("x", "h", "out", "h_new")})
    session = ort.InferenceSession(buf.getvalue(), providers=["CPUExecutionProvider"])
    h_torch = memory.initial_state(4)
    h_ort = h_torch.numpy()
    for t in range(3):
        with torch.no_grad():
            out_torch, h_torch = memory(x[t], h_torch)
        out_ort, h_ort = session.run(None, {"x": x[t].numpy(), "h": h_ort})
        np.testing.assert_allclose(out_ort, out_torch.numpy(), atol=1e-5, rtol=0)
        np.testing.assert_allclose(h_ort, h_torch.numpy(), atol=1e-5, rtol=0)


def test_memory_sequence_resets_where_episodes_start() -> None:
    torch.manual_seed(0)
    memory = Memory(6, HIDDEN)
    steps, batch = 7, 3
    x, h0 = torch.randn(steps, batch, 6), torch.randn(batch, HIDDEN)
    starts = torch.zeros(steps, batch, dtype=torch.bool)
    starts[0, 0] = starts[3, 1] = starts[4, 1] = starts[5, 2] = True
    outs = memory.forward_sequence(x, h0, starts)
    assert outs.shape == (steps, batch, HIDDEN)
    h = h0
    for t in range(steps):
        h = memory(x[t], torch.where(starts[t][:, None], torch.zeros_like(h), h))[1]
        torch.testing.assert_close(outs[t], h)
    # an episode that starts at step 5 sees nothing before it
    fresh = memory.forward_sequence(x[5:, 2:], None, torch.zeros(2, 1, dtype=torch.bool))
    torch.testing.assert_close(outs[5:, 2:], fresh)
    assert not torch.allclose(outs[5:, 2:], memory.forward_sequence(
        x[5:, 2:], h0[2:], torch.zeros(2, 1, dtype=torch.bool)))
    outs.sum().backward()
    assert torch.isfinite(memory.weight_hh.grad).all() and memory.weight_hh.grad.abs().sum() > 0


# ---- what the methods can learn: synergy (XOR of a bit in each modality)


def xor_batch(batch: int, g: torch.Generator) -> tuple[dict[str, Tensor], Tensor]:
    bits = torch.randint(0, 2, (batch, 2), generator=g)
    noise = 0.3 * torch.randn(batch, 2, 4, generator=g)
    signs = (2 * bits - 1).float()
    features = {"a": torch.cat([signs[:, :1], noise[:, 0]], dim=1),
                "b": torch.cat([signs[:, 1:], noise[:, 1]], dim=1)}
    return features, (bits[:, 0] != bits[:, 1]).float()


@pytest.mark.parametrize(("method", "solves"), [
    ("late", False), ("concat", True), ("tensor", True), ("lowrank", True), ("attention", True),
])
def test_synergy_needs_fusion_before_the_decision(method: str, solves: bool) -> None:
    """Late fusion with its linear readout cannot learn XOR; the others learn it quickly.

    Late fusion's best is a constant 1/2 (log-loss ln 2); the sign of a near-zero logit
    is arbitrary, so its accuracy is anywhere near 1/2 and the log-loss is what is checked.
    """
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(0)
    dims = {"a": 5, "b": 5}
    settings = {"method": method, "out_dim": 32}
    if method == "tensor":
        settings["proj_dim"] = 8
    fusion = build_fusion(settings, dims)
    readout = (nn.Linear(32, 1) if fusion.linear_readout
               else nn.Sequential(nn.Linear(32, 32), nn.ReLU(), nn.Linear(32, 1)))
    params = list(fusion.parameters()) + list(readout.parameters())
    opt = torch.optim.Adam(params, lr=1e-2)
    present = {n: torch.ones(256, dtype=torch.bool) for n in dims}
    for _ in range(250):
        features, label = xor_batch(256, g)
        logit = readout(fusion(features, present))[:, 0]
        loss = nn.functional.binary_cross_entropy_with_logits(logit, label)
        opt.zero_grad()
        loss.backward()
        opt.step()
    features, label = xor_batch(2000, g)
    present = {n: torch.ones(2000, dtype=torch.bool) for n in dims}
    with torch.no_grad():
        logit = readout(fusion(features, present))[:, 0]
    accuracy = float(((logit > 0).float() == label).float().mean())
    loss = float(nn.functional.binary_cross_entropy_with_logits(logit, label))
    print(f"{method}: accuracy {accuracy:.3f}, log-loss {loss:.3f}")
    if solves:
        assert accuracy > 0.95, f"{method}: accuracy {accuracy:.3f}"
    else:
        assert loss > 0.98 * math.log(2), f"{method}: log-loss {loss:.3f} < ln 2"
