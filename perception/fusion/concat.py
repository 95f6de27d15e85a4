"""Early fusion: concatenate the features (absent -> learned token) and the presence flags."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from perception.configs.fusion import ConcatConfig
from perception.fusion.base import Fusion, MissingTokens, register_fusion


@register_fusion("concat")
class ConcatFusion(Fusion):
    """``ReLU(Linear([f_1; ...; f_M; present_1..M]))``; an absent f_m is a learned token."""

    Config = ConcatConfig

    def __init__(self, dims: dict[str, int], cfg: ConcatConfig | None = None) -> None:
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
