"""Sensor realism for any Dict-observation env: noise, dropout, delay, rate, occlusion.

Build transforms (directly or from a :class:`SensorsConfig`) and wrap::

    env = with_sensors(env, [Delay("rgb", 2), Dropout("audio", 0.1, per="episode")])
    env = with_sensors(vec_env, SensorsConfig({"rgb": SensorConfig(noise_std=8.0)}))
"""

from __future__ import annotations

from envs.sensors.config import SensorConfig, SensorsConfig, build_transforms
from envs.sensors.transforms import (
    Delay,
    Dropout,
    GaussianNoise,
    Occlusion,
    SampleAndHold,
    SensorTransform,
)
from envs.sensors.wrappers import SensorChain, SensorVectorWrapper, SensorWrapper, with_sensors

__all__ = [
    "Delay",
    "Dropout",
    "GaussianNoise",
    "Occlusion",
    "SampleAndHold",
    "SensorChain",
    "SensorConfig",
    "SensorTransform",
    "SensorVectorWrapper",
    "SensorWrapper",
    "SensorsConfig",
    "build_transforms",
    "with_sensors",
]
