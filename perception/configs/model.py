"""Settings of the perception model: the encoders by modality kind, their front-ends, memory."""

from __future__ import annotations

from dataclasses import dataclass, field

from perception.settings import require, require_float, require_int
from perception.spec import ModalityKind

LOG_MEL = "LogMelConfig"


@dataclass
class LogMelConfig:
    """Settings of the log-mel front-end (a Hydra structured config)."""

    n_mels: int = 64
    """Mel bands per frame (the feature size of one frame)."""
    win_ms: float = 16.0
    """Hann window length in milliseconds, rounded to whole samples (16 ms = 256 at 16 kHz)."""
    hop_ms: float = 10.0
    """Step between frames in milliseconds, rounded to whole samples."""
    n_fft: int = 0
    """DFT size in samples; 0 = the window length. Larger zero-pads: finer bins, more cost."""
    fmin_hz: float = 0.0
    """Lower edge of the lowest mel band, Hz."""
    fmax_hz: float = 0.0
    """Upper edge of the highest mel band, Hz; 0 = Nyquist (sample_rate / 2)."""
    log_offset: float = 1e-3
    """The eps in log(mel + eps), in units of |rfft|^2 of the Hann-windowed frame: the floor.

    1e-3 sits at AudioVisualNav's microphone self-noise (std 0.003: 9e-6 x sum(w^2) = 8.6e-4
    per bin at 16 ms), so what it hides is sensor noise anyway. It also bounds the float32
    error of the graph against the float64 reference: a DFT error e moves log(mel + eps) by
    at most e / sqrt(eps). Measured: ~1e-5 on AudioVisualNav audio, <= 1e-4 for pure
    full-scale tones; with eps = 1e-6 near-silent frames would miss a 1e-4 tolerance."""
    center: bool = False
    """Zero-pad half a window on each side so that frame t is centred on sample t * hop."""

    def validate(self) -> None:
        require_int(LOG_MEL, "n_mels", self.n_mels, 1, 512)
        require_float(LOG_MEL, "win_ms", self.win_ms, 0.0, 1000.0, lo_open=True)
        require_float(LOG_MEL, "hop_ms", self.hop_ms, 0.0, 1000.0, lo_open=True)
        require_int(LOG_MEL, "n_fft", self.n_fft, 0, 65536)
        require_float(LOG_MEL, "fmin_hz", self.fmin_hz, 0.0)
        require_float(LOG_MEL, "fmax_hz", self.fmax_hz, 0.0)
        require(LOG_MEL, "fmax_hz", self.fmax_hz, self.fmax_hz == 0 or self.fmax_hz > self.fmin_hz,
                f"0 (Nyquist) or above fmin_hz={self.fmin_hz}")
        require_float(LOG_MEL, "log_offset", self.log_offset, 0.0, lo_open=True)
        require(LOG_MEL, "center", self.center, isinstance(self.center, bool), "True or False")


@dataclass
class ImageEncoderConfig:
    """CNN settings: a 4x4 stride-4 patch layer, then 3x3 stride-2 layers, then a linear layer."""

    channels: list[int] = field(default_factory=lambda: [16, 32, 32])
    """Output channels of each conv layer; the first is the 4x4 stride-4 patch layer."""
    out_dim: int = 64
    """Feature size."""

    def validate(self) -> None:
        where = "image encoder"
        require(where, "channels", self.channels, len(self.channels) >= 1, "a non-empty list")
        for c in self.channels:
            require_int(where, "channels[i]", c, 1)
        require_int(where, "out_dim", self.out_dim, 1)


@dataclass
class AudioEncoderConfig:
    """Audio encoder settings."""

    log_mel: LogMelConfig = field(default_factory=LogMelConfig)
    """The spectral front-end (inside the exported graph)."""
    gain_invariant: bool = True
    """Subtract each window's mean log-mel (over ears, frames and bands): a microphone with
    another gain shifts every log-mel bin by the same constant, which this removes (up to
    the log offset's floor); level differences between ears and bands stay."""
    channels: int = 32
    """Output channels of the conv over time (its input: every channel's mel bands)."""
    out_dim: int = 64
    """Feature size."""

    def validate(self) -> None:
        self.log_mel.validate()
        require_int("audio encoder", "channels", self.channels, 1)
        require_int("audio encoder", "out_dim", self.out_dim, 1)


@dataclass
class VectorEncoderConfig:
    """MLP settings for vector and touch modalities."""

    hidden: int = 0
    """Hidden layer size; 0 = a single linear layer."""
    out_dim: int = 32
    """Feature size."""

    def validate(self) -> None:
        require_int("vector encoder", "hidden", self.hidden, 0)
        require_int("vector encoder", "out_dim", self.out_dim, 1)



@dataclass
class PerceptionConfig:
    """Encoders by modality kind, and the optional recurrent memory after fusion."""

    image: ImageEncoderConfig = field(default_factory=ImageEncoderConfig)
    """Encoder of colour/grey images."""
    depth: ImageEncoderConfig = field(
        default_factory=lambda: ImageEncoderConfig(channels=[8, 16, 16], out_dim=32))
    """Encoder of depth maps."""
    audio: AudioEncoderConfig = field(default_factory=AudioEncoderConfig)
    """Encoder of waveforms (log-mel front-end inside)."""
    vector: VectorEncoderConfig = field(default_factory=VectorEncoderConfig)
    """Encoder of vectors (proprioception)."""
    touch: VectorEncoderConfig = field(default_factory=lambda: VectorEncoderConfig(out_dim=16))
    """Encoder of touch readings."""
    memory: int = 0
    """Hidden size of a GRU after fusion, for policies that need memory; 0 = none."""

    def for_kind(self, kind: ModalityKind) -> object:
        return getattr(self, kind.value)

    def validate(self) -> None:
        for sub in (self.image, self.depth, self.audio, self.vector, self.touch):
            sub.validate()
        require_int("perception", "memory", self.memory, 0)
