"""A trained policy under every coalition of its modalities, and ``sensorium analyze``."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch

from agent.config import RunSettings
from agent.policy import ActorCritic, DeterministicPolicy
from agent.trained import load_trained
from analysis.coalitions import coalition_logits, offline_values, removed, values_of_logits
from analysis.report import analyze, dropout_warning, offline_analysis, write
from analysis.settings import AnalyzeSettings
from analysis.shapley import coalitions, shapley_weights
from envs.factory import make_vector_env
from perception.settings import ConfigError
from perception.spec import ActionSpec, ModalitySpec, ObsSpec, presence_key
from tests.cli.test_cli import SENSORIUM
from tests.deploy.conftest import AVN, train_tiny


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory) -> Path:
    return train_tiny(tmp_path_factory.mktemp("analysis") / "run")


def _states(n: int = 24) -> dict[str, np.ndarray]:
    env = make_vector_env(AVN, n)
    obs, _ = env.reset(seed=3)
    obs, *_ = env.step(np.full(n, 1))
    env.close()
    return {k: np.asarray(v) for k, v in obs.items()}


def _logits(policy, obs: dict[str, np.ndarray]) -> torch.Tensor:
    with torch.no_grad():
        return policy({k: torch.as_tensor(v) for k, v in obs.items()}, None)[1]


def _kl(p: torch.Tensor, q: torch.Tensor) -> np.ndarray:
    lp, lq = torch.log_softmax(p, -1), torch.log_softmax(q, -1)
    return (lp.exp() * (lp - lq)).sum(-1).numpy()


def test_every_coalition_in_one_call_is_the_policy_with_those_modalities(tiny_run) -> None:
    trained = load_trained(tiny_run)
    policy, names = trained.deployable(), trained.obs_spec.names
    obs = _states()
    batched = offline_values(policy, obs, names, chunk=24)
    single = offline_values(policy, obs, names, chunk=1)
    full = _logits(policy, obs)
    deaf = frozenset(names) - {"audio"}
    flags_off = {**obs, presence_key("audio"): np.zeros(24, bool)}
    np.testing.assert_allclose(batched["neg_kl"][deaf], -_kl(full, _logits(policy, flags_off)),
                               atol=1e-5)
    for s in coalitions(names):
        np.testing.assert_allclose(batched["neg_kl"][s], single["neg_kl"][s], atol=1e-5)
        assert (batched["neg_kl"][s] <= 1e-6).all()
    everything = frozenset(names)
    assert (batched["agreement"][everything] == 1).all()
    assert np.abs(batched["neg_kl"][everything]).max() < 1e-6


@pytest.mark.parametrize("removal", ["zeros", "mean", "permute"])
def test_other_removal_operators_replace_the_data_and_keep_the_flag(tiny_run, removal) -> None:
    trained = load_trained(tiny_run)
    policy, names = trained.deployable(), trained.obs_spec.names
    obs = _states()
    values = offline_values(policy, obs, names, removal=removal, seed=5, chunk=24)
    rng = np.random.default_rng(5)
    replacement = {"zeros": np.zeros_like(obs["rgb"]),
                   "mean": np.broadcast_to(obs["rgb"].astype(np.float64).mean(0),
                                           obs["rgb"].shape).astype(np.uint8),
                   "permute": obs["rgb"][rng.permutation(24)]}[removal]
    blind = removed(obs, frozenset(names) - {"rgb"}, names, removal, {"rgb": replacement})
    assert blind[presence_key("rgb")].all()  # the flag stays on: only the data changes
    np.testing.assert_array_equal(blind["rgb"], replacement)
    np.testing.assert_allclose(values["neg_kl"][frozenset(names) - {"rgb"}],
                               -_kl(_logits(policy, obs), _logits(policy, blind)), atol=1e-5)
    with pytest.raises(ValueError, match="removal='drop' is unknown; choose one of presence"):
        offline_values(policy, obs, names, removal="drop")


#: the PID's solves kept few in these tests (its figures are checked in test_pid_of_run)
QUICK_PID = {"shuffles": 2, "pid_resamples": 2}


def test_the_report_has_every_modality_interval_and_efficiency(tiny_run, tmp_path) -> None:
    report = analyze(AnalyzeSettings(run=str(tiny_run), states=64, worlds=8, resamples=100,
                                     **QUICK_PID))
    names = ["rgb", "depth", "audio", "proprio", "touch"]
    assert report["modalities"] == names and report["states"] == 64
    for v in ("agreement", "neg_kl"):
        per = report["shapley"][v]
        assert set(per) == set(names)
        assert all(x["ci"][0] <= x["value"] <= x["ci"][1] for x in per.values())
        assert len(report["interaction_index"][v]) == 10
        gap = sum(x["value"] for x in per.values()) - (
            report["coalition_values"][v]["+".join(names)] - report["coalition_values"][v]["none"])
        assert abs(gap) < 1e-9 and abs(report["efficiency_gap"][v]) < 1e-9
    assert report["coalition_values"]["agreement"]["+".join(names)] == 1.0
    pairs = [f"{a}*{b}" for i, a in enumerate(names) for b in names[i + 1:]]
    types = report["interaction_types"]["pairs"]
    assert list(types) == pairs
    assert all(sum(f["value"] for f in x["fractions"].values()) == pytest.approx(1.0)
               for x in types.values())
    pid = report["pid"]["pairs"]
    assert list(pid) == pairs and all(set(x) == {"model", "data"} for x in pid.values())
    for x in pid.values():  # the atoms in bits, summing to the pair's information
        for target in x.values():
            assert sum(target[a] for a in ("R", "U1", "U2", "S")) == pytest.approx(
                target["mi"], abs=1e-6)
    curves = report["robustness"]["offline"]
    assert set(curves) == {"noise", "dropout"} and set(curves["noise"]) == {*names, "all"}
    assert all(c["scores"][0] == 1.0 and len(c["ci"]) == 10 for c in curves["noise"].values())
    paths = write(report, tmp_path / "out")
    assert json.loads(paths["json"].read_text())["shapley"] == report["shapley"]
    text = paths["md"].read_text()
    for section in ("| audio |", "## Interaction types", "## Partial information",
                    "## Robustness"):
        assert section in text
    for key in ("png_agreement", "png_interaction_types", "png_pid_model", "png_pid_data",
                "png_robustness_offline_noise", "png_robustness_offline_dropout"):
        assert paths[key].stat().st_size > 1000, key


def test_values_choose_the_value_functions_reported(tiny_run) -> None:
    report = analyze(AnalyzeSettings(run=str(tiny_run), states=32, worlds=8, resamples=100,
                                     values=["neg_kl"], **QUICK_PID))
    assert set(report["shapley"]) == set(report["interaction_index"]) == {"neg_kl"}


def test_more_than_six_modalities_take_sampled_orders_near_the_exact_values() -> None:
    names = tuple(f"s{i}" for i in range(7))
    spec = ObsSpec(tuple(ModalitySpec(n, "vector", (3,), "float32", 10.0) for n in names))
    torch.manual_seed(0)
    policy = DeterministicPolicy(ActorCritic(spec, ActionSpec("discrete", n=4))).eval()
    rng = np.random.default_rng(0)
    obs = {n: rng.standard_normal((128, 3)).astype(np.float32) for n in names}
    settings = AnalyzeSettings(run="x", permutations=100, resamples=100)
    results, types, logits = offline_analysis(policy, obs, names, None, settings)
    every = values_of_logits(coalition_logits(policy, obs, names), names)["agreement"]
    exact = shapley_weights(names) @ np.array([every[s].mean() for s in coalitions(names)])
    sampled = results["agreement"]
    assert not sampled.exact and len(logits) < 2 ** 7  # only the coalitions the orders visit
    assert abs(sampled.efficiency_gap) < 1e-9
    for i, n in enumerate(names):
        lo, hi = sampled.ci[n]
        assert lo - 0.01 <= exact[i] <= hi + 0.01, (n, exact[i], lo, hi)
    assert len(types["pairs"]) == 21


def test_a_run_trained_without_dropout_gets_the_warning() -> None:
    names = ("rgb", "audio")
    assert dropout_warning(RunSettings(), names) is None  # the defaults drop modalities
    clean = RunSettings(modality_dropout=0.0, episode_dropout=0.0)
    assert "trained without modality dropout of rgb, audio" in dropout_warning(clean, names)
    assert dropout_warning(RunSettings(modality_dropout=0.0, episode_dropout=0.0,
                                       episode_dropout_of={"audio": 0.3}), names) is not None
    assert dropout_warning(RunSettings(modality_dropout=0.0, episode_dropout=0.0,
                                       episode_dropout_of={"audio": 0.3, "rgb": 0.1}),
                           names) is None
    # the per-modality overrides can switch every modality's dropout off, too
    off = {"rgb": 0.0, "audio": 0.0}
    assert "of rgb, audio" in dropout_warning(
        RunSettings(modality_dropout_of=off, episode_dropout_of=off), names)


def test_bad_settings_name_the_setting(tmp_path) -> None:
    with pytest.raises(ConfigError, match="states=4 is invalid; it must be an integer >= 32"):
        AnalyzeSettings(run="x", states=4).validate()
    with pytest.raises(ConfigError, match="removal='drop' is unknown"):
        AnalyzeSettings(run="x", removal="drop").validate()
    with pytest.raises(ConfigError, match="needs run=DIR"):
        AnalyzeSettings().validate()
    with pytest.raises(ConfigError, match="context='all' is unknown"):
        AnalyzeSettings(run="x", context="all").validate()
    with pytest.raises(ConfigError, match="threshold=0.7 is invalid"):
        AnalyzeSettings(run="x", threshold=0.7).validate()
    with pytest.raises(ConfigError, match="clusters=1 is invalid"):
        AnalyzeSettings(run="x", clusters=1).validate()
    with pytest.raises(ConfigError, match=r"names \['accuracy'\], which are unknown; choose "
                                          "among agreement, neg_kl, success"):
        AnalyzeSettings(run="x", values=["agreement", "accuracy"]).validate()
    with pytest.raises(ConfigError, match=r"values \['success'\] are closed-loop; give "
                                          "episodes=N"):
        AnalyzeSettings(run="x", values=["success"]).validate()
    proc = subprocess.run([SENSORIUM, "analyze", f"run={tmp_path}"], capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode != 0 and "no complete checkpoint" in proc.stderr + proc.stdout


def test_closed_loop_values_switch_the_coalitions_modalities_off(tiny_run) -> None:
    trained = load_trained(tiny_run)
    names = trained.obs_spec.names
    blind = trained.evaluate(8, 4, absent=names, per_episode=True)["per_episode"]
    # with every sense off a feed-forward policy acts the same at every step: its greedy
    # episodes all last as long (1 step if that act is stop, else the time limit)
    assert len(blind["length"]) == 8 and len(set(blind["length"])) == 1
    with pytest.raises(ValueError, match=r"names \['sonar'\], which the policy lacks"):
        trained.evaluate(4, 4, absent=("sonar",))
    report = analyze(AnalyzeSettings(run=str(tiny_run), states=32, worlds=8, resamples=100,
                                     episodes=20, **QUICK_PID))
    assert report["episodes"] == 20
    for v in ("success", "return", "spl"):
        per = report["shapley"][v]
        assert set(per) == set(names) and abs(report["efficiency_gap"][v]) < 1e-9
        assert all(x["ci"][0] <= x["value"] + 1e-12 and x["value"] <= x["ci"][1] + 1e-12
                   for x in per.values())
    online = report["robustness"]["online"]
    assert report["robustness"]["score"]["online"] == "success"
    assert all(len(c["scores"]) == 10 for per in online.values() for c in per.values())
    with pytest.raises(ConfigError, match="episodes=5 is too few for an interval"):
        AnalyzeSettings(run="x", episodes=5).validate()
