"""Fusion methods, one interface, chosen by config (``fusion=<name>``).

Importing this package registers every method; see :mod:`perception.fusion.base`
for the contract they meet.
"""

from __future__ import annotations

from perception.configs.fusion import fusion_config, fusion_configs
from perception.fusion import (  # noqa: F401  (imported to register the methods)
    attention,
    concat,
    film,
    gated,
    late,
    lowrank,
    tensor,
)
from perception.fusion.base import (
    FUSIONS,
    Fusion,
    MissingTokens,
    build_fusion,
    register_fusion,
)

__all__ = ["FUSIONS", "Fusion", "MissingTokens", "build_fusion", "fusion_config", "fusion_configs",
           "register_fusion"]
