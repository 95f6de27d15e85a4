"""Atomic writes of checkpoint directories (``.tmp-*`` then rename; old ones via
``.trash-*``), and finding the complete ones: meta.json present, each file its recorded size.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import save_file

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


def fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_text(path: Path, text: str) -> None:
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())


def write_json(path: Path, data: Any) -> None:
    write_text(path, json.dumps(data, indent=1) + "\n")


def write_tensors(path: Path, tensors: Mapping[str, torch.Tensor]) -> None:
    save_file(dict(tensors), str(path), metadata={"format": "pt"})
    fsync(path)


@contextmanager
def write_dir(final: Path) -> Iterator[Path]:
    """Yield a fresh ``.tmp-*`` directory to fill; then fsync it and rename it to `final`.

    A `final` already there (the same step saved again) is replaced; on any error the
    temporary directory is removed and `final` is left as it was.
    """
    tmp = final.with_name(f"{_TMP}{final.name}-{os.getpid()}-{secrets.token_hex(4)}")
    tmp.mkdir()
    try:
        yield tmp
        fsync(tmp)
        if final.exists():
            discard(final)
        os.rename(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    fsync(final.parent)


def set_latest(directory: Path, name: str) -> None:
    """Point ``latest`` at `name` atomically."""
    pointer = directory / f"{LATEST}.tmp"
    write_text(pointer, name + "\n")
    os.replace(pointer, directory / LATEST)
    fsync(directory)


def step_of(path: Path) -> int | None:
    m = _NAME_RE.match(path.name)
    return int(m.group(1)) if m else None


def checkpoint_name(step: int) -> str:
    return f"{_PREFIX}{step:012d}"


def read_meta(ckpt: Path) -> dict[str, Any] | None:
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
    found = [(s, p) for p in directory.iterdir() if (s := step_of(p)) is not None and p.is_dir()]
    return [p for _, p in sorted(found) if read_meta(p) is not None]


def latest_checkpoint(directory: Path) -> Path | None:
    """The checkpoint ``latest`` names if complete, else the complete one of highest step."""
    directory = Path(directory)
    try:
        name = (directory / LATEST).read_text(encoding="utf-8").strip()
    except OSError:
        name = ""
    if _NAME_RE.match(name) and read_meta(directory / name) is not None:
        return directory / name
    found = list_checkpoints(directory)
    return found[-1] if found else None


def clean_leftovers(directory: Path) -> None:
    """Remove what killed saves left behind (temp dirs, half-deleted old checkpoints)."""
    for p in directory.iterdir():
        if not p.name.startswith((_TMP, _TRASH)):
            continue
        if p.is_dir():
            shutil.rmtree(p, ignore_errors=True)
        else:
            p.unlink(missing_ok=True)
    (directory / f"{LATEST}.tmp").unlink(missing_ok=True)


def discard(ckpt: Path) -> None:
    """Delete a checkpoint; the rename first makes it vanish from ckpt_* at once."""
    trash = ckpt.with_name(f"{_TRASH}{ckpt.name}-{secrets.token_hex(4)}")
    os.rename(ckpt, trash)
    shutil.rmtree(trash, ignore_errors=True)


def discard_older(directory: Path, keep: int, newest: Path) -> None:
    """Discard all but the `keep` newest checkpoints, `newest` counted among them."""
    older = [p for p in list_checkpoints(directory) if p != newest]
    for old in older[: max(0, len(older) - (keep - 1))]:
        discard(old)
