"""Checkpoints: exact round trips, no pickle, clear mismatch errors, atomic under SIGKILL."""

from __future__ import annotations

import json
import os
import pickle
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from agent.checkpoint import (
    LATEST,
    CheckpointError,
    RNGState,
    capture_rng,
    latest_checkpoint,
    list_checkpoints,
    load_checkpoint,
    restore_rng,
    save_checkpoint,
)
from perception.spec import ActionSpec, ModalitySpec, ObsSpec

REPO = Path(__file__).resolve().parents[2]


class Net(nn.Module):
    """Parameters, a buffer (batch norm) and a tied weight."""

    def __init__(self) -> None:
        super().__init__()
        self.inp = nn.Linear(4, 8)
        self.norm = nn.BatchNorm1d(8)
        self.out = nn.Linear(8, 8)
        self.back = nn.Linear(8, 8, bias=False)
        self.back.weight = self.out.weight

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.back(self.out(torch.relu(self.norm(self.inp(x)))))


def _train(model: nn.Module, opt: torch.optim.Optimizer, steps: int, seed: int) -> None:
    gen = torch.Generator().manual_seed(seed)
    for _ in range(steps):
        x = torch.randn(16, 4, generator=gen)
        loss = model(x).pow(2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()


def _equal_state(a: dict, b: dict) -> bool:
    if a.keys() != b.keys():
        return False
    for k in a:
        va, vb = a[k], b[k]
        if isinstance(va, dict):
            if not _equal_state(va, vb):
                return False
        elif isinstance(va, torch.Tensor):
            if not (isinstance(vb, torch.Tensor) and va.dtype == vb.dtype
                    and torch.equal(va, vb)):
                return False
        elif isinstance(va, (list, tuple)) and isinstance(vb, (list, tuple)):
            if list(va) != list(vb):
                return False
        elif va != vb:
            return False
    return True


def _spec(rgb_shape: tuple[int, int, int] = (64, 64, 3)) -> ObsSpec:
    return ObsSpec((
        ModalitySpec("rgb", "image", rgb_shape, "uint8", 30.0, 0, 255),
        ModalitySpec("proprio", "vector", (6,), "float32", 100.0),
    ))


def test_model_and_adam_round_trip(tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = Net()
    opt = torch.optim.Adam(model.parameters(), lr=1e-2, betas=(0.8, 0.99))
    _train(model, opt, steps=3, seed=1)
    save_checkpoint(tmp_path, 3, {"policy": model, "optim": opt}, {"config": {"lr": 1e-2}})

    torch.manual_seed(123)
    model2 = Net()
    opt2 = torch.optim.Adam(model2.parameters(), lr=0.5)
    loaded = load_checkpoint(tmp_path, {"policy": model2, "optim": opt2})
    assert loaded.step == 3 and loaded.meta == {"config": {"lr": 1e-2}}
    assert loaded.rng is None
    assert _equal_state(model.state_dict(), model2.state_dict())
    s1, s2 = opt.state_dict(), opt2.state_dict()
    assert s1["param_groups"] == s2["param_groups"]
    assert s1["state"].keys() == s2["state"].keys()
    for k in s1["state"]:
        assert _equal_state(s1["state"][k], s2["state"][k])  # step, exp_avg, exp_avg_sq
    assert model2.back.weight is model2.out.weight  # tying survives (load copies in place)

    _train(model, opt, steps=1, seed=7)
    _train(model2, opt2, steps=1, seed=7)
    assert _equal_state(model.state_dict(), model2.state_dict())
    assert _equal_state(opt.state_dict()["state"], opt2.state_dict()["state"])


def test_rng_round_trip_in_memory_and_through_files(tmp_path: Path) -> None:
    def draws(np_gen: np.random.Generator, t_gen: torch.Generator, py: random.Random) -> list:
        return [
            random.random(), np.random.rand(), np_gen.standard_normal(3).tolist(),
            torch.rand(3).tolist(), torch.rand(2, generator=t_gen).tolist(), py.random(),
            np.random.randn(),  # exercises the cached-gaussian part of the legacy state
        ]

    random.seed(1)
    np.random.seed(2)
    torch.manual_seed(3)
    gens = [np.random.default_rng(4), torch.Generator().manual_seed(5), random.Random(6)]
    np.random.randn()  # leave a cached gaussian in the legacy state
    state = capture_rng(gens)
    first = draws(*gens)
    restore_rng(state, gens)
    assert draws(*gens) == first

    save_checkpoint(tmp_path, 1, {}, {}, rng=RNGState.capture(gens))
    first = draws(*gens)
    draws(*gens)  # move everything on
    loaded = load_checkpoint(tmp_path, {})
    assert loaded.rng is not None
    loaded.rng.restore(gens)
    assert draws(*gens) == first

    with pytest.raises(CheckpointError, match="same generators"):
        loaded.rng.restore(gens[:1])
    with pytest.raises(CheckpointError, match="PCG64"):
        loaded.rng.restore([np.random.Generator(np.random.MT19937(0)), *gens[1:]])


def test_keep_deletes_older_checkpoints(tmp_path: Path) -> None:
    model = nn.Linear(2, 2)
    for step in range(1, 6):
        save_checkpoint(tmp_path, step * 100, {"m": model}, {}, keep=2)
    assert [p.name for p in list_checkpoints(tmp_path)] == ["ckpt_000000000400",
                                                            "ckpt_000000000500"]
    assert (tmp_path / LATEST).read_text().strip() == "ckpt_000000000500"
    assert load_checkpoint(tmp_path, {"m": model}).step == 500
    assert load_checkpoint(tmp_path, {"m": model}, step=400).step == 400
    with pytest.raises(CheckpointError, match=r"it has steps \[400, 500\]"):
        load_checkpoint(tmp_path, {"m": model}, step=100)
    save_checkpoint(tmp_path, 600, {"m": model}, {}, keep=None)
    save_checkpoint(tmp_path, 600, {"m": model}, {"again": True}, keep=None)  # same step: replaced
    assert len(list_checkpoints(tmp_path)) == 3
    assert load_checkpoint(tmp_path, {"m": model}).meta == {"again": True}
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_spec_mismatch_names_the_difference_and_the_fix(tmp_path: Path) -> None:
    model = nn.Linear(2, 2)
    actions = ActionSpec("discrete", n=4)
    save_checkpoint(tmp_path, 10, {"policy": model},
                    {"obs_spec": _spec(), "action_spec": actions, "config": {"lr": 3e-4}})
    meta = json.loads((tmp_path / "ckpt_000000000010" / "meta.json").read_text())
    assert meta["meta"]["obs_spec"] == _spec().to_json()  # stored as the spec's JSON string
    assert meta["step"] == 10 and "torch" in meta["versions"]

    ok = load_checkpoint(tmp_path, {"policy": model},
                         expect_meta={"obs_spec": _spec(), "action_spec": actions.to_json()})
    assert ObsSpec.from_json(ok.meta["obs_spec"]) == _spec()

    before = model.weight.detach().clone()
    with pytest.raises(CheckpointError) as err:
        load_checkpoint(tmp_path, {"policy": nn.Linear(2, 2)},
                        expect_meta={"obs_spec": _spec((48, 48, 3)), "action_spec": actions})
    msg = str(err.value)
    assert f"checkpoint in {tmp_path / 'ckpt_000000000010'} was trained for observation spec" in msg
    assert "rgb:image[64x64x3]uint8" in msg and "rgb:image[48x48x3]uint8" in msg
    assert "this run's env has" in msg and "start a new run or pick the matching env" in msg
    assert "shape (64, 64, 3) vs (48, 48, 3)" in msg
    assert torch.equal(model.weight, before)

    with pytest.raises(CheckpointError, match=r"action spec \(discrete, n=4\).*\(discrete, n=5\)"):
        load_checkpoint(tmp_path, {"policy": model},
                        expect_meta={"action_spec": ActionSpec("discrete", n=5)})
    with pytest.raises(CheckpointError, match="only in this env: \\['audio'\\]"):
        spec = ObsSpec((*_spec().modalities, ModalitySpec("audio", "audio", (1, 160), "float32",
                                                          10.0, sample_rate=16000)))
        load_checkpoint(tmp_path, {"policy": model}, expect_meta={"obs_spec": spec})


def test_module_mismatch_and_missing_checkpoint_errors(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match="no checkpoint in .*; start without resume=true"):
        load_checkpoint(tmp_path / "nothing", {"m": nn.Linear(2, 2)})
    model, opt = nn.Linear(2, 3), None
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    save_checkpoint(tmp_path, 1, {"policy": model, "optim": opt}, {})
    with pytest.raises(CheckpointError, match=r"holds \['optim'\], which this run does not pass"):
        load_checkpoint(tmp_path, {"policy": model})
    assert load_checkpoint(tmp_path, {"policy": model}, strict=False).step == 1
    with pytest.raises(CheckpointError, match=r"this run passes \['critic'\]"):
        load_checkpoint(tmp_path, {"policy": model, "optim": opt, "critic": nn.Linear(2, 3)})
    wrong = nn.Linear(2, 4)
    before = wrong.weight.detach().clone()
    with pytest.raises(CheckpointError, match=r"weight: checkpoint \(3, 2\), this run \(4, 2\)"):
        load_checkpoint(tmp_path, {"policy": wrong}, strict=False)
    assert torch.equal(wrong.weight, before)
    with pytest.raises(CheckpointError, match=r"keys this run's model lacks \['bias'\]"):
        load_checkpoint(tmp_path, {"policy": nn.Linear(2, 3, bias=False)}, strict=False)


def test_no_pickle_anywhere(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    model = Net()
    opt = torch.optim.AdamW(model.parameters())
    _train(model, opt, steps=2, seed=0)
    save_checkpoint(tmp_path, 5, {"policy": model, "optim": opt}, {"obs_spec": _spec()},
                    rng=RNGState.capture([np.random.default_rng(0)]))

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("unpickling is not allowed")

    monkeypatch.setattr(torch, "load", refuse)
    monkeypatch.setattr(pickle, "load", refuse)
    monkeypatch.setattr(pickle, "loads", refuse)
    monkeypatch.setattr(pickle, "Unpickler", refuse)
    fresh = Net()
    fresh_opt = torch.optim.AdamW(fresh.parameters())
    loaded = load_checkpoint(tmp_path, {"policy": fresh, "optim": fresh_opt})
    assert loaded.rng is not None
    assert _equal_state(model.state_dict(), fresh.state_dict())
    files = sorted(p.name for p in (tmp_path / "ckpt_000000000005").iterdir())
    assert files == ["meta.json", "rng.json", "rng.safetensors", "state.json",
                     "tensors.safetensors"]
    assert not [p for p in tmp_path.rglob("*") if p.suffix in (".pt", ".pth", ".pkl", ".pickle")]


def test_unstorable_values_are_refused_before_writing(tmp_path: Path) -> None:
    class Odd:
        def state_dict(self) -> dict:
            return {"fn": print}

    with pytest.raises(CheckpointError, match="without pickle"):
        save_checkpoint(tmp_path, 1, {"odd": Odd()}, {})
    with pytest.raises(CheckpointError, match="JSON cannot hold"):
        save_checkpoint(tmp_path, 1, {}, {"when": object()})
    assert latest_checkpoint(tmp_path) is None
    assert not [p for p in tmp_path.iterdir() if p.name != LATEST]


_CHILD = """
import sys
from pathlib import Path
import torch
from agent.checkpoint import latest_checkpoint, load_checkpoint, save_checkpoint

d = Path(sys.argv[1])
m = torch.nn.Module()
m.a = torch.nn.Parameter(torch.zeros(1_000_000))
m.register_buffer("b", torch.zeros(300_000, dtype=torch.float64))
opt = torch.optim.SGD(m.parameters(), lr=0.1, momentum=0.9)
step = 0
if latest_checkpoint(d) is not None:
    step = load_checkpoint(d, {"m": m}, strict=False).step
print("start", step, flush=True)
while True:
    step += 1
    with torch.no_grad():
        m.a.fill_(step)
        m.b.fill_(step)
    opt.state[m.a]["momentum_buffer"] = torch.full((1_000_000,), float(step))
    save_checkpoint(d, step, {"m": m, "opt": opt}, {"written_at": step}, keep=2)
    print(step, flush=True)
"""


def _assert_consistent(ckpt: Path) -> int:
    m = nn.Module()
    m.a = nn.Parameter(torch.zeros(1_000_000))
    m.register_buffer("b", torch.zeros(300_000, dtype=torch.float64))
    opt = torch.optim.SGD(m.parameters(), lr=0.1, momentum=0.9)
    step = int(ckpt.name.split("_")[1])
    loaded = load_checkpoint(ckpt.parent, {"m": m, "opt": opt}, step=step)
    assert loaded.step == step == loaded.meta["written_at"]
    assert torch.all(m.a == step) and torch.all(m.b == step)
    assert torch.all(opt.state[m.a]["momentum_buffer"] == step)
    return step


def test_sigkill_at_random_moments_leaves_the_last_good_checkpoint(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH",
                                                                                  "")])}
    rng = random.Random(0)
    last_loaded, torn = 0, 0
    for _ in range(5):
        proc = subprocess.Popen([sys.executable, "-c", _CHILD, str(tmp_path)], env=env,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            start = proc.stdout.readline().split()
            assert start[:1] == ["start"], proc.stderr.read()
            assert int(start[1]) == last_loaded  # resumed from the last good checkpoint
            first_save = proc.stdout.readline().strip()
            assert first_save, proc.stderr.read()
            time.sleep(rng.uniform(0.0, 0.25))
        finally:
            proc.send_signal(signal.SIGKILL)
            out, _ = proc.communicate(timeout=30)
        assert proc.returncode == -signal.SIGKILL
        saved = [int(first_save)] + [int(line) for line in out.split()]
        torn += any(p.name.startswith(".tmp-") for p in tmp_path.iterdir())

        # Every ckpt_* directory is complete, and the loader picks the newest one the
        # killed process reported as saved (or the one after it, saved but not yet printed).
        steps = [_assert_consistent(p) for p in list_checkpoints(tmp_path)]
        assert steps and len(steps) <= 3
        assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith("ckpt_")) == [
            f"ckpt_{s:012d}" for s in steps]
        latest = latest_checkpoint(tmp_path)
        assert latest is not None
        loaded = _assert_consistent(latest)
        assert max(saved) + 1 >= loaded >= max(saved) > last_loaded
        last_loaded = loaded

    # A torn temp dir (made here for certainty, beside any the kills left) goes at the next save.
    junk = tmp_path / ".tmp-ckpt_000000999999-1-dead"
    junk.mkdir()
    (junk / "tensors.safetensors").write_bytes(b"\0" * 100)
    assert latest_checkpoint(tmp_path) == latest
    save_checkpoint(tmp_path, last_loaded + 1, {"m": nn.Linear(1, 1)}, {}, keep=2)
    assert not [p for p in tmp_path.iterdir() if p.name.startswith((".tmp-", ".trash-"))]
    print(f"kills that left a partial .tmp- dir: {torn}/5")
