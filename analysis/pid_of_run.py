"""Partial information decomposition of a trained policy's modalities, pair by pair.

For every pair of modalities (a, b) the BROJA decomposition (:mod:`analysis.pid`) splits
what the pair's representations tell about an action into redundancy R, a's unique
information U1, b's unique information U2 and synergy S, in bits:

1. Representations: each modality's encoder features on the states, from the policy's
   own perception trunk (:func:`modality_features`). Where a state's ``<name>_present``
   flag is off, the features are what the fusion puts in the modality's place (concat's
   and FiLM's learned missing token, zeros for every other method): one constant vector,
   so every absent row lands in one cluster, as the fusion sees it.
2. Discretising: k-means (:func:`analysis.pid.discretise`, seeded) of each modality's
   features into k clusters, once per modality; the same codes serve all its pairs.
3. Targets: the policy's greedy action ("model PID": how the policy's decision draws on
   its representations) and, where the env has an expert, the expert's action at the
   same states ("data PID": how the representations bear on what the task asks).
4. Estimate: the plug-in PID of the (code a, code b, action) histogram, and a
   shuffled-target null: the same PID with the action permuted (``shuffles`` times),
   which breaks every dependence on it; its mean estimates the plug-in bias (the
   ``corrected`` atoms are plug-in minus null mean, and may be negative), its 95 %
   quantile is a threshold, and ``p`` is the share of shuffles at least as large
   (counting the observed one). A percentile bootstrap over the states (clusters kept)
   gives each atom an interval; it shows the sampling spread, not the bias, which the
   null estimates. A resample's duplicate states bias its plug-in further, so the
   interval can sit beside the plug-in (S of an exact XOR at 1,024 states: plug-in
   0.996 bits, interval 0.979-0.994).

The default k is the largest k <= 8 with k * k * |A| <= ``analysis.pid.DIT_MAX_CELLS``
(1000) for the |A| distinct actions seen: then every joint has at most 1000 cells and
dit's cone solver (a maintained estimator) solves it; 8 for up to 15 actions, 7 for 16 to
20. The cap at 8 keeps the plug-in bias small: it grows like the number of cells over
2 N ln 2 bits (256 cells at 2048 states: ~0.09 bits of I(X1, X2; Y) for 4 actions).
A larger k given explicitly may take the scipy solver, whose name the result carries.

All draws come from ``seed``: k-means (the same seed for every modality), the shuffles
(``np.random.default_rng(seed)``, the permutations of ``pid_of_samples``) and the
bootstrap (``np.random.default_rng([seed, 1])``).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from analysis.pid import DIT_MAX_CELLS, PID, discretise, pid_of_samples
from analysis.shapley import pair_name
from perception.model import PerceptionModel
from perception.spec import presence_key

__all__ = ["ATOMS", "MAX_DEFAULT_CLUSTERS", "NULL_QUANTILE", "default_clusters",
           "modality_features", "pid_estimate", "pid_of_features", "pid_report"]

ATOMS = ("R", "U1", "U2", "S", "mi")
"""The reported quantities: the four atoms and their sum I(X1, X2; Y), bits."""
MAX_DEFAULT_CLUSTERS = 8
"""The default k's cap (see the module docstring)."""
NULL_QUANTILE = 0.95
"""The null's reported upper quantile (``q95``)."""


# --------------------------------------------------------------------------- features


def _trunk(model: nn.Module) -> PerceptionModel:
    if isinstance(model, PerceptionModel):
        return model
    trunk = getattr(model, "trunk", None)
    if isinstance(trunk, PerceptionModel):
        return trunk
    raise TypeError(f"expected a PerceptionModel or a policy with one as .trunk "
                    f"(ActorCritic, DeterministicPolicy); got {type(model).__name__}")


def _stand_in(trunk: PerceptionModel, name: str, dim: int) -> torch.Tensor:
    """What the fusion uses in place of an absent modality's features (token or zeros)."""
    missing = getattr(trunk.fusion, "missing", None)
    tokens = getattr(missing, "tokens", None)
    if tokens is not None and name in tokens:
        return tokens[name].detach()
    device = next(trunk.parameters()).device
    return torch.zeros(dim, device=device)


@torch.no_grad()
def modality_features(model: nn.Module, obs: Mapping[str, np.ndarray],
                      names: Sequence[str] | None = None, chunk: int = 256
                      ) -> dict[str, np.ndarray]:
    """(N, D_name) float32 encoder features per modality of (N, ...) raw observations.

    Args:
        model: a PerceptionModel, or a policy with one as ``.trunk``; run in eval mode
            (its mode is restored after).
        obs: raw observations as the env gives them, with optional ``<name>_present``
            flags; a row whose flag is off gets the fusion's stand-in (module docstring).
        names: the modalities wanted (default: all of the trunk's).
        chunk: states per encoder call.
    """
    trunk = _trunk(model)
    names = tuple(trunk.names if names is None else names)
    unknown = [n for n in names if n not in trunk.names]
    if unknown:
        raise ValueError(f"the model has no modality {unknown}; it has "
                         f"{', '.join(trunk.names)}")
    if chunk < 1:
        raise ValueError(f"chunk must be >= 1; got {chunk}")
    keys = [k for k in obs if k in trunk.names or k in {presence_key(n) for n in trunk.names}]
    n = len(np.asarray(obs[trunk.names[0]]))
    device = next(trunk.parameters()).device
    stand_in = {m: _stand_in(trunk, m, trunk.encoders[m].out_dim) for m in names}
    parts: dict[str, list[np.ndarray]] = {m: [] for m in names}
    training = trunk.training
    trunk.eval()
    try:
        for lo in range(0, n, chunk):
            batch = {k: torch.as_tensor(np.asarray(obs[k][lo:lo + chunk])).to(device)
                     for k in keys}
            features, present = trunk.encode(batch)
            for m in names:
                f = torch.where(present[m][:, None], features[m], stand_in[m])
                parts[m].append(f.float().cpu().numpy())
    finally:
        trunk.train(training)
    return {m: np.concatenate(parts[m]) if parts[m] else
            np.empty((0, trunk.encoders[m].out_dim), np.float32) for m in names}


# --------------------------------------------------------------------------- estimates


def default_clusters(targets: int) -> int:
    """The largest k <= 8 with k * k * targets <= DIT_MAX_CELLS (at least 2)."""
    if targets < 1:
        raise ValueError(f"targets must be >= 1; got {targets}")
    return max(2, min(MAX_DEFAULT_CLUSTERS, math.isqrt(DIT_MAX_CELLS // targets)))


def _atoms(p: PID) -> dict[str, float]:
    return {a: float(getattr(p, a)) for a in ATOMS}


def pid_estimate(x1: np.ndarray, x2: np.ndarray, y: np.ndarray, shuffles: int = 20,
                 resamples: int = 0, seed: int = 0, level: float = 0.95,
                 estimator: str = "auto") -> dict[str, Any]:
    """Plug-in PID of integer codes with the shuffled-target null and bootstrap intervals.

    Returns (JSON-ready): ``R``, ``U1``, ``U2``, ``S``, ``mi`` (bits); ``estimator``;
    ``cells`` (nonzero cells of the joint) and ``targets`` (distinct y); with shuffles,
    ``null`` ({"mean", "q95"} per atom, and its estimator), ``corrected`` (plug-in minus
    null mean) and ``p`` per atom; with resamples, ``ci`` per atom at ``level``.
    """
    x1, x2, y = (np.asarray(v) for v in (x1, x2, y))
    if shuffles < 0 or resamples < 0:
        raise ValueError(f"shuffles and resamples must be >= 0; got {shuffles}, {resamples}")
    if not 0 < level < 1:
        raise ValueError(f"level must be in (0, 1); got {level}")
    plug_in = pid_of_samples(x1, x2, y, shuffles=0, estimator=estimator).pid
    value = _atoms(plug_in)
    cells = np.unique(np.stack([x1, x2, y]), axis=1).shape[1]
    out: dict[str, Any] = {**value, "estimator": plug_in.estimator, "cells": int(cells),
                           "targets": int(np.unique(y).size)}
    if shuffles:
        rng = np.random.default_rng(seed)  # the permutations pid_of_samples(seed=seed) draws
        nulls = [pid_of_samples(x1, x2, rng.permutation(y), shuffles=0, estimator=estimator).pid
                 for _ in range(shuffles)]
        draws = {a: np.array([getattr(p, a) for p in nulls]) for a in ATOMS}
        out["null"] = {
            "mean": {a: float(d.mean()) for a, d in draws.items()},
            "q95": {a: float(np.quantile(d, NULL_QUANTILE)) for a, d in draws.items()},
            "estimator": " + ".join(sorted({p.estimator for p in nulls})),
        }
        out["corrected"] = {a: value[a] - out["null"]["mean"][a] for a in ATOMS}
        out["p"] = {a: float((1 + np.sum(d >= value[a] - 1e-12)) / (1 + shuffles))
                    for a, d in draws.items()}
    if resamples:
        rng = np.random.default_rng([seed, 1])
        n = y.size
        boots = []
        for _ in range(resamples):
            idx = rng.integers(0, n, n)
            boots.append(pid_of_samples(x1[idx], x2[idx], y[idx], shuffles=0,
                                        estimator=estimator).pid)
        lo, hi = (1 - level) / 2, 1 - (1 - level) / 2
        out["ci"] = {a: [float(q) for q in np.quantile([getattr(b, a) for b in boots],
                                                       [lo, hi])] for a in ATOMS}
    return out


def _discrete(name: str, v: Any, n: int) -> np.ndarray:
    a = np.asarray(v)
    if a.shape != (n,):
        raise ValueError(f"{name} must be ({n},), one per state; got shape {a.shape}")
    if a.dtype.kind not in "iub":
        raise ValueError(f"{name} must be integer (discrete) actions; got dtype {a.dtype}. "
                         "The PID of a run is defined here for discrete action spaces.")
    return a.astype(np.int64)


def pid_of_features(features: Mapping[str, np.ndarray], names: Sequence[str],
                    actions: np.ndarray, expert: np.ndarray | None = None,
                    clusters: int | None = None, shuffles: int = 20, resamples: int = 50,
                    seed: int = 0, level: float = 0.95) -> dict[str, Any]:
    """PID per modality pair of discretised features against the actions (and the expert's).

    Args:
        features: {name: (N, D)} per-modality features (or any representation).
        names: the modalities, in the order the pairs are formed (a before b: U1 is a's).
        actions: (N,) the policy's greedy actions: the "model" target.
        expert: (N,) the expert's actions at the same states: the "data" target, or None.
        clusters: k of the k-means per modality; None: :func:`default_clusters` of the
            distinct actions (of either target).

    Returns:
        {"clusters", "states", "seed", "shuffles", "resamples", "level", "units",
        "pairs": {"a*b": {"model": pid_estimate(...), ["data": ...]}}}.
    """
    names = tuple(names)
    if len(names) < 2:
        raise ValueError(f"a PID needs at least two modalities; got {names}")
    missing = [m for m in names if m not in features]
    if missing:
        raise ValueError(f"no features of {missing}; have {', '.join(features)}")
    n = len(np.asarray(actions))
    targets = {"model": _discrete("actions", actions, n)}
    if expert is not None:
        targets["data"] = _discrete("expert", expert, n)
    if clusters is None:
        clusters = default_clusters(max(np.unique(t).size for t in targets.values()))
    arrays = {m: np.asarray(features[m]) for m in names}
    wrong = {m: x.shape for m, x in arrays.items() if x.ndim not in (1, 2) or len(x) != n}
    if wrong:
        raise ValueError(f"features must be (N, D) with N={n}, one row per action; got {wrong}")
    codes = {m: discretise(x, clusters, seed) for m, x in arrays.items()}
    pairs = {pair_name(a, b): {kind: pid_estimate(codes[a], codes[b], y, shuffles, resamples,
                                                  seed, level)
                               for kind, y in targets.items()}
             for a, b in itertools.combinations(names, 2)}
    return {"clusters": int(clusters), "states": int(n), "seed": int(seed),
            "shuffles": int(shuffles), "resamples": int(resamples), "level": float(level),
            "null_quantile": NULL_QUANTILE, "units": "bits", "pairs": pairs}


def pid_report(policy: nn.Module, obs: Mapping[str, np.ndarray], names: Sequence[str],
               actions: np.ndarray, expert: np.ndarray | None = None,
               clusters: int | None = None, shuffles: int = 20, resamples: int = 50,
               seed: int = 0, level: float = 0.95, chunk: int = 256) -> dict[str, Any]:
    """The report's ``pid`` section: :func:`pid_of_features` of the policy's encoder features
    (:func:`modality_features`) on the states `obs`.

    `actions` are the full policy's greedy actions on those states, `expert` the env's
    expert's there (``Rollout.flat_expert()``), or None.
    """
    features = modality_features(policy, obs, names, chunk)
    out = pid_of_features(features, names, actions, expert, clusters, shuffles, resamples,
                          seed, level)
    out["features"] = ("per-modality encoder outputs of the policy's trunk; an absent "
                       "modality's rows are the fusion's stand-in (learned token or zeros)")
    return out
