"""Partial information decomposition (PID) of what two sources tell about a target.

The BROJA decomposition (Bertschinger, Rauh, Olbrich, Jost & Ay 2014, "Quantifying unique
information") splits I(X1, X2; Y) into redundancy R, unique informations U1 and U2 and
synergy S. Let Q* maximise H_Q(Y | X1, X2) over the distributions Q that keep the pair
marginals Q(x1, y) = P(x1, y) and Q(x2, y) = P(x2, y). Then

    S = I_P(Y; X1 X2) - I_Q*(Y; X1 X2),   U1 = I_Q*(Y; X1 | X2),   U2 = I_Q*(Y; X2 | X1),
    R = I(Y; X1) - U1 = I(Y; X2) - U2.

Small joints are solved with dit's ``PID_BROJA`` (its ECOS exponential-cone solver); larger
ones, or ``estimator="scipy"``, with our own log-barrier Newton method on the same convex
program, its steps solved by ``scipy.sparse.linalg.splu``. dit and ecos are optional
(``pip install "dit[broja]"``) and imported only when the dit path runs. All values are in bits.

``pid_of_samples`` adds the plug-in estimate from integer-coded samples together with a
shuffled-target null whose atoms estimate the plug-in bias; ``discretise`` turns continuous
(encoder) features into the small alphabets the estimate needs.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

__all__ = [
    "DIT_MAX_CELLS",
    "ESTIMATORS",
    "PID",
    "PIDEstimate",
    "discretise",
    "pid_of_distribution",
    "pid_of_samples",
]

DIT_MAX_CELLS = 1000
"""``estimator="auto"`` uses dit up to this many nonzero cells of p, scipy above.

dit's cone solver took about 0.3 s for 576 cells and 0.5 s for 1,024 (2 busy cores)."""

ESTIMATORS = ("auto", "dit", "scipy")

DIT_ESTIMATOR = "dit.pid.PID_BROJA(method='cone') (ECOS exponential-cone solver)"
SCIPY_ESTIMATOR = "BROJA by log-barrier Newton, KKT steps by scipy.sparse.linalg.splu"
ZERO_ESTIMATOR = "none: I(X1,X2;Y) <= 1e-12 bits, so every atom is 0"

_SUM_TOL = 1e-6
_CLIP = 1e-9
_MU_FINAL = 1e-13  # last barrier weight: I_Q* is then within (cells * 1e-13) nats of optimal


@dataclass(frozen=True)
class PID:
    """BROJA atoms in bits; ``R + U1 + U2 + S == mi`` up to solver precision."""

    R: float
    """Redundancy: what X1 and X2 both tell about Y."""
    U1: float
    """Information about Y that only X1 has."""
    U2: float
    """Information about Y that only X2 has."""
    S: float
    """Synergy: information about Y that only X1 and X2 together have."""
    mi: float
    """I(X1, X2; Y)."""
    estimator: str
    """Which solver produced the atoms."""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class PIDEstimate:
    """Plug-in PID of samples and the mean PID of the same samples with Y shuffled."""

    pid: PID
    """PID of the plug-in (histogram) joint distribution."""
    null: PID
    """Mean atoms over the shuffles: the plug-in bias (NaN atoms when ``shuffles == 0``)."""
    samples: int
    seed: int
    shuffles: int

    def to_dict(self) -> dict[str, Any]:
        return {"pid": self.pid.to_dict(), "null": self.null.to_dict(), "samples": self.samples,
                "seed": self.seed, "shuffles": self.shuffles}


# --------------------------------------------------------------------------- information


def _entropy_bits(p: np.ndarray) -> float:
    q = p[p > 0]
    return float(-(q * np.log2(q)).sum())


def _mi_bits(pab: np.ndarray) -> float:
    """I(A; B) of a 2-D joint pab[a, b]."""
    return _entropy_bits(pab.sum(1)) + _entropy_bits(pab.sum(0)) - _entropy_bits(pab)


def _validate_distribution(p: np.ndarray) -> np.ndarray:
    p = np.asarray(p, dtype=float)
    if p.ndim != 3:
        raise ValueError(f"p must be a 3-D array p[x1, x2, y] of joint probabilities; got "
                         f"shape {p.shape}. Reshape it to (|X1|, |X2|, |Y|).")
    if 0 in p.shape:
        raise ValueError(f"p must not be empty; got shape {p.shape}.")
    if not np.all(np.isfinite(p)):
        raise ValueError("p has NaN or infinite entries; pass finite probabilities.")
    if p.min() < 0:
        raise ValueError(f"p has negative probabilities (min {p.min():.3g}); probabilities must "
                         "be >= 0 (clip rounding noise with np.clip(p, 0, None)).")
    total = float(p.sum())
    if abs(total - 1.0) > _SUM_TOL:
        raise ValueError(f"p sums to {total:.9g}, not 1 (tolerance {_SUM_TOL:g}); normalise it "
                         "with p / p.sum().")
    return p / total


def _clip(value: float) -> float:
    """Zero for rounding-noise negatives (down to -1e-9); anything else unchanged."""
    return 0.0 if -_CLIP < value < 0.0 else float(value)


def _atoms(p: np.ndarray, mi: float, i_q: float, estimator: str) -> PID:
    """Atoms from I_P(Y; X1 X2) = mi and I_Q*(Y; X1 X2) = i_q, via the pair marginals of p."""
    i1 = _mi_bits(p.sum(1))  # I(X1; Y), the same under P and Q*
    i2 = _mi_bits(p.sum(0))  # I(X2; Y)
    u1 = i_q - i2
    u2 = i_q - i1
    r = i1 + i2 - i_q
    s = mi - i_q
    return PID(R=_clip(r), U1=_clip(u1), U2=_clip(u2), S=_clip(s), mi=float(mi),
               estimator=estimator)


# --------------------------------------------------------------------------- dit path


def _pid_dit(p: np.ndarray, mi: float) -> PID:
    try:
        import dit
        import ecos  # noqa: F401  (dit's cone solver needs it)
        from dit.pid import PID_BROJA
    except ImportError as e:
        raise ImportError("the dit BROJA path needs dit with its cone solver: pip install dit ecos "
                          "(or pip install 'dit[broja]', or pip install 'sensorium[analysis]'); "
                          "or pass estimator='scipy'.") from e

    cells = np.argwhere(p > 0)
    d = dit.Distribution([tuple(int(v) for v in c) for c in cells],
                         [float(p[tuple(c)]) for c in cells])
    # method='cone': in dit 2.3 the default for small alphabets (SLSQP) stopped early on some
    # random 3x3x2 joints (R < 0), and admUI needed >1000 iterations (then falls back to SLSQP).
    # ECOS's default tolerances (1e-8) left atoms of -5e-9; at 1e-11 they are within 1e-11
    broja = PID_BROJA(d, [[0], [1]], [2], method="cone", abstol=1e-11, reltol=1e-11,
                      feastol=1e-11)
    # dit's lattice nodes: ((0,), (1,)) redundancy, ((0,),) and ((1,),) uniques, ((0, 1),) synergy
    r, u1, u2, s = (float(broja.get_pi(node))
                    for node in (((0,), (1,)), ((0,),), ((1,),), ((0, 1),)))
    return PID(R=_clip(r), U1=_clip(u1), U2=_clip(u2), S=_clip(s), mi=float(mi),
               estimator=DIT_ESTIMATOR)


# --------------------------------------------------------------------------- scipy path


def _min_i_q(p: np.ndarray) -> float:
    """min I_Q(Y; X1 X2) in bits over Q with the pair marginals of p (the BROJA program).

    Q lives on the cells (x1, x2, y) with P(x1, y) > 0 and P(x2, y) > 0 (no other cell can be
    nonzero). Minimising f(Q) = sum q log q - sum_{x1,x2} m log m (m = Q(x1, x2)) is minimising
    -H_Q(Y | X1 X2). Log-barrier interior point: from the feasible interior point
    Q0 = P(x1|y) P(x2|y) P(y), Newton steps on f - mu sum log q under the linear marginal
    constraints, mu shrinking tenfold to 1e-13. Each step solves the sparse KKT system exactly
    (``splu``); the constraint residual is fed back, so Q stays on the marginals to ~1e-15.
    """
    from scipy import sparse
    from scipy.sparse.linalg import splu

    n1, n2, ny = p.shape
    p1y, p2y, py = p.sum(1), p.sum(0), p.sum((0, 1))
    support = (p1y[:, None, :] > 0) & (p2y[None, :, :] > 0)
    i, j, k = np.nonzero(support)
    n = i.size
    q = p1y[i, k] * p2y[j, k] / py[k]
    h_y = _entropy_bits(py)
    group = np.unique(i * n2 + j, return_inverse=True)[1].reshape(-1)  # the (x1, x2) of a cell
    g_mat = sparse.csr_matrix((np.ones(n), (group, np.arange(n))), shape=(group.max() + 1, n))

    def i_q_bits(q: np.ndarray) -> float:
        return h_y + _entropy_bits(g_mat @ q) - _entropy_bits(q)

    # Constraints: the (x1, y) sums, and the (x2, y) sums less one per y (implied by the rest;
    # keeping it would make the KKT matrix singular).
    row_1 = np.unique(i * ny + k, return_inverse=True)[1].reshape(-1)
    last_j = np.zeros(ny, dtype=int)
    np.maximum.at(last_j, k, j)
    keep = j != last_j[k]
    row_2 = np.unique((j * ny + k)[keep], return_inverse=True)[1].reshape(-1) + row_1.max() + 1
    rows = np.concatenate([row_1, row_2])
    cols = np.concatenate([np.arange(n), np.nonzero(keep)[0]])
    a = sparse.csr_matrix((np.ones(rows.size), (rows, cols)), shape=(rows.max() + 1, n))
    b = a @ q
    if a.shape[0] >= n:  # no freedom: the pair marginals fix Q
        return i_q_bits(q)

    def merit(q: np.ndarray, mu: float) -> float:
        if np.any(q <= 0):
            return np.inf
        m = g_mat @ q
        return float(q @ np.log(q) - m @ np.log(m) - mu * np.log(q).sum())

    mu = 0.1 / n
    while True:
        f = merit(q, mu)
        for _ in range(100):
            m = g_mat @ q
            grad = np.log(q) - np.log(m)[group] - mu / q
            hess = sparse.diags(1.0 / q + mu / q**2) - g_mat.T @ sparse.diags(1.0 / m) @ g_mat
            kkt = sparse.bmat([[hess, a.T], [a, None]], format="csc")
            rhs = np.concatenate([-grad, b - a @ q])
            # cells come grouped by (x1, x2), constraints last: the natural order eliminates the
            # group blocks first; threshold pivoting keeps it stable as mu -> 0
            lu = splu(kkt, permc_spec="NATURAL", diag_pivot_thresh=0.01)
            d = lu.solve(rhs)[:n]
            decrement = -float(grad @ d)
            if not np.all(np.isfinite(d)) or decrement < 1e-15:
                break
            neg = d < 0
            step = min(1.0, 0.99 * float(np.min(-q[neg] / d[neg]))) if neg.any() else 1.0
            while True:  # backtracking (Armijo) line search
                f_new = merit(q + step * d, mu)
                if f_new <= f - 0.25 * step * decrement or step < 1e-14:
                    break
                step *= 0.5
            if f_new > f:
                break
            q, f = q + step * d, f_new
            if decrement < 1e-13:
                break
        if mu <= _MU_FINAL:
            break
        mu = max(0.1 * mu, _MU_FINAL)
    return i_q_bits(q)


def _pid_scipy(p: np.ndarray, mi: float) -> PID:
    return _atoms(p, mi, _min_i_q(p), SCIPY_ESTIMATOR)


# --------------------------------------------------------------------------- public API


def pid_of_distribution(p: np.ndarray, estimator: str = "auto") -> PID:
    """BROJA PID of a joint distribution p[x1, x2, y].

    ``estimator``: "dit" (dit's ``PID_BROJA``, needs dit and ecos), "scipy" (our solver of the
    same program, needs only scipy) or "auto" (dit up to ``DIT_MAX_CELLS`` nonzero cells, scipy
    above).
    """
    if estimator not in ESTIMATORS:
        raise ValueError(f"estimator must be one of {ESTIMATORS}; got {estimator!r}.")
    p = _validate_distribution(p)
    mi = _mi_bits(p.reshape(-1, p.shape[2]))
    if mi <= 1e-12:  # independent target: every atom is 0 (they are >= 0 and sum to mi)
        return PID(R=0.0, U1=0.0, U2=0.0, S=0.0, mi=max(mi, 0.0), estimator=ZERO_ESTIMATOR)
    if estimator == "auto":
        estimator = "dit" if np.count_nonzero(p) <= DIT_MAX_CELLS else "scipy"
    return _pid_dit(p, mi) if estimator == "dit" else _pid_scipy(p, mi)


def _codes(name: str, v: Any) -> np.ndarray:
    """0..n-1 codes of an integer-valued 1-D array (ValueError naming ``name`` otherwise)."""
    a = np.asarray(v)
    if a.ndim != 1:
        raise ValueError(f"{name} must be a 1-D array of integer codes; got shape {a.shape}.")
    if a.size == 0:
        raise ValueError(f"{name} is empty; pass at least one sample.")
    if a.dtype.kind == "f":
        if not (np.all(np.isfinite(a)) and np.all(a == np.round(a))):
            raise ValueError(f"{name} has non-integer values; pass integer codes (discretise "
                             "continuous values first, e.g. with analysis.pid.discretise).")
    elif a.dtype.kind not in "iub":
        raise ValueError(f"{name} must hold integer codes; got dtype {a.dtype}.")
    return np.unique(a, return_inverse=True)[1].reshape(-1)


def _joint(c1: np.ndarray, c2: np.ndarray, cy: np.ndarray, shape: tuple[int, int, int]
           ) -> np.ndarray:
    flat = (c1 * shape[1] + c2) * shape[2] + cy
    counts = np.bincount(flat, minlength=shape[0] * shape[1] * shape[2])
    return (counts / counts.sum()).reshape(shape)


def pid_of_samples(x1: Any, x2: Any, y: Any, shuffles: int = 20, seed: int = 0,
                   estimator: str = "auto") -> PIDEstimate:
    """Plug-in BROJA PID of integer-coded samples, with a shuffled-target null.

    The plug-in estimate is biased upwards for small samples and large alphabets; the null
    (the same PID with y permuted ``shuffles`` times by ``np.random.default_rng(seed)``)
    breaks every dependence on y, so its mean atoms estimate that bias.
    """
    c1, c2, cy = _codes("x1", x1), _codes("x2", x2), _codes("y", y)
    if not c1.size == c2.size == cy.size:
        raise ValueError(f"x1, x2 and y must have the same length; got {c1.size}, {c2.size} "
                         f"and {cy.size}.")
    if shuffles < 0:
        raise ValueError(f"shuffles must be >= 0; got {shuffles}.")
    shape = (int(c1.max()) + 1, int(c2.max()) + 1, int(cy.max()) + 1)
    pid = pid_of_distribution(_joint(c1, c2, cy, shape), estimator)

    rng = np.random.default_rng(seed)
    nulls = [pid_of_distribution(_joint(c1, c2, rng.permutation(cy), shape), estimator)
             for _ in range(shuffles)]
    if nulls:
        mean = {f: float(np.mean([getattr(n, f) for n in nulls]))
                for f in ("R", "U1", "U2", "S", "mi")}
        used = " + ".join(sorted({n.estimator for n in nulls}))
        null = PID(**mean, estimator=f"mean over {shuffles} shuffles of y: {used}")
    else:
        nan = float("nan")
        null = PID(R=nan, U1=nan, U2=nan, S=nan, mi=nan, estimator="no shuffles")
    return PIDEstimate(pid=pid, null=null, samples=int(c1.size), seed=seed, shuffles=shuffles)


# --------------------------------------------------------------------------- discretising


def discretise(features: np.ndarray, k: int, seed: int = 0, iters: int = 50) -> np.ndarray:
    """k-means codes 0..k-1 of (N, D) features (k-means++ start, Lloyd steps, numpy only).

    A 1-D array is treated as (N, 1). Codes are numbered in order of first appearance, so the
    result depends only on the data, k, seed and iters. A cluster that empties is restarted
    at the point farthest from its centre.
    """
    x = np.asarray(features, dtype=float)
    if x.ndim == 1:
        x = x[:, None]
    if x.ndim != 2:
        raise ValueError(f"features must be an (N, D) array; got shape {x.shape}.")
    n = x.shape[0]
    if not 1 <= k <= n:
        raise ValueError(f"k must be between 1 and the number of samples N={n}; got k={k}.")
    if not np.all(np.isfinite(x)):
        raise ValueError("features has NaN or infinite values.")
    if iters < 1:
        raise ValueError(f"iters must be >= 1; got {iters}.")
    rng = np.random.default_rng(seed)

    centres = np.empty((k, x.shape[1]))
    centres[0] = x[rng.integers(n)]
    d2 = ((x - centres[0]) ** 2).sum(1)
    for c in range(1, k):
        total = d2.sum()
        pick = rng.choice(n, p=d2 / total) if total > 0 else rng.integers(n)
        centres[c] = x[pick]
        d2 = np.minimum(d2, ((x - centres[c]) ** 2).sum(1))

    sq = (x**2).sum(1)
    labels = np.full(n, -1)
    for _ in range(iters):
        # squared distances without an (N, k, D) temporary
        dist = np.maximum(sq[:, None] - 2.0 * x @ centres.T + (centres**2).sum(1)[None, :], 0.0)
        new = dist.argmin(1)
        if np.array_equal(new, labels):
            break
        labels = new
        for c in range(k):
            members = labels == c
            if members.any():
                centres[c] = x[members].mean(0)
            else:
                far = int(dist[np.arange(n), labels].argmax())
                centres[c] = x[far]
                labels[far] = c
    _, first = np.unique(labels, return_index=True)
    order = np.argsort(first)
    relabel = np.empty(labels.max() + 1, dtype=int)
    relabel[np.unique(labels)[order]] = np.arange(order.size)
    return relabel[labels]
