"""Tensor fusion (Zadeh et al. 2017): the outer product of every modality's [z_m; 1]."""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from perception.configs.fusion import TensorConfig
from perception.fusion.base import Fusion, register_fusion


def auto_proj_dim(num_modalities: int, max_product: int) -> int:
    """Largest p >= 1 with (p + 1) ** num_modalities <= max_product (1 if none)."""
    p = 1
    while (p + 2) ** num_modalities <= max_product:
        p += 1
    return p


@register_fusion("tensor")
class TensorFusion(Fusion):
    """``ReLU(Linear(flatten([z_1; 1] x ... x [z_M; 1])))``, ``z_m = tanh(W_m f_m)``.

    The appended 1 keeps every lower-order term (each modality alone, each pair,
    ...) in the product. An absent modality has z_m = 0, so only its 1 remains.
    The product has prod_m (proj_dim + 1) entries: keep proj_dim small for many
    modalities (the default picks it from ``max_product``).
    """

    Config = TensorConfig

    def __init__(self, dims: dict[str, int], cfg: TensorConfig | None = None) -> None:
        super().__init__(dims)
        self.cfg = cfg or self.Config()
        self.out_dim = self.cfg.out_dim
        p = self.cfg.proj_dim or auto_proj_dim(len(self.names), self.cfg.max_product)
        self.proj_dim = p
        self.proj = nn.ModuleDict({n: nn.Linear(d, p) for n, d in self.dims.items()})
        self.out = nn.Linear((p + 1) ** len(self.names), self.out_dim)

    def forward(self, features: dict[str, Tensor], present: dict[str, Tensor]) -> Tensor:
        product: Tensor | None = None
        for n in self.names:
            p = present[n][:, None]
            z = torch.where(p, torch.tanh(self.proj[n](torch.where(p, features[n], 0.0))), 0.0)
            z1 = F.pad(z, (0, 1), value=1.0)
            product = z1 if product is None else (product[:, :, None] * z1[:, None, :]).flatten(1)
        return torch.relu(self.out(product))
