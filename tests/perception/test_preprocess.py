"""In-graph preprocessing: numbers against numpy references, in torch and in onnxruntime."""

from __future__ import annotations

import math
import warnings
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from torch import nn

from envs.audiovisual_nav import AudioVisualNavConfig, AudioVisualNavVectorEnv, audiovisual_nav_spec
from perception.preprocess import (
    DepthToFloat,
    ImageToFloat,
    LogMel,
    LogMelConfig,
    RunningNorm,
    hz_to_mel,
    image_preprocess,
    log_mel_reference,
    mel_band_edges,
    mel_filterbank,
    mel_to_hz,
)
from perception.settings import ConfigError, config_from_kwargs
from perception.spec import ModalityKind, ModalitySpec, SpecError

SR = 16000
TOL = 1e-4


def run_onnx(module: nn.Module, inputs: dict[str, np.ndarray], path: Path) -> np.ndarray:
    """Export `module` (batch axis dynamic), run it in onnxruntime on `inputs`, return output 0."""
    names = list(inputs)
    args = tuple(torch.from_numpy(v[:1].copy()) for v in inputs.values())  # export at batch 1
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            module, args, str(path), opset_version=17, dynamo=False,
            input_names=names, output_names=["out"],
            dynamic_axes={**{n: {0: "batch"} for n in names}, "out": {0: "batch"}},
        )
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    sess = ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
    return sess.run(None, inputs)[0]


# ---------------------------------------------------------------- audio


@pytest.fixture(scope="module")
def signals() -> dict[str, np.ndarray]:
    """Real and synthetic stereo waveforms, (N, 2, 1600) float32 each."""
    env = AudioVisualNavVectorEnv(num_envs=8)
    obs, _ = env.reset(seed=0)
    for _ in range(3):
        obs, *_ = env.step(np.array([1, 2, 1, 3, 1, 1, 2, 1]))
    env.close()
    rng = np.random.default_rng(0)
    t = np.arange(1600) / SR
    tone_set = ((1000.0, 0.5, 0.0), (440.0, 0.8, 1.0), (3100.0, 0.2, 2.0), (7000.0, 0.8, 0.5))
    tones = np.stack([a * np.sin(2 * np.pi * f * t + p) for f, a, p in tone_set])
    return {
        "audiovisual_nav": obs["audio"].astype(np.float32),
        "tones": np.stack([tones, tones[::-1]], axis=1).astype(np.float32),
        "noise": np.clip(rng.normal(0.0, 0.3, (3, 2, 1600)), -1, 1).astype(np.float32),
        "silence": rng.normal(0.0, 1e-5, (2, 2, 1600)).astype(np.float32),
    }


def test_defaults_fit_audiovisual_nav() -> None:
    cfg = LogMelConfig()
    m = LogMel(SR, cfg)
    assert (m.geo.win, m.geo.hop, m.geo.n_fft) == (256, 160, 256)
    assert m.out_shape(2, 1600) == (2, 9, 64)


@pytest.mark.parametrize("name", ["audiovisual_nav", "tones", "noise", "silence"])
def test_log_mel_matches_reference_in_torch(signals: dict[str, np.ndarray], name: str) -> None:
    cfg = LogMelConfig()
    wave = signals[name]
    out = LogMel(SR, cfg)(torch.from_numpy(wave)).numpy()
    ref = log_mel_reference(wave, SR, cfg)
    assert out.dtype == np.float32 and out.shape == ref.shape
    np.testing.assert_allclose(out, ref, rtol=0, atol=TOL)


@pytest.mark.parametrize(
    "kwargs, samples",
    [
        ({}, 1600),  # the defaults
        ({"win_ms": 25.0, "n_mels": 40, "center": True}, 1600),  # the 25 ms, centred
        ({"n_fft": 512, "fmin_hz": 50.0, "fmax_hz": 7600.0}, 1500),  # zero-padded, cut at 1500
    ],
)
def test_log_mel_matches_reference_in_onnxruntime(
    signals: dict[str, np.ndarray], tmp_path: Path, kwargs: dict, samples: int
) -> None:
    cfg = config_from_kwargs(LogMelConfig, kwargs, "test")
    wave = np.concatenate(list(signals.values()))[..., :samples]
    m = LogMel(SR, cfg)
    ref = log_mel_reference(wave, SR, cfg)
    got_torch = m(torch.from_numpy(wave)).numpy()
    got_ort = run_onnx(m, {"wave": wave}, tmp_path / "logmel.onnx")  # batch 17, exported at 1
    assert got_ort.shape == ref.shape == (len(wave), *m.out_shape(2, samples))
    np.testing.assert_allclose(got_torch, ref, rtol=0, atol=TOL)
    np.testing.assert_allclose(got_ort, ref, rtol=0, atol=TOL)
    np.testing.assert_allclose(got_ort, got_torch, rtol=0, atol=TOL)


def test_exported_graph_has_no_stft_ops(tmp_path: Path) -> None:
    run_onnx(LogMel(SR, LogMelConfig()), {"wave": np.zeros((1, 2, 1600), np.float32)},
             tmp_path / "m.onnx")
    ops = {n.op_type for n in onnx.load(str(tmp_path / "m.onnx")).graph.node}
    assert not ops & {"STFT", "DFT", "Loop", "Scan"}


@pytest.mark.parametrize(
    "kwargs", [{}, {"win_ms": 25.0}, {"center": True}, {"hop_ms": 7.0, "n_fft": 300}]
)
@pytest.mark.parametrize("channels, samples", [(2, 1600), (1, 256), (3, 999), (2, 4000)])
def test_out_shape_matches_forward(kwargs: dict, channels: int, samples: int) -> None:
    m = LogMel(SR, LogMelConfig(**kwargs))
    if samples < m.geo.win - 2 * m.geo.pad:
        with pytest.raises(ConfigError, match="shorter|needs at least"):
            m(torch.zeros(2, channels, samples))
        return
    out = m(torch.zeros(2, channels, samples))
    assert tuple(out.shape) == (2, *m.out_shape(channels, samples))


def test_tone_peaks_in_its_band() -> None:
    cfg = LogMelConfig()
    t = np.arange(1600) / SR
    wave = (0.5 * np.sin(2 * np.pi * 1000.0 * t)).astype(np.float32)[None, None]
    out = LogMel(SR, cfg)(torch.from_numpy(wave)).numpy()[0, 0].mean(0)  # (n_mels,)
    edges = mel_band_edges(cfg.n_mels, 0.0, SR / 2)
    peak = int(out.argmax())
    assert edges[peak] < 1000.0 < edges[peak + 2], (peak, edges[peak:peak + 3])
    nearest = int(np.abs(edges[1:-1] - 1000.0).argmin())
    assert abs(peak - nearest) <= 1
    assert out[peak] - np.median(out) > 5.0  # far above the rest of the spectrum


def test_gain_shifts_log_mel_by_twice_log_gain(signals: dict[str, np.ndarray]) -> None:
    cfg = LogMelConfig()
    m = LogMel(SR, cfg)
    wave = signals["noise"]
    gain = 1.8
    quiet = m(torch.from_numpy(wave)).numpy()
    loud = m(torch.from_numpy(wave * gain)).numpy()
    strong = np.exp(quiet) > 1e4 * cfg.log_offset  # bands where the offset is negligible
    assert strong.mean() > 0.5
    np.testing.assert_allclose((loud - quiet)[strong], 2 * math.log(gain), atol=2e-4)


def test_silence_sits_on_the_floor() -> None:
    cfg = LogMelConfig()
    out = LogMel(SR, cfg)(torch.zeros(1, 2, 1600)).numpy()
    np.testing.assert_allclose(out, math.log(cfg.log_offset), atol=1e-6)


def test_no_empty_mel_filter_at_the_defaults() -> None:
    cfg = LogMelConfig()
    m = LogMel(SR, cfg)
    fb = mel_filterbank(SR, m.geo.n_fft, cfg.n_mels, 0.0, SR / 2)
    assert fb.shape == (m.geo.n_fft // 2 + 1, cfg.n_mels)
    # Every band reads at least one bin with a real weight, not just a sliver of an edge.
    assert fb.max(axis=0).min() > 0.25
    assert np.all(np.diff(mel_band_edges(cfg.n_mels, 0.0, SR / 2)) > 0)


def test_empty_mel_filters_are_refused() -> None:
    with pytest.raises(ConfigError, match="hold no DFT bin.*fewer n_mels"):
        LogMel(SR, LogMelConfig(n_mels=128, win_ms=8.0))


def test_mel_scale_is_slaney() -> None:
    assert hz_to_mel(1000.0) == pytest.approx(15.0)
    assert hz_to_mel(200.0) == pytest.approx(3.0)
    f = np.array([0.0, 50.0, 999.0, 1000.0, 4000.0, 8000.0])
    np.testing.assert_allclose(mel_to_hz(hz_to_mel(f)), f, atol=1e-9)


def test_too_short_audio_is_a_clear_error() -> None:
    m = LogMel(SR, LogMelConfig())
    with pytest.raises(ConfigError, match=r"100 samples.*256-sample window.*win_ms"):
        m(torch.zeros(1, 2, 100))
    with pytest.raises(ConfigError, match="100 samples"):
        m.out_shape(2, 100)
    with pytest.raises(ConfigError, match="100 samples"):
        log_mel_reference(np.zeros((2, 100), np.float32), SR, LogMelConfig())


def test_wrong_waveform_layout_or_dtype_is_a_clear_error() -> None:
    m = LogMel(SR, LogMelConfig())
    with pytest.raises(ConfigError, match="batch, channels, samples"):
        m(torch.zeros(2, 1600))
    with pytest.raises(ConfigError, match="float64"):
        m(torch.zeros(1, 2, 1600, dtype=torch.float64))


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"n_mels": 0}, "n_mels"),
        ({"win_ms": 0.0}, "win_ms"),
        ({"hop_ms": -1.0}, "hop_ms"),
        ({"log_offset": 0.0}, "log_offset"),
        ({"fmin_hz": 4000.0, "fmax_hz": 3000.0}, "fmax_hz"),
        ({"mels": 64}, "unknown setting"),
    ],
)
def test_config_errors(kwargs: dict, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        config_from_kwargs(LogMelConfig, kwargs, "audio_frontend")


def test_settings_that_need_the_sample_rate_are_checked_at_build() -> None:
    with pytest.raises(ConfigError, match="Nyquist"):
        LogMel(SR, LogMelConfig(fmax_hz=9000.0))
    with pytest.raises(ConfigError, match="n_fft"):
        LogMel(SR, LogMelConfig(n_fft=128))


# ---------------------------------------------------------------- images


def test_image_to_float_values_and_layout(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    x = rng.integers(0, 256, (3, 8, 6, 3), dtype=np.uint8)
    x[0, 0, 0] = (0, 255, 128)
    want = x.transpose(0, 3, 1, 2).astype(np.float32) / 255.0
    m = ImageToFloat((8, 6, 3))
    got = m(torch.from_numpy(x)).numpy()
    assert got.dtype == np.float32 and got.shape == (3, 3, 8, 6) == (3, *m.out_shape((8, 6, 3)))
    assert got[0, :, 0, 0].tolist() == [0.0, 1.0, pytest.approx(128 / 255)]
    np.testing.assert_allclose(got, want, atol=1e-7)
    np.testing.assert_allclose(run_onnx(m, {"rgb": x}, tmp_path / "rgb.onnx"), want, atol=1e-7)


def test_depth_to_float_values_and_layout(tmp_path: Path) -> None:
    rng = np.random.default_rng(2)
    d = rng.uniform(-1.0, 14.0, (2, 5, 7, 1)).astype(np.float32)
    d[0, 0, 0, 0], d[0, 0, 1, 0] = 10.0, np.inf
    want = np.clip(d / 10.0, 0, 1).transpose(0, 3, 1, 2)
    m = DepthToFloat(10.0, (5, 7, 1))
    got = m(torch.from_numpy(d)).numpy()
    assert got.shape == (2, 1, 5, 7) and got[0, 0, 0, 0] == 1.0 and got[0, 0, 0, 1] == 1.0
    np.testing.assert_allclose(got, want, atol=1e-7)
    np.testing.assert_allclose(run_onnx(m, {"depth": d}, tmp_path / "d.onnx"), want, atol=1e-7)


def test_image_preprocess_from_the_default_world_spec() -> None:
    spec = audiovisual_nav_spec(AudioVisualNavConfig())
    rgb, depth = image_preprocess(spec["rgb"]), image_preprocess(spec["depth"])
    assert isinstance(rgb, ImageToFloat) and isinstance(depth, DepthToFloat)
    assert depth.max_m == spec["depth"].high
    env = AudioVisualNavVectorEnv(num_envs=2)
    obs, _ = env.reset(seed=3)
    env.close()
    out = depth(torch.from_numpy(obs["depth"])).numpy()
    assert out.shape == (2, 1, 64, 64) and out.min() >= 0.0 and out.max() <= 1.0
    np.testing.assert_allclose(out[:, 0], obs["depth"][..., 0] / spec["depth"].high, atol=1e-6)
    assert rgb(torch.from_numpy(obs["rgb"])).shape == (2, 3, 64, 64)


def test_image_errors_name_the_problem() -> None:
    with pytest.raises(SpecError, match="dtype uint8"):
        ModalitySpec("rgb", ModalityKind.IMAGE, (64, 64, 3), "float32", 10.0)
    audio = ModalitySpec("audio", ModalityKind.AUDIO, (2, 1600), "float32", 10.0,
                         sample_rate=SR)
    with pytest.raises(SpecError, match="LogMel"):
        image_preprocess(audio)
    m = ImageToFloat((64, 64, 3))
    with pytest.raises(SpecError, match="uint8"):
        m(torch.zeros(1, 64, 64, 3))
    with pytest.raises(SpecError, match="batch axis"):
        m(torch.zeros(64, 64, 3, dtype=torch.uint8))
    with pytest.raises(SpecError, match="channels last"):
        m(torch.zeros(1, 3, 64, 64, dtype=torch.uint8))
    with pytest.raises(SpecError, match="64x64"):
        m(torch.zeros(1, 32, 32, 3, dtype=torch.uint8))
    with pytest.raises(SpecError, match="finite max range"):
        DepthToFloat(math.inf)


# ---------------------------------------------------------------- vectors


def test_running_norm_is_identity_before_updates() -> None:
    norm = RunningNorm(6)
    x = torch.linspace(-4.0, 4.0, 12).reshape(2, 6)
    torch.testing.assert_close(norm(x), x)
    assert float(norm.count) == 0


def test_running_norm_matches_numpy_over_batches() -> None:
    rng = np.random.default_rng(3)
    batches = [rng.normal(loc=[0.0, 5.0, -3.0, 100.0], scale=[1.0, 0.1, 3.0, 20.0], size=(n, 4))
               for n in (1, 7, 64, 3, 250)]
    norm = RunningNorm(4, eps=1e-6, clip=5.0)
    for b in batches:
        norm.update(torch.tensor(b, dtype=torch.float32))
    data = np.concatenate([b.astype(np.float32) for b in batches]).astype(np.float64)
    mean, var = data.mean(0), data.var(0)
    assert float(norm.count) == len(data)
    np.testing.assert_allclose(norm.mean64.numpy(), mean, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(norm.var64.numpy(), var, rtol=1e-10)
    x = rng.normal(size=(5, 4)).astype(np.float32) * 30
    want = np.clip((x - mean) / np.sqrt(var + 1e-6), -5.0, 5.0)
    got = norm(torch.from_numpy(x)).numpy()
    assert got.dtype == np.float32
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
    assert float(norm.count) == len(data)  # forward never updates


def test_running_norm_leading_axes_and_shape_errors() -> None:
    norm = RunningNorm((2, 3))
    norm.update(torch.randn(4, 5, 2, 3))  # (T, N, *shape)
    assert float(norm.count) == 20
    with pytest.raises(ConfigError, match="trailing axes"):
        norm.update(torch.randn(4, 3, 2))


def test_running_norm_state_dict_round_trip() -> None:
    a = RunningNorm(3)
    a.update(torch.randn(50, 3) * 4 + 2)
    b = RunningNorm(3)
    b.load_state_dict(a.state_dict())
    x = torch.randn(8, 3) * 5
    torch.testing.assert_close(b(x), a(x), rtol=0, atol=0)
    b.update(torch.randn(10, 3))  # keeps accumulating where a stopped
    assert float(b.count) == 60


def test_running_norm_exports_frozen_constants(tmp_path: Path) -> None:
    norm = RunningNorm(6, clip=3.0)
    norm.update(torch.randn(100, 6) * torch.arange(1.0, 7.0) + 1.5)
    x = (np.random.default_rng(4).normal(size=(9, 6)) * 6).astype(np.float32)
    got = run_onnx(norm, {"proprio": x}, tmp_path / "norm.onnx")
    np.testing.assert_allclose(got, norm(torch.from_numpy(x)).numpy(), atol=1e-6)
    graph = onnx.load(str(tmp_path / "norm.onnx")).graph
    consts = [onnx.numpy_helper.to_array(t) for t in graph.initializer]
    consts += [onnx.numpy_helper.to_array(a.t) for n in graph.node if n.op_type == "Constant"
               for a in n.attribute if a.name == "value"]
    assert all(c.dtype != np.float64 for c in consts)
    assert any(c.shape == (6,) and np.allclose(c, norm.mean.numpy()) for c in consts)
    norm.update(torch.randn(100, 6))  # later updates do not touch the exported file
    np.testing.assert_allclose(
        run_onnx(norm, {"proprio": x}, tmp_path / "norm2.onnx"),
        norm(torch.from_numpy(x)).numpy(), atol=1e-6)
    assert not np.allclose(got, norm(torch.from_numpy(x)).numpy())
