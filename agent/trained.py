"""A trained run, loaded back from its folder: evaluate it, film it, export it."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import torch

from agent.checkpoint import load_checkpoint, read_checkpoint_meta
from agent.evaluate import Perturbation, evaluate_on_new_worlds, record_policy_video
from agent.observations import ObservationPipeline
from agent.policy import ActorCritic, DeterministicPolicy
from agent.run_setup import TrainSetup, pick_device
from perception.spec import ActionSpec, ObsSpec


@dataclasses.dataclass
class Trained:
    """A run's policy and what it was trained on."""

    run_dir: Path
    setup: TrainSetup
    obs_spec: ObsSpec
    action_spec: ActionSpec
    policy: ActorCritic
    device: torch.device
    step: int

    @property
    def pipeline(self) -> ObservationPipeline:
        return ObservationPipeline(self.obs_spec, self.policy, self.device)

    def evaluate(self, episodes: int, num_envs: int = 32, seed: int = 12345,
                 deterministic: bool = True, absent: tuple[str, ...] = (),
                 per_episode: bool = False, perturb: Perturbation | None = None
                 ) -> dict[str, Any]:
        """See :func:`agent.evaluate.evaluate_policy`; fresh worlds made from `seed`."""
        result = evaluate_on_new_worlds(self.policy, self.setup.env, self.pipeline, episodes,
                                        seed, num_envs, deterministic, absent, per_episode,
                                        perturb)
        return {"run": str(self.run_dir), "env_steps": self.step, "seed": seed,
                "deterministic": deterministic, **result}

    def video(self, out: Path, episodes: int, seed: int = 12345,
              deterministic: bool = True) -> dict[str, Any]:
        return record_policy_video(self.policy, self.setup.env, self.pipeline, out, episodes,
                                   seed, deterministic)

    def deployable(self) -> DeterministicPolicy:
        return DeterministicPolicy(self.policy).eval()


def load_trained(run_dir: Path, device: str = "cpu", step: int | None = None) -> Trained:
    """The policy of `run_dir`'s last (or `step`'s) checkpoint, on `device`."""
    ckpt_dir = Path(run_dir) / "checkpoints"
    meta = read_checkpoint_meta(ckpt_dir, step)
    config = meta["config"]
    setup = TrainSetup(config["env"], config["fusion"], config["agent"], config["model"],
                       config["policy"], config["run"])
    obs_spec = ObsSpec.from_json(meta["obs_spec"])
    action_spec = ActionSpec.from_json(meta["action_spec"])
    priv = int(meta.get("privileged_dim", 0))
    dev = pick_device(device)
    policy = ActorCritic(obs_spec, action_spec, setup.model, setup.fusion, setup.policy,
                         priv).to(dev)
    loaded = load_checkpoint(ckpt_dir, {"policy": policy}, map_location=dev, step=step,
                             strict=False)
    policy.eval()
    return Trained(Path(run_dir), setup, obs_spec, action_spec, policy, dev, loaded.step)
