"""Typed settings: dataclasses built from keyword arguments, with errors that say the fix.

Torch-free, shared by every layer (envs, perception, agent, deploy).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any, TypeVar

T = TypeVar("T")


class UserError(ValueError):
    """Bad input a person fixes (a setting, a file, a spec); the message names it and the fix.

    The ``sensorium`` command prints these as one message and exits non-zero,
    without a traceback (``debug=true`` or ``HYDRA_FULL_ERROR=1`` shows it).
    """


class ConfigError(UserError):
    """A setting is out of range; the message names the setting and the fix."""


def config_from_kwargs(cls: type[T], kwargs: Mapping[str, Any], where: str) -> T:
    """Build dataclass `cls` from `kwargs`, naming unknown keys and the valid ones.

    Nested dataclass fields accept mappings. The dataclass's ``validate()`` (if
    any) runs last. `kwargs` is not modified.
    """
    valid = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(kwargs) - set(valid))
    if unknown:
        raise ConfigError(
            f"{where}: unknown setting(s) {unknown}; valid settings: {', '.join(sorted(valid))}"
        )
    built: dict[str, Any] = {}
    for key, value in kwargs.items():
        ftype = valid[key].type
        sub = _dataclass_type(cls, key, ftype)
        if sub is not None and isinstance(value, Mapping):
            value = config_from_kwargs(sub, value, f"{where}.{key}")
        built[key] = value
    cfg = cls(**built)
    validate = getattr(cfg, "validate", None)
    if validate is not None:
        validate()
    return cfg


def _dataclass_type(cls: type, key: str, ftype: Any) -> type | None:
    import typing

    hints = typing.get_type_hints(cls)
    t = hints.get(key, ftype)
    return t if dataclasses.is_dataclass(t) else None


def require(where: str, name: str, value: Any, ok: bool, rule: str) -> None:
    """Raise ConfigError ``<where>.<name>=<value>: must be <rule>`` unless `ok`."""
    if not ok:
        raise ConfigError(f"{where}: {name}={value!r} is invalid; it must be {rule}")


def require_int(where: str, name: str, value: Any, lo: int, hi: int | None = None) -> None:
    ok = isinstance(value, int) and not isinstance(value, bool) and value >= lo
    ok = ok and (hi is None or value <= hi)
    rule = f"an integer >= {lo}" + (f" and <= {hi}" if hi is not None else "")
    require(where, name, value, ok, rule)


def require_float(
    where: str, name: str, value: Any, lo: float, hi: float | None = None, lo_open: bool = False
) -> None:
    ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    ok = ok and (value > lo if lo_open else value >= lo) and (hi is None or value <= hi)
    rule = f"a number {'>' if lo_open else '>='} {lo}" + (f" and <= {hi}" if hi is not None else "")
    require(where, name, value, ok, rule)


def as_kwargs(cfg: Any) -> dict[str, Any]:
    """A config (dataclass or mapping) as plain nested dicts."""
    if dataclasses.is_dataclass(cfg):
        return dataclasses.asdict(cfg)
    return {k: as_kwargs(v) if isinstance(v, Mapping) else v for k, v in dict(cfg).items()}
