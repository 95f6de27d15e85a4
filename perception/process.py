"""Process settings for training and simulation, applied once before torch and numba start.

torch and numba (the simulated worlds) each load an OpenMP runtime. With the
default active waiting, the idle threads of one spin while the other works,
and on a 2-core machine training ran ~10x slower; ``OMP_WAIT_POLICY=PASSIVE``
makes idle threads sleep. It must be set before either library starts its
threads. And glibc is asked to keep freed heap pages
(:mod:`perception.allocator`). Nothing here runs on import: the robot's
runtime imports the spec, which must have no side effects.
"""

from __future__ import annotations

import os

from perception.allocator import keep_freed_memory


def setup_process() -> None:
    """OpenMP threads wait passively; freed heap pages are kept. Idempotent."""
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    keep_freed_memory()
