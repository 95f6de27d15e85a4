"""Export to ONNX (torch side): one graph from raw sensor arrays to outputs, with its spec."""

from deploy.export.onnx import (
    ObsInputs,
    example_inputs,
    export_onnx,
    input_names,
    onnx_session,
    read_obs_spec,
)

__all__ = [
    "ObsInputs",
    "example_inputs",
    "export_onnx",
    "input_names",
    "onnx_session",
    "read_obs_spec",
]
