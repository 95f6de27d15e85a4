"""One encoder per modality kind, built from the modality's spec.

An encoder takes the raw sensor array (its dtype, its layout, batched) and
returns a feature vector; it does its own preprocessing, so the exported graph
takes the same bytes the sensor gives. Every encoder knows ``out_dim`` at
construction (no dummy forward).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from torch import Tensor, nn

from perception.spec import ModalityKind, ModalitySpec, SpecError

ENCODERS: dict[ModalityKind, type[Encoder]] = {}


def register_encoder(*kinds: ModalityKind) -> Callable[[type[Encoder]], type[Encoder]]:
    """Class decorator: the encoder for modalities of `kinds`."""

    def add(cls: type[Encoder]) -> type[Encoder]:
        for kind in kinds:
            if kind in ENCODERS:
                raise ValueError(f"two encoders registered for kind {kind.value!r}")
            ENCODERS[kind] = cls
        return cls

    return add


class Encoder(nn.Module):
    """Base: raw batched sensor array -> (B, out_dim) features."""

    out_dim: int

    def __init__(self, spec: ModalitySpec) -> None:
        super().__init__()
        self.spec = spec

    def frontend(self, x: Tensor) -> Tensor:
        """The parameter-free part of the preprocessing (identity unless costly).

        Training computes it once per collected sample and stores its output,
        instead of recomputing it every epoch: ``forward(x) ==
        from_frontend(frontend(x))``.
        """
        return x

    def from_frontend(self, z: Tensor) -> Tensor:
        """Features from the frontend's output."""
        return self(z)

    def forward(self, x: Tensor) -> Tensor:
        raise NotImplementedError

    def update_normalizer(self, x: Tensor, frontend_done: bool = False) -> None:
        """Fold a batch of observations (raw, or frontend outputs) into running statistics."""


def build_encoder(spec: ModalitySpec, cfg: Any) -> Encoder:
    """The encoder for `spec`'s kind with settings `cfg` (that kind's config dataclass)."""
    if spec.kind not in ENCODERS:
        known = ", ".join(k.value for k in ENCODERS)
        raise SpecError(
            f"modality {spec.name!r}: no encoder for kind {spec.kind.value!r}; "
            f"encoders exist for: {known}"
        )
    return ENCODERS[spec.kind](spec, cfg)
