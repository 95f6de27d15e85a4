"""Simulated worlds, experts and sensor-realism wrappers.

Importing this package registers the sensorium envs with gymnasium:
``gymnasium.make("sensorium/AudioVisualNav-v0")`` gives one world and
``gymnasium.make_vec(..., vectorization_mode="vector_entry_point")`` the
natively batched one.
"""

from __future__ import annotations

import gymnasium

from envs.batched import BatchedEnv
from envs.factory import make_vector_env, obs_spec_of
from perception.settings import ConfigError

_REGISTRY = {
    "sensorium/AudioVisualNav-v0": "envs.audiovisual_nav.env:AudioVisualNav",
    "sensorium/ModalityProbe-v0": "envs.modality_probe.env:ModalityProbe",
}

for _env_id, _target in _REGISTRY.items():
    if _env_id not in gymnasium.registry:
        gymnasium.register(
            id=_env_id,
            entry_point=_target + "Env",
            vector_entry_point=_target + "VectorEnv",
        )

if "sensorium/Multimodal-v0" not in gymnasium.registry:
    gymnasium.register(
        id="sensorium/Multimodal-v0",
        entry_point="envs.multimodal:make_multimodal",
        vector_entry_point="envs.multimodal_vector:make_multimodal_vector",
    )

__all__ = ["BatchedEnv", "ConfigError", "make_vector_env", "obs_spec_of"]
