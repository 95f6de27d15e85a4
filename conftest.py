"""Test-session settings that must be in place before torch and numba load."""

import os

# numba (the worlds) and torch each bring an OpenMP runtime; with the default
# active waiting their idle threads spin against each other on 2 cores and
# everything slows down ~10x. The `sensorium` command sets the same.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from perception.allocator import keep_freed_memory  # noqa: E402

keep_freed_memory()  # as the `sensorium` command does
