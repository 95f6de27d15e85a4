"""Late fusion: a head per modality, combined over the present ones (average or experts)."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from perception.configs.fusion import LateConfig
from perception.fusion.base import Fusion, register_fusion


@register_fusion("late")
class LateFusion(Fusion):
    """Each modality decides alone; the state combines the decisions of the present ones.

    ``average``: the mean of the present heads' outputs (all absent: 0).
    ``poe``: a product of Gaussian experts. Each head also outputs a log-variance
    (as its negative, the log-precision); the state is the precision-weighted mean
    of the present heads and a unit prior expert N(0, 1), so all absent gives the
    prior mean 0.

    The state must be read linearly (``linear_readout``): a nonlinear reader would
    fuse the modalities again. Only ``average`` is strictly late (additive over the
    modalities): the precision weighting of ``poe`` couples the heads, enough for a
    linear readout to learn an XOR of two modalities.
    """

    linear_readout = True

    Config = LateConfig

    def __init__(self, dims: dict[str, int], cfg: LateConfig | None = None) -> None:
        super().__init__(dims)
        self.cfg = cfg or self.Config()
        self.out_dim = self.cfg.out_dim
        self.poe = self.cfg.combine == "poe"
        width = self.out_dim * (2 if self.poe else 1)
        self.heads = nn.ModuleDict({
            n: nn.Sequential(nn.Linear(d, self.cfg.head_hidden), nn.ReLU(),
                             nn.Linear(self.cfg.head_hidden, width))
            for n, d in self.dims.items()
        })

    def head_outputs(self, features: dict[str, Tensor],
                     present: dict[str, Tensor]) -> dict[str, Tensor]:
        """Each modality's head output: (B, out_dim); for poe (B, 2 * out_dim), the mean
        then the log-precision. Absent rows are computed from zeros: finite, never used.
        """
        return {n: self.heads[n](torch.where(present[n][:, None], features[n], 0.0))
                for n in self.names}

    def forward(self, features: dict[str, Tensor], present: dict[str, Tensor]) -> Tensor:
        heads = self.head_outputs(features, present)
        p = {n: present[n][:, None] for n in self.names}
        if self.poe:
            return self._product_of_experts(heads, p)
        total = sum(torch.where(p[n], heads[n], 0.0) for n in self.names)
        count = torch.cat([p[n] for n in self.names], dim=1).to(total.dtype).sum(1, keepdim=True)
        return total / count.clamp(min=1.0)

    def _product_of_experts(self, heads: dict[str, Tensor], p: dict[str, Tensor]) -> Tensor:
        num, den = 0.0, 1.0  # the unit prior expert: mean 0, precision 1
        d, lim = self.out_dim, self.cfg.max_log_var
        for n in self.names:
            mean, log_precision = heads[n][:, :d], heads[n][:, d:]
            precision = torch.where(p[n], torch.exp(log_precision.clamp(-lim, lim)), 0.0)
            num = num + precision * mean
            den = den + precision
        return num / den
