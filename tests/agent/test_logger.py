"""RunLogger: JSONL records, resume without duplicates, TensorBoard scalars, disabled ranks."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from agent.logger import RunLogger, read_metrics, truncate_after


def _scalars(tb_dir: Path, tag: str) -> list[tuple[int, float]]:
    acc = EventAccumulator(str(tb_dir))
    acc.Reload()
    return [(e.step, e.value) for e in acc.Scalars(tag)]


def test_jsonl_lines_and_values(tmp_path: Path) -> None:
    with RunLogger(tmp_path, total_steps=300, tensorboard=False, progress=False) as log:
        log.log(100, {"return": 1.5, "success": 0.25, "loss/policy": torch.tensor(0.125)})
        log.log(200, {"return": 2.0, "count": 3})
        # flushed per line: readable while the run goes on
        assert len(read_metrics(tmp_path / "metrics.jsonl")) == 2
    lines = (tmp_path / "metrics.jsonl").read_text().splitlines()
    assert len(lines) == 2
    first = json.loads(lines[0])
    assert first["step"] == 100 and isinstance(first["time"], float)
    assert first["return"] == 1.5 and first["success"] == 0.25 and first["loss/policy"] == 0.125
    records = read_metrics(tmp_path / "metrics.jsonl")
    assert [r["step"] for r in records] == [100, 200] and records[1]["count"] == 3.0
    with RunLogger(tmp_path, 1, tensorboard=False, progress=False) as log, \
            pytest.raises(TypeError, match="'note' is a str"):
        log.log(1, {"note": "hi"})
    assert len(read_metrics(tmp_path / "metrics.jsonl")) == 2  # the bad record wrote nothing


def test_resume_drops_records_after_the_checkpoint(tmp_path: Path) -> None:
    log = RunLogger(tmp_path, total_steps=500, tensorboard=False, progress=False)
    for step in (100, 200, 300, 400):
        log.log(step, {"return": float(step)})
    log.close()
    with open(tmp_path / "metrics.jsonl", "a") as f:
        f.write('{"step": 500, "ret')  # torn by a kill mid-write

    # The killed run's last checkpoint was at step 200: 300, 400 and the torn line go.
    log = RunLogger(tmp_path, total_steps=500, tensorboard=False, progress=False,
                    resume_step=200)
    log.log(300, {"return": -3.0})
    log.close()
    records = read_metrics(tmp_path / "metrics.jsonl")
    assert [(r["step"], r["return"]) for r in records] == [(100, 100.0), (200, 200.0),
                                                          (300, -3.0)]
    assert truncate_after(tmp_path / "metrics.jsonl", 300) == 0
    assert truncate_after(tmp_path / "metrics.jsonl", 100) == 2
    assert [r["step"] for r in read_metrics(tmp_path / "metrics.jsonl")] == [100]
    assert truncate_after(tmp_path / "missing.jsonl", 0) == 0


def test_torn_line_stays_apart_when_appending_without_resume(tmp_path: Path) -> None:
    (tmp_path / "metrics.jsonl").write_text('{"step": 1}\n{"step": 2, "x')
    with RunLogger(tmp_path, 10, tensorboard=False, progress=False) as log:
        log.log(3, {"x": 1.0})
    assert [r["step"] for r in read_metrics(tmp_path / "metrics.jsonl")] == [1, 3]


def test_tensorboard_scalars_and_purge_on_resume(tmp_path: Path) -> None:
    with RunLogger(tmp_path, total_steps=400, progress=False) as log:
        for step in (100, 200, 300):
            log.log(step, {"train/return": step / 100, "success": 0.5})
    assert list((tmp_path / "tb").glob("events.out.tfevents.*"))
    assert _scalars(tmp_path / "tb", "train/return") == [(100, 1.0), (200, 2.0), (300, 3.0)]

    with RunLogger(tmp_path, total_steps=400, progress=False, resume_step=200) as log:
        log.log(300, {"train/return": -1.0, "success": 1.0})
        log.log(400, {"train/return": -2.0, "success": 1.0})
    assert _scalars(tmp_path / "tb", "train/return") == [(100, 1.0), (200, 2.0), (300, -1.0),
                                                        (400, -2.0)]


def test_progress_bar_shows_rate_return_and_success(tmp_path: Path,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    with RunLogger(tmp_path, total_steps=1000, tensorboard=False, resume_step=100) as log:
        assert log._bar is not None and log._bar.n == 100
        log.log(600, {"episode/return": 12.5, "success": 0.75})
        assert log._bar.n == 600
        postfix = log._bar.postfix
        log.message("hello")
    assert "env-steps/s=" in postfix and "return=12.5" in postfix and "success=0.75" in postfix
    assert "hello" in capsys.readouterr().out


def test_disabled_logger_writes_nothing(tmp_path: Path,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    run_dir = tmp_path / "rank1"
    log = RunLogger(run_dir, total_steps=100, enabled=False, resume_step=5)
    log.log(10, {"return": 1.0})
    log.message("hello")
    log.flush()
    log.close()
    assert not run_dir.exists()
    out = capsys.readouterr()
    assert out.out == "" and out.err == ""
