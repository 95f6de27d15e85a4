"""Run logging: a JSONL file (the record), TensorBoard scalars and a progress bar.

``metrics.jsonl`` holds one ``{"step": ..., "time": ..., **metrics}`` object per
line, flushed as it is written, so a killed run keeps every line it logged. A
resumed run first drops the lines past the checkpoint it resumes from, and
TensorBoard hides its events past that step (``purge_step``), so no step is
logged twice.
"""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

METRICS_FILE = "metrics.jsonl"
TB_DIR = "tb"


def read_metrics(path: Path) -> list[dict[str, Any]]:
    """The records of a metrics JSONL file; a torn last line (killed mid-write) is skipped."""
    path = Path(path)
    if not path.exists():
        return []
    records = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            record = _parse(line)
            if record is not None:
                records.append(record)
    return records


def truncate_after(path: Path, step: float, key: str = "step") -> int:
    """Drop the records of `path` whose `key` is above `step` (and torn lines); return how
    many.

    The file is rewritten through a temp file and ``os.replace``, so a kill
    during the rewrite leaves either the old or the new file.
    """
    path = Path(path)
    if not path.exists():
        return 0
    kept, dropped = [], 0
    with open(path, encoding="utf-8") as f:
        for line in f:
            record = _parse(line)
            if record is None or record.get(key, -math.inf) > step:
                dropped += line.strip() != ""
                continue
            kept.append(line if line.endswith("\n") else line + "\n")
    if dropped:
        tmp = path.with_name(path.name + ".tmp")
        with open(tmp, "w", encoding="utf-8") as f:
            f.writelines(kept)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    return dropped


def _ends_with_newline(path: Path) -> bool:
    with open(path, "rb") as f:
        f.seek(-1, os.SEEK_END)
        return f.read(1) == b"\n"


def _parse(line: str) -> dict[str, Any] | None:
    line = line.strip()
    if not line:
        return None
    try:
        record = json.loads(line)
    except ValueError:
        return None
    return record if isinstance(record, dict) else None


def _scalar(key: str, value: Any) -> float:
    try:
        return float(value)
    except (TypeError, ValueError) as e:
        raise TypeError(
            f"metric {key!r} is a {type(value).__name__}, not a number; log scalars only "
            "(call .item() on tensors)"
        ) from e


def _find(metrics: Mapping[str, float], key: str) -> float | None:
    """The metric named `key` or ending in ``/<key>`` (e.g. ``episode/return``)."""
    if key in metrics:
        return metrics[key]
    for name, value in metrics.items():
        if name.endswith("/" + key):
            return value
    return None


class RunLogger:
    """Writes a run's metrics to JSONL and TensorBoard and shows a progress bar.

    Args:
        run_dir: the run's directory; ``metrics.jsonl`` and ``tb/`` go there.
        total_steps: env steps the run will take (the progress bar's total).
        enabled: False on non-zero DDP ranks: every method does nothing.
        tensorboard: write TensorBoard event files.
        progress: show a tqdm bar with env-steps/s and the `bar` metrics.
        resume_step: the checkpoint step a resumed run continues from; records
            logged after it by the killed run are dropped. None for a new run.
        bar: metric names the bar shows (a metric named exactly so, or ending in
            ``/<name>``), labelled without an ``episode_`` prefix; None shows every
            metric of each record.
    """

    def __init__(
        self,
        run_dir: Path,
        total_steps: int,
        enabled: bool = True,
        tensorboard: bool = True,
        progress: bool = True,
        resume_step: int | None = None,
        bar: Sequence[str] | None = None,
    ) -> None:
        self.enabled = enabled
        self.run_dir = Path(run_dir)
        self.path = self.run_dir / METRICS_FILE
        self.total_steps = int(total_steps)
        self.bar = None if bar is None else tuple(bar)
        self._file = None
        self._writer = None
        self._bar = None
        if not enabled:
            return
        self.run_dir.mkdir(parents=True, exist_ok=True)
        if resume_step is not None:
            truncate_after(self.path, resume_step)
        self._file = open(self.path, "a", encoding="utf-8")  # noqa: SIM115 - closed in close()
        if self._file.tell() > 0 and not _ends_with_newline(self.path):
            self._file.write("\n")  # keep a torn line from a killed run apart from ours
        start = resume_step or 0
        self._last_step, self._last_time = start, time.perf_counter()
        if tensorboard:
            from torch.utils.tensorboard import SummaryWriter

            purge = resume_step + 1 if resume_step is not None else None
            self._writer = SummaryWriter(str(self.run_dir / TB_DIR), purge_step=purge,
                                         flush_secs=10)
        if progress:
            from tqdm.auto import tqdm

            self._bar = tqdm(total=self.total_steps, initial=min(start, self.total_steps),
                             unit="step", unit_scale=True, dynamic_ncols=True, smoothing=0.1)

    def log(self, step: int, metrics: Mapping[str, Any]) -> None:
        """Record `metrics` at env step `step` (JSONL line, TensorBoard, progress bar)."""
        if not self.enabled:
            return
        if self._file is None:
            raise RuntimeError("RunLogger.log after close(); open a new RunLogger")
        step = int(step)
        values = {str(k): _scalar(k, v) for k, v in metrics.items()}
        for reserved in ("step", "time"):
            if reserved in values:
                raise ValueError(f"metric name {reserved!r} is reserved; rename the metric")
        now = time.time()
        self._file.write(json.dumps({"step": step, "time": now, **values}) + "\n")
        self._file.flush()
        if self._writer is not None:
            for key, value in values.items():
                self._writer.add_scalar(key, value, global_step=step, walltime=now)
        if self._bar is not None:
            self._update_bar(step, values)

    def _update_bar(self, step: int, values: Mapping[str, float]) -> None:
        assert self._bar is not None
        clock = time.perf_counter()
        elapsed = clock - self._last_time
        postfix: dict[str, str] = {}
        if elapsed > 0 and step > self._last_step:
            postfix["env-steps/s"] = f"{(step - self._last_step) / elapsed:,.0f}"
        for key in values if self.bar is None else self.bar:
            value = _find(values, key)
            if value is not None:
                postfix[key.removeprefix("episode_")] = f"{value:.3g}"
        self._last_step, self._last_time = step, clock
        self._bar.update(max(0, min(step, self.total_steps) - self._bar.n))
        self._bar.set_postfix(postfix, refresh=True)

    def message(self, text: str) -> None:
        """Print a line without breaking the progress bar."""
        if not self.enabled:
            return
        if self._bar is not None:
            self._bar.write(text)
        else:
            print(text, flush=True)

    def flush(self) -> None:
        if self._file is not None:
            self._file.flush()
        if self._writer is not None:
            self._writer.flush()

    def close(self) -> None:
        """Flush and close everything; safe to call twice."""
        if self._file is not None:
            self._file.close()
            self._file = None
        if self._writer is not None:
            self._writer.close()
            self._writer = None
        if self._bar is not None:
            self._bar.close()
            self._bar = None

    def __enter__(self) -> RunLogger:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
