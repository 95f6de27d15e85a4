"""Settings of the training-time parts kept out of the exported graph: the observation
randomizers and the cross-modal coordination objective."""

from __future__ import annotations

from dataclasses import dataclass

from perception.settings import require, require_float, require_int


@dataclass
class RandomizerConfig:
    """Training-time randomization per modality kind; 0 switches a randomizer off."""

    image_shift_px: int = 4
    """Random shift of images and depth maps, in pixels (DrQ pad + crop)."""
    shift_together: bool = True
    """Image and depth modalities of the same H x W share one shift per sample (aligned)."""
    colour_jitter: float = 0.2
    """Brightness and contrast factors drawn in [1 - x, 1 + x] per sample."""
    audio_gain_db: float = 6.0
    """Random audio gain per sample, uniform in +- this many dB."""
    audio_noise: float = 0.005
    """Standard deviation of white noise added to waveforms."""
    vector_noise: float = 0.01
    """Standard deviation of Gaussian noise on vector modalities (proprioception)."""
    touch_noise: float = 0.0
    """Standard deviation of Gaussian noise on touch readings (clipped to the spec's bounds)."""
    depth_noise_m: float = 0.0
    """Standard deviation of Gaussian noise on depth, metres (clipped to the spec's bounds)."""
    image_noise: float = 0.0
    """Gaussian noise on images with a standard deviation drawn per sample up to this
    (uint8 grey levels; a camera's sensor noise)."""
    audio_noise_max: float = 0.0
    """White noise on waveforms with a standard deviation drawn per sample up to this (a
    microphone's noise floor), on top of `audio_noise`."""

    def validate(self) -> None:
        where = "RandomizerConfig"
        require_int(where, "image_shift_px", self.image_shift_px, 0)
        require_float(where, "colour_jitter", self.colour_jitter, 0.0, 1.0)
        for name in ("audio_gain_db", "audio_noise", "vector_noise", "touch_noise",
                     "depth_noise_m", "image_noise", "audio_noise_max"):
            require_float(where, name, getattr(self, name), 0.0)


@dataclass
class CoordinationConfig:
    """Settings of the cross-modal coordination objective."""

    weight: float = 0.0
    """Weight of the loss in the trainer's total loss (0 = off)."""
    embed_dim: int = 64
    """Size of the shared embedding space."""
    temperature: float = 0.1
    """Softmax temperature of InfoNCE (initial value when learned)."""
    learn_temperature: bool = False
    """Learn the temperature (as CLIP's logit scale, capped at 1/100)."""

    def validate(self) -> None:
        where = "CoordinationConfig"
        require_float(where, "weight", self.weight, 0.0)
        require_int(where, "embed_dim", self.embed_dim, 1)
        require_float(where, "temperature", self.temperature, 0.0, lo_open=True)
        require(where, "learn_temperature", self.learn_temperature,
                isinstance(self.learn_temperature, bool), "True or False")
