"""AudioVisualNav, the default world: find the sounding object in a generated flat."""

from envs.audiovisual_nav.config import AudioVisualNavConfig
from envs.audiovisual_nav.env import (
    AudioVisualNavEnv,
    AudioVisualNavVectorEnv,
    audiovisual_nav_spec,
)

__all__ = [
    "AudioVisualNavConfig",
    "AudioVisualNavEnv",
    "AudioVisualNavVectorEnv",
    "audiovisual_nav_spec",
]
