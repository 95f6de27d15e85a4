"""Settings every agent test module runs under."""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True, scope="module")
def _one_thread_per_pool(one_thread_per_pool):
    """See the root conftest: training tests run with one thread per OpenMP pool."""
    yield
