"""Export a model that reads raw observations to one ONNX graph, and run it.

The graph's inputs are named by modality (raw dtypes: uint8 images, float32
waveforms and vectors), then one ``<name>_present`` bool flag per modality,
then ``h_in`` for recurrent models. The ObsSpec travels in the file's
``metadata_props`` (key ``sensorium.obs_spec``), so a runtime can check its
sensors against it without anything else.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import onnxruntime as ort
import torch
from torch import Tensor, nn

from deploy.model import SPEC_KEY, open_session
from perception.spec import ModalityKind, ObsSpec, presence_key

OPSET = 17


def input_names(obs_spec: ObsSpec, recurrent: bool) -> list[str]:
    names = list(obs_spec.names) + [presence_key(n) for n in obs_spec.names]
    return names + (["h_in"] if recurrent else [])


class ObsInputs(nn.Module):
    """Positional ONNX inputs -> the observation dict a model's ``forward(obs, h)`` takes.

    Args:
        model: returns a tensor or a tuple ``(output, ..., h_new)``; with
            ``recurrent`` the last element is the new hidden state.
        obs_spec: names and order of the inputs.
        recurrent: whether ``h_in`` is an input (and ``h_out`` an output).
    """

    def __init__(self, model: nn.Module, obs_spec: ObsSpec, recurrent: bool) -> None:
        super().__init__()
        self.model = model
        self.names = obs_spec.names
        self.recurrent = recurrent

    def forward(self, *inputs: Tensor) -> Any:
        m = len(self.names)
        obs = dict(zip(self.names, inputs[:m]))
        obs.update({presence_key(n): f for n, f in zip(self.names, inputs[m:2 * m])})
        h = inputs[2 * m] if self.recurrent else None
        out = self.model(obs, h)
        if isinstance(out, tuple):
            out = tuple(o for o in out if o is not None)
        return out


def example_inputs(obs_spec: ObsSpec, batch: int, hidden: int = 0,
                   generator: torch.Generator | None = None) -> list[Tensor]:
    """Random raw inputs in the spec's dtypes and ranges, flags all True (+ h_in zeros)."""
    xs: list[Tensor] = []
    for m in obs_spec:
        if m.kind is ModalityKind.IMAGE:
            xs.append(torch.randint(0, 256, (batch, *m.shape), dtype=torch.uint8,
                                    generator=generator))
        elif m.kind is ModalityKind.DEPTH:
            xs.append(torch.rand(batch, *m.shape, generator=generator) * float(m.high))
        elif m.kind is ModalityKind.AUDIO:
            xs.append(torch.randn(batch, *m.shape, generator=generator).mul(0.1).clamp(-1, 1))
        else:
            xs.append(torch.randn(batch, *m.shape, generator=generator))
    xs += [torch.ones(batch, dtype=torch.bool) for _ in obs_spec.names]
    if hidden:
        xs.append(torch.zeros(batch, hidden))
    return xs


def export_onnx(model: nn.Module, obs_spec: ObsSpec, path: str | Path,
                output_names: Sequence[str], hidden: int = 0,
                metadata: Mapping[str, Any] | None = None) -> Path:
    """Write `model` (``forward(obs, h)``) as ONNX at `path`; batch size stays dynamic.

    Args:
        output_names: names of the model's outputs, ``h_out`` last when `hidden`.
        hidden: size of the recurrent state (0 = not recurrent).
        metadata: extra ``metadata_props`` (values JSON-encoded unless str).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    wrapper = ObsInputs(model, obs_spec, recurrent=bool(hidden)).eval()
    names_in = input_names(obs_spec, bool(hidden))
    args = tuple(example_inputs(obs_spec, 2, hidden))
    dynamic = {n: {0: "batch"} for n in [*names_in, *output_names]}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation notes
        torch.onnx.export(wrapper, args, str(path), input_names=names_in,
                          output_names=list(output_names), dynamic_axes=dynamic,
                          opset_version=OPSET, dynamo=False)
    proto = onnx.load(str(path))
    props = {SPEC_KEY: obs_spec.to_json()}
    for k, v in (metadata or {}).items():
        props[k] = v if isinstance(v, str) else json.dumps(v)
    onnx.helper.set_model_props(proto, props)
    onnx.save(proto, str(path))
    return path


def read_obs_spec(path: str | Path) -> ObsSpec:
    """The ObsSpec stored in an exported file."""
    props = {p.key: p.value for p in onnx.load(str(path), load_external_data=False).metadata_props}
    if SPEC_KEY not in props:
        raise ValueError(f"{path} carries no {SPEC_KEY}; export it with sensorium")
    return ObsSpec.from_json(props[SPEC_KEY])


def onnx_session(path: str | Path, threads: int = 1) -> ort.InferenceSession:
    """An onnxruntime CPU session with `threads` intra-op threads (spinning off), sequential."""
    return open_session(path, threads=threads)


def to_feed(inputs: Sequence[Tensor], names: Sequence[str]) -> dict[str, np.ndarray]:
    return {n: x.detach().cpu().numpy() for n, x in zip(names, inputs)}
