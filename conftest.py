"""Test-session settings that must be in place before torch and numba load."""

from perception.process import setup_process

setup_process()  # as the `sensorium` command does: before torch and numba load


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
