"""``sensorium export`` and ``sensorium bench`` as users run them: errors are one message."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

SENSORIUM = shutil.which("sensorium") or str(Path(sys.executable).parent / "sensorium")


def sensorium(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([SENSORIUM, *args], cwd=cwd, capture_output=True, text=True,
                          timeout=300)


def _one_message(proc, command: str) -> str:
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr and "Error executing job" not in proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"sensorium {command}: ")
    return lines[0]


@pytest.mark.parametrize(("args", "message"), [
    (("export", "run=nowhere"), "run=nowhere: no such folder; train one first"),
    (("export", "run=.", "quantize=int4"), "quantize='int4' is invalid"),
    (("bench", "model=missing.onnx"), "model file missing.onnx does not exist; export one"),
    (("bench",), "sensorium bench needs model=FILE"),
    (("eval", "run=/nonexistent"), "no complete checkpoint in /nonexistent/checkpoints"),
])
def test_project_errors_print_one_line_and_exit_2(tmp_path: Path, args: tuple[str, ...],
                                                  message: str) -> None:
    line = _one_message(sensorium(*args, cwd=tmp_path), args[0])
    assert message in line


def test_debug_true_keeps_the_traceback(tmp_path: Path) -> None:
    proc = sensorium("bench", "model=missing.onnx", "debug=true", cwd=tmp_path)
    assert proc.returncode != 0 and "Traceback" in proc.stderr
    assert "ModelFileError" in proc.stderr
