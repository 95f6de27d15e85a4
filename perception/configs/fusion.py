"""Settings of the fusion methods: the ``fusion=`` config group, torch-free.

Each method's settings dataclass has ``method: str = <name>`` first, one
documented field per setting and a ``validate()``; the method's class in
:mod:`perception.fusion` takes it as its ``Config``.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from perception.settings import ConfigError, config_from_kwargs, require, require_float, require_int

GATES = ("scalar", "vector")
COMBINES = ("average", "poe")


@dataclass
class ConcatConfig:
    """Settings of ``fusion=concat`` (:class:`perception.fusion.concat.ConcatFusion`)."""

    method: str = "concat"
    """Fusion method (config group option ``fusion=concat``)."""
    out_dim: int = 128
    """Size of the fused state."""

    def validate(self) -> None:
        where = "fusion concat"
        require(where, "method", self.method, self.method == "concat", "'concat'")
        require_int(where, "out_dim", self.out_dim, 1)


@dataclass
class LateConfig:
    """Settings of ``fusion=late`` (:class:`perception.fusion.late.LateFusion`)."""

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


@dataclass
class GatedConfig:
    """Settings of ``fusion=gated`` (:class:`perception.fusion.gated.GatedFusion`)."""

    method: str = "gated"
    """Fusion method (config group option ``fusion=gated``)."""
    out_dim: int = 128
    """Size of the fused state."""
    gate: str = "scalar"
    """One gate per modality (scalar) or one per modality and hidden unit (vector)."""
    hidden: int = 32
    """Size each modality is projected to before gating and summing."""

    def validate(self) -> None:
        where = "fusion gated"
        require(where, "method", self.method, self.method == "gated", "'gated'")
        require_int(where, "out_dim", self.out_dim, 1)
        require(where, "gate", self.gate, self.gate in GATES, "one of " + ", ".join(GATES))
        require_int(where, "hidden", self.hidden, 1)


@dataclass
class FiLMConfig:
    """Settings of ``fusion=film`` (:class:`perception.fusion.film.FiLMFusion`)."""

    method: str = "film"
    """Fusion method (config group option ``fusion=film``)."""
    out_dim: int = 128
    """Size of the fused state."""
    conditioner: str = ""
    """Modality that modulates the others; "" = ``audio`` if present, else the last one."""

    def validate(self) -> None:
        where = "fusion film"
        require(where, "method", self.method, self.method == "film", "'film'")
        require_int(where, "out_dim", self.out_dim, 1)
        require(where, "conditioner", self.conditioner, isinstance(self.conditioner, str),
                "a modality name, or '' to pick one")


@dataclass
class TensorConfig:
    """Settings of ``fusion=tensor`` (:class:`perception.fusion.tensor.TensorFusion`)."""

    method: str = "tensor"
    """Fusion method (config group option ``fusion=tensor``)."""
    out_dim: int = 128
    """Size of the fused state."""
    proj_dim: int = 0
    """Size each modality is projected to; 0 = the largest with (proj_dim + 1) ** M
    <= max_product for M modalities."""
    max_product: int = 1024
    """Bound on the product size when proj_dim = 0 (the output layer has
    product * out_dim weights)."""

    def validate(self) -> None:
        where = "fusion tensor"
        require(where, "method", self.method, self.method == "tensor", "'tensor'")
        require_int(where, "out_dim", self.out_dim, 1)
        require_int(where, "proj_dim", self.proj_dim, 0)
        require_int(where, "max_product", self.max_product, 2)


@dataclass
class LowRankConfig:
    """Settings of ``fusion=lowrank`` (:class:`perception.fusion.lowrank.LowRankFusion`)."""

    method: str = "lowrank"
    """Fusion method (config group option ``fusion=lowrank``)."""
    out_dim: int = 128
    """Size of the fused state."""
    rank: int = 4
    """Rank of the fusion weight tensor."""
    proj_dim: int = 16
    """Size each modality is projected to before its factor."""

    def validate(self) -> None:
        where = "fusion lowrank"
        require(where, "method", self.method, self.method == "lowrank", "'lowrank'")
        require_int(where, "out_dim", self.out_dim, 1)
        require_int(where, "rank", self.rank, 1)
        require_int(where, "proj_dim", self.proj_dim, 1)


@dataclass
class AttentionConfig:
    """Settings of ``fusion=attention`` (:class:`perception.fusion.attention.AttentionFusion`)."""

    method: str = "attention"
    """Fusion method (config group option ``fusion=attention``)."""
    out_dim: int = 128
    """Size of the fused state."""
    d_model: int = 32
    """Token width."""
    heads: int = 2
    """Attention heads; must divide d_model."""
    layers: int = 1
    """Transformer layers."""
    ffn_mult: int = 2
    """Hidden size of each layer's feed-forward block, in multiples of d_model."""

    def validate(self) -> None:
        where = "fusion attention"
        require(where, "method", self.method, self.method == "attention", "'attention'")
        require_int(where, "out_dim", self.out_dim, 1)
        require_int(where, "d_model", self.d_model, 1)
        require_int(where, "heads", self.heads, 1)
        require(where, "heads", self.heads, self.d_model % self.heads == 0,
                f"a divisor of d_model={self.d_model}")
        require_int(where, "layers", self.layers, 1)
        require_int(where, "ffn_mult", self.ffn_mult, 1)


#: The ``fusion`` config group: method name -> its settings dataclass
FUSION_CONFIGS: dict[str, type] = {cls.method: cls for cls in (
    ConcatConfig, LateConfig, GatedConfig, FiLMConfig, TensorConfig, LowRankConfig,
    AttentionConfig)}


def fusion_configs() -> dict[str, Any]:
    """Method name -> its default settings (the Hydra options of ``fusion=``)."""
    return {name: cls() for name, cls in sorted(FUSION_CONFIGS.items())}


def fusion_config(settings: Any) -> Any:
    """`settings` as the Config of the method ``settings["method"]`` names, typed and
    checked once; a Config already is one."""
    if dataclasses.is_dataclass(settings):
        return settings
    method = settings.get("method")
    if method not in FUSION_CONFIGS:
        raise ConfigError(f"unknown fusion method {method!r}; choose one of: "
                          + ", ".join(sorted(FUSION_CONFIGS)))
    return config_from_kwargs(FUSION_CONFIGS[method], settings, f"fusion {method}")
