"""PID of a run's modalities: on ModalityProbe, whose answer's information is known, and on
a tiny trained AudioVisualNav run (features, sums, expert actions, repeatability).

The tolerances are from runs of these settings (1,024 probe states, vector + audio, 150
training steps) over training seeds 0-3: the dominant atom was 0.93-0.96 (synergy),
0.87-0.94 (redundant: the audio clusters carry 0.87-0.94 of r's bit, the rest is U1) and
0.83-0.99 (unique_a); every other atom at most 0.008 bits but redundant's U1 (0.06-0.13);
the null's 95 % quantiles 0.02-0.06 bits (S) and below 0.01 (R, U1, U2). The
Bayes-optimal posteriors as features gave the dominant atom 0.99-1.00 (1,024 states).
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import numpy as np
import pytest
import torch

from agent.policy import ActorCritic, DeterministicPolicy
from agent.trained import load_trained
from analysis.fusion_probe import ProbeRun, fit_probe
from analysis.pid import discretise, pid_of_samples
from analysis.pid_of_run import (
    ATOMS,
    default_clusters,
    modality_features,
    pid_estimate,
    pid_of_features,
    pid_report,
)
from deploy.export.rollouts import has_expert, record_rollout
from envs.factory import make_vector_env
from envs.modality_probe import ModalityProbeVectorEnv, bayes_optimal_actions
from envs.modality_probe.oracle import bit_log_odds
from perception.spec import presence_key
from tests.deploy.conftest import AVN, train_tiny

_MISSING = [m for m in ("dit", "ecos") if importlib.util.find_spec(m) is None]
if _MISSING:  # as in test_pid.py: the analysis extra installs them; under CI a gap fails
    if os.environ.get("CI") == "true":
        raise ImportError(f"{_MISSING} missing under CI: pip install -e '.[dev]'")
    pytest.skip(f"{_MISSING} missing: pip install 'sensorium[analysis]'",
                allow_module_level=True)

PROBE = {"modality_a": "vector", "modality_b": "audio"}
PAIR = "vector*audio"
STATES = 1024
# interaction -> (the atom that carries the answer, modality dropout in training: with
# none, a redundant model may read r from one modality only, and there is no R to find)
TRUTH = {"synergy": ("S", 0.0), "redundant": ("R", 0.3), "unique_a": ("U1", 0.0)}


@pytest.fixture(autouse=True, scope="module")
def _one_thread(one_thread_per_pool):
    yield


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory) -> Path:
    return train_tiny(tmp_path_factory.mktemp("pid") / "run")


def _probe_states(interaction: str, seed: int = 7
                  ) -> tuple[ModalityProbeVectorEnv, dict[str, np.ndarray], np.ndarray]:
    env = ModalityProbeVectorEnv(num_envs=STATES, interaction=interaction, **PROBE)
    obs, _ = env.reset(seed=seed)
    return env, obs, env.expert_actions()


def _check_dominant(entry: dict, atom: str, floor: float, others_max: float) -> None:
    """`atom` carries the information: large, above its null, the others near 0."""
    assert entry[atom] >= floor, entry
    assert entry[atom] > 5 * entry["null"]["q95"][atom], entry
    assert entry["p"][atom] == pytest.approx(1 / 11), entry  # above every shuffle
    for other in ("R", "U1", "U2", "S"):
        if other != atom:
            assert entry[other] <= others_max, (other, entry)
    assert sum(entry[a] for a in ("R", "U1", "U2", "S")) == pytest.approx(entry["mi"],
                                                                         abs=1e-6)


@pytest.mark.parametrize("interaction", list(TRUTH))
def test_bayes_optimal_posteriors_give_the_known_atom(interaction: str) -> None:
    env, obs, expert = _probe_states(interaction)
    features = {env.cfg.keys[r]: np.tanh(0.5 * bit_log_odds(obs, env.cfg, r))
                for r in ("a", "b")}
    actions = bayes_optimal_actions(obs, env.cfg)
    out = pid_of_features(features, ("vector", "audio"), actions, expert, shuffles=10,
                          resamples=10, seed=0)
    atom = TRUTH[interaction][0]
    for kind in ("model", "data"):
        entry = out["pairs"][PAIR][kind]
        _check_dominant(entry, atom, 0.97, 0.02)
        lo = entry["ci"][atom][0]
        assert all(lo > entry["ci"][o][1] for o in ("R", "U1", "U2", "S") if o != atom), entry
        assert all(entry["ci"][a][0] <= entry["ci"][a][1] for a in ATOMS)
        assert "dit" in entry["estimator"]
    assert out["clusters"] == 8 and out["states"] == STATES and out["seed"] == 0


@pytest.mark.parametrize("interaction", list(TRUTH))
def test_a_trained_probe_model_puts_the_answer_in_the_known_atom(interaction: str) -> None:
    atom, dropout = TRUTH[interaction]
    fitted = fit_probe(ProbeRun(interaction=interaction, steps=150, probe=PROBE,
                                modality_dropout=dropout, seed=0))
    env, obs, expert = _probe_states(interaction)
    with torch.no_grad():
        actions = fitted.model({k: torch.as_tensor(v) for k, v in obs.items()}).argmax(1)
    assert (actions.numpy() == expert).mean() > 0.95
    out = pid_report(fitted.model.perception, obs, env.obs_spec.names, actions.numpy(),
                     expert, shuffles=10, resamples=0, seed=0)
    for kind in ("model", "data"):
        entry = out["pairs"][PAIR][kind]
        _check_dominant(entry, atom, 0.75, 0.2 if interaction == "redundant" else 0.03)
        if interaction == "redundant":
            assert entry["R"] > 3 * (entry["U1"] + entry["U2"] + entry["S"]), entry
        assert "ci" not in entry


def test_the_null_is_the_one_pid_of_samples_draws() -> None:
    rng = np.random.default_rng(0)
    x1, x2 = rng.integers(0, 3, 300), rng.integers(0, 3, 300)
    y = (x1 + x2 + rng.integers(0, 2, 300)) % 3
    ours = pid_estimate(x1, x2, y, shuffles=6, seed=4)
    theirs = pid_of_samples(x1, x2, y, shuffles=6, seed=4)
    for a in ATOMS:
        assert ours[a] == getattr(theirs.pid, a)
        assert ours["null"]["mean"][a] == pytest.approx(getattr(theirs.null, a), abs=1e-12)
        assert ours["corrected"][a] == pytest.approx(ours[a] - ours["null"]["mean"][a])
        assert ours["null"]["q95"][a] >= ours["null"]["mean"][a] - 1e-12


@pytest.mark.parametrize(("actions", "k"), [(1, 8), (2, 8), (4, 8), (15, 8), (16, 7),
                                            (20, 7), (21, 6), (500, 2)])
def test_default_clusters_keep_the_joint_for_dit(actions: int, k: int) -> None:
    assert default_clusters(actions) == k
    assert k * k * actions <= 1000 or k == 2


def test_discrete_targets_only() -> None:
    f = {"a": np.zeros((10, 2)), "b": np.ones((10, 2))}
    with pytest.raises(ValueError, match="discrete"):
        pid_of_features(f, ("a", "b"), np.linspace(0, 1, 10))
    with pytest.raises(ValueError, match="N=10"):
        pid_of_features({**f, "b": np.ones((20, 2))}, ("a", "b"), np.zeros(10, int))


def test_a_run_s_features_pid_and_expert_actions(tiny_run: Path) -> None:
    trained = load_trained(tiny_run)
    policy, names = trained.deployable(), trained.obs_spec.names
    args = (policy, trained.policy, trained.obs_spec, trained.setup.env, 8, 16, 3,
            trained.policy.hidden_size)
    rollout = record_rollout(*args, expert=True)
    plain = record_rollout(*args)
    assert plain.expert is None and plain.flat_expert() is None
    for n in names:  # asking for the expert changes nothing else
        np.testing.assert_array_equal(rollout.obs[n], plain.obs[n])
    np.testing.assert_array_equal(rollout.starts, plain.starts)
    assert rollout.expert.shape == (16, 8)
    expert = rollout.flat_expert()
    assert expert.dtype.kind == "i" and expert.min() >= 0 and expert.max() < 4
    assert len(np.unique(expert)) > 1

    obs, _ = rollout.flat()
    features = modality_features(policy, obs, names, chunk=50)
    assert {n: f.shape for n, f in features.items()} == {
        n: (128, policy.trunk.encoders[n].out_dim) for n in names}
    with torch.no_grad():
        x = {k: torch.as_tensor(v) for k, v in obs.items()}
        np.testing.assert_allclose(features["rgb"], policy.trunk.encoders["rgb"](x["rgb"]),
                                   atol=1e-6)
        actions = policy(x, None)[0].numpy()

    subset = ("rgb", "audio", "touch")
    report = pid_report(policy, obs, subset, actions, expert, shuffles=2, resamples=2, seed=5)
    assert list(report["pairs"]) == ["rgb*audio", "rgb*touch", "audio*touch"]
    assert report["seed"] == 5 and report["states"] == 128
    codes = {m: discretise(features[m], report["clusters"], 5) for m in subset}
    for pair, entry in report["pairs"].items():
        a, b = pair.split("*")
        for kind, y in (("model", actions), ("data", expert)):
            e = entry[kind]
            assert sum(e[x] for x in ("R", "U1", "U2", "S")) == pytest.approx(e["mi"], abs=1e-6)
            assert e["mi"] == pytest.approx(_mi(codes[a], codes[b], y), abs=1e-9)
            assert set(e["ci"]) == set(ATOMS) and set(e["null"]["mean"]) == set(ATOMS)
    assert pid_report(policy, obs, subset, actions, expert, shuffles=2, resamples=2,
                      seed=5) == report


def test_absent_rows_get_the_fusion_s_stand_in(tiny_run: Path) -> None:
    policy = load_trained(tiny_run).deployable()
    env = make_vector_env(AVN, 6)
    obs, _ = env.reset(seed=1)
    env.close()
    flags = np.array([True, False, True, False, True, True])
    features = modality_features(policy, {**obs, presence_key("rgb"): flags})
    token = policy.trunk.fusion.missing.tokens["rgb"].detach().numpy()
    np.testing.assert_array_equal(features["rgb"][~flags], np.broadcast_to(token, (2, 64)))
    full = modality_features(policy, obs)
    np.testing.assert_array_equal(features["rgb"][flags], full["rgb"][flags])
    np.testing.assert_array_equal(features["audio"], full["audio"])


def test_the_expert_sits_beside_the_observation_it_answers() -> None:
    cfg = {"id": "sensorium/ModalityProbe-v0", "interaction": "unique_a", **PROBE}
    env = make_vector_env(cfg, 4)
    assert has_expert(env)
    spec, actions = env.obs_spec, env.action_spec
    env.close()
    torch.manual_seed(0)
    policy = ActorCritic(spec, actions)
    rollout = record_rollout(DeterministicPolicy(policy), policy, spec, cfg, 4, 6, 0, 0,
                             expert=True)
    obs, _ = rollout.flat()
    # one-step episodes with a near noiseless vector: the reader's answer is the expert's
    probe = ModalityProbeVectorEnv(interaction="unique_a", **PROBE)
    np.testing.assert_array_equal(rollout.flat_expert(), bayes_optimal_actions(obs, probe.cfg))


def _mi(x1: np.ndarray, x2: np.ndarray, y: np.ndarray) -> float:
    """Plug-in I(X1, X2; Y) in bits, counted here independently of analysis.pid."""
    joint = np.unique(np.stack([x1 * 1000 + x2, y]), axis=1, return_counts=True)
    (xs, ys), counts = joint[0], joint[1]
    p = counts / counts.sum()
    px = {v: p[xs == v].sum() for v in np.unique(xs)}
    py = {v: p[ys == v].sum() for v in np.unique(ys)}
    return float(sum(pi * np.log2(pi / (px[a] * py[b])) for pi, a, b in zip(p, xs, ys)))
