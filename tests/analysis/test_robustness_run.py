"""Robustness curves of a real tiny trained run: perturbations, offline and online curves."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from agent.trained import load_trained
from analysis.coalitions import offline_values
from analysis.robustness_curves import LEVELS
from analysis.robustness_run import (
    ALL,
    condition_rng,
    dropped,
    modality_scales,
    noised,
    offline_curves,
    online_curves,
    robustness,
    rollout_states,
    state_score,
    write_plots,
)
from deploy.plot import curves_png
from perception.settings import ConfigError
from perception.spec import ActionSpec, presence_key
from tests.deploy.conftest import train_tiny

STATES = 64


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """The tiny run, loaded, and STATES states of its own rollouts."""
    trained = load_trained(train_tiny(tmp_path_factory.mktemp("robustness") / "run"))
    obs, h, _ = rollout_states(trained, STATES, 8, seed=0)
    return trained, obs, h


def _obs(n: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
    return {"rgb": rng.integers(0, 256, (n, 8, 8, 3), dtype=np.uint8),
            "audio": rng.normal(0, 0.1, (n, 2, 50)).astype(np.float32)}


def test_level_0_gives_the_observation_back_and_draws_nothing() -> None:
    obs = _obs(4, np.random.default_rng(0))
    rng = np.random.default_rng(1)
    for out in (noised(obs, ["rgb", "audio"], 0.0, {"rgb": 40.0, "audio": 0.1}, rng),
                dropped(obs, ["rgb", "audio"], 0.0, rng)):
        assert out.keys() == obs.keys() and all(out[k] is obs[k] for k in obs)
    assert rng.random() == np.random.default_rng(1).random()


def test_noise_has_the_requested_sd_in_scale_units_and_keeps_the_dtype_and_range() -> None:
    rng = np.random.default_rng(0)
    x = {"audio": rng.normal(0, 0.1, (200, 1000)).astype(np.float32),
         "rgb": np.full((200, 1000), 128, np.uint8)}
    out = noised(x, ["audio", "rgb"], 0.3, {"audio": 0.1, "rgb": 20.0}, rng)
    assert out["audio"].dtype == np.float32 and out["rgb"].dtype == np.uint8
    # sd 0.3 * 0.1; on the uint8 data 0.3 * 20 = 6 (rounding adds a variance of 1/12)
    assert np.std(out["audio"] - x["audio"]) == pytest.approx(0.03, rel=0.01)
    assert np.std(out["rgb"].astype(float) - 128) == pytest.approx(np.sqrt(36 + 1 / 12),
                                                                   rel=0.01)
    edges = {"rgb": np.tile(np.array([0, 255], np.uint8), (100, 500))}
    big = noised(edges, ["rgb"], 0.9, {"rgb": 100.0}, rng)["rgb"]
    assert big.dtype == np.uint8 and big.min() == 0 and big.max() == 255  # clipped, no wrap
    assert (big[:, 0::2] < 128).mean() > 0.6  # a wrap-around would send many 0s up high


def test_dropout_turns_each_flag_off_with_its_probability_independently() -> None:
    n, p = 100_000, 0.3
    obs = _obs(n, np.random.default_rng(0))
    obs[presence_key("audio")] = np.arange(n) % 2 == 0  # half already absent
    out = dropped(obs, ["rgb", "audio"], p, np.random.default_rng(1))
    rgb, audio = out[presence_key("rgb")], out[presence_key("audio")]
    assert rgb.dtype == bool and rgb.shape == (n,)
    assert 1 - rgb.mean() == pytest.approx(p, abs=0.01)
    assert not audio[1::2].any()  # off stays off
    assert 1 - audio[0::2].mean() == pytest.approx(p, abs=0.01)
    both_off = (~rgb[0::2] & ~audio[0::2]).mean()
    assert both_off == pytest.approx(p * p, abs=0.01)  # independent
    assert out["rgb"] is obs["rgb"]  # the data itself is untouched


def test_scales_are_the_pooled_sd_and_1_for_a_constant_modality() -> None:
    obs = _obs(50, np.random.default_rng(0))
    obs["touch"] = np.zeros((50, 4), np.float32)
    scales = modality_scales(obs, ["rgb", "audio", "touch"], chunk=7)
    assert scales["rgb"] == pytest.approx(np.std(obs["rgb"].astype(np.float64)), rel=1e-12)
    assert scales["audio"] == pytest.approx(np.std(obs["audio"].astype(np.float64)), rel=1e-9)
    assert scales["touch"] == 1.0


def test_continuous_closeness_is_1_unchanged_0_at_opposite_corners() -> None:
    name, score = state_score(ActionSpec("continuous", shape=(2,), low=(-1.0,), high=(1.0,)),
                              "runs/x")
    a = np.array([[1.0, 1.0], [0.0, 0.0]])
    assert name == "closeness"
    np.testing.assert_allclose(score(a, a), [1.0, 1.0])
    np.testing.assert_allclose(score(-a, a), [0.0, 1.0])
    with pytest.raises(ConfigError, match="run runs/y acts in an unbounded continuous space"):
        state_score(ActionSpec("continuous", shape=(2,), low=(-np.inf,), high=(np.inf,)),
                    "runs/y")


def test_offline_dropout_curves_are_the_coalition_agreement_of_the_dropped_states(tiny) -> None:
    trained, obs, _ = tiny
    policy, names = trained.deployable(), trained.obs_spec.names
    levels = (0.0, 0.5, 0.9)
    score, curves = offline_curves(policy, obs, None, names, modality_scales(obs, names),
                                   trained.action_spec, levels=levels, kinds=("dropout",),
                                   targets=("audio", ALL), resamples=200, seed=3)
    assert score == "agreement"
    agreement = offline_values(policy, obs, names)["agreement"]
    for target, curve in curves["dropout"].items():
        assert curve.scores[0] == 1.0 and curve.ci[0] == (1.0, 1.0)
        for level, got, (lo, hi) in zip(levels[1:], curve.scores[1:], curve.ci[1:]):
            rng = condition_rng(3, "dropout", target, level)  # the same draws, in order
            off = {m: rng.random(STATES) < level for m in (names if target == ALL else
                                                           ("audio",))}
            want = [agreement[frozenset(m for m in names if not off.get(m, np.zeros(
                STATES, bool))[i])][i] for i in range(STATES)]
            assert got == pytest.approx(np.mean(want), abs=1e-12)
            assert lo <= got <= hi


def test_the_report_of_a_run_against_itself_has_zero_effective_robustness(tiny, tmp_path
                                                                          ) -> None:
    trained, obs, h = tiny
    names = trained.obs_spec.names
    out = robustness(trained, obs, h, names, resamples=200, seed=0, reference=trained,
                     worlds=8)
    json.dumps(out)  # JSON-ready
    assert out["levels"] == list(LEVELS) and out["seed"] == 0 and out["score"] == {
        "offline": "agreement"}
    assert set(out["scales"]) == set(names) and "online" not in out
    for kind in ("noise", "dropout"):
        assert set(out["offline"][kind]) == {*names, ALL}
        for target, c in out["offline"][kind].items():
            assert c["scores"][0] == 1.0 and c["modality"] == target and c["kind"] == kind
            assert all(0 <= s <= 1 and lo <= s <= hi for s, (lo, hi) in zip(c["scores"],
                                                                            c["ci"]))
            assert 0 <= c["area"] <= 0.9 + 1e-12
            # the same run on the same states and draws: its own curve, exactly
            assert c["scores"] == out["reference"]["offline"][kind][target]["scores"]
            assert c["effective_robustness"] == 0.0
    for kind in ("noise", "dropout"):  # every sense perturbed hard: some actions change
        assert out["offline"][kind][ALL]["scores"][-1] < 1.0
    paths = write_plots(out, tmp_path, "tiny")
    assert set(paths) == {"robustness_offline_noise", "robustness_offline_dropout"}
    for p in paths.values():
        assert cv2.imread(str(p)).shape == (540, 960, 3)


def test_online_curves_share_level_0_and_their_intervals_hold_the_scores(tiny) -> None:
    trained, _, _ = tiny
    names = trained.obs_spec.names
    scales = {m: 1.0 for m in names}
    score, curves = online_curves(trained, names, scales, 8, levels=(0.0, 0.9),
                                  targets=("audio", ALL), resamples=200, num_envs=4,
                                  score="return")
    assert score == "return"
    clean = trained.evaluate(8, 4, per_episode=True)
    every = [c for per in curves.values() for c in per.values()]
    assert len(every) == 4
    assert {c.scores[0] for c in every} == {clean["mean_return"]}
    for c in every:
        assert all(lo <= s <= hi for s, (lo, hi) in zip(c.scores, c.ci))
        assert c.ci[0][0] < c.ci[0][1]  # the returns vary: a real interval
    # every flag off every step is the policy with no senses, as `absent` makes it
    blind = trained.evaluate(8, 4, per_episode=True,
                             perturb=lambda o: dropped(o, names, 1.0, np.random.default_rng()))
    assert blind == trained.evaluate(8, 4, per_episode=True, absent=names)


def test_online_success_against_the_run_itself_has_zero_effective_robustness(tiny) -> None:
    trained, obs, h = tiny
    out = robustness(trained, obs, h, trained.obs_spec.names, episodes=8, num_envs=4,
                     resamples=200, reference=trained, worlds=8, levels=(0.0, 0.9),
                     kinds=("dropout",), targets=("audio",))
    assert out["score"] == {"offline": "agreement", "online": "success"}
    assert out["eval_seed"] == 12345 and out["episodes"] == 8
    curve = out["online"]["dropout"]["audio"]
    assert curve["scores"] == out["reference"]["online"]["dropout"]["audio"]["scores"]
    assert curve["effective_robustness"] == 0.0


def test_perturb_none_and_the_identity_give_todays_evaluation(tiny) -> None:
    trained, _, _ = tiny
    before = trained.evaluate(8, 4, seed=7, per_episode=True)
    assert trained.evaluate(8, 4, seed=7, per_episode=True, perturb=None) == before
    assert trained.evaluate(8, 4, seed=7, per_episode=True, perturb=dict) == before


def test_a_reference_with_other_modalities_is_refused(tiny) -> None:
    trained, obs, h = tiny
    other = dataclasses.replace(trained, run_dir=Path("runs/late"),
                                obs_spec=trained.obs_spec.select(["rgb", "audio"]))
    with pytest.raises(ConfigError, match=r"reference=runs/late reads modalities "
                                          r"\['rgb', 'audio'\], the run .* reads \['rgb', "):
        robustness(trained, obs, h, trained.obs_spec.names, reference=other)


def test_curves_png_draws_every_series_and_refuses_ragged_ones(tmp_path) -> None:
    x = np.array(LEVELS)
    path = curves_png({"a": (x, 1 - x / 2, 0.9 - x / 2, 1.1 - x / 2), "b": (x, x, x, x)},
                      tmp_path / "c.png", "title", "level", "score")
    img = cv2.imread(str(path))
    assert img.shape == (540, 960, 3)
    blue, orange = np.array([200, 90, 30]), np.array([40, 140, 230])  # COLOURS[0], [1]
    assert (np.abs(img.astype(int) - blue).sum(-1) < 10).sum() > 500
    assert (np.abs(img.astype(int) - orange).sum(-1) < 10).sum() > 500
    with pytest.raises(ValueError, match="series 'c': give \\(x, y, lo, hi\\)"):
        curves_png({"c": (x, x[:3], x, x)}, tmp_path / "d.png", "t", "x", "y")
