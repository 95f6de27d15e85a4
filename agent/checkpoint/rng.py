"""Capture and restore every RNG a run draws from, as JSON plus tensors (no pickle)."""

from __future__ import annotations

import dataclasses
import random
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from agent.checkpoint.errors import CheckpointError

Generator = np.random.Generator | torch.Generator | random.Random


@dataclass
class RNGState:
    """Every random number generator a training run draws from.

    Attributes:
        python: ``random.getstate()`` as JSON lists.
        numpy_global: ``np.random.get_state(legacy=False)`` (the legacy global generator).
        generators: the states of the generators passed to :meth:`capture`, in order
            (numpy ``Generator``, ``torch.Generator`` or ``random.Random``).
        torch_cpu: ``torch.get_rng_state()``.
        torch_cuda: ``torch.cuda.get_rng_state_all()``, empty without CUDA.
    """

    python: list[Any]
    numpy_global: dict[str, Any]
    generators: list[dict[str, Any]]
    torch_cpu: torch.Tensor
    torch_cuda: list[torch.Tensor] = dataclasses.field(default_factory=list)

    @classmethod
    def capture(cls, generators: Sequence[Generator] = ()) -> RNGState:
        """Snapshot the global RNGs and `generators`."""
        version, internal, gauss = random.getstate()
        cuda = list(torch.cuda.get_rng_state_all()) if torch.cuda.is_available() else []
        return cls(
            python=[version, list(internal), gauss],
            numpy_global=_np_state_to_json(np.random.get_state(legacy=False)),
            generators=[_capture_generator(g, i) for i, g in enumerate(generators)],
            torch_cpu=torch.get_rng_state().clone(),
            torch_cuda=[t.cpu().clone() for t in cuda],
        )

    def restore(self, generators: Sequence[Generator] = ()) -> None:
        """Put every RNG back where :meth:`capture` found it.

        `generators` must be the same kinds, in the same order, as at capture.
        """
        if len(generators) != len(self.generators):
            raise CheckpointError(
                f"the RNG state holds {len(self.generators)} generator(s) but "
                f"{len(generators)} were passed to restore; pass the same generators, in the "
                "same order, as to capture (e.g. one per env)"
            )
        for i, (g, saved) in enumerate(zip(generators, self.generators)):
            _restore_generator(g, saved, i)
        version, internal, gauss = self.python
        random.setstate((version, tuple(internal), gauss))
        np.random.set_state(_np_state_from_json(self.numpy_global))
        torch.set_rng_state(self.torch_cpu.cpu())
        if self.torch_cuda:
            if not torch.cuda.is_available():
                warnings.warn("checkpoint has CUDA RNG states but CUDA is unavailable; "
                              "CUDA draws will not repeat", stacklevel=2)
            elif torch.cuda.device_count() != len(self.torch_cuda):
                warnings.warn(f"checkpoint has {len(self.torch_cuda)} CUDA RNG states, this "
                              f"machine {torch.cuda.device_count()} devices; CUDA RNGs not "
                              "restored", stacklevel=2)
            else:
                torch.cuda.set_rng_state_all(self.torch_cuda)

    def to_files(self) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
        """Split into a JSON-able dict and a dict of tensors (for safetensors)."""
        tensors: dict[str, torch.Tensor] = {"torch_cpu": self.torch_cpu.cpu().contiguous()}
        for i, t in enumerate(self.torch_cuda):
            tensors[f"torch_cuda/{i}"] = t.cpu().contiguous()
        gens = []
        for i, g in enumerate(self.generators):
            if g["kind"] == "torch":
                tensors[f"generator/{i}"] = g["state"].cpu().contiguous()
                gens.append({"kind": "torch", "state": f"generator/{i}"})
            else:
                gens.append(g)
        data = {
            "python": self.python,
            "numpy_global": self.numpy_global,
            "generators": gens,
            "torch_cuda": len(self.torch_cuda),
        }
        return data, tensors

    @classmethod
    def from_files(cls, data: Mapping[str, Any], tensors: Mapping[str, torch.Tensor]) -> RNGState:
        gens = []
        for g in data["generators"]:
            if g["kind"] == "torch":
                gens.append({"kind": "torch", "state": tensors[g["state"]]})
            else:
                gens.append(dict(g))
        return cls(
            python=list(data["python"]),
            numpy_global=dict(data["numpy_global"]),
            generators=gens,
            torch_cpu=tensors["torch_cpu"],
            torch_cuda=[tensors[f"torch_cuda/{i}"] for i in range(int(data["torch_cuda"]))],
        )


def capture_rng(generators: Sequence[Generator] = ()) -> RNGState:
    """Shorthand for :meth:`RNGState.capture`."""
    return RNGState.capture(generators)


def restore_rng(state: RNGState, generators: Sequence[Generator] = ()) -> None:
    """Shorthand for :meth:`RNGState.restore`."""
    state.restore(generators)


def _capture_generator(g: Generator, i: int) -> dict[str, Any]:
    if isinstance(g, np.random.Generator):
        return {"kind": "numpy", "state": _np_state_to_json(g.bit_generator.state)}
    if isinstance(g, torch.Generator):
        return {"kind": "torch", "state": g.get_state().clone()}
    if isinstance(g, random.Random):
        version, internal, gauss = g.getstate()
        return {"kind": "python", "state": [version, list(internal), gauss]}
    raise CheckpointError(
        f"generator #{i} is a {type(g).__name__}; pass numpy Generators, torch Generators or "
        "random.Random instances"
    )


def _restore_generator(g: Generator, saved: Mapping[str, Any], i: int) -> None:
    kind = saved["kind"]
    if isinstance(g, np.random.Generator) and kind == "numpy":
        state = _np_state_from_json(saved["state"])
        want, have = state.get("bit_generator"), g.bit_generator.state.get("bit_generator")
        if want != have:
            raise CheckpointError(
                f"generator #{i}: checkpoint holds a {want} state, this run passes a {have} "
                f"generator; create it with np.random.Generator(np.random.{want}())"
            )
        g.bit_generator.state = state
    elif isinstance(g, torch.Generator) and kind == "torch":
        g.set_state(saved["state"].cpu())
    elif isinstance(g, random.Random) and kind == "python":
        version, internal, gauss = saved["state"]
        g.setstate((version, tuple(internal), gauss))
    else:
        raise CheckpointError(
            f"generator #{i}: checkpoint holds a {kind} generator state, this run passes a "
            f"{type(g).__name__}; pass the same generators, in the same order, as when saving"
        )


def _np_state_to_json(state: Any) -> Any:
    if isinstance(state, np.ndarray):
        return {"__ndarray__": state.tolist(), "dtype": str(state.dtype)}
    if isinstance(state, np.generic):
        return state.item()
    if isinstance(state, Mapping):
        return {k: _np_state_to_json(v) for k, v in state.items()}
    if isinstance(state, (list, tuple)):
        return [_np_state_to_json(v) for v in state]
    return state


def _np_state_from_json(state: Any) -> Any:
    if isinstance(state, Mapping):
        if "__ndarray__" in state:
            return np.asarray(state["__ndarray__"], dtype=state["dtype"])
        return {k: _np_state_from_json(v) for k, v in state.items()}
    if isinstance(state, list):
        return [_np_state_from_json(v) for v in state]
    return state
