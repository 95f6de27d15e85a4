"""The per-state interaction classifier: its rules on hand-made distributions, and the
types it finds where the truth is known (ModalityProbe's Bayes-optimal posteriors)."""

from __future__ import annotations

import numpy as np
import pytest

from analysis.interaction_types import (
    KINDS,
    classify_states,
    fractions,
    interaction_types,
    softmax,
)
from analysis.shapley import coalitions
from envs.modality_probe import ModalityProbeVectorEnv
from envs.modality_probe.oracle import answer_probabilities

STATES = 4000


def _kind(p0, pa, pb, pab, threshold: float = 0.1) -> tuple[str, int, bool]:
    t = classify_states(*(np.array([p]) for p in (p0, pa, pb, pab)), threshold=threshold)
    return KINDS[int(t.kind[0])], int(t.by[0]), bool(t.enhanced[0])


U = [0.5, 0.5]  # no response: the policy with neither modality


@pytest.mark.parametrize(("p0", "pa", "pb", "pab", "want"), [
    (U, [0.9, 0.1], [0.8, 0.2], [0.92, 0.08], ("redundancy", -1, False)),
    (U, [0.7, 0.3], [0.7, 0.3], [0.99, 0.01], ("redundancy", -1, True)),  # enhanced
    (U, [0.9, 0.1], [0.1, 0.9], [0.85, 0.15], ("dominance", 0, False)),  # disagree, follows a
    (U, [0.9, 0.1], [0.1, 0.9], [0.2, 0.8], ("dominance", 1, False)),
    (U, [0.9, 0.1], U, [0.9, 0.1], ("dominance", 0, False)),  # b silent and changes nothing
    (U, [0.75, 0.25], U, [0.99, 0.01], ("modulation", 1, False)),  # silent b raises it
    (U, U, [0.2, 0.8], [0.45, 0.55], ("modulation", 0, False)),  # silent a lowers it
    (U, [0.9, 0.1], U, [0.52, 0.48], ("modulation", 1, False)),  # b cancels a's response
    (U, U, U, [0.05, 0.95], ("emergence", -1, False)),  # only together
    (U, [0.9, 0.1], [0.9, 0.1], [0.1, 0.9], ("emergence", -1, False)),  # agree, pair differs
    (U, [0.52, 0.48], [0.47, 0.53], [0.55, 0.45], ("independence", -1, False)),
])
def test_each_rule_on_one_state(p0, pa, pb, pab, want) -> None:
    assert _kind(p0, pa, pb, pab) == want


def test_a_context_that_already_decides_is_the_baseline() -> None:
    # with three actions and the context sure of action 2, a and b respond when they move it
    p0 = [0.0, 0.0, 1.0]
    assert _kind(p0, [0.8, 0.1, 0.1], [0.0, 0.05, 0.95], [0.8, 0.1, 0.1])[:2] == ("dominance", 0)


def _probe_distributions(interaction: str) -> dict[frozenset, np.ndarray]:
    env = ModalityProbeVectorEnv(num_envs=STATES, interaction=interaction,
                                 modality_a="vector", modality_b="audio")
    obs, _ = env.reset(seed=0)
    out = {}
    for s in coalitions(("a", "b")):
        p = answer_probabilities(obs, env.cfg, tuple(sorted(s)))[:, 0]
        out[s] = np.log(np.stack([1 - p, p], 1) + 1e-12)  # as logits
    env.close()
    return out


@pytest.mark.parametrize(("interaction", "kind", "by"), [
    ("synergy", "emergence", None),
    ("redundant", "redundancy", None),
    ("unique_a", "dominance", "a"),
    ("unique_b", "dominance", "b"),
])
def test_the_probe_tasks_get_their_own_type(interaction: str, kind: str, by: str | None
                                            ) -> None:
    report = interaction_types(_probe_distributions(interaction), ("a", "b"), resamples=200)
    pair = report["pairs"]["a*b"]
    share = pair["fractions"][kind]
    assert share["value"] > 0.95, pair
    lo, hi = share["ci"]
    assert lo <= share["value"] <= hi and hi - lo < 0.02
    assert sum(f["value"] for f in pair["fractions"].values()) == pytest.approx(1.0)
    if by is not None:
        assert pair["dominance_by"][by] > 0.95


def test_the_rest_context_judges_the_pair_inside_the_full_policy() -> None:
    # a third modality c that decides on its own: with it present, a and b never respond
    rng = np.random.default_rng(0)
    n = 64
    logits = {}
    for s in coalitions(("a", "b", "c")):
        x = np.zeros((n, 2))
        if "c" in s:
            x[:, 0] = 8.0  # c decides action 0 for sure
        elif "a" in s:
            x[:, 1] = 3.0  # alone, a answers 1
        logits[s] = x + 1e-3 * rng.standard_normal((n, 2))
    alone = interaction_types(logits, ("a", "b", "c"), context="none", resamples=100)
    inside = interaction_types(logits, ("a", "b", "c"), context="rest", resamples=100)
    assert alone["pairs"]["a*b"]["dominance_by"]["a"] == 1.0
    assert inside["pairs"]["a*b"]["fractions"]["independence"]["value"] == 1.0
    assert inside["pairs"]["a*c"]["dominance_by"]["c"] == 1.0  # context b is silent


def test_softmax_rows_are_distributions() -> None:
    p = softmax(np.array([[1000.0, 0.0], [0.0, 0.0]]))
    np.testing.assert_allclose(p, [[1.0, 0.0], [0.5, 0.5]])


def test_fractions_are_seeded() -> None:
    t = classify_states(*(softmax(np.random.default_rng(k).standard_normal((50, 3)))
                          for k in range(4)))
    assert fractions(t, ("a", "b"), 100, seed=3) == fractions(t, ("a", "b"), 100, seed=3)


def test_bad_input_is_named() -> None:
    p = np.full((3, 2), 0.5)
    with pytest.raises(ValueError, match="threshold"):
        classify_states(p, p, p, p, threshold=1.5)
    with pytest.raises(ValueError, match="pb: action distributions must be"):
        classify_states(p, p, np.full((4, 2), 0.5), p)
    with pytest.raises(ValueError, match="pab: rows must be probability"):
        classify_states(p, p, p, np.full((3, 2), 0.7))
    with pytest.raises(ValueError, match="context='all' is unknown"):
        interaction_types({}, ("a", "b"), context="all")
