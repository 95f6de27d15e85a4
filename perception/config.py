"""Settings of the perception model: one encoder config per modality kind, and memory."""

from __future__ import annotations

from dataclasses import dataclass, field

from perception.encoders.audio import AudioEncoderConfig
from perception.encoders.image import ImageEncoderConfig
from perception.encoders.vector import VectorEncoderConfig
from perception.settings import require_int
from perception.spec import ModalityKind


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
