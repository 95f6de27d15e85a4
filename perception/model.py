"""The perception model: raw observations -> encoders -> fusion -> (memory) -> state."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import Tensor, nn

from perception.configs.model import PerceptionConfig
from perception.encoders import build_encoder
from perception.fusion import build_fusion
from perception.memory import Memory
from perception.settings import config_from_kwargs
from perception.spec import ObsSpec, SpecError, presence_key


def presence(obs: Mapping[str, Tensor], names: tuple[str, ...]) -> dict[str, Tensor]:
    """(B,) bool flags per modality: the observation's ``<name>_present``, else all True."""
    batch = next(iter(obs[n] for n in names)).shape[0]
    device = obs[names[0]].device
    out = {}
    for n in names:
        flag = obs.get(presence_key(n))
        if flag is None:
            out[n] = torch.ones(batch, dtype=torch.bool, device=device)
            continue
        # (B,) flags pass as they are; others reshape(-1) (a constant shape): no shape
        # arithmetic in the exported graph
        flag = flag if flag.dim() == 1 else flag.reshape(-1)
        out[n] = flag if flag.dtype == torch.bool else flag.to(torch.bool)
    return out


class PerceptionModel(nn.Module):
    """Built from an ObsSpec: one encoder per modality, one fusion method, optional GRU.

    Absent modalities never change the state, whatever their data (NaN
    included: fusion selects with ``torch.where``). Training data must be
    finite, though: a NaN in an absent row would still reach the encoder's
    weight gradients (0 * NaN).

    ``forward(obs, h)`` takes raw batched arrays keyed by modality name (and
    optional ``<name>_present`` flags) and returns ``(state, h_new)``; ``h`` is
    ``None`` without memory.
    """

    def __init__(self, obs_spec: ObsSpec, cfg: PerceptionConfig | Mapping[str, Any] | None = None,
                 fusion: Any = None) -> None:
        super().__init__()
        if cfg is None or isinstance(cfg, Mapping):
            cfg = config_from_kwargs(PerceptionConfig, cfg or {}, "perception")
        self.cfg = cfg
        self.obs_spec = obs_spec
        self.names = obs_spec.names
        self.encoders = nn.ModuleDict(
            {m.name: build_encoder(m, cfg.for_kind(m.kind)) for m in obs_spec})
        dims = {n: e.out_dim for n, e in self.encoders.items()}
        self.fusion = build_fusion(fusion or {"method": "concat"}, dims)
        self.memory = Memory(self.fusion.out_dim, cfg.memory) if cfg.memory else None
        self.out_dim = cfg.memory or self.fusion.out_dim

    @property
    def recurrent(self) -> bool:
        return self.memory is not None

    def initial_state(self, batch: int) -> Tensor | None:
        if self.memory is None:
            return None
        return self.memory.initial_state(batch).to(next(self.parameters()).device)

    def frontend(self, obs: Mapping[str, Tensor]) -> dict[str, Tensor]:
        """The observation with each modality's parameter-free preprocessing applied.

        ``forward(frontend(obs), frontend_done=True) == forward(obs)``; training
        stores these once per sample instead of recomputing them every epoch.
        """
        out = dict(obs)
        for n, enc in self.encoders.items():
            out[n] = enc.frontend(obs[n])
        return out

    def encode(self, obs: Mapping[str, Tensor], frontend_done: bool = False
               ) -> tuple[dict[str, Tensor], dict[str, Tensor]]:
        """Per-modality features and presence flags (what fusion and coordination losses see)."""
        for n in self.names:
            if n not in obs:
                raise SpecError(
                    f"observation lacks modality {n!r}; the model was built for "
                    f"{', '.join(self.names)}"
                )
        present = presence(obs, self.names)
        if frontend_done:
            return {n: enc.from_frontend(obs[n]) for n, enc in self.encoders.items()}, present
        return {n: enc(obs[n]) for n, enc in self.encoders.items()}, present

    def fuse(self, features: dict[str, Tensor], present: dict[str, Tensor]) -> Tensor:
        return self.fusion(features, present)

    def forward(self, obs: Mapping[str, Tensor], h: Tensor | None = None,
                frontend_done: bool = False) -> tuple[Tensor, Tensor | None]:
        state = self.fuse(*self.encode(obs, frontend_done))
        if self.memory is None:
            return state, None
        if h is None:
            h = self.initial_state(state.shape[0])
        return self.memory(state, h)

    def forward_sequence(self, obs: Mapping[str, Tensor], h0: Tensor | None, starts: Tensor,
                         frontend_done: bool = False) -> Tensor:
        """States of (T, B, ...) sequences; the memory restarts where ``starts`` (T, B) is True.

        Without memory this is the plain forward, reshaped to (T, B, out_dim).
        """
        t, b = starts.shape
        flat = {k: v.reshape(t * b, *v.shape[2:]) for k, v in obs.items()}
        state = self.fuse(*self.encode(flat, frontend_done)).reshape(t, b, -1)
        if self.memory is None:
            return state
        return self.memory.forward_sequence(state, h0, starts)

    @torch.no_grad()
    def update_normalizers(self, obs: Mapping[str, Tensor], frontend_done: bool = False) -> None:
        """Fold a batch of training observations into the encoders' running statistics."""
        flags = presence(obs, self.names)
        for n, enc in self.encoders.items():
            rows = flags[n]
            if rows.any():
                enc.update_normalizer(obs[n][rows], frontend_done)
