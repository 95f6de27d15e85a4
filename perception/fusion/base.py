"""The one interface of every fusion method, and the registry that picks one by name.

A fusion method takes per-modality feature vectors and presence flags and
returns one state vector per sample::

    state = fusion(features, present)
    # features: {name: (B, D_name) float32}, in the ObsSpec's order
    # present:  {name: (B,) bool}; False = the modality is absent for that sample

Contract (tests hold every method to it): any subset of modalities may be
absent, the output has no NaN and does not depend on an absent modality's
features (use ``torch.where``, never multiply garbage by 0: NaN * 0 = NaN), the
forward exports to ONNX opset >= 17 with the same numbers, and ``out_dim`` is
known at construction.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar

import torch
from torch import Tensor, nn

from perception.configs.fusion import FUSION_CONFIGS, fusion_config
from perception.settings import ConfigError

FUSIONS: dict[str, type[Fusion]] = {}


def register_fusion(name: str) -> Callable[[type[Fusion]], type[Fusion]]:
    """Class decorator: make a fusion method available as ``fusion=<name>``."""

    def add(cls: type[Fusion]) -> type[Fusion]:
        if name in FUSIONS:
            raise ValueError(f"fusion {name!r} is registered twice")
        if FUSION_CONFIGS.setdefault(name, cls.Config) is not cls.Config:
            raise ValueError(f"fusion {name!r}: its Config is not FUSION_CONFIGS[{name!r}]")
        FUSIONS[name] = cls
        cls.name = name
        return cls

    return add


class Fusion(nn.Module):
    """Base class. Subclasses set ``out_dim`` in ``__init__`` and implement ``forward``.

    Attributes:
        dims: feature size per modality, in spec order.
        out_dim: size of the fused state.
        linear_readout: True when whatever reads the state must be linear for
            the method to keep its meaning (late fusion decides per modality;
            a nonlinear head on top would fuse again).
    """

    name: ClassVar[str] = ""
    linear_readout: ClassVar[bool] = False
    #: The method's settings (:mod:`perception.configs.fusion`, the Hydra option
    #: ``fusion=<name>``)
    Config: ClassVar[type]

    def __init__(self, dims: dict[str, int]) -> None:
        super().__init__()
        if not dims:
            raise ConfigError("fusion needs at least one modality")
        self.dims = dict(dims)
        self.names = tuple(dims)
        self.out_dim = 0

    def forward(self, features: dict[str, Tensor], present: dict[str, Tensor]) -> Tensor:
        raise NotImplementedError


class MissingTokens(nn.Module):
    """A learned stand-in vector per modality, used where the modality is absent."""

    def __init__(self, dims: dict[str, int]) -> None:
        super().__init__()
        self.tokens = nn.ParameterDict({n: nn.Parameter(torch.zeros(d)) for n, d in dims.items()})

    def forward(self, features: dict[str, Tensor], present: dict[str, Tensor]) -> dict[str, Tensor]:
        """Features with absent rows replaced by the modality's token (NaN-safe)."""
        return {n: torch.where(present[n][:, None], f, self.tokens[n])
                for n, f in features.items()}


def build_fusion(settings: Any, dims: dict[str, int]) -> Fusion:
    """The fusion method `settings` names (its Config, or a mapping with ``method``), for
    modalities of sizes `dims`."""
    cfg = fusion_config(settings)
    return FUSIONS[cfg.method](dims, cfg)
