"""Fusion fuses: supervised probes with a known answer (seeded, a few seconds per method)."""

from __future__ import annotations

import pytest

from analysis.fusion_probe import ProbeRun, train_probe

# Bits read directly from a vector and from tones in the audio: the probe tests the
# fusion, not how fast a CNN learns stripe orientation (see the README's table).
PROBE = {"modality_a": "vector", "modality_b": "audio"}


@pytest.mark.parametrize("method", ["concat", "tensor", "lowrank", "attention", "gated", "film"])
def test_fusing_methods_solve_synergy(method: str) -> None:
    r = train_probe(ProbeRun(interaction="synergy", fusion={"method": method}, steps=300,
                             probe=PROBE))
    assert r["accuracy"] >= 0.95, r
    # the answer is the XOR of one bit per modality: either alone is at chance
    assert abs(r["accuracy_vector_absent"] - 0.5) < 0.06, r
    assert abs(r["accuracy_audio_absent"] - 0.5) < 0.06, r


def test_late_fusion_stays_near_chance_on_synergy() -> None:
    r = train_probe(ProbeRun(interaction="synergy", fusion={"method": "late"}, steps=300,
                             probe=PROBE))
    assert abs(r["accuracy"] - 0.5) < 0.06, r
    assert r["final_loss"] > 0.68, r  # ln 2: nothing learned beyond the prior


@pytest.mark.parametrize("method", ["concat", "late", "gated", "film", "tensor", "lowrank",
                                    "attention"])
def test_modality_dropout_keeps_redundant_answers_with_one_modality_absent(method: str) -> None:
    r = train_probe(ProbeRun(interaction="redundant", fusion={"method": method}, steps=300,
                             modality_dropout=0.3, probe=PROBE))
    assert r["accuracy"] >= 0.95, r
    assert r["accuracy_vector_absent"] >= 0.9, r
    assert r["accuracy_audio_absent"] >= 0.9, r
