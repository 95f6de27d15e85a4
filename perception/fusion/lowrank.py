"""Low-rank multimodal fusion (Liu et al. 2018): tensor fusion with rank-r modality factors."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from perception.configs.fusion import LowRankConfig
from perception.fusion.base import Fusion, register_fusion


@register_fusion("lowrank")
class LowRankFusion(Fusion):
    """``mean_r prod_m ([z_m; 1] @ W_m^(r)) + b``, ``z_m = tanh(A_m f_m)``.

    Equal to a linear map of the full tensor product of the [z_m; 1] whose weight
    tensor has rank ``rank``, at a cost linear in the number of modalities (LMF's
    per-rank weights are left out: a factor absorbs them). The factor row that
    meets the appended 1 is the bias of ``factors[m]``; it starts at 1 so that the
    product of M factors starts near 1. An absent modality has z_m = 0, leaving
    that row. The output is linear, as in LMF.
    """

    Config = LowRankConfig

    def __init__(self, dims: dict[str, int], cfg: LowRankConfig | None = None) -> None:
        super().__init__(dims)
        self.cfg = cfg or self.Config()
        self.out_dim = self.cfg.out_dim
        p, r = self.cfg.proj_dim, self.cfg.rank
        self.proj = nn.ModuleDict({n: nn.Linear(d, p) for n, d in self.dims.items()})
        self.factors = nn.ModuleDict({n: nn.Linear(p, r * self.out_dim) for n in self.names})
        for f in self.factors.values():
            nn.init.ones_(f.bias)
        self.bias = nn.Parameter(torch.zeros(self.out_dim))

    def forward(self, features: dict[str, Tensor], present: dict[str, Tensor]) -> Tensor:
        product: Tensor | None = None
        for n in self.names:
            p = present[n][:, None]
            z = torch.where(p, torch.tanh(self.proj[n](torch.where(p, features[n], 0.0))), 0.0)
            f = self.factors[n](z)
            product = f if product is None else product * f
        return product.reshape(-1, self.cfg.rank, self.out_dim).mean(dim=1) + self.bias
