"""Alignment: at every tick, each modality's newest sample within its max age, else absent.

A sample older than its modality's ``stale_after_s`` (the spec's
``max_age_s``, two periods by default, overridable per modality) is never fed
as if fresh: the modality becomes absent (flag False, data zeroed), the case
the model was trained for. Per modality the synchroniser counts fresh, stale
(a sample exists but is too old) and absent (no sample, or no source) ticks,
and keeps every fed sample's age for percentiles. A sample whose shape or
dtype does not fit the spec, or a present modality with NaN/Inf, makes the
tick's input invalid (the watchdog's business); its data is not fed.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from deploy.sources.base import Sample, Source, SourceError
from perception.spec import ObsSpec, presence_key


@dataclass
class ModalityCounts:
    fresh: int = 0
    stale: int = 0
    absent: int = 0
    invalid: int = 0
    ages: list[float] = field(default_factory=list)  # seconds, of every sample fed
    last_seq: int = -1
    new_samples: int = 0  # fed samples that were new since the previous tick

    def to_dict(self) -> dict[str, Any]:
        ages = np.asarray(self.ages) * 1e3
        out: dict[str, Any] = {"fresh": self.fresh, "stale": self.stale, "absent": self.absent,
                               "invalid": self.invalid, "new_samples": self.new_samples}
        if ages.size:
            out["age_ms"] = {"p50": float(np.percentile(ages, 50)),
                             "p99": float(np.percentile(ages, 99)), "max": float(ages.max())}
        return out


@dataclass
class SyncResult:
    """What one tick's synchronisation found."""

    present: dict[str, bool]
    samples: dict[str, Sample | None]  # the sample fed (None: absent)
    invalid: list[str]  # modalities whose data could not be fed, with why

    @property
    def all_absent(self) -> bool:
        return not any(self.present.values())


class Synchronizer:
    """Feeds a model's bound inputs from its sources, tick by tick.

    Args:
        spec: the model's ObsSpec.
        sources: modality -> the source that fills it (None or missing: absent
            every tick). One source may fill several modalities.
        max_age_s: per-modality overrides of ``stale_after_s``.
    """

    def __init__(self, spec: ObsSpec, sources: Mapping[str, Source | None],
                 max_age_s: Mapping[str, float] | None = None) -> None:
        unknown = sorted(set(sources) - set(spec.names))
        if unknown:
            raise SourceError(f"sources for {unknown}, which the model does not take; its "
                              f"modalities: {', '.join(spec.names)}")
        for name in max_age_s or {}:
            if name not in spec:
                raise SourceError(f"max_age_s.{name}: the model has no modality {name!r}")
        self.spec = spec
        self.sources = {n: sources.get(n) for n in spec.names}
        for name, source in self.sources.items():
            if source is not None:
                source.check(spec[name])  # refused before the first tick
        self.max_age = {m.name: float((max_age_s or {}).get(m.name, m.stale_after_s))
                        for m in spec}
        self.counts = {n: ModalityCounts() for n in spec.names}
        self._want = {m.name: (m.shape, np.dtype(m.dtype)) for m in spec}
        self._float = {m.name: np.dtype(m.dtype).kind == "f" for m in spec}

    def gather(self, t: float, inputs: dict[str, np.ndarray], count: bool = True
               ) -> SyncResult:
        """Write every modality's newest fresh sample (or zeros) into `inputs` (batch 1).

        `count`: update the counters (False for the loop's warm-up pass).
        """
        present: dict[str, bool] = {}
        fed: dict[str, Sample | None] = {}
        invalid: list[str] = []
        for name, source in self.sources.items():
            counts = self.counts[name] if count else ModalityCounts()
            sample = source.latest(name) if source is not None else None
            ok = False
            if sample is None:
                counts.absent += 1
            elif t - sample.t_capture > self.max_age[name]:
                counts.stale += 1
            else:
                shape, dtype = self._want[name]
                data = sample.data
                if not isinstance(data, np.ndarray) or data.shape != shape or \
                        data.dtype != dtype:
                    got = (f"{getattr(data, 'dtype', type(data).__name__)}"
                           f"{list(getattr(data, 'shape', []))}")
                    invalid.append(f"{name}: expected {dtype}{list(shape)}, got {got}")
                elif self._float[name] and not math.isfinite(data.sum(dtype=np.float64)):
                    # one pass, no temporary: NaN and Inf propagate into a float64 sum
                    invalid.append(f"{name}: NaN/Inf in the sample")
                else:
                    inputs[name][0] = data
                    ok = True
                if ok:
                    counts.fresh += 1
                    counts.ages.append(t - sample.t_capture)
                    if sample.seq != counts.last_seq:
                        counts.new_samples += 1
                        counts.last_seq = sample.seq
                else:
                    counts.invalid += 1
            if not ok:
                inputs[name][0] = 0
                sample = None
            inputs[presence_key(name)][0] = ok
            present[name] = ok
            fed[name] = sample
        return SyncResult(present, fed, invalid)

    def report(self) -> dict[str, Any]:
        return {n: {"source": s.label if s is not None else "none",
                    "max_age_ms": self.max_age[n] * 1e3, **self.counts[n].to_dict()}
                for n, s in self.sources.items()}
