"""Saving and loading a run's checkpoints, and refusing those that do not fit this run."""

from __future__ import annotations

import json
import platform
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import safetensors
import torch
from safetensors.torch import load_file

from agent.checkpoint import atomic
from agent.checkpoint.errors import CheckpointError
from agent.checkpoint.rng import RNGState
from agent.checkpoint.tensor_file import jsonable, pack_states, unpack_state
from perception.spec import ActionSpec, ObsSpec

FORMAT_VERSION = 1

_SPECS: dict[str, tuple[str, type[ObsSpec] | type[ActionSpec]]] = {
    "obs_spec": ("observation spec", ObsSpec),
    "action_spec": ("action spec", ActionSpec),
}


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
    atomic.clean_leftovers(directory)

    # Gather everything first so a failure (bad meta, unsupported state) writes nothing.
    user_meta = jsonable(dict(meta), "meta")
    structure, tensors = pack_states(modules)
    rng_files = rng.to_files() if rng is not None else None

    final = directory / atomic.checkpoint_name(step)
    with atomic.write_dir(final) as tmp:
        atomic.write_tensors(tmp / atomic.TENSORS, tensors)
        atomic.write_json(tmp / atomic.STATE, structure)
        files = [atomic.TENSORS, atomic.STATE]
        if rng_files is not None:
            atomic.write_json(tmp / atomic.RNG_JSON, rng_files[0])
            atomic.write_tensors(tmp / atomic.RNG_TENSORS, rng_files[1])
            files += [atomic.RNG_JSON, atomic.RNG_TENSORS]
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
        atomic.write_json(tmp / atomic.META, info)  # last: its presence marks it complete
    atomic.set_latest(directory, final.name)
    if keep is not None:
        atomic.discard_older(directory, keep, final)
    return final


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


def check_run_dir(run_dir: Path, resume: bool) -> None:
    """Refuse to start over a run that has checkpoints, or to resume one that has none."""
    has = bool(atomic.list_checkpoints(Path(run_dir) / "checkpoints"))
    if has and not resume:
        raise CheckpointError(f"run {run_dir} already has checkpoints; continue it with "
                              "resume=true or pick another name=...")
    if resume and not has:
        raise CheckpointError(f"resume=true but {run_dir} has no checkpoint; start it "
                              "without resume")


def read_checkpoint_meta(directory: Path, step: int | None = None) -> dict[str, Any]:
    """The `meta` saved with the latest (or `step`'s) checkpoint, without loading tensors."""
    directory = Path(directory)
    ckpt = (atomic.latest_checkpoint(directory) if step is None
            else directory / atomic.checkpoint_name(step))
    info = atomic.read_meta(ckpt) if ckpt is not None else None
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
        ckpt = atomic.latest_checkpoint(directory)
        if ckpt is None:
            raise CheckpointError(f"no checkpoint in {directory}; start without resume=true")
    else:
        ckpt = directory / atomic.checkpoint_name(step)
        if atomic.read_meta(ckpt) is None:
            steps = [atomic.step_of(p) for p in atomic.list_checkpoints(directory)]
            raise CheckpointError(
                f"no complete checkpoint for step {step} in {directory}; it has steps {steps}"
                + ("" if steps else "; start without resume=true")
            )
    info = atomic.read_meta(ckpt)
    assert info is not None
    saved_meta = info.get("meta", {})
    if expect_meta:
        _check_meta(ckpt, saved_meta, jsonable(dict(expect_meta), "expect_meta"))

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
    tensors = load_file(str(ckpt / atomic.TENSORS), device=device)
    structure = json.loads((ckpt / atomic.STATE).read_text(encoding="utf-8"))
    states = {}
    for name, obj in modules.items():
        sd = unpack_state(structure[name], tensors)
        _check_fits(ckpt, name, obj, sd)
        states[name] = sd
        try:
            obj.load_state_dict(states[name])
        except (RuntimeError, ValueError, KeyError) as e:
            raise CheckpointError(
                f"checkpoint in {ckpt}: module {name!r} does not load into this run's "
                f"{type(obj).__name__}: {e}; start a new run or use the checkpoint's config"
            ) from e

    rng = None
    if info.get("rng"):
        rng_data = json.loads((ckpt / atomic.RNG_JSON).read_text(encoding="utf-8"))
        rng_tensors = load_file(str(ckpt / atomic.RNG_TENSORS), device="cpu")
        rng = RNGState.from_files(rng_data, rng_tensors)
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
        elif key in _SPECS:
            a, b = _parse_spec(key, have), _parse_spec(key, want)
            diff = (a.difference(b, ("the checkpoint", "this env"))
                    if isinstance(a, ObsSpec) and isinstance(b, ObsSpec) else "")
            problems.append(
                f"checkpoint in {ckpt} was trained for {_SPECS[key][0]} "
                f"{_summary(a, have)}; this run's env has {_summary(b, want)}"
                + (f" ({diff})" if diff else "")
                + "; start a new run or pick the matching env"
            )
        else:
            problems.append(f"checkpoint in {ckpt} was saved with {key}={_short(have)}; this run "
                            f"has {key}={_short(want)}; start a new run or use the same {key}")
    if problems:
        raise CheckpointError("\n".join(problems))


def _parse_spec(key: str, value: Any) -> ObsSpec | ActionSpec | None:
    """`value` (JSON text or data) as the spec `key` names, or None where it is not one."""
    try:
        data = json.loads(value) if isinstance(value, str) else value
        return _SPECS[key][1].from_dict(data) if isinstance(data, Mapping) else None
    except (ValueError, LookupError, TypeError, AttributeError):  # SpecError is a ValueError
        return None


def _summary(spec: ObsSpec | ActionSpec | None, value: Any) -> str:
    return spec.summary() if spec is not None else _short(value)


def _short(value: Any, limit: int = 300) -> str:
    text = json.dumps(value, sort_keys=True) if not isinstance(value, str) else value
    return text if len(text) <= limit else text[: limit - 3] + "..."
