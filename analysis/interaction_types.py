"""How two modalities interact in each state: redundancy, dominance, modulation, emergence.

After Partan & Marler's taxonomy of multimodal signals, read on a policy's
decisions. For a pair (a, b) and one state, four action distributions:
``p0`` with neither (only the context: by default no modality at all), ``pa``
with a, ``pb`` with b, ``pab`` with both. A modality *responds* on its own
when its distribution moves away from ``p0`` by more than the threshold τ
(total variation); its decision is its greedy action. Each state is then:

- **redundancy**: both respond with the same decision, and together they make
  it too (*enhanced* when the pair's confidence in it exceeds both single ones
  by more than τ, else equivalent);
- **dominance** (of a or of b): the two single decisions differ, or only one
  of them responds, and the pair follows one of them with a confidence within
  τ of that one's own;
- **modulation** (by the silent one): only one responds, the pair keeps its
  decision but the other, silent on its own, moves the confidence in it by
  more than τ, or takes it back to ``p0``'s (it cancels the response);
- **emergence**: the pair's decision is neither single one's, or neither
  responds alone while the pair does;
- **independence**: neither responds, alone or together: the decision here
  does not depend on the pair.

The fractions over states come with bootstrap intervals over the states.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from analysis.shapley import Coalition, pair_name

KINDS = ("redundancy", "dominance", "modulation", "emergence", "independence")
#: Default threshold τ on total variation and on confidence changes
THRESHOLD = 0.1

_RED, _DOM, _MOD, _EMG, _IND = range(len(KINDS))


@dataclass
class StateTypes:
    """Per state: the kind (an index into :data:`KINDS`), which modality of the pair
    dominates or modulates (0 = a, 1 = b, -1 = neither), and whether a redundancy is
    enhanced."""

    kind: np.ndarray
    by: np.ndarray
    enhanced: np.ndarray


def _tv(p: np.ndarray, q: np.ndarray) -> np.ndarray:
    return 0.5 * np.abs(p - q).sum(-1)


def _check(name: str, p: np.ndarray, like: np.ndarray | None) -> np.ndarray:
    p = np.asarray(p, np.float64)
    if p.ndim != 2 or (like is not None and p.shape != like.shape):
        want = "(N, A)" if like is None else str(like.shape)
        raise ValueError(f"{name}: action distributions must be {want}; got {p.shape}")
    if not np.allclose(p.sum(-1), 1.0, atol=1e-5) or (p < 0).any():
        raise ValueError(f"{name}: rows must be probability distributions (>= 0, sum 1)")
    return p


def classify_states(p0: np.ndarray, pa: np.ndarray, pb: np.ndarray, pab: np.ndarray,
                    threshold: float = THRESHOLD) -> StateTypes:
    """Each state's interaction type from the (N, A) action distributions of the four
    coalitions of a pair (see the module's docstring for the rules)."""
    if not 0.0 < threshold < 1.0:
        raise ValueError(f"threshold={threshold} must lie in (0, 1): it bounds a total "
                         "variation and a change of confidence")
    p0 = _check("p0", p0, None)
    pa, pb, pab = (_check(k, p, p0) for k, p in (("pa", pa), ("pb", pb), ("pab", pab)))
    rows = np.arange(len(p0))
    da, db, dab = pa.argmax(-1), pb.argmax(-1), pab.argmax(-1)
    ra, rb = _tv(pa, p0) > threshold, _tv(pb, p0) > threshold
    rab = _tv(pab, p0) > threshold
    kind = np.full(len(p0), _IND)
    by = np.full(len(p0), -1)
    # both respond
    both = ra & rb
    agree = both & (da == db)
    kind[agree & (dab == da)] = _RED
    follows_a, follows_b = both & ~agree & (dab == da), both & ~agree & (dab == db)
    kind[follows_a], by[follows_a] = _DOM, 0
    kind[follows_b], by[follows_b] = _DOM, 1
    kind[both & (dab != da) & (dab != db)] = _EMG
    enhanced = (kind == _RED) & (pab[rows, dab] > np.maximum(pa[rows, dab], pb[rows, dab])
                                 + threshold)
    # exactly one responds: x is the one (0 = a, 1 = b), the other is silent
    for x, (rx, ry, dx, px) in enumerate(((ra, rb, da, pa), (rb, ra, db, pb))):
        one = rx & ~ry
        kept = one & (dab == dx)
        moved = np.abs(pab[rows, dx] - px[rows, dx]) > threshold
        kind[kept & ~moved], by[kept & ~moved] = _DOM, x
        cancelled = one & (dab != dx) & ~rab
        kind[(kept & moved) | cancelled], by[(kept & moved) | cancelled] = _MOD, 1 - x
        kind[one & (dab != dx) & rab] = _EMG
    # neither responds alone
    kind[~ra & ~rb & rab] = _EMG
    return StateTypes(kind, by, enhanced)


def _interval(samples: np.ndarray, resamples: int, rng: np.random.Generator
              ) -> tuple[float, float]:
    idx = rng.integers(0, len(samples), (resamples, len(samples)))
    draws = samples[idx].mean(1)
    lo, hi = np.quantile(draws, [0.025, 0.975])
    return float(lo), float(hi)


def fractions(types: StateTypes, pair: tuple[str, str], resamples: int = 1000, seed: int = 0
              ) -> dict:
    """The share of states of each kind with its 95 % bootstrap interval over the states,
    which modality dominates or modulates, and the share of enhanced redundancy."""
    rng = np.random.default_rng(seed)
    out: dict = {"states": len(types.kind), "fractions": {}}
    for k, name in enumerate(KINDS):
        hit = (types.kind == k).astype(np.float64)
        out["fractions"][name] = {"value": float(hit.mean()),
                                  "ci": list(_interval(hit, resamples, rng))}
    for k, key in ((_DOM, "dominance_by"), (_MOD, "modulation_by")):
        out[key] = {m: float(((types.kind == k) & (types.by == i)).mean())
                    for i, m in enumerate(pair)}
    out["redundancy_enhanced"] = float(types.enhanced.mean())
    return out


def softmax(logits: np.ndarray) -> np.ndarray:
    z = np.asarray(logits, np.float64)
    z = np.exp(z - z.max(-1, keepdims=True))
    return z / z.sum(-1, keepdims=True)


def interaction_types(logits: Mapping[Coalition, np.ndarray], names: Sequence[str],
                      context: str = "none", threshold: float = THRESHOLD,
                      resamples: int = 1000, seed: int = 0) -> dict:
    """Per pair of `names`: :func:`fractions` of its states' interaction types.

    Args:
        logits: per coalition, the (N, A) action logits (``coalition_logits``).
        context: ``none`` (the pair alone: the other modalities absent throughout) or
            ``rest`` (the other modalities present throughout, so the pair is judged
            inside the full policy).
    """
    if context not in ("none", "rest"):
        raise ValueError(f"context={context!r} is unknown; choose none or rest")
    names = tuple(names)
    out: dict = {"threshold": threshold, "context": context, "seed": seed,
                 "kinds": list(KINDS), "pairs": {}}
    for i, a in enumerate(names):
        for b in names[i + 1:]:
            base = (frozenset(names) - {a, b}) if context == "rest" else frozenset()
            p = [softmax(logits[base | s]) for s in
                 (frozenset(), frozenset({a}), frozenset({b}), frozenset({a, b}))]
            types = classify_states(*p, threshold=threshold)
            out["pairs"][pair_name(a, b)] = fractions(types, (a, b), resamples, seed)
    return out
