"""The observation contract: validation, gymnasium spaces, JSON, torch-free."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
from gymnasium import spaces

from perception.spec import (
    ActionSpec,
    ModalityKind,
    ModalitySpec,
    ObsSpec,
    SpecError,
    presence_key,
)


def example_spec() -> ObsSpec:
    return ObsSpec(
        (
            ModalitySpec("rgb", "image", (64, 64, 3), "uint8", 30.0, 0, 255),
            ModalitySpec("audio", ModalityKind.AUDIO, (2, 1600), "float32", 10.0, -1, 1,
                         sample_rate=16000, description="binaural"),
            ModalitySpec("proprio", "vector", (6,), "float32", 100.0),
        ),
        control_hz=10.0,
        presence=("audio",),
    )


def test_json_round_trip_is_exact() -> None:
    spec = example_spec()
    text = spec.to_json()
    json.loads(text)  # plain JSON, infinities included
    assert ObsSpec.from_json(text) == spec
    actions = ActionSpec("discrete", n=4, names=("stop", "forward", "left", "right"))
    assert ActionSpec.from_json(actions.to_json()) == actions
    box = ActionSpec("continuous", shape=(2,), low=(-1.0,), high=(1.0,))
    assert ActionSpec.from_json(box.to_json()) == box


def test_gymnasium_space_round_trip() -> None:
    spec = example_spec()
    space = spec.to_space()
    assert isinstance(space, spaces.Dict)
    assert space["rgb"].dtype == np.uint8 and space["rgb"].shape == (64, 64, 3)
    assert space[presence_key("audio")].dtype == np.bool_
    back = ObsSpec.from_space(
        space,
        kinds={"rgb": "image", "audio": "audio", "proprio": "vector"},
        control_hz=10.0,
        rates_hz={"rgb": 30.0, "proprio": 100.0},
        sample_rates={"audio": 16000},
    )
    assert back.names == ("audio", "proprio", "rgb")  # gymnasium sorts Dict keys
    assert back.presence == ("audio",)
    for m in spec:
        assert back[m.name].shape == m.shape and back[m.name].kind == m.kind
    sample = space.sample()
    spec.check(sample)


def test_action_spec_from_gymnasium_spaces() -> None:
    assert ActionSpec.from_space(spaces.Discrete(3)).to_space() == spaces.Discrete(3)
    box = spaces.Box(-2.0, 2.0, shape=(3,), dtype=np.float32)
    assert ActionSpec.from_space(box).to_space() == box
    with pytest.raises(SpecError, match="unsupported action space MultiBinary"):
        ActionSpec.from_space(spaces.MultiBinary(3))


def test_select_replace_and_presence() -> None:
    spec = example_spec()
    sub = spec.select(["proprio", "audio"])
    assert sub.names == ("audio", "proprio") and sub.presence == ("audio",)
    assert spec.with_presence("rgb").presence == ("rgb", "audio")
    with pytest.raises(SpecError, match="unknown modality 'touch'; this spec has: rgb, audio"):
        spec.select(["touch"])


def test_summary_and_difference_name_what_differs() -> None:
    spec = example_spec()
    assert spec.summary() == ("(rgb:image[64x64x3]uint8, audio:audio[2x1600]float32, "
                              "proprio:vector[6]float32; presence ['audio'] @ 10 Hz)")
    assert spec.difference(ObsSpec.from_json(spec.to_json())) == ""
    small = spec.replace(ModalitySpec("rgb", "image", (48, 48, 3), "uint8", 15.0, 0, 255))
    other = ObsSpec(small.select(["rgb", "proprio"]).modalities[::-1], control_hz=5.0)
    assert spec.difference(other, ("the checkpoint", "this env")) == (
        "only in the checkpoint: ['audio']; rgb: rate_hz 30 vs 15, shape (64, 64, 3) vs "
        "(48, 48, 3); control_hz 10 vs 5; presence flags ['audio'] vs []")
    assert other.difference(spec).startswith("only in other: ['audio']; rgb: rate_hz 15 vs")
    reordered = ObsSpec(spec.modalities[::-1], spec.control_hz, spec.presence)
    assert spec.difference(reordered) == ("modality order ['rgb', 'audio', 'proprio'] vs "
                                          "['proprio', 'audio', 'rgb']")
    assert ActionSpec("discrete", n=4).summary() == "(discrete, n=4)"
    box = ActionSpec("continuous", shape=(2, 3), low=(-1.0,), high=(1.0,))
    assert box.summary() == "(continuous, shape (2, 3))"


@pytest.mark.parametrize(
    ("kwargs", "pattern"),
    [
        ({"shape": (64, -1, 3)}, r"shape \(64, -1, 3\) has a size <= 0"),
        ({"shape": (64, 64)}, r"kind 'image' needs a rank-3 shape"),
        ({"dtype": "float32"}, r"kind 'image' takes dtype uint8, got 'float32'"),
        ({"kind": "smell"}, r"unknown modality kind 'smell'; use one of: image, depth"),
        ({"name": "rgb_present"}, r"name must be a Python identifier"),
        ({"rate_hz": 0.0}, r"rate_hz must be > 0"),
    ],
)
def test_bad_modality_specs_get_clear_errors(kwargs, pattern) -> None:
    base = {"name": "rgb", "kind": "image", "shape": (64, 64, 3), "dtype": "uint8",
            "rate_hz": 30.0}
    with pytest.raises(SpecError, match=pattern):
        ModalitySpec(**{**base, **kwargs})


def test_audio_needs_a_sample_rate_and_specs_need_unique_names() -> None:
    with pytest.raises(SpecError, match="audio needs sample_rate"):
        ModalitySpec("mic", "audio", (1, 160), "float32", 100.0)
    m = ModalitySpec("proprio", "vector", (3,), "float32", 10.0)
    with pytest.raises(SpecError, match=r"repeated: \['proprio'\]"):
        ObsSpec((m, m))


def test_check_names_the_modality_and_the_fix() -> None:
    spec = example_spec()
    obs = {k: v for k, v in spec.to_space().sample().items()}
    obs["proprio"] = obs["proprio"].astype(np.float64)
    with pytest.raises(SpecError, match=r"'proprio': expected dtype float32.*astype"):
        spec.check(obs)
    del obs["rgb"]
    with pytest.raises(SpecError, match="lacks modality 'rgb'"):
        spec.check(obs)


def test_a_spec_from_another_version_is_refused() -> None:
    data = example_spec().to_dict()
    data["version"] = 99
    with pytest.raises(SpecError, match="version 99.*re-export"):
        ObsSpec.from_dict(data)


def test_the_spec_module_does_not_import_torch() -> None:
    code = "import sys, perception.spec; assert 'torch' not in sys.modules, 'torch imported'"
    subprocess.run([sys.executable, "-c", code], check=True)
