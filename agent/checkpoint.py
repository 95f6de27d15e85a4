"""Checkpoints that survive a kill at any moment and never unpickle anything.

Layout of a run's checkpoint directory::

    ckpt_000000004096/
        tensors.safetensors   every tensor of every state_dict, keyed "<module>/<path>"
        state.json            the rest of each state_dict (optimizer hyper-parameters,
                              step counters, ...) with {"__tensor__": key} placeholders
        rng.json              Python / numpy RNG states (when saved)
        rng.safetensors       torch RNG states (when saved)
        meta.json             step, user meta (config, obs/action spec JSON), versions,
                              time, file sizes; written last
    latest                    name of the newest checkpoint directory

A checkpoint is written into ``.tmp-*`` beside its final place, fsynced, and
renamed into place; then ``latest`` is replaced atomically. A process killed
mid-save leaves only a ``.tmp-*`` directory that the loader never looks at
and that the next save deletes. Old checkpoints are renamed to ``.trash-*``
before they are deleted, so a ``ckpt_*`` directory is always complete.
One writer per directory (rank 0) is assumed.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import platform
import random
import re
import secrets
import shutil
import time
import warnings
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import safetensors
import torch
from safetensors.torch import load_file, save_file

from perception.settings import UserError

FORMAT_VERSION = 1
LATEST = "latest"
TENSORS = "tensors.safetensors"
STATE = "state.json"
META = "meta.json"
RNG_JSON = "rng.json"
RNG_TENSORS = "rng.safetensors"
_PREFIX = "ckpt_"
_NAME_RE = re.compile(r"^ckpt_(\d+)$")
_TMP = ".tmp-"
_TRASH = ".trash-"

_SPEC_WORDS = {"obs_spec": "observation spec", "action_spec": "action spec"}


class CheckpointError(UserError):
    """A checkpoint is missing or does not fit this run; the message says how to fix it."""


Generator = np.random.Generator | torch.Generator | random.Random


# --------------------------------------------------------------------------- RNG


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


# ------------------------------------------------------- state_dict <-> JSON + tensors


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


# ------------------------------------------------------------------------ files


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_text(path: Path, text: str) -> None:
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())


def _write_json(path: Path, data: Any) -> None:
    _write_text(path, json.dumps(data, indent=1) + "\n")


def _write_tensors(path: Path, tensors: Mapping[str, torch.Tensor]) -> None:
    save_file(dict(tensors), str(path), metadata={"format": "pt"})
    _fsync(path)


def _step_of(path: Path) -> int | None:
    m = _NAME_RE.match(path.name)
    return int(m.group(1)) if m else None


def checkpoint_name(step: int) -> str:
    return f"{_PREFIX}{step:012d}"


def _read_meta(ckpt: Path) -> dict[str, Any] | None:
    """meta.json of a complete checkpoint, or None when `ckpt` is not one."""
    try:
        info = json.loads((ckpt / META).read_text(encoding="utf-8"))
        for name, size in info["files"].items():
            if (ckpt / name).stat().st_size != size:
                return None
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None
    return info


def list_checkpoints(directory: Path) -> list[Path]:
    """Complete checkpoint directories in `directory`, oldest step first."""
    directory = Path(directory)
    if not directory.is_dir():
        return []
    found = [(s, p) for p in directory.iterdir() if (s := _step_of(p)) is not None and p.is_dir()]
    return [p for _, p in sorted(found) if _read_meta(p) is not None]


def latest_checkpoint(directory: Path) -> Path | None:
    """The checkpoint ``latest`` names if complete, else the complete one of highest step."""
    directory = Path(directory)
    try:
        name = (directory / LATEST).read_text(encoding="utf-8").strip()
    except OSError:
        name = ""
    if _NAME_RE.match(name) and _read_meta(directory / name) is not None:
        return directory / name
    found = list_checkpoints(directory)
    return found[-1] if found else None


def _clean_leftovers(directory: Path) -> None:
    """Remove what killed saves left behind (temp dirs, half-deleted old checkpoints)."""
    for p in directory.iterdir():
        if not p.name.startswith((_TMP, _TRASH)):
            continue
        if p.is_dir():
            shutil.rmtree(p, ignore_errors=True)
        else:
            p.unlink(missing_ok=True)
    (directory / f"{LATEST}.tmp").unlink(missing_ok=True)


def _discard(ckpt: Path) -> None:
    """Delete a checkpoint; the rename first makes it vanish from ckpt_* at once."""
    trash = ckpt.with_name(f"{_TRASH}{ckpt.name}-{secrets.token_hex(4)}")
    os.rename(ckpt, trash)
    shutil.rmtree(trash, ignore_errors=True)


# ------------------------------------------------------------------------- meta


def _jsonable(value: Any, where: str) -> Any:
    """`value` as plain JSON data: specs become their JSON string, dataclasses dicts."""
    if hasattr(value, "to_json") and callable(value.to_json):
        return value.to_json()
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return _jsonable(dataclasses.asdict(value), where)
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v, f"{where}.{k}") for k, v in value.items()}
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, Sequence) and not isinstance(value, (bytes, bytearray)):
        return [_jsonable(v, f"{where}[{i}]") for i, v in enumerate(value)]
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    if hasattr(value, "items"):  # e.g. an omegaconf DictConfig
        return _jsonable(dict(value.items()), where)
    raise CheckpointError(
        f"meta {where} is a {type(value).__name__}, which JSON cannot hold; pass plain data "
        "(numbers, strings, lists, dicts), a dataclass, or an object with to_json()"
    )


def _versions() -> dict[str, str]:
    try:
        from importlib.metadata import version

        sensorium = version("sensorium")
    except Exception:  # noqa: BLE001 - not installed as a package
        sensorium = "unknown"
    return {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "numpy": np.__version__,
        "safetensors": safetensors.__version__,
        "sensorium": sensorium,
    }


# ------------------------------------------------------------------------- save


def save_checkpoint(
    directory: Path,
    step: int,
    modules: Mapping[str, Any],
    meta: Mapping[str, Any],
    rng: RNGState | None = None,
    keep: int | None = 2,
) -> Path:
    """Write ``directory/ckpt_<step>/`` atomically and point ``latest`` at it.

    Args:
        directory: the run's checkpoint directory (created if missing).
        step: env steps so far; names the checkpoint.
        modules: name -> anything with ``state_dict()`` (nn.Module, optimizer, scheduler,
            observation normaliser, ...).
        meta: JSON-able data to keep beside the weights: the config, ``obs_spec`` and
            ``action_spec`` (spec objects are stored as their JSON string).
        rng: RNG states to restore on resume.
        keep: how many newest checkpoints to keep (the new one included); None keeps all.

    Returns:
        The new checkpoint's directory.
    """
    if not isinstance(step, int) or isinstance(step, bool) or step < 0:
        raise CheckpointError(f"step={step!r} is invalid; it must be an integer >= 0")
    if keep is not None and (not isinstance(keep, int) or keep < 1):
        raise CheckpointError(f"keep={keep!r} is invalid; it must be an integer >= 1 or None")
    for name in modules:
        if not name or "/" in name:
            raise CheckpointError(f"module name {name!r} is invalid; use a non-empty name "
                                  "without '/'")
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    _clean_leftovers(directory)

    # Gather everything first so a failure (bad meta, unsupported state) writes nothing.
    user_meta = _jsonable(dict(meta), "meta")
    packer = _Packer()
    structure: dict[str, Any] = {}
    for name, obj in modules.items():
        sd = obj.state_dict()
        structure[name] = {
            "type": type(obj).__name__,
            "state": packer.pack(sd, (name,)),
            "metadata": _jsonable(getattr(sd, "_metadata", None), f"{name}._metadata"),
        }
    rng_files = rng.to_files() if rng is not None else None

    final = directory / checkpoint_name(step)
    tmp = directory / f"{_TMP}{final.name}-{os.getpid()}-{secrets.token_hex(4)}"
    tmp.mkdir()
    try:
        _write_tensors(tmp / TENSORS, packer.tensors)
        _write_json(tmp / STATE, structure)
        files = [TENSORS, STATE]
        if rng_files is not None:
            _write_json(tmp / RNG_JSON, rng_files[0])
            _write_tensors(tmp / RNG_TENSORS, rng_files[1])
            files += [RNG_JSON, RNG_TENSORS]
        now = time.time()
        info = {
            "format": FORMAT_VERSION,
            "step": step,
            "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now)),
            "unix_time": now,
            "versions": _versions(),
            "modules": list(modules),
            "rng": rng is not None,
            "files": {f: (tmp / f).stat().st_size for f in files},
            "meta": user_meta,
        }
        _write_json(tmp / META, info)  # last: its presence marks the directory complete
        _fsync(tmp)
        if final.exists():  # the same step saved again: the new one wins
            _discard(final)
        os.rename(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    _fsync(directory)

    pointer = directory / f"{LATEST}.tmp"
    _write_text(pointer, final.name + "\n")
    os.replace(pointer, directory / LATEST)
    _fsync(directory)

    if keep is not None:
        older = [p for p in list_checkpoints(directory) if p != final]
        for old in older[: max(0, len(older) - (keep - 1))]:
            _discard(old)
    return final


# ------------------------------------------------------------------------- load


def check_run_dir(run_dir: Path, resume: bool) -> None:
    """Refuse to start over a run that has checkpoints, or to resume one that has none."""
    has = bool(list_checkpoints(Path(run_dir) / "checkpoints"))
    if has and not resume:
        raise CheckpointError(f"run {run_dir} already has checkpoints; continue it with "
                              "resume=true or pick another name=...")
    if resume and not has:
        raise CheckpointError(f"resume=true but {run_dir} has no checkpoint; start it "
                              "without resume")


def read_checkpoint_meta(directory: Path, step: int | None = None) -> dict[str, Any]:
    """The `meta` saved with the latest (or `step`'s) checkpoint, without loading tensors."""
    directory = Path(directory)
    ckpt = latest_checkpoint(directory) if step is None else directory / checkpoint_name(step)
    info = _read_meta(ckpt) if ckpt is not None else None
    if info is None:
        raise CheckpointError(f"no complete checkpoint in {directory}"
                              + (f" for step {step}" if step is not None else "")
                              + "; train first (sensorium train ...)")
    return dict(info.get("meta", {}))


@dataclass
class LoadedCheckpoint:
    """What :func:`load_checkpoint` restored.

    Attributes:
        step: env steps at the save.
        meta: the `meta` passed to :func:`save_checkpoint` (as JSON data).
        rng: RNG states to pass to ``RNGState.restore``, or None if none were saved.
        path: the checkpoint directory.
        info: all of meta.json (versions, time, module names, ...).
    """

    step: int
    meta: dict[str, Any]
    rng: RNGState | None
    path: Path
    info: dict[str, Any]


def load_checkpoint(
    directory: Path,
    modules: Mapping[str, Any],
    expect_meta: Mapping[str, Any] | None = None,
    map_location: str | torch.device = "cpu",
    step: int | None = None,
    strict: bool = True,
) -> LoadedCheckpoint:
    """Restore `modules` from the latest complete checkpoint in `directory`.

    Args:
        directory: the run's checkpoint directory.
        modules: name -> object with ``load_state_dict`` (the names used at save time).
        expect_meta: values the checkpoint's meta must equal, e.g. this run's
            ``obs_spec`` and ``action_spec``; compared before anything is loaded.
        map_location: device the tensors are loaded to.
        step: load this step's checkpoint instead of the latest.
        strict: when False, checkpoint modules absent from `modules` are skipped
            (e.g. load only the policy for evaluation).

    Raises:
        CheckpointError: no checkpoint, another spec or config, or modules that do not fit.
    """
    directory = Path(directory)
    if step is None:
        ckpt = latest_checkpoint(directory)
        if ckpt is None:
            raise CheckpointError(f"no checkpoint in {directory}; start without resume=true")
    else:
        ckpt = directory / checkpoint_name(step)
        if _read_meta(ckpt) is None:
            steps = [_step_of(p) for p in list_checkpoints(directory)]
            raise CheckpointError(
                f"no complete checkpoint for step {step} in {directory}; it has steps {steps}"
                + ("" if steps else "; start without resume=true")
            )
    info = _read_meta(ckpt)
    assert info is not None
    saved_meta = info.get("meta", {})
    if expect_meta:
        _check_meta(ckpt, saved_meta, _jsonable(dict(expect_meta), "expect_meta"))

    saved = list(info["modules"])
    missing = [m for m in modules if m not in saved]
    unexpected = [m for m in saved if m not in modules] if strict else []
    if missing or unexpected:
        parts = []
        if missing:
            parts.append(f"this run passes {missing}, which the checkpoint lacks")
        if unexpected:
            parts.append(f"the checkpoint holds {unexpected}, which this run does not pass")
        raise CheckpointError(
            f"checkpoint in {ckpt} holds modules {saved}; {'; '.join(parts)}; pass the same "
            "module names as when saving (or strict=False to load a subset)"
        )

    device = str(map_location)
    tensors = load_file(str(ckpt / TENSORS), device=device)
    structure = json.loads((ckpt / STATE).read_text(encoding="utf-8"))
    states = {}
    for name, obj in modules.items():
        entry = structure[name]
        sd = _unpack(entry["state"], tensors)
        if entry.get("metadata") is not None and isinstance(sd, dict):
            sd = OrderedDict(sd)
            sd._metadata = entry["metadata"]  # type: ignore[attr-defined]
        _check_fits(ckpt, name, obj, sd)
        states[name] = sd
    for name, obj in modules.items():
        try:
            obj.load_state_dict(states[name])
        except (RuntimeError, ValueError, KeyError) as e:
            raise CheckpointError(
                f"checkpoint in {ckpt}: module {name!r} does not load into this run's "
                f"{type(obj).__name__}: {e}; start a new run or use the checkpoint's config"
            ) from e

    rng = None
    if info.get("rng"):
        rng_data = json.loads((ckpt / RNG_JSON).read_text(encoding="utf-8"))
        rng = RNGState.from_files(rng_data, load_file(str(ckpt / RNG_TENSORS), device="cpu"))
    return LoadedCheckpoint(step=int(info["step"]), meta=saved_meta, rng=rng, path=ckpt,
                            info=info)


def _check_fits(ckpt: Path, name: str, obj: Any, sd: Any) -> None:
    """Name what differs before anything is loaded, so a failed load changes nothing."""
    where = f"checkpoint in {ckpt}: module {name!r}"
    fix = "the model or algorithm config differs from the checkpoint's; start a new run or " \
          "use the checkpoint's config"
    if isinstance(obj, torch.nn.Module):
        want = obj.state_dict()
        missing = [k for k in want if k not in sd]
        unexpected = [k for k in sd if k not in want]
        shapes = [f"{k}: checkpoint {tuple(sd[k].shape)}, this run {tuple(v.shape)}"
                  for k, v in want.items()
                  if k in sd and isinstance(v, torch.Tensor) and isinstance(sd[k], torch.Tensor)
                  and sd[k].shape != v.shape]
        if missing or unexpected or shapes:
            parts = []
            if missing:
                parts.append(f"keys missing from the checkpoint {missing}")
            if unexpected:
                parts.append(f"keys this run's model lacks {unexpected}")
            if shapes:
                parts.append(f"shape mismatches [{'; '.join(shapes)}]")
            raise CheckpointError(f"{where} does not match this run's model: "
                                  f"{', '.join(parts)}; {fix}")
    elif isinstance(obj, torch.optim.Optimizer):
        want = [len(g["params"]) for g in obj.param_groups]
        have = [len(g["params"]) for g in sd.get("param_groups", [])]
        if want != have:
            raise CheckpointError(f"{where}: parameter groups of sizes {have} in the checkpoint, "
                                  f"{want} in this run's optimizer; {fix}")


def _canon(value: Any) -> str:
    if isinstance(value, str):
        try:
            parsed = json.loads(value)
        except ValueError:
            parsed = None
        if isinstance(parsed, (dict, list)):
            value = parsed
    return json.dumps(value, sort_keys=True)


def _check_meta(ckpt: Path, saved: Mapping[str, Any], expect: Mapping[str, Any]) -> None:
    problems = []
    for key, want in expect.items():
        have = saved.get(key, None)
        if key in saved and _canon(have) == _canon(want):
            continue
        if key not in saved:
            problems.append(f"checkpoint in {ckpt} has no {key!r} in its meta; this run has "
                            f"{_short(want)}; start a new run")
        elif key in _SPEC_WORDS:
            diff = _spec_diff(key, have, want)
            problems.append(
                f"checkpoint in {ckpt} was trained for {_SPEC_WORDS[key]} "
                f"{_spec_summary(key, have)}; this run's env has {_spec_summary(key, want)}"
                + (f" ({diff})" if diff else "")
                + "; start a new run or pick the matching env"
            )
        else:
            problems.append(f"checkpoint in {ckpt} was saved with {key}={_short(have)}; this run "
                            f"has {key}={_short(want)}; start a new run or use the same {key}")
    if problems:
        raise CheckpointError("\n".join(problems))


def _as_data(value: Any) -> Any:
    if isinstance(value, str):
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value


def _short(value: Any, limit: int = 300) -> str:
    text = json.dumps(value, sort_keys=True) if not isinstance(value, str) else value
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _modality_summary(m: Mapping[str, Any]) -> str:
    shape = "x".join(str(s) for s in m.get("shape", []))
    return f"{m.get('name')}:{m.get('kind')}[{shape}]{m.get('dtype')}"


def _spec_summary(key: str, value: Any) -> str:
    data = _as_data(value)
    if not isinstance(data, Mapping):
        return _short(value)
    if key == "obs_spec" and isinstance(data.get("modalities"), list):
        mods = ", ".join(_modality_summary(m) for m in data["modalities"])
        presence = data.get("presence") or []
        return f"({mods}" + (f"; presence {presence}" if presence else "") + \
            f" @ {data.get('control_hz')} Hz)"
    if key == "action_spec" and "kind" in data:
        if data["kind"] == "discrete":
            return f"(discrete, n={data.get('n')})"
        return f"(continuous, shape {tuple(data.get('shape', ()))})"
    return _short(value)


def _spec_diff(key: str, have: Any, want: Any) -> str:
    a, b = _as_data(have), _as_data(want)
    if key != "obs_spec" or not isinstance(a, Mapping) or not isinstance(b, Mapping):
        return ""
    ma = {m.get("name"): m for m in a.get("modalities", [])}
    mb = {m.get("name"): m for m in b.get("modalities", [])}
    parts = []
    if only := [n for n in ma if n not in mb]:
        parts.append(f"only in the checkpoint: {only}")
    if only := [n for n in mb if n not in ma]:
        parts.append(f"only in this env: {only}")
    for n in ma:
        if n in mb and ma[n] != mb[n]:
            fields = sorted(k for k in set(ma[n]) | set(mb[n]) if ma[n].get(k) != mb[n].get(k))
            diffs = ", ".join(f"{k} {_fmt(ma[n].get(k))} vs {_fmt(mb[n].get(k))}" for k in fields)
            parts.append(f"{n}: {diffs}")
    if a.get("control_hz") != b.get("control_hz"):
        parts.append(f"control_hz {a.get('control_hz')} vs {b.get('control_hz')}")
    if list(ma) != list(mb) and set(ma) == set(mb):
        parts.append(f"modality order {list(ma)} vs {list(mb)}")
    if (a.get("presence") or []) != (b.get("presence") or []):
        parts.append(f"presence flags {a.get('presence')} vs {b.get('presence')}")
    return "; ".join(parts)


def _fmt(v: Any) -> str:
    if isinstance(v, list):
        return str(tuple(v))
    if isinstance(v, float) and math.isinf(v):
        return "inf" if v > 0 else "-inf"
    return str(v)
