"""Gated fusion: learned gates per modality weigh projected features (a gated multimodal unit)."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from perception.configs.fusion import GatedConfig
from perception.fusion.base import Fusion, register_fusion


@register_fusion("gated")
class GatedFusion(Fusion):
    """``ReLU(Linear(sum_m g_m * tanh(W_m f_m)))``, gates g from all present modalities.

    The gates are sigmoids of a linear map of every modality's projection (absent
    ones zero) and the presence flags; an absent modality's gate is exactly 0. The
    last gates are kept in ``last_gates`` (B, M) for inspection (modulation: how
    much each modality counted for each sample).
    """

    Config = GatedConfig

    def __init__(self, dims: dict[str, int], cfg: GatedConfig | None = None) -> None:
        super().__init__(dims)
        self.cfg = cfg or self.Config()
        self.out_dim = self.cfg.out_dim
        m, h = len(self.names), self.cfg.hidden
        self.gate_width = h if self.cfg.gate == "vector" else 1
        self.proj = nn.ModuleDict({n: nn.Linear(d, h) for n, d in self.dims.items()})
        self.gate = nn.Linear(m * h + m, m * self.gate_width)
        self.out = nn.Linear(h, self.out_dim)
        self.last_gates: Tensor | None = None

    def _gated(self, features: dict[str, Tensor],
               present: dict[str, Tensor]) -> tuple[Tensor, Tensor]:
        """Projections (B, M, hidden) and gates (B, M, 1 or hidden), absent gates 0."""
        m, h = len(self.names), self.cfg.hidden
        p = [present[n][:, None] for n in self.names]
        z = torch.cat([torch.tanh(self.proj[n](torch.where(p_n, features[n], 0.0)))
                       for n, p_n in zip(self.names, p)], dim=1)
        mask = torch.cat(p, dim=1)
        g = torch.sigmoid(self.gate(torch.cat([z, mask.to(z.dtype)], dim=1)))
        g = torch.where(mask[:, :, None], g.reshape(-1, m, self.gate_width), 0.0)
        return z.reshape(-1, m, h), g

    def gates(self, features: dict[str, Tensor], present: dict[str, Tensor]) -> Tensor:
        """Gate of each modality (B, M), in ``names`` order; vector gates are averaged."""
        return self._gated(features, present)[1].mean(dim=2)

    def forward(self, features: dict[str, Tensor], present: dict[str, Tensor]) -> Tensor:
        z, g = self._gated(features, present)
        self.last_gates = g.detach().mean(dim=2)
        return torch.relu(self.out((g * z).sum(dim=1)))
