"""FiLM: one modality (the conditioner) scales and shifts the features of the others."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from perception.configs.fusion import FiLMConfig
from perception.fusion.base import Fusion, MissingTokens, register_fusion
from perception.settings import ConfigError, require


@register_fusion("film")
class FiLMFusion(Fusion):
    """Feature-wise linear modulation of the other modalities by the conditioner.

    State: ``ReLU(Linear([gamma * x + beta; present_1..M]))``, with ``x`` the other
    modalities concatenated (absent -> learned token) and ``gamma = 1 + dgamma(c)``,
    ``beta(c)`` linear in the conditioner's features c. An absent conditioner gives
    gamma = 1, beta = 0 exactly.
    """

    Config = FiLMConfig

    def __init__(self, dims: dict[str, int], cfg: FiLMConfig | None = None) -> None:
        super().__init__(dims)
        self.cfg = cfg or self.Config()
        self.out_dim = self.cfg.out_dim
        if len(self.names) < 2:
            raise ConfigError(f"fusion film needs at least two modalities, got {list(self.names)}"
                              "; use fusion=concat for one")
        cond = self.cfg.conditioner or ("audio" if "audio" in self.dims else self.names[-1])
        require("fusion film", "conditioner", cond, cond in self.dims,
                "one of the modalities: " + ", ".join(self.names))
        self.conditioner = cond
        self.others = tuple(n for n in self.names if n != cond)
        self.width = sum(self.dims[n] for n in self.others)
        self.missing = MissingTokens({n: self.dims[n] for n in self.others})
        self.film = nn.Linear(self.dims[cond], 2 * self.width)
        self.out = nn.Linear(self.width + len(self.names), self.out_dim)

    def film_params(self, features: dict[str, Tensor],
                    present: dict[str, Tensor]) -> tuple[Tensor, Tensor]:
        """gamma, beta (B, width of the others); 1 and 0 where the conditioner is absent."""
        c, p = features[self.conditioner], present[self.conditioner][:, None]
        film = self.film(torch.where(p, c, 0.0))
        d_gamma, beta = film[:, :self.width], film[:, self.width:]
        return torch.where(p, 1.0 + d_gamma, 1.0), torch.where(p, beta, 0.0)

    def modulate(self, features: dict[str, Tensor], present: dict[str, Tensor],
                 gamma: Tensor, beta: Tensor) -> Tensor:
        """The state for given gamma and beta (``forward`` uses the conditioner's)."""
        p = {n: present[n][:, None] for n in self.names}
        # the same as self.missing(...), without a broadcast node per modality
        x = torch.cat([torch.where(p[n], features[n], self.missing.tokens[n])
                       for n in self.others], dim=1)
        flags = torch.cat([p[n] for n in self.names], dim=1).to(x.dtype)
        return torch.relu(self.out(torch.cat([gamma * x + beta, flags], dim=1)))

    def forward(self, features: dict[str, Tensor], present: dict[str, Tensor]) -> Tensor:
        return self.modulate(features, present, *self.film_params(features, present))
