"""``sensorium analyze`` settings (a Hydra structured config; validated before any work)."""

from __future__ import annotations

from dataclasses import dataclass, field

from perception.settings import ConfigError, require_float, require_int

WHERE = "analyze"

#: Fewer states than this give no meaningful bootstrap interval
MIN_STATES = 32
#: ... and fewer episodes than this per coalition
MIN_EPISODES = 20


@dataclass
class AnalyzeSettings:
    """What each modality of a trained run contributes, and how pairs interact."""

    run: str = ""
    """The run folder (written by ``sensorium train``)."""
    states: int = 2048
    """States visited by the full policy (its own rollouts, sampled actions) on which
    every coalition of modalities is evaluated."""
    worlds: int = 32
    """Worlds stepped together in those rollouts."""
    removal: str = "presence"
    """How a modality outside a coalition is removed: presence (its flag off: the policy's
    own absent path), zeros, mean (over the states) or permute (another state's data)."""
    episodes: int = 0
    """Closed-loop episodes per coalition for the online values (success, return, SPL;
    2^M times this many episodes in all); 0 = the offline values only."""
    values: list[str] = field(default_factory=list)
    """Value functions whose Shapley values are reported: agreement and neg_kl (offline),
    success, return and spl (closed loop, with episodes); empty = every one there is."""
    resamples: int = 1000
    """Bootstrap resamples of the states for every interval."""
    seed: int = 0
    """Seed of the rollout worlds, the permutation and the bootstrap."""
    reference: str = ""
    """Another run (e.g. late fusion of the same budget) put through the same robustness
    perturbations, for effective robustness; empty = none."""
    permutations: int = 200
    """Sampled orders for the Shapley values of runs with more than 6 modalities (exact
    over every coalition up to 6)."""
    threshold: float = 0.1
    """Interaction types: the total variation from the no-modality decision above which a
    modality responds, and the change of confidence that counts as modulation."""
    context: str = "none"
    """Interaction types: the pair alone (none: the other modalities absent) or inside the
    full policy (rest: the others present)."""
    clusters: int = 0
    """PID: k-means clusters of each modality's encoder features; 0 = the largest k <= 8
    whose joint (k * k * actions cells) dit's solver takes."""
    shuffles: int = 10
    """PID: shuffled-target repeats for the null (the estimator's bias)."""
    pid_resamples: int = 20
    """PID: bootstrap resamples of the states for each atom's interval (each one a solve
    per pair and target: the PID's cost grows with shuffles + pid_resamples)."""
    out: str = ""
    """Report folder; empty = <run>/analysis."""

    def validate(self) -> None:
        from analysis.coalitions import REMOVALS

        if not self.run:
            raise ConfigError("sensorium analyze needs run=DIR (a folder written by "
                              "sensorium train)")
        require_int(WHERE, "states", self.states, MIN_STATES)
        require_int(WHERE, "worlds", self.worlds, 1, self.states)
        require_int(WHERE, "resamples", self.resamples, 100)
        require_int(WHERE, "episodes", self.episodes, 0)
        require_int(WHERE, "permutations", self.permutations, 2)
        require_float(WHERE, "threshold", self.threshold, 0.0, 0.5, lo_open=True)
        if self.clusters:
            require_int(WHERE, "clusters", self.clusters, 2)
        require_int(WHERE, "shuffles", self.shuffles, 1)
        require_int(WHERE, "pid_resamples", self.pid_resamples, 2)
        if self.context not in ("none", "rest"):
            raise ConfigError(f"{WHERE}: context={self.context!r} is unknown; choose none "
                              "(the pair alone) or rest (the other modalities present)")
        if 0 < self.episodes < MIN_EPISODES:
            raise ConfigError(f"{WHERE}: episodes={self.episodes} is too few for an interval; "
                              f"use 0 (offline values only) or >= {MIN_EPISODES}")
        from analysis.closed_loop import ONLINE_VALUES
        from analysis.coalitions import OFFLINE_VALUES

        unknown = [v for v in self.values if v not in (*OFFLINE_VALUES, *ONLINE_VALUES)]
        if unknown:
            raise ConfigError(f"{WHERE}: values={list(self.values)} names {unknown}, which are "
                              f"unknown; choose among {', '.join(OFFLINE_VALUES + ONLINE_VALUES)}")
        online = [v for v in self.values if v in ONLINE_VALUES]
        if online and not self.episodes:
            raise ConfigError(f"{WHERE}: values {online} are closed-loop; give episodes=N "
                              f"(>= {MIN_EPISODES}) or leave them out")
        if self.removal not in REMOVALS:
            raise ConfigError(f"{WHERE}: removal={self.removal!r} is unknown; choose one of "
                              f"{', '.join(REMOVALS)}")
