"""numba helpers shared by the batched worlds: a compiled-kernel decorator and a per-world RNG.

Each world owns one xorshift64* state, so results do not depend on how numba
splits worlds across threads: seeded runs repeat exactly.
"""

from __future__ import annotations

import numba
import numpy as np

#: Decorator for hot kernels: compiled once, cached on disk, no Python objects.
kernel = numba.njit(cache=True, nogil=True, fastmath=False)
#: The same for kernels that split worlds across cores with ``numba.prange``.
parallel_kernel = numba.njit(cache=True, nogil=True, parallel=True)

_MULT = np.uint64(2685821657736338717)
_S12 = np.uint64(12)
_S25 = np.uint64(25)
_S27 = np.uint64(27)
_S11 = np.uint64(11)
_INV53 = 1.0 / 9007199254740992.0


@kernel
def next_u64(states: np.ndarray, i: int) -> np.uint64:
    """Advance world `i`'s xorshift64* state and return 64 random bits."""
    x = states[i]
    x ^= x >> _S12
    x ^= x << _S25
    x ^= x >> _S27
    states[i] = x
    return x * _MULT


@kernel
def uniform(states: np.ndarray, i: int) -> float:
    """A float in [0, 1) from world `i`'s stream."""
    return float(next_u64(states, i) >> _S11) * _INV53


@kernel
def randint(states: np.ndarray, i: int, n: int) -> int:
    """An int in [0, n) from world `i`'s stream (n >= 1)."""
    return min(int(uniform(states, i) * n), n - 1)
