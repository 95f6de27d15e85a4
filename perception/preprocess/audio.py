"""Log-mel front-end that lives inside the exported graph, and its numpy reference.

The waveform goes in as the microphone gives it, ``(B, C, T)`` float32; the
module frames it, applies a Hann window, takes the power spectrum ``|X|^2``,
sums it into triangular mel bands (Slaney mel scale: linear below 1 kHz,
logarithmic above, as librosa's default; triangles peak at 1) and returns
``log(mel + log_offset)`` as ``(B, C, frames, n_mels)``.

How it is computed, for onnxruntime at batch 1 on one thread: ONNX's STFT/DFT
ops are slow there, so the DFT is one MatMul of the framed signal with a
constant matrix whose columns are the window-weighted cosines and sines of the
bins that some mel band uses. Framing is one Gather of contiguous blocks of
``gcd(window, hop)`` samples, not of single samples (a per-sample Gather costs
more than the DFT). The graph is Reshape, Gather, Reshape, MatMul, Mul, MatMul,
Add, Log. Its cost is the DFT MatMul, about frames x window x window. The
defaults (16 ms window, 10 ms hop, 64 bands) keep it within the front-end's
budget of ~25 us for AudioVisualNav's 0.1 s stereo input at batch 1 on one
thread: measured p50 23 us in onnxruntime 1.32, against 30 us for a 20 ms
window and 37 us for 25 ms (the 10 ms hop kept).
"""

from __future__ import annotations

import dataclasses
import math
import warnings
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor, nn

from perception.configs.model import LogMelConfig
from perception.settings import ConfigError, require_int

WHERE = "LogMelConfig"


@dataclass(frozen=True)
class FrameGeometry:
    """Sizes in samples that a config means at one sample rate (derived in one place)."""

    win: int
    hop: int
    n_fft: int
    fmin: float
    fmax: float
    pad: int  # zeros added on each side (center=True)

    @classmethod
    def of(cls, sample_rate: int, cfg: LogMelConfig) -> FrameGeometry:
        cfg.validate()
        require_int("LogMel", "sample_rate", sample_rate, 1)
        win = max(1, int(round(cfg.win_ms * sample_rate / 1000.0)))
        hop = max(1, int(round(cfg.hop_ms * sample_rate / 1000.0)))
        n_fft = cfg.n_fft or win
        if n_fft < win:
            raise ConfigError(
                f"{WHERE}: n_fft={cfg.n_fft} is shorter than the window ({win} samples = "
                f"{cfg.win_ms} ms at {sample_rate} Hz); set n_fft=0 or n_fft >= {win}"
            )
        nyquist = sample_rate / 2.0
        fmax = cfg.fmax_hz or nyquist
        if fmax > nyquist:
            raise ConfigError(
                f"{WHERE}: fmax_hz={cfg.fmax_hz} is above the Nyquist frequency {nyquist} Hz of "
                f"{sample_rate} Hz audio; set fmax_hz <= {nyquist} or 0 (= Nyquist)"
            )
        if cfg.fmin_hz >= fmax:
            raise ConfigError(f"{WHERE}: fmin_hz={cfg.fmin_hz} must be below fmax {fmax} Hz")
        return cls(win, hop, n_fft, float(cfg.fmin_hz), float(fmax),
                   win // 2 if cfg.center else 0)

    def frames(self, samples: int, sample_rate: int) -> int:
        """Frames in a waveform of `samples` samples; ConfigError if it holds none."""
        padded = samples + 2 * self.pad
        if padded < self.win:
            raise ConfigError(
                f"log-mel: the waveform has {samples} samples but one {self.win}-sample window "
                f"({1000.0 * self.win / sample_rate:g} ms at {sample_rate} Hz) needs at least "
                f"{self.win - 2 * self.pad}; lower LogMelConfig.win_ms, set center=True, "
                "or feed a longer waveform"
            )
        return 1 + (padded - self.win) // self.hop


def hz_to_mel(hz: np.ndarray | float) -> np.ndarray:
    """Slaney mel scale: linear (3 mels per 200 Hz) below 1 kHz, logarithmic above."""
    hz = np.asarray(hz, dtype=np.float64)
    lin = hz * 3.0 / 200.0
    log = 15.0 + np.log(np.maximum(hz, 1e-10) / 1000.0) / (np.log(6.4) / 27.0)
    return np.where(hz >= 1000.0, log, lin)


def mel_to_hz(mel: np.ndarray | float) -> np.ndarray:
    """Inverse of :func:`hz_to_mel`."""
    mel = np.asarray(mel, dtype=np.float64)
    lin = mel * 200.0 / 3.0
    log = 1000.0 * np.exp((np.log(6.4) / 27.0) * (mel - 15.0))
    return np.where(mel >= 15.0, log, lin)


def mel_band_edges(n_mels: int, fmin: float, fmax: float) -> np.ndarray:
    """The ``n_mels + 2`` band edges in Hz: band m rises from edge m, peaks at m+1, ends at m+2."""
    return mel_to_hz(np.linspace(hz_to_mel(fmin), hz_to_mel(fmax), n_mels + 2))


def mel_filterbank(
    sample_rate: int, n_fft: int, n_mels: int, fmin: float, fmax: float
) -> np.ndarray:
    """Triangular mel filters, ``(n_fft // 2 + 1, n_mels)`` float64: ``power @ fb`` = bands.

    Slaney mel scale; each triangle is linear in Hz between its band edges and
    peaks at 1 (no area normalisation).
    """
    freqs = np.arange(n_fft // 2 + 1) * (sample_rate / n_fft)
    edges = mel_band_edges(n_mels, fmin, fmax)
    lo, mid, hi = edges[None, :-2], edges[None, 1:-1], edges[None, 2:]
    rise = (freqs[:, None] - lo) / (mid - lo)
    fall = (hi - freqs[:, None]) / (hi - mid)
    return np.maximum(0.0, np.minimum(rise, fall))


def hann(win: int) -> np.ndarray:
    """Periodic Hann window of `win` samples (as ``torch.hann_window`` and scipy's default)."""
    return 0.5 - 0.5 * np.cos(2.0 * np.pi * np.arange(win) / win)


def log_mel_reference(wave: np.ndarray, sample_rate: int, cfg: LogMelConfig) -> np.ndarray:
    """The definition, in float64 numpy: ``(..., C, T)`` -> ``(..., C, frames, n_mels)``."""
    geo = FrameGeometry.of(sample_rate, cfg)
    x = np.asarray(wave, dtype=np.float64)
    if geo.pad:
        x = np.pad(x, [(0, 0)] * (x.ndim - 1) + [(geo.pad, geo.pad)])
    n = geo.frames(x.shape[-1] - 2 * geo.pad, sample_rate)
    starts = geo.hop * np.arange(n)
    frames = x[..., starts[:, None] + np.arange(geo.win)[None, :]]
    spec = np.fft.rfft(frames * hann(geo.win), n=geo.n_fft, axis=-1)
    power = spec.real**2 + spec.imag**2
    fb = mel_filterbank(sample_rate, geo.n_fft, cfg.n_mels, geo.fmin, geo.fmax)
    return np.log(power @ fb + cfg.log_offset)


class LogMel(nn.Module):
    """Waveform ``(B, C, T)`` float32 -> log-mel ``(B, C, frames, n_mels)`` float32.

    Any waveform length works in torch; an ONNX export fixes the sample axis to
    the traced length (the spec's ``shape``) and keeps the batch axis dynamic.
    Matches :func:`log_mel_reference` within 1e-4 with the default ``log_offset``.
    """

    def __init__(self, sample_rate: int, cfg: LogMelConfig) -> None:
        super().__init__()
        self.sample_rate = int(sample_rate)
        self.cfg = dataclasses.replace(cfg)  # a copy: later edits of `cfg` change nothing here
        self.geo = geo = FrameGeometry.of(self.sample_rate, cfg)
        fb = mel_filterbank(self.sample_rate, geo.n_fft, cfg.n_mels, geo.fmin, geo.fmax)
        empty = np.flatnonzero(fb.max(axis=0) <= 0.0)
        if empty.size:
            edges = mel_band_edges(cfg.n_mels, geo.fmin, geo.fmax)
            raise ConfigError(
                f"log-mel: {empty.size} of {cfg.n_mels} mel bands hold no DFT bin (first: band "
                f"{empty[0]}, {edges[empty[0]]:.0f}-{edges[empty[0] + 2]:.0f} Hz; bins are "
                f"{self.sample_rate / geo.n_fft:.1f} Hz apart); use fewer n_mels, a longer "
                "win_ms or n_fft, or a higher fmin_hz"
            )
        # Only bins that some band uses; real parts then imaginary parts (a zero column for the
        # imaginary part of DC and Nyquist keeps the two halves the same width).
        bins = np.flatnonzero(fb.max(axis=1) > 0.0)
        angle = 2.0 * np.pi * np.outer(np.arange(geo.win), bins) / geo.n_fft
        window = hann(geo.win)[:, None]
        dft = np.concatenate([window * np.cos(angle), -window * np.sin(angle)], axis=1)
        self.n_bins = bins.size
        self.block = math.gcd(geo.win, geo.hop)
        self.register_buffer("dft", torch.tensor(dft, dtype=torch.float32), persistent=False)
        # |X|^2 @ fb = re^2 @ fb + im^2 @ fb: one MatMul on the squared spectrum.
        mel_w = np.concatenate([fb[bins], fb[bins]], axis=0)
        self.register_buffer("mel_w", torch.tensor(mel_w, dtype=torch.float32), persistent=False)
        self._index_cache: dict[int, Tensor] = {}

    def out_shape(self, channels: int, samples: int) -> tuple[int, int, int]:
        """``(channels, frames, n_mels)`` for a ``(channels, samples)`` waveform."""
        return (channels, self.geo.frames(samples, self.sample_rate), self.cfg.n_mels)

    def _frame_index(self, wave: Tensor) -> tuple[int, int, int, Tensor]:
        """(samples, channels, frames, block index ``(frames, win // block)``) of a waveform.

        The sample axis is static: in an ONNX trace its size and the index become
        constants of the graph (on purpose, so the tracer's warnings are muted).
        """
        with warnings.catch_warnings():
            if torch.jit.is_tracing():
                warnings.simplefilter("ignore", torch.jit.TracerWarning)
            samples = int(wave.shape[-1])
            channels = int(wave.shape[1])
            n = self.geo.frames(samples - 2 * self.geo.pad, self.sample_rate)
            if samples not in self._index_cache:
                step, per = self.geo.hop // self.block, self.geo.win // self.block
                idx = step * np.arange(n)[:, None] + np.arange(per)[None, :]
                self._index_cache[samples] = torch.tensor(idx, dtype=torch.int64)
            return samples, channels, n, self._index_cache[samples].to(wave.device)

    def forward(self, wave: Tensor) -> Tensor:
        if wave.dim() != 3 or wave.dtype != self.dft.dtype:
            raise ConfigError(
                f"log-mel takes a (batch, channels, samples) {self.dft.dtype} waveform, got "
                f"shape {tuple(wave.shape)} {wave.dtype}; add the batch axis or cast the dtype"
            )
        if self.geo.pad:
            wave = nn.functional.pad(wave, (self.geo.pad, self.geo.pad))
        t, c, n, idx = self._frame_index(wave)
        if t % self.block:  # whole blocks only; every frame ends before the cut
            t = (n - 1) * self.geo.hop + self.geo.win
            wave = wave[:, :, :t]
        # constant shapes (batch -1): one Reshape node each in the exported graph
        blocks = wave.reshape(-1, c, t // self.block, self.block)
        frames = blocks[:, :, idx].reshape(-1, c, n, self.geo.win)
        spec = frames @ self.dft  # (B, C, F, 2 * bins): real parts, then imaginary parts
        mel = (spec * spec) @ self.mel_w
        return torch.log(mel + self.cfg.log_offset)
