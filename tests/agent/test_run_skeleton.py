"""The run skeleton's shared parts: derived settings, episode statistics from what a world
declares, the one dispatch, and an agent/ that names no world's metrics."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest

import envs  # noqa: F401  (registers the worlds)
from agent.config import COMPILE_MINUTES, COMPILE_STEPS, RunSettings
from agent.imitation_runner import BCRunner, DAggerRunner
from agent.runner import OnPolicyRunner
from agent.training import RUNNERS
from envs.audiovisual_nav.config import AudioVisualNavConfig
from envs.factory import make_vector_env
from envs.metrics import EpisodeMetric, EpisodeTally, episode_metrics_of
from envs.modality_probe.config import ModalityProbeConfig

REPO = Path(__file__).resolve().parents[2]


def test_compile_turns_itself_on_for_runs_that_repay_it() -> None:
    assert RunSettings().compiles  # the plain command: 2 M steps
    assert not RunSettings(total_steps=COMPILE_STEPS - 1).compiles
    assert RunSettings(total_steps=1000, max_minutes=COMPILE_MINUTES).compiles
    assert not RunSettings(max_minutes=COMPILE_MINUTES / 2).compiles
    assert not RunSettings(compile=False).compiles and RunSettings(compile=True,
                                                                   total_steps=64).compiles


def test_seeds_are_derived_in_one_place() -> None:
    run = RunSettings(seed=3)
    assert run.rank_seed(0) == 3 and run.rank_seed(1) == 3 + 7919
    assert run.rank_seed(1, iteration=2) == 3 + 7919 + 2 * 104729
    assert run.eval_seed == 10_003


def test_each_algorithm_has_one_runner() -> None:
    assert {"ppo": OnPolicyRunner, "bc": BCRunner, "dagger": DAggerRunner} == RUNNERS
    assert all(r.config_type().name == name for name, r in RUNNERS.items())


def test_worlds_declare_their_metrics_through_every_layer() -> None:
    avn = dataclasses.asdict(AudioVisualNavConfig())
    batched = make_vector_env(avn, 2)
    single = gym.make(avn.pop("id"), **avn)
    synced = gym.vector.SyncVectorEnv([lambda: single])
    try:
        names = [m.name for m in episode_metrics_of(batched)]
        assert names == ["success", "spl", "collisions"]
        assert episode_metrics_of(single) == episode_metrics_of(batched)
        assert episode_metrics_of(synced) == episode_metrics_of(batched)
        assert [m.higher_is_better for m in episode_metrics_of(batched)] == [True, True, False]
        assert episode_metrics_of(batched)[0].key == "success_rate"
    finally:
        batched.close()
        synced.close()
    probe = make_vector_env(dataclasses.asdict(ModalityProbeConfig()), 2)
    assert [m.name for m in episode_metrics_of(probe)] == ["correct"]
    assert episode_metrics_of(gym.make("CartPole-v1")) == ()  # a plain env: return, length


def test_episode_tally_records_return_length_and_the_declared_metrics() -> None:
    stats = EpisodeTally(3, (EpisodeMetric("score", "a test metric", True),), window=4)
    none = np.zeros(3, bool)
    stats.step(np.ones(3), none, {})
    done = np.array([True, False, True])
    stats.step(np.array([1.0, 2.0, 3.0]), done,
               {"final_info": {"score": np.array([0.5, 9.0, 1.5]), "other": np.ones(3)}})
    assert list(stats.ended["return"]) == [2.0, 4.0] and list(stats.ended["length"]) == [2, 2]
    assert list(stats.ended["score"]) == [0.5, 1.5] and "other" not in stats.ended
    assert stats.ret.tolist() == [0.0, 3.0, 0.0] and stats.length.tolist() == [0, 2, 0]
    assert stats.means() == {"episode_length": 2.0, "episode_return": 3.0,
                                       "episode_score": 1.0}
    stats.clear()
    assert stats.means() == {}


def test_agent_names_no_world_metric() -> None:
    """The trainer reports what the world declares (envs.metrics); it names none itself."""
    names = re.compile(r"""["'](success|spl|collisions|correct)["']""")
    found = [f"{p.relative_to(REPO)}:{i}" for p in sorted((REPO / "agent").rglob("*.py"))
             for i, line in enumerate(p.read_text().splitlines(), 1) if names.search(line)]
    assert not found, found


@pytest.mark.parametrize("path", sorted((REPO / "agent").rglob("*.py")), ids=lambda p: p.name)
def test_no_agent_file_is_longer_than_a_sitting(path: Path) -> None:
    assert len(path.read_text().splitlines()) <= 400
