"""Fusion methods, one interface, chosen by config (``fusion=<name>``).

Importing this package registers every method; see :mod:`perception.fusion.base`
for the contract they meet.
"""

from __future__ import annotations

from typing import Any

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
    fusion_config,
    register_fusion,
)


def fusion_configs() -> dict[str, Any]:
    """The ``fusion`` config group: method name -> its default Config instance."""
    return {name: cls.Config() for name, cls in sorted(FUSIONS.items())}


__all__ = ["FUSIONS", "Fusion", "MissingTokens", "build_fusion", "fusion_config", "fusion_configs",
           "register_fusion"]
