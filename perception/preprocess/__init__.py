"""Preprocessing inside the exported graph: raw sensor arrays in, model-ready tensors out.

The model takes what the sensors give (uint8 ``(H, W, 3)`` images, float32
metres, float32 waveforms and vectors), so simulation and robot feed the same
bytes and the robot needs no torch.
"""

from __future__ import annotations

from perception.preprocess.audio import (
    LogMel,
    LogMelConfig,
    hz_to_mel,
    log_mel_reference,
    mel_band_edges,
    mel_filterbank,
    mel_to_hz,
)
from perception.preprocess.image import DepthToFloat, ImageToFloat, image_preprocess
from perception.preprocess.normalize import RunningNorm

__all__ = [
    "DepthToFloat",
    "ImageToFloat",
    "LogMel",
    "LogMelConfig",
    "RunningNorm",
    "hz_to_mel",
    "image_preprocess",
    "log_mel_reference",
    "mel_band_edges",
    "mel_filterbank",
    "mel_to_hz",
]
