"""Early fusion: concatenate the features (absent -> learned token) and the presence flags."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from perception.fusion.base import Fusion, MissingTokens, register_fusion
from perception.settings import require, require_int


@register_fusion("concat")
class ConcatFusion(Fusion):
    """``ReLU(Linear([f_1; ...; f_M; present_1..M]))``; an absent f_m is a learned token."""

    @dataclass
    class Config:
        method: str = "concat"
        """Fusion method (config group option ``fusion=concat``)."""
        out_dim: int = 128
        """Size of the fused state."""

        def validate(self) -> None:
            where = "fusion concat"
            require(where, "method", self.method, self.method == "concat", "'concat'")
            require_int(where, "out_dim", self.out_dim, 1)

    def __init__(self, dims: dict[str, int], cfg: ConcatFusion.Config | None = None) -> None:
        super().__init__(dims)
        self.cfg = cfg or self.Config()
        self.out_dim = self.cfg.out_dim
        self.missing = MissingTokens(self.dims)
        self.proj = nn.Linear(sum(self.dims.values()) + len(self.names), self.out_dim)

    def forward(self, features: dict[str, Tensor], present: dict[str, Tensor]) -> Tensor:
        p = [present[n][:, None] for n in self.names]
        # the same as self.missing(features, present), without a broadcast node per modality
        filled = [torch.where(p_n, features[n], self.missing.tokens[n])
                  for n, p_n in zip(self.names, p)]
        flags = torch.cat(p, dim=1).to(filled[0].dtype)
        return torch.relu(self.proj(torch.cat(filled + [flags], dim=1)))
