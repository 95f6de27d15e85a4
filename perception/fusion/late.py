"""Late fusion: a head per modality, combined over the present ones (average or experts)."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from perception.fusion.base import Fusion, register_fusion
from perception.settings import require, require_float, require_int

COMBINES = ("average", "poe")


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

    @dataclass
    class Config:
        method: str = "late"
        """Fusion method (config group option ``fusion=late``)."""
        out_dim: int = 128
        """Size of the fused state (each head's output)."""
        combine: str = "average"
        """How the present heads combine: average, or poe (product of Gaussian experts)."""
        head_hidden: int = 32
        """Hidden size of each modality's two-layer MLP head."""
        max_log_var: float = 6.0
        """poe only: head log-variances are clipped to [-max_log_var, max_log_var]."""

        def validate(self) -> None:
            where = "fusion late"
            require(where, "method", self.method, self.method == "late", "'late'")
            require_int(where, "out_dim", self.out_dim, 1)
            require(where, "combine", self.combine, self.combine in COMBINES,
                    "one of " + ", ".join(COMBINES))
            require_int(where, "head_hidden", self.head_hidden, 1)
            require_float(where, "max_log_var", self.max_log_var, 0.0, lo_open=True)

    def __init__(self, dims: dict[str, int], cfg: LateFusion.Config | None = None) -> None:
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
