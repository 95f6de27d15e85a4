"""Shapley values over modalities: what each contributes, and the pairwise interaction index.

A value function gives a number to every coalition (set of present
modalities). The Shapley value of modality i averages its marginal
contribution v(S + i) - v(S) over all orders in which the modalities join;
the values sum to v(all) - v(empty) (efficiency, checked). The Shapley
interaction index of a pair (Grabisch & Roubens 1999) averages
v(S + ij) - v(S + i) - v(S + j) + v(S): positive when the pair works together
beyond the sum of its parts (synergy), negative when one repeats the other
(redundancy). Shapley values alone cannot tell those two apart.

Exact over all 2^M coalitions for M <= ``MAX_EXACT``, permutation sampling above.
Per-sample values (one per state or episode) give bootstrap intervals: the
Shapley value is linear in v, so each resample is one matrix product.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

#: Above this many modalities, Shapley values are estimated from sampled orders
MAX_EXACT = 6

Coalition = frozenset[str]


def coalitions(players: Sequence[str]) -> list[Coalition]:
    """Every subset of `players`, smallest first (the empty one first, all of them last)."""
    return [frozenset(c) for r in range(len(players) + 1)
            for c in itertools.combinations(players, r)]


def _check_players(players: Sequence[str]) -> tuple[str, ...]:
    players = tuple(players)
    if not players:
        raise ValueError("Shapley values need at least one modality; got none")
    if len(set(players)) != len(players):
        raise ValueError(f"modalities {list(players)} name one twice; name each once")
    return players


def shapley_weights(players: Sequence[str], subsets: Sequence[Coalition] | None = None
                    ) -> np.ndarray:
    """(M, C) matrix W with phi = W @ v for v over `subsets` (default: all coalitions).

    Row i holds, for each coalition S, +w(|S| - 1) if i is in S and -w(|S|) if
    not, with w(s) = s! (M - s - 1)! / M!: the exact Shapley value as a linear map.
    """
    players = _check_players(players)
    subsets = coalitions(players) if subsets is None else list(subsets)
    m = len(players)
    w = np.zeros((m, len(subsets)))
    for c, s in enumerate(subsets):
        for i, p in enumerate(players):
            if p in s:
                k = len(s) - 1
                w[i, c] += math.factorial(k) * math.factorial(m - k - 1) / math.factorial(m)
            else:
                k = len(s)
                w[i, c] -= math.factorial(k) * math.factorial(m - k - 1) / math.factorial(m)
    return w


def interaction_weights(players: Sequence[str], subsets: Sequence[Coalition] | None = None
                        ) -> tuple[list[tuple[str, str]], np.ndarray]:
    """The pairs and the (P, C) matrix of their Shapley interaction indices, I = W @ v."""
    players = _check_players(players)
    subsets = coalitions(players) if subsets is None else list(subsets)
    index = {s: c for c, s in enumerate(subsets)}
    m = len(players)
    pairs = list(itertools.combinations(players, 2))
    w = np.zeros((len(pairs), len(subsets)))
    for r, (a, b) in enumerate(pairs):
        rest = [p for p in players if p not in (a, b)]
        for s in coalitions(rest):
            k = len(s)
            weight = math.factorial(k) * math.factorial(m - k - 2) / math.factorial(m - 1)
            w[r, index[s | {a, b}]] += weight
            w[r, index[s | {a}]] -= weight
            w[r, index[s | {b}]] -= weight
            w[r, index[s]] += weight
    return pairs, w


@dataclass
class ShapleyResult:
    """Shapley values (and, exact only, pairwise interaction indices) with intervals."""

    players: tuple[str, ...]
    values: dict[str, float]
    ci: dict[str, tuple[float, float]]
    interaction: dict[str, float] = field(default_factory=dict)
    """Per pair ``"a*b"``: the Shapley interaction index."""
    interaction_ci: dict[str, tuple[float, float]] = field(default_factory=dict)
    exact: bool = True
    efficiency_gap: float = 0.0
    """sum(values) - (v(all) - v(empty)); zero up to rounding when exact."""
    coalition_values: dict[str, float] = field(default_factory=dict)
    """v per coalition, named by its modalities joined with '+' ('none' = empty)."""
    seed: int = 0
    resamples: int = 0


def coalition_name(s: Coalition, players: Sequence[str]) -> str:
    """'rgb+audio' in the players' order; 'none' for the empty coalition."""
    return "+".join(p for p in players if p in s) or "none"


def pair_name(a: str, b: str) -> str:
    return f"{a}*{b}"


def _interval(draws: np.ndarray, level: float) -> np.ndarray:
    lo, hi = (1 - level) / 2, 1 - (1 - level) / 2
    return np.quantile(draws, [lo, hi], axis=0)


def shapley_of_samples(per_sample: Mapping[Coalition, np.ndarray], players: Sequence[str],
                       resamples: int = 1000, level: float = 0.95, seed: int = 0,
                       tolerance: float = 1e-9, paired: bool = True) -> ShapleyResult:
    """Exact Shapley values and interaction indices of v(S) = mean of ``per_sample[S]``.

    `per_sample` maps every coalition to (N,) values. `paired`: the same N samples
    (states) under every coalition, resampled alike; else each coalition's own N
    samples (episodes of its own), resampled independently. The intervals bootstrap
    them (`resamples` draws with replacement, seeded).
    """
    players = _check_players(players)
    if len(players) > MAX_EXACT:
        raise ValueError(f"{len(players)} modalities: exact Shapley values stop at "
                         f"{MAX_EXACT}; use shapley_by_permutations")
    subsets = coalitions(players)
    missing = [coalition_name(s, players) for s in subsets if s not in per_sample]
    if missing:
        raise ValueError(f"per_sample lacks coalitions {missing}; give every one of the "
                         f"{len(subsets)} coalitions of {list(players)}")
    table = np.stack([np.asarray(per_sample[s], np.float64) for s in subsets], axis=1)  # (N, C)
    n = table.shape[0]
    if n < 2:
        raise ValueError(f"{n} sample(s): an interval needs at least 2 states or episodes")
    w = shapley_weights(players, subsets)
    pairs, wi = interaction_weights(players, subsets)
    v = table.mean(0)
    phi, inter = w @ v, wi @ v
    gap = float(phi.sum() - (v[-1] - v[0]))
    if abs(gap) > tolerance * max(1.0, abs(v[-1] - v[0])):
        raise AssertionError(f"Shapley efficiency violated: sum of values - (v(all) - "
                             f"v(empty)) = {gap:.3g}")
    rng = np.random.default_rng(seed)
    draws = np.empty((resamples, len(subsets)))
    columns = np.arange(len(subsets))
    for r in range(resamples):
        if paired:
            draws[r] = table[rng.integers(0, n, n)].mean(0)
        else:
            draws[r] = table[rng.integers(0, n, (n, len(subsets))), columns].mean(0)
    phi_ci, inter_ci = _interval(draws @ w.T, level), _interval(draws @ wi.T, level)
    return ShapleyResult(
        players=players,
        values={p: float(phi[i]) for i, p in enumerate(players)},
        ci={p: (float(phi_ci[0, i]), float(phi_ci[1, i])) for i, p in enumerate(players)},
        interaction={pair_name(*pr): float(inter[k]) for k, pr in enumerate(pairs)},
        interaction_ci={pair_name(*pr): (float(inter_ci[0, k]), float(inter_ci[1, k]))
                        for k, pr in enumerate(pairs)},
        exact=True, efficiency_gap=gap,
        coalition_values={coalition_name(s, players): float(v[c])
                          for c, s in enumerate(subsets)},
        seed=seed, resamples=resamples)


def sampled_orders(m: int, permutations: int, seed: int = 0) -> np.ndarray:
    """(permutations, m) orders of m players: random ones, each followed by its reverse
    (antithetic pairs), seeded."""
    if permutations < 2:
        raise ValueError(f"permutations={permutations}: need at least 2 orders")
    rng = np.random.default_rng(seed)
    orders = np.empty((permutations, m), np.int64)
    order = np.arange(m)
    for k in range(permutations):
        order = rng.permutation(m) if k % 2 == 0 else order[::-1]  # an order, then its reverse
        orders[k] = order
    return orders


def visited_coalitions(players: Sequence[str], orders: np.ndarray) -> list[Coalition]:
    """The coalitions the orders pass through (each order's prefixes), smallest first."""
    players = _check_players(players)
    seen = {frozenset()}
    for order in orders:
        seen.update(frozenset(players[i] for i in order[:k + 1]) for k in range(len(order)))
    return sorted(seen, key=lambda c: (len(c), sorted(players.index(p) for p in c)))


def shapley_by_permutations(value: Callable[[Coalition], float], players: Sequence[str],
                            permutations: int = 200, seed: int = 0) -> ShapleyResult:
    """Shapley values estimated over the orders of :func:`sampled_orders`, for many
    modalities; v is cached per coalition (:func:`visited_coalitions` lists those it asks).

    The intervals are the normal ones over orders (1.96 standard errors); the
    efficiency holds exactly for every order, so its gap is checked too.
    """
    players = _check_players(players)
    orders = sampled_orders(len(players), permutations, seed)
    cache: dict[Coalition, float] = {}

    def v(s: Coalition) -> float:
        if s not in cache:
            cache[s] = float(value(s))
        return cache[s]

    m = len(players)
    marginal = np.zeros((permutations, m))
    for k, order in enumerate(orders):
        s: Coalition = frozenset()
        for i in order:
            joined = s | {players[i]}
            marginal[k, i] = v(joined) - v(s)
            s = joined
    phi = marginal.mean(0)
    se = marginal.std(0, ddof=1) / math.sqrt(permutations)
    gap = float(phi.sum() - (v(frozenset(players)) - v(frozenset())))
    if abs(gap) > 1e-9 * max(1.0, abs(v(frozenset(players)) - v(frozenset()))):
        raise AssertionError(f"Shapley efficiency violated: gap {gap:.3g}")
    return ShapleyResult(
        players=players,
        values={p: float(phi[i]) for i, p in enumerate(players)},
        ci={p: (float(phi[i] - 1.96 * se[i]), float(phi[i] + 1.96 * se[i]))
            for i, p in enumerate(players)},
        exact=False, efficiency_gap=gap,
        coalition_values={coalition_name(s, players): val for s, val in cache.items()},
        seed=seed, resamples=permutations)
