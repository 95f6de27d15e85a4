"""The file format of a state: its tensors in one safetensors file, the rest as JSON with
``{"__tensor__": key}`` placeholders (and ``__ndarray__``, ``__tuple__``, ... tags); no pickle.
"""

from __future__ import annotations

import dataclasses
import os
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch

from agent.checkpoint.errors import CheckpointError


def pack_states(modules: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    """The state.json structure of each module's ``state_dict()`` and the tensors it names."""
    packer = _Packer()
    structure: dict[str, Any] = {}
    for name, obj in modules.items():
        sd = obj.state_dict()
        structure[name] = {
            "type": type(obj).__name__,
            "state": packer.pack(sd, (name,)),
            "metadata": jsonable(getattr(sd, "_metadata", None), f"{name}._metadata"),
        }
    return structure, packer.tensors


def unpack_state(entry: Mapping[str, Any], tensors: Mapping[str, torch.Tensor]) -> Any:
    """The state_dict of one module's state.json entry, its ``_metadata`` included."""
    sd = _unpack(entry["state"], tensors)
    if entry.get("metadata") is not None and isinstance(sd, dict):
        sd = OrderedDict(sd)
        sd._metadata = entry["metadata"]  # type: ignore[attr-defined]
    return sd


class _Packer:
    """Split nested state dicts into JSON-able structure and a flat dict of tensors."""

    def __init__(self) -> None:
        self.tensors: dict[str, torch.Tensor] = {}
        self._storages: set[int] = set()

    def pack(self, obj: Any, path: tuple[str, ...]) -> Any:
        if isinstance(obj, torch.Tensor):
            return {"__tensor__": self._add(obj, path)}
        if isinstance(obj, np.ndarray):
            return {"__ndarray__": self._add(torch.from_numpy(np.ascontiguousarray(obj)), path)}
        if isinstance(obj, Mapping):
            plain = all(isinstance(k, str) and not k.startswith("__") for k in obj)
            if plain:
                return {k: self.pack(v, (*path, k)) for k, v in obj.items()}
            return {"__dict__": [[self.pack(k, (*path, "key")), self.pack(v, (*path, str(k)))]
                                 for k, v in obj.items()]}
        if isinstance(obj, (tuple, torch.Size)):
            return {"__tuple__": [self.pack(v, (*path, str(i))) for i, v in enumerate(obj)]}
        if isinstance(obj, list):
            return [self.pack(v, (*path, str(i))) for i, v in enumerate(obj)]
        if obj is None or isinstance(obj, (bool, int, float, str)):
            return obj
        if isinstance(obj, np.generic):
            return obj.item()
        if isinstance(obj, torch.dtype):
            return {"__dtype__": str(obj).removeprefix("torch.")}
        if isinstance(obj, torch.device):
            return {"__device__": str(obj)}
        raise CheckpointError(
            f"cannot store {'/'.join(path)} ({type(obj).__name__}) without pickle; state_dict "
            "values must be tensors, numpy arrays, numbers, strings, None, lists, tuples or dicts"
        )

    def _add(self, t: torch.Tensor, path: tuple[str, ...]) -> str:
        key = "/".join(path)
        n = 1
        while key in self.tensors:
            key = f"{'/'.join(path)}~{n}"
            n += 1
        t = t.detach().to("cpu").contiguous()
        ptr = t.untyped_storage().data_ptr()
        if ptr in self._storages or t.numel() == 0:
            t = t.clone()  # safetensors refuses tensors that share memory (tied weights)
        self._storages.add(t.untyped_storage().data_ptr())
        self.tensors[key] = t
        return key


def _unpack(obj: Any, tensors: Mapping[str, torch.Tensor]) -> Any:
    if isinstance(obj, list):
        return [_unpack(v, tensors) for v in obj]
    if not isinstance(obj, dict):
        return obj
    if len(obj) == 1:
        (tag, value), = obj.items()
        if tag == "__tensor__":
            return tensors[value]
        if tag == "__ndarray__":
            return tensors[value].cpu().numpy()
        if tag == "__tuple__":
            return tuple(_unpack(v, tensors) for v in value)
        if tag == "__dict__":
            return {_hashable(_unpack(k, tensors)): _unpack(v, tensors) for k, v in value}
        if tag == "__dtype__":
            return getattr(torch, value)
        if tag == "__device__":
            return torch.device(value)
    return {k: _unpack(v, tensors) for k, v in obj.items()}


def _hashable(key: Any) -> Any:
    return tuple(_hashable(k) for k in key) if isinstance(key, (list, tuple)) else key


def jsonable(value: Any, where: str) -> Any:
    """`value` as plain JSON data: specs become their JSON string, dataclasses dicts."""
    if hasattr(value, "to_json") and callable(value.to_json):
        return value.to_json()
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return jsonable(dataclasses.asdict(value), where)
    if isinstance(value, Mapping):
        return {str(k): jsonable(v, f"{where}.{k}") for k, v in value.items()}
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, Sequence) and not isinstance(value, (bytes, bytearray)):
        return [jsonable(v, f"{where}[{i}]") for i, v in enumerate(value)]
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    if hasattr(value, "items"):  # e.g. an omegaconf DictConfig
        return jsonable(dict(value.items()), where)
    raise CheckpointError(
        f"meta {where} is a {type(value).__name__}, which JSON cannot hold; pass plain data "
        "(numbers, strings, lists, dicts), a dataclass, or an object with to_json()"
    )
