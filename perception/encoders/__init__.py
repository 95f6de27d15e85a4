"""Encoders, one per modality kind; importing this package registers them all."""

from perception.encoders import audio, image, vector  # noqa: F401  (registration)
from perception.encoders.audio import AudioEncoder, AudioEncoderConfig
from perception.encoders.base import ENCODERS, Encoder, build_encoder
from perception.encoders.image import ImageEncoder, ImageEncoderConfig
from perception.encoders.vector import VectorEncoder, VectorEncoderConfig

__all__ = [
    "ENCODERS",
    "AudioEncoder",
    "AudioEncoderConfig",
    "Encoder",
    "ImageEncoder",
    "ImageEncoderConfig",
    "VectorEncoder",
    "VectorEncoderConfig",
    "build_encoder",
]
