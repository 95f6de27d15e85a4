"""From the env's numpy observations to what the policy reads, in one place.

numpy -> torch on the training device -> modality dropout (training only) ->
randomizers (training only) -> the policy's parameter-free frontend.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import torch
from torch import Tensor

from agent.config import RunSettings
from agent.policy import ActorCritic
from perception.augment import ModalityDropout, ObservationRandomizer, RandomizerConfig
from perception.settings import ConfigError
from perception.spec import ObsSpec, SpecError, presence_key


def to_torch(obs: Mapping[str, np.ndarray], device: torch.device) -> dict[str, Tensor]:
    """A batched numpy observation as tensors on `device` (no copy on the CPU)."""
    return {k: torch.as_tensor(np.asarray(v), device=device) for k, v in obs.items()}


def select_modalities(env_spec: ObsSpec, names: list[str] | tuple[str, ...]) -> ObsSpec:
    """The policy's spec: the env's restricted to `names` (``run.modalities``; empty = all)."""
    if not names:
        return env_spec
    try:
        return env_spec.select(list(names))
    except SpecError as e:
        raise ConfigError(f"run.modalities={list(names)}: {e}; name some of them, e.g. "
                          f"modalities=[{','.join(env_spec.names)}]") from e


def _per_modality(names: tuple[str, ...], default: float,
                  overrides: Mapping[str, float] | None) -> list[float]:
    """Each name's probability: its override, else `default` (other overrides ignored)."""
    return [float((overrides or {}).get(n, default)) for n in names]


class ObservationPipeline:
    """Turns env observations into policy inputs; augmentation only while training."""

    def __init__(self, obs_spec: ObsSpec, policy: ActorCritic, device: torch.device,
                 modality_dropout: float = 0.0, randomizer: RandomizerConfig | None = None,
                 seed: int = 0, episode_dropout: float = 0.0,
                 modality_dropout_of: Mapping[str, float] | None = None,
                 episode_dropout_of: Mapping[str, float] | None = None) -> None:
        self.policy, self.device = policy, device
        self.names = obs_spec.names
        self.episode_p = torch.tensor(_per_modality(self.names, episode_dropout,
                                                    episode_dropout_of))
        self._episode_off: Tensor | None = None  # (worlds, modalities): off this episode
        probs = _per_modality(self.names, modality_dropout, modality_dropout_of)
        self.dropout = (ModalityDropout(self.names, p=dict(zip(self.names, probs)),
                                        min_present=1) if any(probs) else None)
        self.randomizer = (ObservationRandomizer(obs_spec, randomizer).train()
                           if randomizer is not None else None)
        self.generator = torch.Generator(device="cpu").manual_seed(seed)

    @classmethod
    def for_training(cls, obs_spec: ObsSpec, policy: ActorCritic, device: torch.device,
                     run: RunSettings, randomizer: RandomizerConfig | None,
                     seed: int) -> ObservationPipeline:
        """The pipeline of a training run: its per-step and whole-episode dropout."""
        return cls(obs_spec, policy, device, run.modality_dropout, randomizer, seed,
                   run.episode_dropout, run.modality_dropout_of, run.episode_dropout_of)

    @property
    def drops_episodes(self) -> bool:
        """Some modality may be off for whole episodes while training."""
        return bool((self.episode_p > 0).any())

    def __call__(self, obs: Mapping[str, np.ndarray], train: bool) -> dict[str, Tensor]:
        """Policy inputs from a batched env observation (modalities outside the spec dropped)."""
        keep = {n: obs[n] for n in self.names}
        keep.update({presence_key(n): obs[presence_key(n)] for n in self.names
                     if presence_key(n) in obs})
        x = to_torch(keep, self.device)
        for n in self.names:  # every modality gets an explicit flag
            key = presence_key(n)
            if key not in x:
                x[key] = torch.ones(x[n].shape[0], dtype=torch.bool, device=self.device)
        off = self._episode_off
        if train and off is not None and off.shape[0] == x[self.names[0]].shape[0]:
            for j, n in enumerate(self.names):
                key = presence_key(n)
                x[key] = x[key] & ~off[:, j]
        if train and self.dropout is not None:
            x = self.dropout.train().apply(x, generator=self.generator)
        if train and self.randomizer is not None:
            x = self.randomizer(x, generator=self.generator)
        with torch.no_grad():
            return self.policy.frontend(x)

    def new_episodes(self, started: np.ndarray) -> None:
        """Draw, for each world whose episode starts, the modalities it lacks all episode.

        A sensor that is missing on a robot is missing for the whole run: per-step
        dropout alone never shows the policy the states it reaches without it (a
        policy without depth bumps into walls it never bumped into in training).
        Each modality is off with its probability (`episode_dropout`, or its entry of
        `episode_dropout_of`); one always stays.
        """
        if not self.drops_episodes:
            return
        started = np.asarray(started, bool)
        n, m = len(started), len(self.names)
        if self._episode_off is None or self._episode_off.shape[0] != n:
            self._episode_off = torch.zeros(n, m, dtype=torch.bool, device=self.device)
        draw = torch.rand(n, m, generator=self.generator) < self.episode_p
        every = draw.all(dim=1)
        if every.any():  # never all of them: keep one at random
            keep = torch.randint(0, m, (n,), generator=self.generator)
            draw[every, keep[every]] = False
        rows = torch.as_tensor(started)
        self._episode_off[rows.to(self.device)] = draw[rows].to(self.device)

    def episode_absent(self) -> dict[str, np.ndarray] | None:
        """Per modality, the worlds whose current episode lacks it (None: no episode dropout)."""
        if self._episode_off is None:
            return None
        off = self._episode_off.cpu().numpy()
        return {n: off[:, j] for j, n in enumerate(self.names)}

    def stack_final(self, final_obs: np.ndarray, rows: np.ndarray) -> dict[str, np.ndarray]:
        """The ``final_obs`` of worlds `rows` (SAME_STEP autoreset) as one batch."""
        keys = final_obs[rows[0]].keys()
        return {k: np.stack([final_obs[i][k] for i in rows]) for k in keys}
