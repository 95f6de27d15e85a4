"""A trained policy's decisions with only some modalities: the offline value functions.

A coalition is a set of present modalities; the others are removed by an
operator: ``presence`` (the policy's own absent path: the ``<name>_present``
flag off, as on a robot whose sensor is gone), ``zeros`` (data zeroed, the
flag on), ``mean`` (the modality's mean over the states, flag on) or
``permute`` (each state gets another state's data, the perceptual score's
shuffle). All 2^M coalitions of a chunk of states go through the model in one
call. Per state, two values compare a coalition's action distribution with
the full policy's: ``agreement`` (same greedy action, 1 or 0) and ``neg_kl``
(-KL(full || coalition), nats).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import torch
from torch import nn

from analysis.shapley import Coalition, coalitions
from perception.spec import presence_key

REMOVALS = ("presence", "zeros", "mean", "permute")
OFFLINE_VALUES = ("agreement", "neg_kl")


def check_choice(setting: str, value: str, choices: Sequence[str]) -> None:
    if value not in choices:
        raise ValueError(f"{setting}={value!r} is unknown; choose one of "
                         f"{', '.join(choices)}")


def removed(obs: Mapping[str, np.ndarray], present: Coalition, names: Sequence[str],
            removal: str, replacement: Mapping[str, np.ndarray] | None = None
            ) -> dict[str, np.ndarray]:
    """`obs` (a batch) with the modalities outside `present` removed by `removal`.

    ``mean`` and ``permute`` put ``replacement[name]`` (the batch's shape: the mean
    broadcast, or the permuted partners' data) in place of a removed modality.
    """
    check_choice("removal", removal, REMOVALS)
    batch = len(next(iter(obs[n] for n in names)))
    out = {n: np.asarray(obs[n]) for n in names}
    for n in names:
        flag = np.asarray(obs.get(presence_key(n), np.ones(batch, bool)), bool).reshape(batch)
        if n in present:
            out[presence_key(n)] = flag
        elif removal == "presence":
            out[presence_key(n)] = np.zeros(batch, bool)
        else:
            out[presence_key(n)] = np.ones(batch, bool)
            if removal == "zeros":
                out[n] = np.zeros_like(out[n])
            elif replacement is None or n not in replacement:
                raise ValueError(f"removal={removal!r} needs the replacement data of {n!r}")
            else:
                out[n] = np.asarray(replacement[n], out[n].dtype).reshape(out[n].shape)
    return out


def _kl(p_logits: torch.Tensor, q_logits: torch.Tensor) -> torch.Tensor:
    p = torch.log_softmax(p_logits, -1)
    q = torch.log_softmax(q_logits, -1)
    return (p.exp() * (p - q)).sum(-1)


@torch.no_grad()
def coalition_logits(policy: nn.Module, obs: Mapping[str, np.ndarray], names: Sequence[str],
                     h: np.ndarray | None = None, removal: str = "presence", seed: int = 0,
                     chunk: int = 32, subsets: Sequence[Coalition] | None = None
                     ) -> dict[Coalition, np.ndarray]:
    """Per coalition: the (N, A) action logits of the policy with only those modalities.

    Args:
        policy: a ``DeterministicPolicy`` of a discrete action space:
            ``forward(obs, h) -> (action, logits, ..., h_new)``.
        obs: (N, ...) states (raw observations, as the env gives them).
        names: the modalities the coalitions are made of (the policy's).
        h: (N, H) recurrent state fed at each state (the full policy's), or None.
        chunk: states per model call; each call carries all 2^M coalitions of them.
        subsets: the coalitions to evaluate (default: all 2^M); the full one is always
            among them.
    """
    check_choice("removal", removal, REMOVALS)
    names = tuple(names)
    subsets = coalitions(names) if subsets is None else list(dict.fromkeys(
        [*subsets, frozenset(names)]))
    n = len(next(iter(obs[m] for m in names)))
    rng = np.random.default_rng(seed)
    arrays = {k: np.asarray(v) for k, v in obs.items()
              if k in names or k in {presence_key(m) for m in names}}
    means = {m: arrays[m].astype(np.float64).mean(0) for m in names}
    permutation = rng.permutation(n)
    out: dict[Coalition, np.ndarray] = {}
    for lo in range(0, n, chunk):
        idx = np.arange(lo, min(lo + chunk, n))
        part = {k: v[idx] for k, v in arrays.items()}
        replacement = None
        if removal == "mean":
            replacement = {m: np.broadcast_to(means[m], part[m].shape) for m in names}
        elif removal == "permute":
            replacement = {m: arrays[m][permutation[idx]] for m in names}
        feeds = [removed(part, s, names, removal, replacement) for s in subsets]
        b = len(idx)
        batch = {k: torch.as_tensor(np.concatenate([f[k] for f in feeds])) for k in feeds[0]}
        hb = (None if h is None else
              torch.as_tensor(np.tile(np.asarray(h, np.float32)[idx], (len(subsets), 1))))
        logits = policy(batch, hb)[1].float().reshape(len(subsets), b, -1).numpy()
        for c, s in enumerate(subsets):
            out.setdefault(s, np.empty((n, logits.shape[-1]), np.float32))[idx] = logits[c]
    return out


def values_of_logits(logits: Mapping[Coalition, np.ndarray], names: Sequence[str]
                     ) -> dict[str, dict[Coalition, np.ndarray]]:
    """Per value function (:data:`OFFLINE_VALUES`), per coalition of `logits`: (N,) values
    against the full coalition's logits."""
    full = torch.as_tensor(logits[frozenset(names)])
    values: dict[str, dict[Coalition, np.ndarray]] = {v: {} for v in OFFLINE_VALUES}
    for s, x in logits.items():
        q = torch.as_tensor(x)
        values["agreement"][s] = (q.argmax(-1) == full.argmax(-1)).numpy().astype(np.float64)
        values["neg_kl"][s] = (-_kl(full, q)).numpy().astype(np.float64)
    return values


def offline_values(policy: nn.Module, obs: Mapping[str, np.ndarray], names: Sequence[str],
                   h: np.ndarray | None = None, removal: str = "presence", seed: int = 0,
                   chunk: int = 32) -> dict[str, dict[Coalition, np.ndarray]]:
    """Per value function, per coalition: (N,) values over the N states of `obs` (the
    arguments of :func:`coalition_logits`)."""
    return values_of_logits(coalition_logits(policy, obs, names, h, removal, seed, chunk),
                            names)
