"""Proprioception and touch: running normalisation, then a small MLP."""

from __future__ import annotations

from torch import Tensor, nn

from perception.configs.model import VectorEncoderConfig
from perception.encoders.base import Encoder, register_encoder
from perception.preprocess.normalize import RunningNorm
from perception.spec import ModalityKind, ModalitySpec


@register_encoder(ModalityKind.VECTOR, ModalityKind.TOUCH)
class VectorEncoder(Encoder):
    """(B, D) float32 -> normalised by running mean/std (frozen at export) -> (B, out_dim)."""

    def __init__(self, spec: ModalitySpec, cfg: VectorEncoderConfig) -> None:
        super().__init__(spec)
        (dim,) = spec.shape
        self.norm = RunningNorm((dim,))
        layers: list[nn.Module] = []
        if cfg.hidden:
            layers += [nn.Linear(dim, cfg.hidden), nn.ReLU()]
            dim = cfg.hidden
        layers += [nn.Linear(dim, cfg.out_dim), nn.ReLU()]
        self.mlp = nn.Sequential(*layers)
        self.out_dim = cfg.out_dim

    def forward(self, x: Tensor) -> Tensor:
        return self.mlp(self.norm(x))

    def update_normalizer(self, x: Tensor, frontend_done: bool = False) -> None:
        self.norm.update(x)
