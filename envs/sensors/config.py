"""Sensor-realism settings as typed dataclasses (Hydra structured configs)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any

from envs.sensors.transforms import (
    Delay,
    Dropout,
    GaussianNoise,
    Occlusion,
    SampleAndHold,
    SensorTransform,
)
from perception.settings import ConfigError, require, require_float, require_int


@dataclass
class SensorConfig:
    """How one modality's sensor departs from the ideal; every default does nothing."""

    noise_std: float = 0.0
    """Standard deviation of added Gaussian noise, in the modality's units (0-255 for images)."""
    dropout_p: float = 0.0
    """Probability in [0, 1] that the modality is absent (zeroed, presence flag False)."""
    dropout_per: str = "step"
    """When absence is drawn: ``step`` (each step) or ``episode`` (once per episode)."""
    delay_steps: int = 0
    """Latency in control steps: the observation is this many steps old."""
    hold_period: int = 1
    """The sensor updates every this many control steps and holds its sample in between."""
    occlusion_p: float = 0.0
    """Probability in [0, 1] per step that a random rectangle covers the image (images only)."""
    occlusion_max_fraction: float = 0.3
    """Largest fraction of the image, in (0, 1], that one occluding rectangle covers."""
    occlusion_value: float | None = None
    """Fill of the occluding rectangle: a constant, or None for uniform noise."""

    def validate(self, where: str = "sensor") -> None:
        """Raise ConfigError naming the first setting out of range and its valid range."""
        require_float(where, "noise_std", self.noise_std, 0.0)
        require_float(where, "dropout_p", self.dropout_p, 0.0, 1.0)
        require(
            where, "dropout_per", self.dropout_per, self.dropout_per in ("step", "episode"),
            "'step' or 'episode'",
        )
        require_int(where, "delay_steps", self.delay_steps, 0)
        require_int(where, "hold_period", self.hold_period, 1)
        require_float(where, "occlusion_p", self.occlusion_p, 0.0, 1.0)
        require_float(
            where, "occlusion_max_fraction", self.occlusion_max_fraction, 0.0, 1.0, lo_open=True
        )
        value = self.occlusion_value
        require(
            where, "occlusion_value", value,
            value is None or (isinstance(value, (int, float)) and not isinstance(value, bool)),
            "a number or null (uniform noise)",
        )

    def transforms(self, modality: str) -> list[SensorTransform]:
        """The transforms these settings call for, in the order a real signal meets them.

        The occluder is in the scene, noise in the sensor, the update rate and
        latency come next, and dropout last, so absent data is exactly zero.
        Settings at their neutral value give no transform.
        """
        out: list[SensorTransform] = []
        if self.occlusion_p > 0:
            out.append(
                Occlusion(modality, self.occlusion_p, self.occlusion_max_fraction,
                          self.occlusion_value)
            )
        if self.noise_std > 0:
            out.append(GaussianNoise(modality, self.noise_std))
        if self.hold_period > 1:
            out.append(SampleAndHold(modality, self.hold_period))
        if self.delay_steps > 0:
            out.append(Delay(modality, self.delay_steps))
        if self.dropout_p > 0:
            out.append(Dropout(modality, self.dropout_p, self.dropout_per))
        return out


@dataclass
class SensorsConfig:
    """Sensor realism for a Dict-observation env, per modality."""

    modalities: dict[str, SensorConfig] = field(default_factory=dict)
    """Settings per modality name (``rgb``, ``proprio``...); modalities not named stay ideal."""

    def validate(self) -> None:
        for name, sensor in self.modalities.items():
            where = f"sensors.modalities.{name}"
            if not isinstance(sensor, SensorConfig):
                raise ConfigError(
                    f"{where}: expected SensorConfig settings, got {type(sensor).__name__}; "
                    "build plain mappings with SensorsConfig.from_kwargs"
                )
            sensor.validate(where)

    @classmethod
    def from_kwargs(cls, kwargs: Mapping[str, Any]) -> SensorsConfig:
        """Build from plain (or OmegaConf) mappings, naming unknown or invalid settings."""
        unknown = sorted(set(kwargs) - {"modalities"})
        if unknown:
            raise ConfigError(f"sensors: unknown setting(s) {unknown}; valid settings: modalities")
        valid = {f.name for f in fields(SensorConfig)}
        modalities: dict[str, SensorConfig] = {}
        for name, value in dict(kwargs.get("modalities") or {}).items():
            if isinstance(value, Mapping):
                unknown = sorted(set(value) - valid)
                if unknown:
                    raise ConfigError(
                        f"sensors.modalities.{name}: unknown setting(s) {unknown}; "
                        f"valid settings: {', '.join(sorted(valid))}"
                    )
                value = SensorConfig(**value)
            modalities[str(name)] = value
        cfg = cls(modalities)
        cfg.validate()
        return cfg


def build_transforms(cfg: SensorsConfig | Mapping[str, Any]) -> list[SensorTransform]:
    """The transforms for every modality in `cfg`, validated (see SensorConfig.transforms)."""
    if not isinstance(cfg, SensorsConfig):
        cfg = SensorsConfig.from_kwargs(cfg)
    cfg.validate()
    return [t for name, sensor in cfg.modalities.items() for t in sensor.transforms(name)]
