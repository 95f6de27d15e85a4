"""Training-time parts kept out of the exported graph.

Randomizers of raw observations per modality kind, modality dropout on the
presence flags, and the optional cross-modal coordination objective. All are
identity (or unused) in eval mode; none of them is part of the model that
``deploy/export`` writes.
"""

from __future__ import annotations

from perception.augment.coordination import (
    CoordinationConfig,
    CoordinationLoss,
    pairwise_alignment,
)
from perception.augment.modality_dropout import ModalityDropout, ModalityDropoutConfig
from perception.augment.randomizers import (
    AudioGain,
    AudioNoise,
    ColourJitter,
    GaussianNoise,
    ImageShift,
    ObservationRandomizer,
    Randomizer,
    RandomizerConfig,
    VectorNoise,
)

__all__ = [
    "AudioGain",
    "AudioNoise",
    "ColourJitter",
    "CoordinationConfig",
    "CoordinationLoss",
    "GaussianNoise",
    "ImageShift",
    "ModalityDropout",
    "ModalityDropoutConfig",
    "ObservationRandomizer",
    "Randomizer",
    "RandomizerConfig",
    "VectorNoise",
    "pairwise_alignment",
]
