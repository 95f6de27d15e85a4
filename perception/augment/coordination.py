"""Cross-modal coordination: contrastive alignment of the modalities of one step.

An optional auxiliary objective for the trainer to add to its loss
(``loss = rl_loss + cfg.weight * coord(features, present)``). Each modality's
encoder features are projected to a shared space and L2-normalised; for every
pair of modalities a symmetric InfoNCE (CLIP) loss takes the two embeddings of
the same step (row) as the positive and the other rows of the batch as the
negatives. Rows where either modality is absent take no part. The projections
live here, not in the policy, so nothing of it reaches the exported graph.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from perception.configs.augment import CoordinationConfig
from perception.settings import ConfigError, require_float, require_int

# Logit given to excluded pairs: far below any cosine / temperature, yet finite, so
# masked rows never turn into NaN in the forward or the backward pass.
_EXCLUDED = -1.0e4
_MAX_SCALE = 100.0  # CLIP's cap on 1 / temperature when it is learned


def _masked_infonce(za: Tensor, zb: Tensor, both: Tensor, scale: Tensor) -> Tensor:
    """Symmetric InfoNCE over the rows where `both` is True, without dynamic shapes.

    za, zb: (B, E) unit vectors; both: (B,) bool. Returns the mean loss over
    the selected rows (0 if none).
    """
    logits = scale * (za @ zb.T)  # (B, B): row i = a_i against every b_j
    excluded = ~both
    logits = logits.masked_fill(excluded[None, :] | excluded[:, None], _EXCLUDED)
    diag = logits.diagonal()
    a_to_b = logits.logsumexp(dim=1) - diag
    b_to_a = logits.logsumexp(dim=0) - diag
    per_row = torch.where(both, 0.5 * (a_to_b + b_to_a), torch.zeros_like(diag))
    return per_row.sum() / both.sum().clamp(min=1)


class CoordinationLoss(nn.Module):
    """Symmetric InfoNCE between the embeddings of every pair of modalities.

    Args:
        dims: feature size per modality (as given to the fusion).
        embed_dim: size of the shared space.
        temperature: softmax temperature (> 0).
        learn_temperature: learn it as a logit scale, capped at 100.

    ``forward(features, present)`` returns a scalar: the mean over pairs with
    at least 2 rows where both modalities are present; 0 (with a grad path to
    the projections) when no pair has. Absent rows' features may hold anything,
    NaN included: they do not change the loss or its gradients.
    """

    def __init__(self, dims: Mapping[str, int], embed_dim: int = 64, temperature: float = 0.1,
                 learn_temperature: bool = False) -> None:
        super().__init__()
        where = "CoordinationLoss"
        if len(dims) < 2:
            raise ConfigError(
                f"{where}: needs at least two modalities to align, got {list(dims)}; "
                "set coordination weight=0 for a single-modality model"
            )
        for name, d in dims.items():
            require_int(where, f"dims[{name!r}]", d, 1)
        require_int(where, "embed_dim", embed_dim, 1)
        require_float(where, "temperature", temperature, 0.0, lo_open=True)
        self.dims = dict(dims)
        self.names = tuple(dims)
        self.proj = nn.ModuleDict({n: nn.Linear(d, embed_dim) for n, d in dims.items()})
        log_scale = torch.tensor(math.log(1.0 / temperature))
        if learn_temperature:
            self.log_scale = nn.Parameter(log_scale)
        else:
            self.register_buffer("log_scale", log_scale)

    @classmethod
    def from_config(cls, cfg: CoordinationConfig, dims: Mapping[str, int]) -> CoordinationLoss:
        cfg.validate()
        return cls(dims, cfg.embed_dim, cfg.temperature, cfg.learn_temperature)

    @property
    def temperature(self) -> float:
        return 1.0 / float(self.scale())

    def scale(self) -> Tensor:
        """1 / temperature, capped at 100."""
        return self.log_scale.clamp(max=math.log(_MAX_SCALE)).exp()

    def embed(self, features: Mapping[str, Tensor],
              present: Mapping[str, Tensor]) -> dict[str, Tensor]:
        """Unit-norm embeddings (B, embed_dim) per modality; absent rows are embeddings of 0."""
        out: dict[str, Tensor] = {}
        for name, f in features.items():
            if name not in self.proj:
                raise KeyError(
                    f"CoordinationLoss: no projection for modality {name!r}; "
                    f"it was built for {list(self.names)}"
                )
            if name not in present:
                raise KeyError(f"CoordinationLoss: no presence flags for modality {name!r}")
            keep = present[name].to(torch.bool)[:, None]
            clean = torch.where(keep, f, torch.zeros_like(f))  # NaN-safe, unlike f * mask
            out[name] = F.normalize(self.proj[name](clean), dim=-1)
        return out

    def forward(self, features: Mapping[str, Tensor], present: Mapping[str, Tensor]) -> Tensor:
        z = self.embed(features, present)
        names = [n for n in self.names if n in z]
        scale = self.scale()
        total = sum(p.sum() for p in self.parameters()) * 0.0  # zero, on the right device
        pairs = 0
        counted = torch.zeros((), device=total.device)
        for a, b in itertools.combinations(names, 2):
            both = present[a].to(torch.bool) & present[b].to(torch.bool)
            ok = (both.sum() >= 2).to(total.dtype)
            total = total + ok * _masked_infonce(z[a], z[b], both, scale)
            counted = counted + ok
            pairs += 1
        if pairs == 0:
            return total
        return total / counted.clamp(min=1)


@torch.no_grad()
def pairwise_alignment(features: Mapping[str, Tensor],
                       present: Mapping[str, Tensor]) -> dict[tuple[str, str], float]:
    """Top-1 cross-modal retrieval accuracy per pair of modalities (diagnostics).

    For each pair (a, b) of equally sized embeddings (e.g.
    :meth:`CoordinationLoss.embed`), over rows where both are present: the
    fraction of rows whose nearest b (cosine) is its own step's b, averaged
    with the same from b to a. Chance is 1 / rows. Pairs with fewer than 2
    such rows are left out.
    """
    out: dict[tuple[str, str], float] = {}
    for a, b in itertools.combinations(list(features), 2):
        both = present[a].to(torch.bool) & present[b].to(torch.bool)
        n = int(both.sum())
        if n < 2:
            continue
        if features[a].shape[-1] != features[b].shape[-1]:
            raise ValueError(
                f"pairwise_alignment: {a!r} has size {features[a].shape[-1]} and {b!r} "
                f"{features[b].shape[-1]}; pass embeddings of one size (CoordinationLoss.embed)"
            )
        za = F.normalize(features[a][both].float(), dim=-1)
        zb = F.normalize(features[b][both].float(), dim=-1)
        sim = za @ zb.T
        target = torch.arange(n, device=sim.device)
        acc = 0.5 * ((sim.argmax(1) == target).float().mean()
                     + (sim.argmax(0) == target).float().mean())
        out[(a, b)] = float(acc)
    return out
