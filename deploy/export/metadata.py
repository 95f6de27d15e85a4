"""What the exporter writes into a file's ``metadata_props`` and ``doc_string``.

The keys and their meaning are :data:`deploy.model.KEYS`; the torch-free
reader (:mod:`deploy.model`) reads them back.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from importlib import metadata as importlib_metadata
from pathlib import Path
from typing import Any

import numpy as np
import onnx
from onnx import numpy_helper

from deploy.model import FORMAT_VERSION, PREFIX
from perception.settings import ConfigError
from perception.spec import ActionSpec, ObsSpec, presence_key

#: discrete action names that mean "do nothing", in order of preference
SAFE_NAMES = ("stop", "noop", "no_op", "idle", "none", "hold", "zero")


def resolve_safe_action(action_spec: ActionSpec, given: Any) -> tuple[Any, str]:
    """The safe action as JSON data, and why it is the safe one."""
    if action_spec.kind == "discrete":
        if given is not None:
            if not isinstance(given, int) or isinstance(given, bool) or \
                    not 0 <= given < action_spec.n:
                raise ConfigError(f"export: safe_action={given!r} is invalid; it must be an "
                                  f"action index in [0, {action_spec.n})")
            return given, "set at export (safe_action=)"
        for name in SAFE_NAMES:
            if name in action_spec.names:
                i = action_spec.names.index(name)
                return i, f"the action named {name!r}"
        return 0, ("action 0: the action spec names no stop/no-op action; set safe_action= at "
                   "export if 0 is not safe on the robot")
    size = int(np.prod(action_spec.shape))
    low = np.broadcast_to(np.asarray(action_spec.low, np.float64), (size,))
    high = np.broadcast_to(np.asarray(action_spec.high, np.float64), (size,))
    if given is None:
        return np.clip(np.zeros(size), low, high).reshape(action_spec.shape).tolist(), \
            "zeros clipped to the action bounds"
    value = np.asarray(given, np.float64)
    if value.size not in (1, size) or not np.isfinite(value).all():
        raise ConfigError(f"export: safe_action={given!r} is invalid; it must be {size} finite "
                          f"numbers (or one for all)")
    value = np.broadcast_to(value.reshape(-1), (size,))
    if (value < low).any() or (value > high).any():
        raise ConfigError(f"export: safe_action={given!r} is outside the action bounds "
                          f"[{low.tolist()}, {high.tolist()}]")
    return value.reshape(action_spec.shape).tolist(), "set at export (safe_action=)"


def weights_sha256(model: onnx.ModelProto) -> str:
    """sha256 over the initializers (name, dtype, shape, bytes), sorted by name."""
    digest = hashlib.sha256()
    for init in sorted(model.graph.initializer, key=lambda t: t.name):
        arr = numpy_helper.to_array(init)
        digest.update(init.name.encode())
        digest.update(f"{arr.dtype.str}{arr.shape}".encode())
        digest.update(np.ascontiguousarray(arr).tobytes())
    return digest.hexdigest()


def package_version() -> str:
    try:
        return importlib_metadata.version("sensorium")
    except importlib_metadata.PackageNotFoundError:
        return "unknown"


def doc_string(obs_spec: ObsSpec, action_spec: ActionSpec, outputs: Sequence[str],
               hidden: int) -> str:
    """A few lines a person reads in any ONNX viewer: the inputs and outputs."""
    lines = ["sensorium policy: raw sensor arrays in, action out (batch axis 0 is dynamic).",
             "Inputs:"]
    for m in obs_spec:
        lines.append(f"  {m.name}: {m.dtype}{list(m.shape)} {m.kind.value}"
                     + (f", {m.description}" if m.description else ""))
    flags = ", ".join(presence_key(m.name) for m in obs_spec)
    lines.append(f"  {flags}: bool[batch], False = that modality is absent (its data is then "
                 "ignored)")
    if hidden:
        lines.append(f"  h_in: float32[batch, {hidden}], the recurrent state (zeros at an "
                     "episode's start)")
    what = {"action": ("the greedy action index (int64)" if action_spec.kind == "discrete"
                       else "the mean action clipped to the bounds"),
            "logits": "the action logits", "mean": "the action mean (unclipped)",
            "value": "the critic's value estimate", "h_out": "the next recurrent state"}
    lines.append("Outputs:")
    lines += [f"  {o}: {what[o]}" for o in outputs]
    lines.append(f"Metadata: {PREFIX}* keys (obs_spec, action_spec, safe_action, control_hz, ...)")
    return "\n".join(lines)


def build_metadata(obs_spec: ObsSpec, action_spec: ActionSpec, outputs: Sequence[str],
                   hidden: int, safe_action: tuple[Any, str], config: Mapping[str, Any],
                   env_steps: int, macs: int, run_dir: Path) -> dict[str, str]:
    """Every metadata value but the parity figures and the weights hash, as strings."""
    env = dict(config.get("env", {}))
    env_id = str(env.get("id", ""))
    if env.get("env_id"):  # a third-party env made multimodal by the wrapper
        env_id = f"{env_id}({env['env_id']})"
    return {
        PREFIX + "format": str(FORMAT_VERSION),
        PREFIX + "version": package_version(),
        PREFIX + "obs_spec": obs_spec.to_json(),
        PREFIX + "action_spec": action_spec.to_json(),
        PREFIX + "control_hz": repr(float(obs_spec.control_hz)),
        PREFIX + "safe_action": json.dumps(safe_action[0]),
        PREFIX + "safe_action_source": safe_action[1],
        PREFIX + "hidden_size": str(hidden),
        PREFIX + "outputs": json.dumps(list(outputs)),
        PREFIX + "macs": str(int(macs)),
        PREFIX + "config": json.dumps(config, sort_keys=True, default=str),
        PREFIX + "env_id": env_id,
        PREFIX + "env_steps": str(int(env_steps)),
        PREFIX + "run": str(run_dir),
    }


def write_metadata(path: Path, props: Mapping[str, str], doc: str | None = None) -> str:
    """Set `props` (and the doc string) on the file at `path`; the weights' sha256."""
    model = onnx.load(str(path))
    digest = weights_sha256(model)
    merged = {p.key: p.value for p in model.metadata_props}
    merged.update(props)
    merged[PREFIX + "weights_sha256"] = digest
    onnx.helper.set_model_props(model, merged)
    if doc is not None:
        model.doc_string = doc
    onnx.save(model, str(path))
    return digest
