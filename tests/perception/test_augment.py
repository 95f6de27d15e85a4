"""Training-time randomizers, modality dropout and the coordination loss, on real tensors."""

from __future__ import annotations

import math

import pytest
import torch

from envs.audiovisual_nav import AudioVisualNavVectorEnv, audiovisual_nav_spec
from perception.augment import (
    AudioGain,
    AudioNoise,
    ColourJitter,
    CoordinationConfig,
    CoordinationLoss,
    ImageShift,
    ModalityDropout,
    ModalityDropoutConfig,
    ObservationRandomizer,
    RandomizerConfig,
    VectorNoise,
    pairwise_alignment,
)
from perception.settings import ConfigError, config_from_kwargs
from perception.spec import presence_key


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


@pytest.fixture(scope="module")
def nav() -> tuple:
    """A real AudioVisualNav batch as torch tensors, with its spec."""
    env = AudioVisualNavVectorEnv(num_envs=16)
    obs, _ = env.reset(seed=0)
    spec = audiovisual_nav_spec(env.cfg)
    return spec, {k: torch.from_numpy(v) for k, v in obs.items()}


# -- per-kind randomizers ---------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [torch.uint8, torch.float32])
def test_image_shift_is_a_shifted_copy_per_sample(dtype: torch.dtype) -> None:
    pad, b, h, w = 4, 32, 24, 20
    x = torch.randint(0, 256, (b, h, w, 3), generator=gen(1)).to(dtype)
    shift = ImageShift(pad).train()
    y = shift(x, gen(2))
    assert y.dtype == x.dtype and y.shape == x.shape
    found = []
    for i in range(b):
        centre = y[i, pad:h - pad, pad:w - pad]
        matches = [
            (dy, dx)
            for dy in range(-pad, pad + 1)
            for dx in range(-pad, pad + 1)
            if torch.equal(centre, x[i, pad + dy:h - pad + dy, pad + dx:w - pad + dx])
        ]
        assert len(matches) == 1, f"sample {i} is not a shifted copy of its input"
        found.append(matches[0])
    assert len(set(found)) > b // 3, "shifts should differ across samples"


def test_image_shift_replicates_edges_and_handles_depth() -> None:
    depth = torch.rand(8, 16, 16, 1, generator=gen(3)) * 5
    shifts = torch.tensor([[4, 0]] * 8)  # content moves up by 4 rows
    y = ImageShift(4).forward_in(depth, shifts=shifts)
    assert y.dtype == torch.float32 and y.shape == depth.shape
    assert torch.equal(y[:, :12], depth[:, 4:])
    for r in range(12, 16):  # rows from outside the image repeat the last row
        assert torch.equal(y[:, r], depth[:, 15])


def test_image_shift_is_identity_in_eval() -> None:
    x = torch.randint(0, 256, (4, 8, 8, 3), dtype=torch.uint8)
    shift = ImageShift(4).eval()
    assert shift(x) is x


def test_colour_jitter_keeps_uint8_and_bounds_brightness() -> None:
    x = torch.randint(60, 190, (64, 16, 16, 3), generator=gen(4), dtype=torch.uint8)
    y = ColourJitter(brightness=0.2, contrast=0.0).train()(x, gen(5))
    assert y.dtype == torch.uint8 and y.shape == x.shape
    ratio = y.float().mean(dim=(1, 2, 3)) / x.float().mean(dim=(1, 2, 3))
    assert (ratio >= 0.8 - 0.01).all() and (ratio <= 1.2 + 0.01).all()
    assert ratio.std() > 0.05, "brightness should vary per sample"
    # Contrast alone keeps the mean grey level and scales the spread within bounds.
    y = ColourJitter(brightness=0.0, contrast=0.2).train()(x, gen(6))
    spread = y.float().std(dim=(1, 2, 3)) / x.float().std(dim=(1, 2, 3))
    assert (spread >= 0.8 - 0.02).all() and (spread <= 1.2 + 0.02).all()
    assert torch.allclose(y.float().mean(dim=(1, 2, 3)), x.float().mean(dim=(1, 2, 3)), atol=2)
    # Saturated images clip instead of wrapping around.
    white = torch.full((8, 4, 4, 3), 250, dtype=torch.uint8)
    assert ColourJitter(0.5, 0.0).train()(white, gen(7)).min() >= 125


def test_audio_gain_within_db_range_and_clipped() -> None:
    x = 0.1 * torch.randn(256, 2, 400, generator=gen(8))
    y = AudioGain(db=6.0).train()(x, gen(9))
    assert y.dtype == torch.float32 and y.shape == x.shape
    gain_db = 20 * torch.log10(y.pow(2).mean((1, 2)).sqrt() / x.pow(2).mean((1, 2)).sqrt())
    assert gain_db.min() >= -6.0 - 1e-3 and gain_db.max() <= 6.0 + 1e-3
    assert gain_db.min() < -4.0 and gain_db.max() > 4.0, "gains should span the range"
    # One gain for both ears: the interaural level ratio stays.
    assert torch.allclose(y[:, 0] / x[:, 0], y[:, 1] / x[:, 1], rtol=1e-4)
    loud = torch.full((16, 2, 10), 0.9)
    assert AudioGain(db=12.0).train()(loud, gen(10)).abs().max() <= 1.0


@pytest.mark.parametrize(("make", "std"), [(AudioNoise, 0.005), (VectorNoise, 0.01)])
def test_noise_std_matches_setting(make: type, std: float) -> None:
    x = torch.zeros(128, 2, 500) if make is AudioNoise else torch.zeros(1000, 100)
    y = make(std).train()(x, gen(11))
    assert y.dtype == x.dtype and y.shape == x.shape
    assert abs(float((y - x).std()) - std) < 0.02 * std
    assert abs(float((y - x).mean())) < 0.02 * std


def test_noise_clips_to_bounds() -> None:
    assert AudioNoise(0.5).train()(torch.full((4, 1, 100), 0.99), gen(12)).abs().max() <= 1.0
    y = VectorNoise(0.5, low=0.0, high=1.0).train()(torch.zeros(4, 100), gen(13))
    assert y.min() >= 0.0 and y.max() <= 1.0


# -- the observation randomizer ---------------------------------------------------------------


def test_observation_randomizer_on_real_observations(nav: tuple) -> None:
    spec, obs = nav
    cfg = RandomizerConfig(depth_noise_m=0.02, touch_noise=0.01)
    aug = ObservationRandomizer(spec, cfg).train()
    flags = {presence_key(n): torch.arange(16) % 3 != i for i, n in enumerate(spec.names)}
    batch = {**obs, **flags, "extra": torch.arange(16)}
    before = {k: v.clone() for k, v in batch.items()}
    out = aug(batch, gen(14))
    for m in spec:
        x, y = batch[m.name], out[m.name]
        assert y.dtype == x.dtype and y.shape == x.shape, m.name
        absent = ~flags[presence_key(m.name)]
        assert torch.equal(y[absent], x[absent]), f"absent rows of {m.name} changed"
        assert not torch.equal(y[~absent], x[~absent]), f"{m.name} was not randomized"
        assert float(y.min()) >= m.low and float(y.max()) <= m.high, m.name
    for key in [*flags, "extra"]:
        assert out[key] is batch[key]
    assert all(torch.equal(batch[k], v) for k, v in before.items()), "input modified in place"
    # Eval mode: identity.
    aug.eval()
    assert aug(batch) is batch


def test_observation_randomizer_is_repeatable_with_a_generator(nav: tuple) -> None:
    spec, obs = nav
    aug = ObservationRandomizer(spec, RandomizerConfig()).train()
    a, b, c = aug(obs, gen(15)), aug(obs, gen(15)), aug(obs, gen(16))
    for n in spec.names:
        assert torch.equal(a[n], b[n]), n
    assert not torch.equal(a["rgb"], c["rgb"])


def test_observation_randomizer_keeps_rgb_and_depth_aligned(nav: tuple) -> None:
    spec, obs = nav
    cfg = RandomizerConfig(colour_jitter=0.0, depth_noise_m=0.0, image_shift_px=4)
    out = ObservationRandomizer(spec, cfg).train()(obs, gen(17))
    # With no other randomizer, rgb and depth are moved by the same shift in each sample.
    shifts = ImageShift(4).sample_shifts(16, obs["rgb"], gen(17))
    assert torch.equal(out["rgb"], ImageShift(4).forward_in(obs["rgb"], shifts=shifts))
    assert torch.equal(out["depth"], ImageShift(4).forward_in(obs["depth"], shifts=shifts))


def test_observation_randomizer_takes_leading_axes(nav: tuple) -> None:
    spec, obs = nav
    seq = {k: v.view(4, 4, *v.shape[1:]) for k, v in obs.items()}
    seq[presence_key("audio")] = torch.zeros(4, 4, dtype=torch.bool)
    out = ObservationRandomizer(spec).train()(seq, gen(18))
    assert out["rgb"].shape == seq["rgb"].shape
    assert torch.equal(out["audio"], seq["audio"])
    with pytest.raises(ValueError, match="rgb"):
        ObservationRandomizer(spec).train()({"rgb": obs["rgb"][:, :8]})


def test_randomizer_config_errors() -> None:
    with pytest.raises(ConfigError, match="audio_noise"):
        config_from_kwargs(RandomizerConfig, {"audio_noise": -0.1}, "augment")
    with pytest.raises(ConfigError, match="colour_jitter"):
        RandomizerConfig(colour_jitter=1.5).validate()
    with pytest.raises(ConfigError, match="image_shift_px"):
        RandomizerConfig(image_shift_px=2.5).validate()  # type: ignore[arg-type]


# -- modality dropout -------------------------------------------------------------------------


def all_present(names: tuple[str, ...], n: int) -> dict[str, torch.Tensor]:
    return {k: torch.ones(n, dtype=torch.bool) for k in names}


def test_modality_dropout_frequency_matches_p() -> None:
    names, n = ("rgb", "audio", "proprio"), 20_000
    probs = {"rgb": 0.1, "audio": 0.4, "proprio": 0.0}
    drop = ModalityDropout(names, probs, min_present=0).train()
    out = drop(all_present(names, n), gen(19))
    for k, p in probs.items():
        freq = 1.0 - out[k].float().mean().item()
        tol = 4 * math.sqrt(p * (1 - p) / n) + 1e-9
        assert abs(freq - p) <= tol, (k, freq, p)


def test_modality_dropout_respects_min_present() -> None:
    names, n = ("a", "b", "c", "d"), 5_000
    present = {k: torch.rand(n, generator=gen(20 + i)) < 0.7 for i, k in enumerate(names)}
    drop = ModalityDropout(names, p=0.9, min_present=2).train()
    out = drop(present, gen(24))
    before = torch.stack([present[k] for k in names]).sum(0)
    after = torch.stack([out[k] for k in names]).sum(0)
    assert (after >= before.clamp(max=2)).all()
    for k in names:  # previously absent stays absent
        assert not (out[k] & ~present[k]).any()
    assert (after < before).any()
    # Every modality gets restored sometimes (the choice is random, not the first one).
    at_two = after == 2
    assert all((out[k] & at_two).any() for k in names)


def test_modality_dropout_eval_identity_and_apply(nav: tuple) -> None:
    spec, obs = nav
    drop = ModalityDropout(spec.names, p=0.5).eval()
    flags = all_present(spec.names, 16)
    assert all(torch.equal(drop(flags)[k], flags[k]) for k in flags)
    out = drop.apply(obs)
    for n in spec.names:  # flags added, all True in eval; data untouched
        assert out[presence_key(n)].dtype == torch.bool and out[presence_key(n)].all()
        assert out[n] is obs[n]
    drop.train()
    batch = {**obs, presence_key("audio"): torch.arange(16) < 8}
    out = drop.apply(batch, gen(25))
    assert not out[presence_key("audio")][8:].any()
    assert any(not out[presence_key(n)].all() for n in spec.names)
    assert all(out[n] is obs[n] for n in spec.names)


def test_modality_dropout_errors() -> None:
    with pytest.raises(ConfigError, match="p=-0.1"):
        ModalityDropout(("a", "b"), p=-0.1)
    with pytest.raises(ConfigError, match="p=1.5"):
        ModalityDropout(("a", "b"), p=1.5)
    with pytest.raises(ConfigError, match="unknown modality.*'c'"):
        ModalityDropout(("a", "b"), p={"c": 0.2})
    with pytest.raises(ConfigError, match="min_present"):
        ModalityDropout(("a", "b"), p=0.2, min_present=3)
    with pytest.raises(ConfigError, match="'lidar'"):
        ModalityDropoutConfig(per_modality={"lidar": 0.5}).probabilities(("rgb", "audio"))
    with pytest.raises(ConfigError, match="p=2"):
        config_from_kwargs(ModalityDropoutConfig, {"p": 2}, "dropout")
    with pytest.raises(KeyError, match="apply"):
        ModalityDropout(("a", "b")).train()({"a": torch.ones(3, dtype=torch.bool)})
    cfg = ModalityDropoutConfig(p=0.3, per_modality={"b": 0.0})
    drop = ModalityDropout.from_config(cfg, ("a", "b"))
    assert drop.p == {"a": 0.3, "b": 0.0}


# -- coordination -----------------------------------------------------------------------------


def shared_latent_batch(n: int, g: torch.Generator, wa: torch.Tensor,
                        wb: torch.Tensor) -> dict[str, torch.Tensor]:
    z = torch.randn(n, wa.shape[0], generator=g)
    return {
        "rgb": z @ wa + 0.1 * torch.randn(n, wa.shape[1], generator=g),
        "audio": torch.tanh(z @ wb) + 0.1 * torch.randn(n, wb.shape[1], generator=g),
    }


def test_coordination_loss_learns_alignment() -> None:
    torch.manual_seed(0)
    g = gen(26)
    wa, wb = torch.randn(8, 32, generator=g), torch.randn(8, 16, generator=g)
    coord = CoordinationLoss({"rgb": 32, "audio": 16}, embed_dim=32, temperature=0.1)
    present = all_present(("rgb", "audio"), 64)
    held_out = shared_latent_batch(64, g, wa, wb)
    with torch.no_grad():
        before = coord(held_out, present).item()
        acc_before = pairwise_alignment(coord.embed(held_out, present), present)
    opt = torch.optim.Adam(coord.parameters(), lr=1e-2)
    for _ in range(200):
        loss = coord(shared_latent_batch(64, g, wa, wb), present)
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        after = coord(held_out, present).item()
        acc_after = pairwise_alignment(coord.embed(held_out, present), present)
    assert acc_before[("rgb", "audio")] < 0.15  # chance is 1/64
    assert acc_after[("rgb", "audio")] > 0.8
    assert after < 0.3 * before


def reference_clip(za: torch.Tensor, zb: torch.Tensor, t: float) -> torch.Tensor:
    logits = za @ zb.T / t
    target = torch.arange(len(za))
    ce = torch.nn.functional.cross_entropy
    return 0.5 * (ce(logits, target) + ce(logits.T, target))


def test_coordination_loss_ignores_absent_rows_and_matches_clip() -> None:
    g = gen(27)
    dims = {"rgb": 12, "audio": 6, "proprio": 4}
    coord = CoordinationLoss(dims, embed_dim=8, temperature=0.2)
    feats = {n: torch.randn(10, d, generator=g) for n, d in dims.items()}
    present = {
        "rgb": torch.tensor([1, 1, 1, 1, 1, 1, 0, 0, 1, 1], dtype=torch.bool),
        "audio": torch.tensor([1, 0, 1, 1, 0, 1, 1, 1, 1, 0], dtype=torch.bool),
        "proprio": torch.tensor([0, 0, 0, 0, 0, 0, 1, 0, 0, 0], dtype=torch.bool),
    }
    loss = coord(feats, present)
    # Only (rgb, audio) has >= 2 rows where both are present: plain CLIP on those rows.
    z = coord.embed(feats, present)
    both = present["rgb"] & present["audio"]
    expected = reference_clip(z["rgb"][both], z["audio"][both], 0.2)
    assert torch.allclose(loss, expected, atol=1e-5)
    loss.backward()
    grads = {k: p.grad.clone() for k, p in coord.named_parameters()}
    # Garbage (NaN included) in absent rows changes neither the loss nor its gradients.
    coord.zero_grad()
    dirty = {n: torch.where(present[n][:, None], f, torch.full_like(f, math.nan))
             for n, f in feats.items()}
    loss2 = coord(dirty, present)
    loss2.backward()
    assert torch.equal(loss, loss2)
    for k, p in coord.named_parameters():
        assert torch.allclose(p.grad, grads[k]), k
    # Rows where only one of the pair is present do not count either.
    changed = dict(feats, audio=feats["audio"].clone())
    changed["audio"][~present["rgb"]] += 100.0
    assert torch.allclose(coord(changed, present), loss)


def test_coordination_loss_without_pairs_is_a_differentiable_zero() -> None:
    coord = CoordinationLoss({"a": 3, "b": 3}, embed_dim=4, learn_temperature=True)
    b = torch.full((5, 3), math.nan)
    b[0] = 1.0
    feats = {"a": torch.randn(5, 3), "b": b}  # NaN where b is absent
    present = {"a": torch.ones(5, dtype=torch.bool),
               "b": torch.tensor([1, 0, 0, 0, 0], dtype=torch.bool)}
    loss = coord(feats, present)
    assert loss.shape == () and loss.item() == 0.0 and loss.requires_grad
    loss.backward()
    assert all(torch.isfinite(p.grad).all() and not p.grad.any() for p in coord.parameters())
    assert pairwise_alignment(coord.embed(feats, present), present) == {}


def test_coordination_errors() -> None:
    with pytest.raises(ConfigError, match="temperature=0"):
        CoordinationLoss({"a": 3, "b": 3}, temperature=0)
    with pytest.raises(ConfigError, match="temperature=-1"):
        config_from_kwargs(CoordinationConfig, {"temperature": -1.0}, "coordination")
    with pytest.raises(ConfigError, match="two modalities"):
        CoordinationLoss({"a": 3})
    with pytest.raises(ConfigError, match="embed_dim"):
        CoordinationConfig(embed_dim=0).validate()
    coord = CoordinationLoss.from_config(CoordinationConfig(weight=0.1), {"a": 3, "b": 2})
    with pytest.raises(KeyError, match="'c'"):
        coord({"c": torch.zeros(2, 3)}, {"c": torch.ones(2, dtype=torch.bool)})
    assert math.isclose(coord.temperature, 0.1, rel_tol=1e-5)


def test_everything_stays_on_the_input_device_and_dtype() -> None:
    """No hard-coded device: each part follows its input (CPU here; CUDA elsewhere)."""
    device = "cuda" if torch.cuda.is_available() else "cpu"
    x = torch.randint(0, 256, (4, 8, 8, 3), dtype=torch.uint8, device=device)
    assert ImageShift(2).train()(x, gen(28)).device == x.device  # CPU generator is fine
    assert ColourJitter().train()(x).device == x.device
    flags = {"a": torch.ones(4, dtype=torch.bool, device=device)}
    assert ModalityDropout(("a",), 0.5).train()(flags)["a"].device == x.device
    assert ColourJitter().train()(x).dtype == torch.uint8
    grey = x[..., :1].float() / 255  # float images in [0, 1], one channel
    y = ColourJitter(0.5, 0.5).train()(grey, gen(29))
    assert y.dtype == torch.float32 and y.device == x.device and 0 <= y.min() <= y.max() <= 1
