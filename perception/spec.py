"""The observation contract: what each modality is, shared by every layer.

The env declares an :class:`ObsSpec`; the model is built from it; checkpoints
and ONNX files carry it as JSON; the runtime checks its sensors against it.
This module is torch-free on purpose: the robot runtime imports it.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from dataclasses import dataclass, field, fields
from enum import Enum
from typing import Any

import numpy as np
from gymnasium import spaces

from perception.settings import UserError

SPEC_VERSION = 1
PRESENT_SUFFIX = "_present"


class SpecError(UserError):
    """A spec, or data checked against one, is malformed; the message says how to fix it."""


class ModalityKind(str, Enum):
    """What the numbers of a modality are; picks the encoder and preprocessing."""

    IMAGE = "image"  # (H, W, C) uint8, C in {1, 3}
    DEPTH = "depth"  # (H, W, 1) float32, metres
    AUDIO = "audio"  # (channels, samples) float32 waveform in [-1, 1]
    VECTOR = "vector"  # (D,) float32, e.g. proprioception
    TOUCH = "touch"  # (D,) float32 contact readings, 0 = no contact

    @classmethod
    def parse(cls, value: str | ModalityKind) -> ModalityKind:
        try:
            return cls(value)
        except ValueError:
            known = ", ".join(k.value for k in cls)
            raise SpecError(f"unknown modality kind {value!r}; use one of: {known}") from None


_RANK = {
    ModalityKind.IMAGE: 3,
    ModalityKind.DEPTH: 3,
    ModalityKind.AUDIO: 2,
    ModalityKind.VECTOR: 1,
    ModalityKind.TOUCH: 1,
}
_DTYPES = {
    ModalityKind.IMAGE: ("uint8",),
    ModalityKind.DEPTH: ("float32",),
    ModalityKind.AUDIO: ("float32",),
    ModalityKind.VECTOR: ("float32",),
    ModalityKind.TOUCH: ("float32",),
}


def presence_key(name: str) -> str:
    """Observation key of the boolean flag that says whether `name` is present."""
    return name + PRESENT_SUFFIX


@dataclass(frozen=True)
class ModalitySpec:
    """One sensor stream as the model sees it at one control step.

    Attributes:
        name: key in the observation dict (``rgb``, ``audio``, ``proprio``...).
        kind: what the numbers are; decides the encoder.
        shape: array shape of one sample, without batch axis.
        dtype: numpy dtype name of one sample.
        rate_hz: how often a new sample arrives (frame rate for cameras,
            control rate for vectors, windows per second for audio).
        low, high: value bounds (also the gymnasium ``Box`` bounds).
        sample_rate: audio only, waveform samples per second.
        max_age_s: at run time a sample older than this is absent; defaults
            to two periods of ``rate_hz``.
        description: what the components mean, for people.
    """

    name: str
    kind: ModalityKind
    shape: tuple[int, ...]
    dtype: str
    rate_hz: float
    low: float = -math.inf
    high: float = math.inf
    sample_rate: int | None = None
    max_age_s: float | None = None
    description: str = ""

    def __post_init__(self) -> None:
        object.__setattr__(self, "kind", ModalityKind.parse(self.kind))
        object.__setattr__(self, "shape", tuple(int(s) for s in self.shape))
        where = f"modality {self.name!r}"
        if not self.name.isidentifier() or self.name.endswith(PRESENT_SUFFIX):
            raise SpecError(
                f"{where}: name must be a Python identifier not ending in {PRESENT_SUFFIX!r}"
            )
        if any(s <= 0 for s in self.shape):
            raise SpecError(f"{where}: shape {self.shape} has a size <= 0; every size must be >= 1")
        rank = _RANK[self.kind]
        if len(self.shape) != rank:
            raise SpecError(
                f"{where}: kind {self.kind.value!r} needs a rank-{rank} shape, got {self.shape}"
            )
        if self.dtype not in _DTYPES[self.kind]:
            raise SpecError(
                f"{where}: kind {self.kind.value!r} takes dtype {' or '.join(_DTYPES[self.kind])}, "
                f"got {self.dtype!r}"
            )
        if self.kind is ModalityKind.IMAGE and self.shape[2] not in (1, 3):
            raise SpecError(f"{where}: image shape must be (H, W, 1 or 3), got {self.shape}")
        if self.kind is ModalityKind.DEPTH and self.shape[2] != 1:
            raise SpecError(f"{where}: depth shape must be (H, W, 1), got {self.shape}")
        if self.kind is ModalityKind.AUDIO and not (self.sample_rate and self.sample_rate > 0):
            raise SpecError(f"{where}: audio needs sample_rate > 0 (samples per second)")
        if not self.rate_hz > 0:
            raise SpecError(f"{where}: rate_hz must be > 0, got {self.rate_hz}")
        if self.low > self.high:
            raise SpecError(f"{where}: low {self.low} is above high {self.high}")

    @property
    def period_s(self) -> float:
        return 1.0 / self.rate_hz

    @property
    def stale_after_s(self) -> float:
        """Age beyond which a sample of this modality counts as absent."""
        return self.max_age_s if self.max_age_s is not None else 2.0 * self.period_s

    def to_space(self) -> spaces.Box:
        dtype = np.dtype(self.dtype)
        low, high = self.low, self.high
        if np.issubdtype(dtype, np.integer):
            info = np.iinfo(dtype)
            low, high = max(low, info.min), min(high, info.max)
        return spaces.Box(low=low, high=high, shape=self.shape, dtype=dtype)

    def check(self, value: np.ndarray, batch_dims: int = 0) -> None:
        """Raise SpecError if `value` does not fit this spec (shape and dtype)."""
        arr = np.asarray(value)
        want = self.shape
        got = arr.shape[batch_dims:]
        if got != want or arr.ndim != batch_dims + len(want):
            raise SpecError(
                f"modality {self.name!r}: expected shape {want} (after {batch_dims} batch axes), "
                f"got {arr.shape}"
            )
        if arr.dtype != np.dtype(self.dtype):
            raise SpecError(
                f"modality {self.name!r}: expected dtype {self.dtype}, got {arr.dtype}; "
                f"convert with .astype(np.{self.dtype})"
            )

    def summary(self) -> str:
        """``name:kind[HxWxC]dtype``, e.g. ``rgb:image[64x64x3]uint8``."""
        return f"{self.name}:{self.kind.value}[{'x'.join(map(str, self.shape))}]{self.dtype}"

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for f in fields(self):
            v = getattr(self, f.name)
            if isinstance(v, Enum):
                v = v.value
            elif isinstance(v, tuple):
                v = list(v)
            elif isinstance(v, float) and math.isinf(v):
                v = "inf" if v > 0 else "-inf"
            out[f.name] = v
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModalitySpec:
        known = {f.name for f in fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise SpecError(f"modality spec has unknown fields {sorted(unknown)}")
        kw = dict(data)
        for key in ("low", "high"):
            if key in kw:
                kw[key] = float(kw[key])
        kw["shape"] = tuple(kw["shape"])
        return cls(**kw)


@dataclass(frozen=True)
class ObsSpec:
    """The ordered modalities of an env or robot.

    Attributes:
        modalities: the streams, in a fixed order (the ONNX input order).
        control_hz: rate at which the policy acts.
        presence: names of modalities whose observations carry an explicit
            ``<name>_present`` flag (set by sensor dropout or at run time).
    """

    modalities: tuple[ModalitySpec, ...]
    control_hz: float = 10.0
    presence: tuple[str, ...] = field(default=())

    def __post_init__(self) -> None:
        object.__setattr__(self, "modalities", tuple(self.modalities))
        object.__setattr__(self, "presence", tuple(self.presence))
        if not self.modalities:
            raise SpecError("an ObsSpec needs at least one modality")
        names = [m.name for m in self.modalities]
        dup = {n for n in names if names.count(n) > 1}
        if dup:
            raise SpecError(f"modality names must be unique; repeated: {sorted(dup)}")
        for name in self.presence:
            if name not in names:
                raise SpecError(
                    f"presence flag for unknown modality {name!r}; known: {', '.join(names)}"
                )
        if not self.control_hz > 0:
            raise SpecError(f"control_hz must be > 0, got {self.control_hz}")

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(m.name for m in self.modalities)

    def __iter__(self) -> Iterator[ModalitySpec]:
        return iter(self.modalities)

    def __len__(self) -> int:
        return len(self.modalities)

    def __contains__(self, name: object) -> bool:
        return name in self.names

    def __getitem__(self, name: str) -> ModalitySpec:
        for m in self.modalities:
            if m.name == name:
                return m
        raise SpecError(f"unknown modality {name!r}; this spec has: {', '.join(self.names)}")

    def select(self, names: list[str] | tuple[str, ...]) -> ObsSpec:
        """The spec restricted to `names`, in this spec's order."""
        for n in names:
            self[n]  # raises on unknown names
        kept = tuple(m for m in self.modalities if m.name in names)
        return ObsSpec(kept, self.control_hz, tuple(p for p in self.presence if p in names))

    def replace(self, modality: ModalitySpec) -> ObsSpec:
        """The spec with the modality of the same name swapped for `modality`."""
        self[modality.name]
        mods = tuple(modality if m.name == modality.name else m for m in self.modalities)
        return ObsSpec(mods, self.control_hz, self.presence)

    def with_presence(self, *names: str) -> ObsSpec:
        """The spec with presence flags added for `names`."""
        for n in names:
            self[n]
        merged = tuple(m for m in self.names if m in set(self.presence) | set(names))
        return ObsSpec(self.modalities, self.control_hz, merged)

    def to_space(self) -> spaces.Dict:
        items: dict[str, spaces.Space] = {m.name: m.to_space() for m in self.modalities}
        for name in self.presence:
            items[presence_key(name)] = spaces.Box(0, 1, shape=(), dtype=np.bool_)
        return spaces.Dict(items)

    @classmethod
    def from_space(
        cls,
        space: spaces.Dict,
        kinds: dict[str, ModalityKind | str],
        control_hz: float = 10.0,
        rates_hz: dict[str, float] | None = None,
        sample_rates: dict[str, int] | None = None,
    ) -> ObsSpec:
        """Build a spec from a gymnasium Dict space; `kinds` says what each key is.

        A gymnasium space does not say what its numbers mean, hence `kinds`.
        Keys ending in ``_present`` become presence flags.
        """
        if not isinstance(space, spaces.Dict):
            raise SpecError(
                f"expected a gymnasium Dict observation space, got {type(space).__name__}; "
                "wrap the env with envs.MultimodalWrapper to make one"
            )
        rates_hz = rates_hz or {}
        sample_rates = sample_rates or {}
        mods, presence = [], []
        for key, sub in space.spaces.items():
            if key.endswith(PRESENT_SUFFIX):
                presence.append(key[: -len(PRESENT_SUFFIX)])
                continue
            if key not in kinds:
                raise SpecError(f"observation key {key!r} has no kind; pass kinds={{{key!r}: ...}}")
            if not isinstance(sub, spaces.Box):
                raise SpecError(f"observation key {key!r}: only Box spaces map to modalities")
            mods.append(
                ModalitySpec(
                    name=key,
                    kind=ModalityKind.parse(kinds[key]),
                    shape=sub.shape,
                    dtype=str(sub.dtype),
                    rate_hz=rates_hz.get(key, control_hz),
                    low=float(np.min(sub.low)),
                    high=float(np.max(sub.high)),
                    sample_rate=sample_rates.get(key),
                )
            )
        return cls(tuple(mods), control_hz, tuple(presence))

    def check(self, obs: dict[str, np.ndarray], batch_dims: int = 0) -> None:
        """Raise SpecError if `obs` lacks a modality or one does not fit."""
        for m in self.modalities:
            if m.name not in obs:
                raise SpecError(
                    f"observation lacks modality {m.name!r}; it has: {', '.join(sorted(obs))}"
                )
            m.check(obs[m.name], batch_dims)

    def summary(self) -> str:
        """The modalities, presence flags and control rate on one line, for messages."""
        mods = ", ".join(m.summary() for m in self.modalities)
        presence = f"; presence {list(self.presence)}" if self.presence else ""
        return f"({mods}{presence} @ {self.control_hz:g} Hz)"

    def difference(self, other: ObsSpec, sides: tuple[str, str] = ("this spec", "other")) -> str:
        """What differs from `other`, this spec's values first; "" when nothing does.

        `sides` names the two specs in "only in ..." (e.g. the checkpoint and this env).
        """
        mine = {m.name: m.to_dict() for m in self.modalities}
        theirs = {m.name: m.to_dict() for m in other.modalities}
        parts = []
        if only := [n for n in mine if n not in theirs]:
            parts.append(f"only in {sides[0]}: {only}")
        if only := [n for n in theirs if n not in mine]:
            parts.append(f"only in {sides[1]}: {only}")
        for n, a in mine.items():
            if n in theirs and a != (b := theirs[n]):
                keys = sorted(k for k in set(a) | set(b) if a.get(k) != b.get(k))
                parts.append(f"{n}: " + ", ".join(f"{k} {_fmt(a.get(k))} vs {_fmt(b.get(k))}"
                                                  for k in keys))
        if self.control_hz != other.control_hz:
            parts.append(f"control_hz {self.control_hz:g} vs {other.control_hz:g}")
        if list(mine) != list(theirs) and set(mine) == set(theirs):
            parts.append(f"modality order {list(mine)} vs {list(theirs)}")
        if self.presence != other.presence:
            parts.append(f"presence flags {list(self.presence)} vs {list(other.presence)}")
        return "; ".join(parts)

    def to_dict(self) -> dict[str, Any]:
        return {
            "version": SPEC_VERSION,
            "control_hz": self.control_hz,
            "presence": list(self.presence),
            "modalities": [m.to_dict() for m in self.modalities],
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ObsSpec:
        version = data.get("version")
        if version != SPEC_VERSION:
            raise SpecError(
                f"observation spec version {version!r} is not {SPEC_VERSION}; "
                "re-export the model with this version of sensorium"
            )
        return cls(
            tuple(ModalitySpec.from_dict(m) for m in data["modalities"]),
            float(data["control_hz"]),
            tuple(data.get("presence", ())),
        )

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> ObsSpec:
        return cls.from_dict(json.loads(text))


@dataclass(frozen=True)
class ActionSpec:
    """What the policy outputs.

    Attributes:
        kind: ``discrete`` (one of ``n`` actions) or ``continuous`` (a vector).
        n: number of discrete actions.
        shape: continuous action shape.
        low, high: continuous bounds (per component, or one value for all).
        names: optional names of the discrete actions.
    """

    kind: str
    n: int = 0
    shape: tuple[int, ...] = ()
    low: tuple[float, ...] = ()
    high: tuple[float, ...] = ()
    names: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        for attr in ("shape", "low", "high", "names"):
            object.__setattr__(self, attr, tuple(getattr(self, attr)))
        if self.kind == "discrete":
            if self.n < 1:
                raise SpecError(f"a discrete action spec needs n >= 1, got n={self.n}")
            if self.names and len(self.names) != self.n:
                raise SpecError(f"{len(self.names)} action names for n={self.n} actions")
        elif self.kind == "continuous":
            if not self.shape or any(s <= 0 for s in self.shape):
                raise SpecError(
                    f"a continuous action spec needs a positive shape, got {self.shape}"
                )
            size = int(np.prod(self.shape))
            for attr in ("low", "high"):
                if len(getattr(self, attr)) not in (1, size):
                    raise SpecError(f"continuous action {attr} needs 1 or {size} values")
        else:
            raise SpecError(f"action kind must be 'discrete' or 'continuous', got {self.kind!r}")

    @property
    def dim(self) -> int:
        """Size of the policy output: logits for discrete, mean for continuous."""
        return self.n if self.kind == "discrete" else int(np.prod(self.shape))

    def to_space(self) -> spaces.Space:
        if self.kind == "discrete":
            return spaces.Discrete(self.n)
        low = np.broadcast_to(np.asarray(self.low, np.float32), self.shape)
        high = np.broadcast_to(np.asarray(self.high, np.float32), self.shape)
        return spaces.Box(low=low.copy(), high=high.copy(), dtype=np.float32)

    @classmethod
    def from_space(cls, space: spaces.Space, names: tuple[str, ...] = ()) -> ActionSpec:
        if isinstance(space, spaces.Discrete):
            if int(space.start) != 0:
                raise SpecError("discrete actions must start at 0")
            return cls("discrete", n=int(space.n), names=names)
        if isinstance(space, spaces.Box):
            return cls(
                "continuous",
                shape=space.shape,
                low=tuple(float(x) for x in space.low.ravel()),
                high=tuple(float(x) for x in space.high.ravel()),
            )
        raise SpecError(
            f"unsupported action space {type(space).__name__}; use Discrete or Box"
        )

    def summary(self) -> str:
        """``(discrete, n=N)`` or ``(continuous, shape S)``, for messages."""
        if self.kind == "discrete":
            return f"(discrete, n={self.n})"
        return f"(continuous, shape {self.shape})"

    def to_dict(self) -> dict[str, Any]:
        return {f.name: (list(v) if isinstance(v := getattr(self, f.name), tuple) else v)
                for f in fields(self)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ActionSpec:
        return cls(**data)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> ActionSpec:
        return cls.from_dict(json.loads(text))


def _fmt(value: Any) -> str:
    """A value of ``to_dict()`` as messages show it: lists as tuples, floats shortest."""
    if isinstance(value, float):
        return f"{value:g}"
    return str(tuple(value)) if isinstance(value, list) else str(value)
