"""Modality dropout: switch present modalities off at random while training.

It only turns ``<name>_present`` flags to False; the data stays, since the
model ignores an absent modality's data by contract (see
:mod:`perception.fusion.base`). Identity in eval mode, so it never reaches the
exported graph.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import torch
from torch import Tensor, nn

from perception.settings import ConfigError, require_float, require_int
from perception.spec import presence_key


def _check_probs(where: str, names: Sequence[str], probs: Mapping[str, float]) -> None:
    unknown = sorted(set(probs) - set(names))
    if unknown:
        raise ConfigError(
            f"{where}: per_modality names unknown modality(ies) {unknown}; "
            f"the modalities are: {', '.join(names)}"
        )
    for name, p in probs.items():
        require_float(where, f"per_modality[{name!r}]", p, 0.0, 1.0)


@dataclass
class ModalityDropoutConfig:
    """Settings of :class:`ModalityDropout`."""

    p: float = 0.0
    """Probability of dropping each present modality of a sample (0 = off)."""
    per_modality: dict[str, float] = field(default_factory=dict)
    """Probabilities per modality name that replace `p` for those modalities."""
    min_present: int = 1
    """Each sample keeps at least this many modalities (or all it had, if fewer)."""

    def validate(self, names: Sequence[str] | None = None) -> None:
        """Check ranges; with `names`, also that `per_modality` names only those."""
        where = "ModalityDropoutConfig"
        require_float(where, "p", self.p, 0.0, 1.0)
        require_int(where, "min_present", self.min_present, 0)
        if names is not None:
            _check_probs(where, names, self.per_modality)
        else:
            for name, p in self.per_modality.items():
                require_float(where, f"per_modality[{name!r}]", p, 0.0, 1.0)

    def probabilities(self, names: Sequence[str]) -> dict[str, float]:
        """The drop probability of every modality in `names`."""
        self.validate(names)
        return {n: float(self.per_modality.get(n, self.p)) for n in names}


class ModalityDropout(nn.Module):
    """Drops each present modality of each sample with its probability (training only).

    Args:
        names: the modalities it may drop, in spec order.
        p: one probability for all, or one per name (names left out get 0).
        min_present: each sample keeps at least ``min(min_present, number it had)``
            present modalities; where dropping went below, random dropped ones
            are restored.
    """

    def __init__(self, names: Sequence[str], p: float | Mapping[str, float] = 0.25,
                 min_present: int = 1) -> None:
        super().__init__()
        where = "ModalityDropout"
        self.names = tuple(names)
        if not self.names:
            raise ConfigError(f"{where}: needs at least one modality name")
        if len(set(self.names)) != len(self.names):
            raise ConfigError(f"{where}: repeated modality names in {list(self.names)}")
        if isinstance(p, Mapping):
            _check_probs(where, self.names, p)
            probs = {n: float(p.get(n, 0.0)) for n in self.names}
        else:
            require_float(where, "p", p, 0.0, 1.0)
            probs = dict.fromkeys(self.names, float(p))
        require_int(where, "min_present", min_present, 0, len(self.names))
        self.p = probs
        self.min_present = min_present
        self.register_buffer(
            "_probs", torch.tensor([probs[n] for n in self.names]), persistent=False
        )

    @classmethod
    def from_config(cls, cfg: ModalityDropoutConfig, names: Sequence[str]) -> ModalityDropout:
        return cls(names, cfg.probabilities(names), min(cfg.min_present, len(names)))

    def forward(self, present: dict[str, Tensor],
                generator: torch.Generator | None = None) -> dict[str, Tensor]:
        """New presence flags (training), or a copy of `present` (eval).

        `present` maps every name to a bool tensor (any shape, the same for
        all); other keys pass through. A modality absent before stays absent.
        """
        if not self.training:
            return dict(present)
        missing = [n for n in self.names if n not in present]
        if missing:
            raise KeyError(
                f"ModalityDropout: no presence flags for {missing}; pass all of {list(self.names)} "
                "or use .apply(obs), which adds all-True flags"
            )
        was = torch.stack([present[n].to(torch.bool) for n in self.names], dim=-1)  # (..., M)
        device = generator.device if generator is not None else was.device
        u = torch.rand(was.shape, generator=generator, device=device).to(was.device)
        probs = self._probs.to(was.device)
        kept = was & (u >= probs)
        if self.min_present > 0:
            need = was.sum(-1).clamp(max=self.min_present)
            deficit = need - kept.sum(-1)  # (...,), > 0 where too many were dropped
            dropped = was & ~kept
            # Random order among the dropped ones: restore the first `deficit` of them.
            order = torch.rand(was.shape, generator=generator, device=device).to(was.device)
            score = torch.where(dropped, order, torch.full_like(order, 2.0))
            rank = score.argsort(dim=-1).argsort(dim=-1)
            kept = kept | (dropped & (rank < deficit.unsqueeze(-1)))
        out = dict(present)
        for i, n in enumerate(self.names):
            out[n] = kept[..., i]
        return out

    def apply(self, obs: dict[str, Tensor],
              generator: torch.Generator | None = None) -> dict[str, Tensor]:
        """A new observation dict with ``<name>_present`` flags after dropout.

        Missing flags are added as all-True (the data is there), in eval mode
        too; dropping happens only in training mode. The data is not touched.
        """
        flags: dict[str, Tensor] = {}
        for n in self.names:
            key = presence_key(n)
            if key in obs:
                flags[n] = obs[key]
            elif n in obs:
                x = obs[n]
                flags[n] = torch.ones(x.shape[0], dtype=torch.bool, device=x.device)
            else:
                raise KeyError(
                    f"ModalityDropout.apply: the observation has neither {n!r} nor {key!r}; "
                    f"its keys: {sorted(obs)}"
                )
        new = self(flags, generator)
        out = dict(obs)
        for n in self.names:
            out[presence_key(n)] = new[n]
        return out
