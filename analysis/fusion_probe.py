"""Does a fusion method fuse? Supervised training on ModalityProbe, whose answer is known.

On ``synergy`` (answer = XOR of a bit only modality a shows and a bit only b
shows) a method that decides per modality (``late``) cannot beat chance,
while methods that combine features before deciding can. On ``redundant``
(both show the answer) a method trained with modality dropout keeps its
accuracy when one modality is absent.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from envs.modality_probe import ModalityProbeVectorEnv
from perception.augment import ModalityDropout
from perception.model import PerceptionModel
from perception.spec import presence_key


def probe_model_settings() -> dict[str, Any]:
    """Encoders sized for the probe's small inputs (32x32 image, 0.1 s mono audio)."""
    return {"image": {"channels": [16, 32, 32], "out_dim": 32},
            "audio": {"channels": 32, "out_dim": 32},
            "vector": {"out_dim": 16}}


@dataclass
class ProbeRun:
    """Settings of one supervised probe run."""

    interaction: str = "synergy"
    """ModalityProbe interaction (see envs.modality_probe)."""
    fusion: dict[str, Any] = field(default_factory=lambda: {"method": "concat"})
    """Fusion settings (``method`` and its options)."""
    steps: int = 300
    """Adam steps."""
    batch: int = 128
    """Episodes per step (fresh ones every step)."""
    lr: float = 3e-3
    """Adam learning rate."""
    modality_dropout: float = 0.0
    """Probability of dropping each modality per sample in training (at least one stays)."""
    eval_episodes: int = 2048
    """Fresh episodes for the accuracies."""
    seed: int = 0
    """Seed of the data and the weights."""
    probe: dict[str, Any] = field(default_factory=dict)
    """Extra ModalityProbe settings (modalities, noise...)."""


class ProbeClassifier(nn.Module):
    """Perception model + readout; the readout is linear when the fusion method needs it."""

    def __init__(self, env: ModalityProbeVectorEnv, fusion: dict[str, Any]) -> None:
        super().__init__()
        self.perception = PerceptionModel(env.obs_spec, probe_model_settings(), fusion)
        d, n = self.perception.out_dim, env.action_spec.n
        if self.perception.fusion.linear_readout:
            self.readout: nn.Module = nn.Linear(d, n)
        else:
            self.readout = nn.Sequential(nn.Linear(d, 64), nn.ReLU(), nn.Linear(64, n))

    def forward(self, obs: dict[str, Tensor]) -> Tensor:
        state, _ = self.perception(obs)
        return self.readout(state)


def _batch(env: ModalityProbeVectorEnv, obs: dict[str, np.ndarray]
           ) -> tuple[dict[str, Tensor], Tensor, dict[str, np.ndarray]]:
    """Tensors of the current episodes, their answers, and the next episodes' observations."""
    labels = env.expert_actions()
    x = {k: torch.from_numpy(v) for k, v in obs.items()}
    nxt, *_ = env.step(labels)  # one-step episodes: the next observation is a new episode
    return x, torch.from_numpy(labels), nxt


def accuracy(model: ProbeClassifier, env: ModalityProbeVectorEnv, episodes: int,
             seed: int, absent: tuple[str, ...] = ()) -> float:
    """Share of right answers on fresh episodes, with the modalities in `absent` switched off."""
    model.eval()
    obs, _ = env.reset(seed=seed)
    right = total = 0
    with torch.no_grad():
        while total < episodes:
            x, y, obs = _batch(env, obs)
            for name in absent:
                x[presence_key(name)] = torch.zeros(len(y), dtype=torch.bool)
            right += int((model(x).argmax(1) == y).sum())
            total += len(y)
    return right / total


@dataclass
class FittedProbe:
    """A trained probe classifier, the env it learned on, and how the training went."""

    model: ProbeClassifier
    env: ModalityProbeVectorEnv
    losses: list[float]
    """Training loss of every step."""
    seconds: float
    """Training time."""


def fit_probe(run: ProbeRun) -> FittedProbe:
    """Train a probe classifier on fresh episodes every step (seeded by ``run.seed``)."""
    torch.manual_seed(run.seed)
    env = ModalityProbeVectorEnv(num_envs=run.batch, interaction=run.interaction, **run.probe)
    model = ProbeClassifier(env, run.fusion)
    names = env.obs_spec.names
    dropout = ModalityDropout(names, p=run.modality_dropout, min_present=1) \
        if run.modality_dropout else None
    opt = torch.optim.Adam(model.parameters(), lr=run.lr)
    gen = torch.Generator().manual_seed(run.seed)
    obs, _ = env.reset(seed=run.seed)
    t0 = time.perf_counter()
    losses = []
    for step in range(run.steps):
        x, y, obs = _batch(env, obs)
        if step < 20:
            model.perception.update_normalizers(x)
        model.train()
        if dropout is not None:
            x = dropout.apply(x, generator=gen)
        loss = nn.functional.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    model.eval()
    return FittedProbe(model, env, losses, time.perf_counter() - t0)


def train_probe(run: ProbeRun) -> dict[str, Any]:
    """Train a probe classifier and report accuracy with every modality, and with each absent."""
    fitted = fit_probe(run)
    model, env = fitted.model, fitted.env
    eval_seed = run.seed + 10_000
    result = {
        "interaction": run.interaction,
        "fusion": run.fusion["method"],
        "modality_dropout": run.modality_dropout,
        "train_seconds": fitted.seconds,
        "final_loss": float(np.mean(fitted.losses[-20:])),
        "accuracy": accuracy(model, env, run.eval_episodes, eval_seed),
    }
    for name in env.obs_spec.names:
        result[f"accuracy_{name}_absent"] = accuracy(model, env, run.eval_episodes, eval_seed,
                                                     absent=(name,))
    return result
