"""Test-session settings that must be in place before torch and numba load."""

import os

# numba (the worlds) and torch each bring an OpenMP runtime; with the default
# active waiting their idle threads spin against each other on 2 cores and
# everything slows down ~10x. The `sensorium` command sets the same.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from perception.allocator import keep_freed_memory  # noqa: E402

keep_freed_memory()  # as the `sensorium` command does


import numba  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402


@pytest.fixture(scope="module")
def one_thread_per_pool():
    """One thread each for numba's and torch's OpenMP pools, for a whole test module.

    The two libraries load separate libgomp copies; their spin-waiting idle threads
    starve each other on a 2-core machine (training runs go ~10x slower). The CLI sets
    OMP_WAIT_POLICY=PASSIVE before either loads; inside pytest both are loaded already.
    Module scope, so that module-scoped training runs get it too. Test folders that
    train turn it on for every module (tests/agent, tests/deploy).
    """
    before = numba.get_num_threads(), torch.get_num_threads()
    numba.set_num_threads(1)
    torch.set_num_threads(1)
    yield
    numba.set_num_threads(before[0])
    torch.set_num_threads(before[1])
