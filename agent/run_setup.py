"""What every training run is built from: its settings, and the env and policy they make."""

from __future__ import annotations

import dataclasses
from typing import Any, NamedTuple

import torch
from gymnasium.vector import AutoresetMode

from agent.algorithms import algorithm_config
from agent.config import ROBUST_RANDOMIZER, PolicyConfig, RunSettings
from agent.observations import select_modalities
from agent.policy import ActorCritic
from envs.factory import env_config, make_vector_env, obs_spec_of
from perception.augment import RandomizerConfig
from perception.configs.model import PerceptionConfig
from perception.fusion import fusion_config
from perception.settings import ConfigError, config_from_kwargs
from perception.spec import ActionSpec, ObsSpec


def pick_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ConfigError("device=cuda but torch sees no CUDA device; use device=auto or cpu")
    return torch.device(name)


def action_spec_of(env: Any) -> ActionSpec:
    spec = getattr(env, "action_spec", None)
    return spec if isinstance(spec, ActionSpec) else ActionSpec.from_space(
        env.single_action_space)


class RunParts(NamedTuple):
    """What every training algorithm builds first, the same way."""

    device: torch.device
    env: Any  # the batched env, SAME_STEP autoreset
    env_spec: ObsSpec  # every sensor of the env
    obs_spec: ObsSpec  # the policy's sensors (run.modalities)
    action_spec: ActionSpec
    env_privileged_dim: int  # size of the env's privileged_state() (0 = none)
    policy: ActorCritic  # on `device`; its critic reads privileged state when configured
    randomizer: RandomizerConfig | None


def build_run_parts(setup: TrainSetup, who: str) -> RunParts:
    """Device, threads, the env (SAME_STEP checked) and the policy, for algorithm `who`.

    Seeds torch with ``run.seed`` before the weights are made, so every rank
    builds the same policy; the caller reseeds per rank afterwards.
    """
    run = setup.run
    device = pick_device(run.device)
    if run.threads:
        torch.set_num_threads(run.threads)
    torch.manual_seed(run.seed)  # same initial weights on every rank
    env = make_vector_env(setup.env, run.num_envs)
    mode = env.metadata.get("autoreset_mode")
    if mode != AutoresetMode.SAME_STEP:
        raise ConfigError(
            f"{who} needs an env with SAME_STEP autoreset, got {mode}; "
            "make it with envs.make_vector_env (which asks for SAME_STEP)")
    env_spec = obs_spec_of(env)
    obs_spec = select_modalities(env_spec, run.modalities)
    action_spec = action_spec_of(env)
    policy_cfg = setup.policy
    env_priv = int(getattr(env, "privileged_dim", 0))
    if policy_cfg.privileged_critic and not env_priv:
        raise ConfigError("policy.privileged_critic=true needs an env with privileged_state()"
                          " (AudioVisualNav has one)")
    policy = ActorCritic(obs_spec, action_spec, setup.model, setup.fusion, policy_cfg,
                         env_priv if policy_cfg.privileged_critic else 0).to(device)
    randomizer = (config_from_kwargs(RandomizerConfig,
                                     {**ROBUST_RANDOMIZER, **(run.randomizer or {})},
                                     "randomizer")
                  if run.randomize else None)
    return RunParts(device, env, env_spec, obs_spec, action_spec, env_priv, policy, randomizer)


@dataclasses.dataclass
class TrainSetup:
    """Everything a run is built from, typed once here: a part given as plain settings (a
    mapping: the composed Hydra config, a checkpoint's meta, a Python caller) becomes its
    dataclass, checked, and the dataclasses travel."""

    env: Any  # the world's config (envs.factory.env_config)
    fusion: Any  # the fusion method's Config (perception.fusion.fusion_config)
    agent: Any  # the algorithm's settings: PPOConfig, BCConfig or DAggerConfig
    model: PerceptionConfig
    policy: PolicyConfig
    run: RunSettings

    def __post_init__(self) -> None:
        self.env = env_config(self.env)
        self.fusion = fusion_config(self.fusion)
        self.agent = algorithm_config(self.agent)
        for key, cls, where in (("model", PerceptionConfig, "perception"),
                                ("policy", PolicyConfig, "policy"),
                                ("run", RunSettings, "train")):
            value = getattr(self, key)
            if not isinstance(value, cls):
                setattr(self, key, config_from_kwargs(cls, value or {}, where))

    def to_dict(self) -> dict[str, Any]:
        """Every part as plain settings (what checkpoints and exported files record)."""
        return {f.name: plain(getattr(self, f.name)) for f in dataclasses.fields(self)}


def plain(settings: Any) -> dict[str, Any]:
    """Settings as a plain dict (a dataclass's fields, or a mapping's items)."""
    return dataclasses.asdict(settings) if dataclasses.is_dataclass(settings) else dict(settings)


def default_run_name(setup: TrainSetup) -> str:
    env = plain(setup.env)
    env_id = env.get("env_id") or env.get("id", "env")  # wrapped third-party envs
    name = str(env_id).split("/")[-1].split("-")[0].lower()
    return f"{name}-{setup.fusion.method}-{setup.agent.name}-s{setup.run.seed}"
