"""Shapley values, interaction indices and robustness curves, checked where the truth is
known: closed-form games, and ModalityProbe's Bayes-optimal answers (absent = chance)."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from analysis.robustness_curves import LEVELS, RobustnessCurve, area, effective_robustness
from analysis.shapley import (
    coalitions,
    interaction_weights,
    shapley_by_permutations,
    shapley_of_samples,
    shapley_weights,
)
from envs.modality_probe import ModalityProbeVectorEnv, bayes_optimal_actions

STATES = 4000


def _probe_values(interaction: str, seed: int = 0) -> dict[frozenset, np.ndarray]:
    """Per state and coalition of {a, b}: is the Bayes-optimal answer from only those right?"""
    env = ModalityProbeVectorEnv(num_envs=STATES, interaction=interaction,
                                 modality_a="vector", modality_b="audio")
    obs, _ = env.reset(seed=seed)
    truth = env.expert_actions()
    out = {s: bayes_optimal_actions(obs, env.cfg, tuple(sorted(s))) == truth
           for s in coalitions(("a", "b"))}
    env.close()
    return out


@pytest.mark.parametrize(("interaction", "phi_a", "phi_b", "pair"), [
    ("unique_a", 0.5, 0.0, 0.0),
    ("synergy", 0.25, 0.25, 0.5),
    ("redundant", 0.25, 0.25, -0.5),
])
def test_shapley_on_modality_probe_gives_the_closed_form(interaction: str, phi_a: float,
                                                         phi_b: float, pair: float) -> None:
    result = shapley_of_samples(_probe_values(interaction), ("a", "b"), resamples=300)
    assert result.values["a"] == pytest.approx(phi_a, abs=0.03)
    assert result.values["b"] == pytest.approx(phi_b, abs=0.03)
    assert result.interaction["a*b"] == pytest.approx(pair, abs=0.04)
    for name, want in (("a", phi_a), ("b", phi_b)):
        lo, hi = result.ci[name]
        assert lo - 0.01 <= want <= hi + 0.01 and hi - lo < 0.06
    assert result.coalition_values["none"] == pytest.approx(0.5, abs=0.03)  # chance
    assert abs(result.efficiency_gap) < 1e-12


def test_unpaired_samples_resample_each_coalition_on_its_own() -> None:
    values = _probe_values("synergy")
    paired = shapley_of_samples(values, ("a", "b"), resamples=200)
    unpaired = shapley_of_samples(values, ("a", "b"), resamples=200, paired=False)
    assert unpaired.values == paired.values  # the same means
    assert unpaired.interaction["a*b"] == pytest.approx(0.5, abs=0.04)
    # paired states share their noise across coalitions, so the differences the
    # interaction index is made of are tighter than between independent samples
    width = {k: r.interaction_ci["a*b"][1] - r.interaction_ci["a*b"][0]
             for k, r in (("paired", paired), ("unpaired", unpaired))}
    assert width["unpaired"] > 1.5 * width["paired"] > 0


def test_shapley_alone_cannot_tell_redundancy_from_synergy_the_interaction_sign_can() -> None:
    syn = shapley_of_samples(_probe_values("synergy"), ("a", "b"), resamples=50)
    red = shapley_of_samples(_probe_values("redundant"), ("a", "b"), resamples=50)
    for m in ("a", "b"):
        assert syn.values[m] == pytest.approx(red.values[m], abs=0.03)  # the same split
    assert syn.interaction["a*b"] > 0.4 and red.interaction["a*b"] < -0.4  # opposite signs


def _majority(s: frozenset) -> float:
    return float(len(s) >= 2)


def test_exact_values_of_a_known_game_and_the_efficiency() -> None:
    players = ("x", "y", "z")
    v = {s: np.full(3, _majority(s)) for s in coalitions(players)}
    result = shapley_of_samples(v, players, resamples=10)
    for p in players:
        assert result.values[p] == pytest.approx(1 / 3)
    # pair interaction of the majority game: only S = {} and S = {other} count, with
    # weights 1/2 each: (1 - 0 - 0 + 0) / 2 + (1 - 1 - 1 + 0) / 2 = 0
    assert all(abs(i) < 1e-12 for i in result.interaction.values())
    w = shapley_weights(players)
    assert np.allclose(w @ np.array([_majority(s) for s in coalitions(players)]), 1 / 3)
    pairs, wi = interaction_weights(players)
    assert pairs == list(itertools.combinations(players, 2)) and wi.shape == (3, 8)


def test_sampled_orders_agree_with_the_exact_values() -> None:
    players = tuple("abcd")
    weights = {"a": 0.4, "b": 0.1, "c": 0.3, "d": 0.0}

    def value(s: frozenset) -> float:  # additive, plus a synergy of a and c
        return sum(weights[p] for p in s) + (0.2 if {"a", "c"} <= s else 0.0)

    exact = shapley_of_samples({s: np.full(2, value(s)) for s in coalitions(players)},
                               players, resamples=5)
    sampled = shapley_by_permutations(value, players, permutations=400, seed=1)
    assert exact.values == pytest.approx({"a": 0.5, "b": 0.1, "c": 0.4, "d": 0.0})
    assert exact.interaction["a*c"] == pytest.approx(0.2)
    for p in players:
        assert sampled.values[p] == pytest.approx(exact.values[p], abs=0.03)
        lo, hi = sampled.ci[p]
        assert lo - 1e-9 <= exact.values[p] <= hi + 1e-9 or hi - lo < 1e-9
    assert not sampled.exact and abs(sampled.efficiency_gap) < 1e-9


def test_shapley_inputs_are_checked() -> None:
    v = {s: np.ones(4) for s in coalitions(("a", "b"))}
    with pytest.raises(ValueError, match=r"lacks coalitions \['a\+b'\]"):
        shapley_of_samples({k: x for k, x in v.items() if len(k) < 2}, ("a", "b"))
    with pytest.raises(ValueError, match="name one twice"):
        shapley_of_samples(v, ("a", "a"))
    with pytest.raises(ValueError, match="at least 2 states"):
        shapley_of_samples({k: x[:1] for k, x in v.items()}, ("a", "b"))
    with pytest.raises(ValueError, match="exact Shapley values stop at 6"):
        shapley_of_samples({}, tuple("abcdefg"))


def test_a_flat_curve_has_area_0_9_and_a_falling_one_0_6975() -> None:
    p = np.asarray(LEVELS)
    assert LEVELS == (0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)
    assert area(LEVELS, np.ones(10)) == pytest.approx(0.9)
    # a policy reading only the dropped modality: right always when present, at chance
    # (1/2) when absent, so 1 - p/2 at dropout probability p
    assert area(LEVELS, 1 - p / 2) == pytest.approx(0.6975)
    assert effective_robustness(LEVELS, 1 - p / 2, 1 - p / 2) == pytest.approx(0.0)
    # the same fall from a lower start is not less robust; a steeper one is
    assert effective_robustness(LEVELS, 0.8 - p / 2, 1 - p / 2) == pytest.approx(0.0)
    assert effective_robustness(LEVELS, 1 - p, 1 - p / 2) == pytest.approx(-0.2025)
    curve = RobustnessCurve("audio", "dropout", list(LEVELS), list(1 - p / 2),
                            [(0.0, 1.0)] * 10)
    flat = RobustnessCurve("audio", "dropout", list(LEVELS), [1.0] * 10, [(1.0, 1.0)] * 10)
    out = curve.to_dict(reference=flat)
    assert out["area"] == pytest.approx(0.6975)
    assert out["effective_robustness"] == pytest.approx(0.6975 - 0.9)
    with pytest.raises(ValueError, match="levels must increase"):
        area([0.0, 0.2, 0.1], [1, 1, 1])
    with pytest.raises(ValueError, match="NaN or Inf"):
        area([0.0, 0.1], [1.0, float("nan")])
