"""Robustness curves: a score against the level of a perturbation, and their areas.

A curve is a score (success, accuracy) at perturbation levels 0, 0.1, ..., 0.9
(noise in units of each modality's scale, or a dropout probability). Its
area by the trapezoid rule over the levels is the relative robustness: a flat
curve at 1 has 0.9, a policy whose score falls as 1 - p/2 has 0.6975.
Effective robustness compares with a reference (e.g. late fusion of the same
budget): the area of the curve minus the reference's curve shifted to the
same clean score, so it measures the fall, not the start. Raw values, not
normalised against another benchmark's table.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

#: The perturbation levels of every curve
LEVELS: tuple[float, ...] = tuple(round(0.1 * i, 1) for i in range(10))


def _curve(levels: Sequence[float], scores: Sequence[float], name: str
           ) -> tuple[np.ndarray, np.ndarray]:
    x, y = np.asarray(levels, np.float64), np.asarray(scores, np.float64)
    if x.ndim != 1 or x.shape != y.shape or len(x) < 2:
        raise ValueError(f"{name}: levels and scores must be 1-D of one length >= 2; got "
                         f"{x.shape} and {y.shape}")
    if np.any(np.diff(x) <= 0):
        raise ValueError(f"{name}: levels must increase; got {x.tolist()}")
    if not np.all(np.isfinite(y)):
        raise ValueError(f"{name}: scores hold NaN or Inf: {y.tolist()}")
    return x, y


def area(levels: Sequence[float], scores: Sequence[float]) -> float:
    """Relative robustness: the trapezoid area under the curve over its levels."""
    x, y = _curve(levels, scores, "area")
    return float(np.sum((y[1:] + y[:-1]) / 2 * np.diff(x)))


def effective_robustness(levels: Sequence[float], scores: Sequence[float],
                         reference: Sequence[float]) -> float:
    """Area of ``scores - (reference - reference[0] + scores[0])``: above 0, the curve falls
    more slowly than the reference's from the same clean score."""
    x, y = _curve(levels, scores, "effective_robustness")
    _, r = _curve(levels, reference, "effective_robustness reference")
    return area(x, y - (r - r[0] + y[0]))


@dataclass
class RobustnessCurve:
    """One modality's (or all modalities') score against one kind of perturbation."""

    modality: str
    """A modality name, or 'all' for every modality perturbed at once."""
    kind: str
    """'noise' or 'dropout'."""
    levels: list[float]
    scores: list[float]
    ci: list[tuple[float, float]]
    """Per level, the interval of the score (bootstrap over episodes or states)."""

    @property
    def area(self) -> float:
        return area(self.levels, self.scores)

    def effective(self, reference: RobustnessCurve) -> float:
        if reference.levels != self.levels:
            raise ValueError(f"reference curve of {reference.modality} has levels "
                             f"{reference.levels}, this one {self.levels}; use the same")
        return effective_robustness(self.levels, self.scores, reference.scores)

    def to_dict(self, reference: RobustnessCurve | None = None) -> dict:
        out = {"modality": self.modality, "kind": self.kind, "levels": self.levels,
               "scores": self.scores, "ci": [list(c) for c in self.ci], "area": self.area}
        if reference is not None:
            out["effective_robustness"] = self.effective(reference)
        return out
