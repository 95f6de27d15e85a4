"""ModalityProbe: worlds whose answer depends on bits shown in two modalities, with a
known interaction (redundant, unique, synergy, mixed) and a Bayes-optimal ground truth."""

from envs.modality_probe.config import MixedWeights, ModalityProbeConfig
from envs.modality_probe.env import (
    ModalityProbeEnv,
    ModalityProbeVectorEnv,
    modality_probe_action_spec,
    modality_probe_spec,
)
from envs.modality_probe.oracle import answer_probabilities, bayes_optimal_actions, bit_log_odds

__all__ = [
    "MixedWeights",
    "ModalityProbeConfig",
    "ModalityProbeEnv",
    "ModalityProbeVectorEnv",
    "answer_probabilities",
    "bayes_optimal_actions",
    "bit_log_odds",
    "modality_probe_action_spec",
    "modality_probe_spec",
]
