"""How latent bits become modality data: one renderer per modality kind.

Every modality shows three bits, in this order: its *shared* bit (r, shown by
both carriers), its *unique* bit (u_a or u_b) and its *synergy* bit (s_a or
s_b). A distractor modality shows three bits of its own that nothing depends on.

Each bit sits in a pair of orthogonal "bins" (Fourier coefficients, or one
vector entry): the bit's value decides which of the two holds the signal. The
signal has a random gain per episode (phase, colour and contrast for images,
phase and loudness for tones), drawn as a circular complex Gaussian, so the
Bayes-optimal reader is a closed-form energy detector (see ``oracle.py``).

Noise is set per bit: ``noise`` is the std of the additive white Gaussian noise
over the RMS of the signal *in the bin that carries a bit*. The same value
makes a bit about equally hard to read in every kind and size (the noise per
pixel or sample is larger, by about the square root of the pixels or samples
in a bin's support). Image and audio are scaled so that signal and noise fit the
value range ("auto-exposure"): clipping is rare (beyond 4 or 5 noise stds).
"""

from __future__ import annotations

import math

import numpy as np

from perception.spec import ModalityKind, ModalitySpec

KINDS = ("image", "audio", "vector")
"""Modality kinds a probe modality can have."""
OBS_KEYS = {"image": "rgb", "audio": "audio", "vector": "vector"}
"""Observation key of each kind."""
BITS = ("shared", "unique", "synergy")
"""The three bits each modality shows, in order."""

TONE_HZ = ((500.0, 700.0), (1000.0, 1400.0), (2000.0, 2800.0))
"""Nominal tone frequency of (bit, value): shared, unique, synergy bit; value 0, 1."""

# Headroom, in stds, kept for the random gain and the noise in the value range.
IMAGE_GAIN_HEADROOM, IMAGE_NOISE_HEADROOM = 3.5, 4.0
AUDIO_GAIN_HEADROOM, AUDIO_NOISE_HEADROOM = 6.0, 5.0
VECTOR_NOISE_HEADROOM = 8.0  # vector entries are clipped to +-(1 + 8 noise)


def tone_bins(samples: int, sample_rate: int) -> np.ndarray:
    """Fourier bin (whole cycles per window) of each tone, shape (3 bits, 2 values)."""
    return np.rint(np.asarray(TONE_HZ) * samples / sample_rate).astype(np.int64)


def _complex_gains(rng: np.random.Generator, shape: tuple[int, ...], std: float) -> np.ndarray:
    """Real and imaginary parts (last axis 2) of CN(0, std**2) gains, float32."""
    g = rng.standard_normal(shape + (2,), dtype=np.float32)
    g *= np.float32(std / math.sqrt(2.0))
    return g


def _add_noise(clean: np.ndarray, std: float, rng: np.random.Generator) -> np.ndarray:
    """A new float32 array: `clean` plus white Gaussian noise of `std` (none drawn at 0)."""
    if std <= 0:
        return clean.copy()
    x = rng.standard_normal(clean.shape, dtype=np.float32)
    x *= np.float32(std)
    x += clean
    return x


class ImageRenderer:
    """Stripe patches on a 2x2 grid: shared, unique, synergy bit, decoy.

    Each patch of side P = size // 2 holds stripes of `cycles` periods across
    the patch: bit 0 horizontal (the intensity varies down the rows), bit 1
    vertical (it varies along the columns). Per episode and patch, each colour
    channel has its own random phase and contrast (a CN(0, gain_std**2) gain),
    so the orientation, not a pixel value, carries the bit. The fourth patch
    (bottom right) shows a random orientation of its own.
    """

    kind = "image"
    key = OBS_KEYS["image"]

    def __init__(self, size: int, noise: float) -> None:
        self.size = int(size)
        self.patch = p = self.size // 2
        self.cycles = max(1, p // 8)
        rel = float(noise) * p / 2.0  # pixel noise std over gain std, for `noise` per bit
        self.gain_std = 127.5 / (IMAGE_GAIN_HEADROOM + IMAGE_NOISE_HEADROOM * rel)  # levels
        self.noise_std = rel * self.gain_std  # grey levels per pixel and channel
        w = 2.0 * math.pi * self.cycles / p
        self.cos = np.cos(w * np.arange(p)).astype(np.float32)
        self.sin = np.sin(w * np.arange(p)).astype(np.float32)
        self.origins = ((0, 0), (0, p), (p, 0), (p, p))  # (row, col) of each patch

    def spec(self, rate_hz: float) -> ModalitySpec:
        s = self.size
        return ModalitySpec(
            self.key, ModalityKind.IMAGE, (s, s, 3), "uint8", rate_hz, 0, 255,
            description="2x2 grid of stripe patches: shared bit (top left), unique bit (top "
                        "right), synergy bit (bottom left), decoy; horizontal stripes = 0, "
                        "vertical = 1; random phase and colour per episode",
        )

    def clean(self, bits: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """Noise-free images (n, S, S, 3) float32 grey levels of `bits` (n, 3)."""
        n, p = bits.shape[0], self.patch
        orient = np.concatenate([bits, rng.integers(0, 2, (n, 1))], axis=1).astype(bool)
        g = _complex_gains(rng, (n, 4, 3), self.gain_std)  # (n, patch, channel, re/im)
        # Re(g exp(i w u)) along one axis u of the patch: (n, patch, u, channel)
        prof = (g[:, :, None, :, 0] * self.cos[None, None, :, None]
                - g[:, :, None, :, 1] * self.sin[None, None, :, None])
        patches = np.where(orient[:, :, None, None, None],
                           prof[:, :, None, :, :],   # varies along columns: vertical stripes
                           prof[:, :, :, None, :])   # varies down rows: horizontal stripes
        img = np.full((n, self.size, self.size, 3), 127.5, np.float32)
        for j, (r0, c0) in enumerate(self.origins):
            img[:, r0:r0 + p, c0:c0 + p] += patches[:, j]
        return img

    def observe(self, clean: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        x = _add_noise(clean, self.noise_std, rng)
        np.rint(x, out=x)
        np.clip(x, 0, 255, out=x)
        return x.astype(np.uint8)


class AudioRenderer:
    """Three tones, one per bit, each at one of two frequencies (`TONE_HZ`).

    Frequencies are rounded to whole cycles per window (``tone_bins``), so the
    six tones are orthogonal. Each tone has a random phase and loudness per
    episode (a CN(0, gain_std**2) gain, Rayleigh-distributed amplitude).
    """

    kind = "audio"
    key = OBS_KEYS["audio"]

    def __init__(self, samples: int, sample_rate: int, noise: float) -> None:
        self.samples = t = int(samples)
        self.sample_rate = int(sample_rate)
        self.bins = tone_bins(t, self.sample_rate)
        self.hz = self.bins * self.sample_rate / t
        rel = float(noise) * math.sqrt(t) / 2.0
        self.gain_std = 1.0 / (AUDIO_GAIN_HEADROOM + AUDIO_NOISE_HEADROOM * rel)
        self.noise_std = rel * self.gain_std
        phase = 2.0 * math.pi * self.bins[:, :, None] * np.arange(t) / t  # (3, 2, T)
        self.cos = np.cos(phase).astype(np.float32)
        self.sin = np.sin(phase).astype(np.float32)

    def spec(self, rate_hz: float) -> ModalitySpec:
        hz = ", ".join(f"{a:g}/{b:g}" for a, b in self.hz)
        return ModalitySpec(
            self.key, ModalityKind.AUDIO, (1, self.samples), "float32", rate_hz, -1.0, 1.0,
            sample_rate=self.sample_rate,
            description=f"mono waveform; one tone per bit (shared, unique, synergy) at "
                        f"{hz} Hz for value 0/1, random phase and loudness per episode",
        )

    def clean(self, bits: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """Noise-free waveforms (n, 1, T) float32 of `bits` (n, 3)."""
        n = bits.shape[0]
        g = _complex_gains(rng, (n, 3), self.gain_std)
        j = np.arange(3)
        wave = np.einsum("nj,njt->nt", g[..., 0], self.cos[j, bits])
        wave -= np.einsum("nj,njt->nt", g[..., 1], self.sin[j, bits])
        return wave[:, None, :]

    def observe(self, clean: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        x = _add_noise(clean, self.noise_std, rng)
        np.clip(x, -1.0, 1.0, out=x)
        return x


class VectorRenderer:
    """Entries 0-2 are the bits as -1/+1; the rest are random -1/+1 (no information).

    Every entry gets Gaussian noise of std `noise` (the signal has RMS 1),
    clipped (about never) at 8 stds so that the space has finite bounds.
    """

    kind = "vector"
    key = OBS_KEYS["vector"]

    def __init__(self, dim: int, noise: float) -> None:
        self.dim = int(dim)
        self.noise_std = float(noise)
        self.bound = float(np.float32(1.0 + VECTOR_NOISE_HEADROOM * self.noise_std))

    def spec(self, rate_hz: float) -> ModalitySpec:
        return ModalitySpec(
            self.key, ModalityKind.VECTOR, (self.dim,), "float32", rate_hz,
            -self.bound, self.bound,
            description="entries 0-2: shared, unique, synergy bit as -1/+1 plus noise; "
                        "further entries: random -1/+1 plus noise (no information)",
        )

    def clean(self, bits: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """Noise-free vectors (n, D) float32 of `bits` (n, 3)."""
        filler = rng.integers(0, 2, (bits.shape[0], self.dim - 3))
        v = np.concatenate([bits, filler], axis=1).astype(np.float32)
        return 2.0 * v - 1.0

    def observe(self, clean: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        x = _add_noise(clean, self.noise_std, rng)
        np.clip(x, -self.bound, self.bound, out=x)
        return x


Renderer = ImageRenderer | AudioRenderer | VectorRenderer


def make_renderer(kind: str, noise: float, image_size: int, audio_samples: int,
                  sample_rate: int, vector_dim: int) -> Renderer:
    """The renderer of a modality `kind` with per-bit `noise`."""
    if kind == "image":
        return ImageRenderer(image_size, noise)
    if kind == "audio":
        return AudioRenderer(audio_samples, sample_rate, noise)
    if kind == "vector":
        return VectorRenderer(vector_dim, noise)
    raise ValueError(f"unknown modality kind {kind!r}; use one of {', '.join(KINDS)}")
