"""Conditional permutation: each area's own value fixed, its neighbours drawn from the other areas.

The p-value is two-sided, ``min(1, 2 · (1 + min(#sim ≥ obs, #sim ≤ obs)) / (1 + N))``. esda's default
``p_sim`` is the one-sided folded value, about half of this (esda issue 199). Each simulation draws one set
of areas shared by all areas (esda's ``rids``); for equal-weight rows the counts come from one sorted sum per
neighbour count and a binary search (see :func:`conditional_permutation`), so memory grows with
n + simulations, not n × simulations, and there is no JIT warm-up.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
from scipy import stats

from ..cancel import checkpoint
from ..errors import ValidationError, problem

_BLOCK_ELEMENTS = 4_000_000  # areas × permutations × neighbours per block (~32 MB of float64)


def off_diagonal(W: sp.csr_matrix, binary: bool = False) -> sp.csr_matrix:
    """``W`` without its diagonal and explicit zeros (ones for its weights with ``binary``); ``W`` itself when it
    has neither, as contiguity has: no (n × n) temporaries at a million areas."""
    W = W.tocsr()
    if W.diagonal().any() or not W.data.all():
        W = (W - sp.diags(W.diagonal())).tocsr()
        W.eliminate_zeros()
    return sp.csr_matrix((np.ones(W.nnz), W.indices, W.indptr), shape=W.shape) if binary else W


def _equal_rows(off: sp.csr_matrix) -> tuple[np.ndarray, np.ndarray]:
    """Each row's first weight, and whether its weights all equal it (to 1e-12, relative): from each row's
    smallest and largest weight, not a padded (n, kmax) table."""
    n = off.shape[0]
    card = np.diff(off.indptr)
    first, equal = np.zeros(n), np.ones(n, bool)
    has = card > 0
    if has.any():
        starts = off.indptr[:-1][has]
        first[has] = off.data[starts]
        spread = np.maximum(
            np.abs(np.maximum.reduceat(off.data, starts) - first[has]),
            np.abs(np.minimum.reduceat(off.data, starts) - first[has]),
        )
        equal[has] = spread <= 1e-12 * np.abs(first[has])
    return first, equal


def _padded(off: sp.csr_matrix, rows: np.ndarray, kmax: int) -> np.ndarray:
    """The ``rows``' weights as (len(rows), kmax), in each row's stored order, zero-padded."""
    sub = off[rows]
    card = np.diff(sub.indptr)
    weights = np.zeros((len(rows), kmax))
    weights[np.repeat(np.arange(len(rows)), card), np.arange(sub.nnz) - np.repeat(sub.indptr[:-1], card)] = sub.data
    return weights


def _draw_others(rng: np.random.Generator, permutations: int, n: int, k: int) -> np.ndarray:
    """``permutations`` rows of ``k`` distinct area indices in [0, n), each row a uniform random k-subset in order."""
    if permutations * n <= 5_000_000 or 4 * k >= n:
        return np.argsort(rng.random((permutations, n)), axis=1)[:, :k]
    draws = rng.integers(0, n, size=(permutations, k))
    while True:  # rows with a repeat are redrawn whole (rare when k << n), which keeps each row uniform
        ordered = np.sort(draws, axis=1)
        repeat = (ordered[:, 1:] == ordered[:, :-1]).any(axis=1)
        if not repeat.any():
            return draws
        draws[repeat] = rng.integers(0, n, size=(int(repeat.sum()), k))


def _fold(above: np.ndarray, below: np.ndarray, permutations: int) -> np.ndarray:
    return np.minimum(1.0, 2.0 * (1 + np.minimum(above, below)) / (1 + permutations))


def conditional_permutation(
    z: np.ndarray,
    W: sp.csr_matrix,
    observed: np.ndarray,
    scale: np.ndarray,
    permutations: int,
    rng: np.random.Generator,
) -> tuple[np.ndarray, np.ndarray]:
    """Two-sided conditional-permutation p-values and null means of ``scale_i · Σ_j w_ij z[π(j)]``.

    Each simulation draws one row of ``kmax + 1`` distinct areas, shared by all areas (esda's
    ``rids``): area i with k neighbours takes the first k, and where i itself is among them the spare
    ``(k+1)``-th replaces it, so every area gets a uniform k-subset of the *other* areas.

    Where an area's neighbour weights are all equal (contiguity, k-nearest, distance band; row-
    standardised or not) its simulated statistic is ``c_i · S_k[p]`` with one sum ``S_k`` per
    cardinality k, so the counts come from ``S_k`` sorted once and a binary search per area, plus
    a correction for the few (area, simulation) pairs where the area drew itself: O(n log N + N·k)
    instead of O(n·N·k). Other rows (kernel weights) are evaluated in blocks of areas.
    """
    n = len(z)
    off = off_diagonal(W)
    card = np.diff(off.indptr)
    kmax = max(int(card.max()) if n else 0, 1)
    if kmax + 1 > n:
        raise ValidationError(
            problem(
                "bad_parameter",
                f"An area has {kmax} neighbours but there are only {n - 1} "
                "other areas: the weights do not belong to these areas",
            )
        )
    draws = _draw_others(rng, permutations, n, kmax + 1)
    p = np.full(n, np.nan)
    expected = np.full(n, np.nan)
    w_first, equal = _equal_rows(off)
    uniform = (card > 0) & equal
    coef = scale * w_first
    for k in np.flatnonzero(np.bincount(card[uniform])):
        checkpoint()
        members = np.flatnonzero(uniform & (card == k))
        p[members], expected[members] = _equal_weight_rows(
            z, draws, k, members, observed[members], coef[members], permutations
        )
    rest = np.flatnonzero(~uniform & (card > 0))
    block = max(1, _BLOCK_ELEMENTS // max(1, permutations * kmax))
    for start in range(0, len(rest), block):
        checkpoint()
        idx = rest[start : start + block]
        p[idx], expected[idx] = _weighted_rows(
            z, draws, card[idx], idx, _padded(off, idx, kmax), observed[idx], scale[idx], permutations
        )
    return p, expected


def _equal_weight_rows(
    z: np.ndarray,
    draws: np.ndarray,
    k: int,
    members: np.ndarray,
    observed: np.ndarray,
    c: np.ndarray,
    permutations: int,
) -> tuple[np.ndarray, np.ndarray]:
    """p-values and null means of the ``members`` (k neighbours of equal weight, statistic ``c · S_k``)."""
    z_draw = z[draws[:, :k]]
    sums = z_draw.sum(axis=1)  # S_k[p]
    spare = z[draws[:, k]]
    # Threshold on S: c·S >= obs  <=>  S >= obs / c (c > 0), S <= obs / c (c < 0); min(above, below) is
    # the same either way. c == 0 means the statistic is 0 in every simulation.
    safe = np.where(c != 0, c, 1.0)
    t = observed / safe
    tol = 1e-9 * np.maximum(1.0, np.abs(t))
    ordered = np.sort(sums)
    above = permutations - np.searchsorted(ordered, t - tol, side="left")
    below = np.searchsorted(ordered, t + tol, side="right")
    total = np.full(len(members), sums.sum())
    # Correct the simulations where the area drew itself.
    position = np.full(len(z), -1)
    position[members] = np.arange(len(members))
    sim, slot = np.nonzero(position[draws[:, :k]] >= 0)
    if len(sim):
        who = position[draws[sim, slot]]
        fixed = sums[sim] - z[draws[sim, slot]] + spare[sim]
        tw = t[who] - tol[who]
        np.add.at(above, who, (fixed >= tw).astype(int) - (sums[sim] >= tw))
        tw = t[who] + tol[who]
        np.add.at(below, who, (fixed <= tw).astype(int) - (sums[sim] <= tw))
        np.add.at(total, who, fixed - sums[sim])
    zero = c == 0
    obs0 = observed[zero]
    above[zero] = permutations * (obs0 <= 0)
    below[zero] = permutations * (obs0 >= 0)
    return _fold(above, below, permutations), c * total / permutations


def _weighted_rows(
    z: np.ndarray,
    draws: np.ndarray,
    card: np.ndarray,
    idx: np.ndarray,
    weights: np.ndarray,
    observed: np.ndarray,
    scale: np.ndarray,
    permutations: int,
) -> tuple[np.ndarray, np.ndarray]:
    """p-values and null means of the areas ``idx`` with unequal weights, every simulation evaluated."""
    kmax = weights.shape[1]
    ids = np.broadcast_to(draws[None, :, :kmax], (len(idx), permutations, kmax))
    ids = np.where(ids == idx[:, None, None], draws[:, card].T[:, :, None], ids)  # the spare replaces the area
    sims = np.einsum("cpk,ck->cp", z[ids], weights) * scale[:, None]
    obs = observed[:, None]
    tol = 1e-9 * np.maximum(1.0, np.abs(obs))
    return _fold((sims >= obs - tol).sum(axis=1), (sims <= obs + tol).sum(axis=1), permutations), sims.mean(axis=1)


def moran_moments(z: np.ndarray, W: sp.csr_matrix) -> dict:
    """Global Moran's I with its moments under randomisation (Cliff & Ord 1981; esda.Moran's EI, VI_rand,
    z_rand, p_rand): the normal test of the permutation null without drawing any permutation."""
    n = len(z)
    S0 = float(W.sum())
    d = z - z.mean()
    den = float(d @ d)
    if S0 == 0 or den == 0 or n < 4:
        return {"moran_i": None, "p_value": None, "expected": -1 / (n - 1)}
    moran_i = n / S0 * float(d @ (W @ d)) / den
    s1 = _s1(W)
    s2 = float(((W @ np.ones(n) + np.bincount(W.indices, weights=W.data, minlength=n)) ** 2).sum())
    s02 = S0 * S0
    k = ((d**4).sum() / n) / (den / n) ** 2  # kurtosis of the values
    ei = -1.0 / (n - 1)
    a = n * ((n * n - 3 * n + 3) * s1 - n * s2 + 3 * s02)
    b = k * ((n * n - n) * s1 - 2 * n * s2 + 6 * s02)
    var = (a - b) / ((n - 1) * (n - 2) * (n - 3) * s02) - ei * ei
    z_rand = (moran_i - ei) / np.sqrt(var) if var > 0 else float("nan")
    p_rand = float(min(1.0, 2 * stats.norm.sf(abs(z_rand)))) if np.isfinite(z_rand) else None
    return {
        "moran_i": float(moran_i),
        "expected": ei,
        "variance": float(var),
        "z": float(z_rand),
        "p_value": p_rand,
        "p_value_randomisation": p_rand,
        "test": "randomisation",  # the analytic normal test; p_value is two-sided
        "permutations": 0,
    }


def _s1(W: sp.csr_matrix) -> float:
    """½ Σ_ij (w_ij + w_ji)²: where the pattern is symmetric (contiguity), w_ji is the transpose's value at the same
    position, with no W + Wᵀ to build (0.5 s at a million areas)."""
    W = W.tocsr()
    T = W.tocsc()  # Wᵀ's CSR arrays, indices sorted
    if W.has_sorted_indices and np.array_equal(W.indptr, T.indptr) and np.array_equal(W.indices, T.indices):
        return 0.5 * float(((W.data + T.data) ** 2).sum())
    return 0.5 * float(((W + W.T).tocsr().data ** 2).sum())


def global_moran(z: np.ndarray, W: sp.csr_matrix, permutations: int, rng: np.random.Generator) -> dict:
    """:func:`moran_moments`, plus with ``permutations`` a two-sided permutation p-value (+1 corrected) that
    then becomes ``p_value`` (the randomisation one stays as ``p_value_randomisation``)."""
    out = moran_moments(z, W)
    if out["moran_i"] is None or not permutations:
        return out
    n = len(z)
    d = z - z.mean()
    scale = n / float(W.sum()) / float(d @ d)
    sims = np.empty(permutations)
    block = max(1, min(64, 2_000_000 // n))
    Z = np.empty((block, n))
    for s in range(0, permutations, block):
        checkpoint()
        b = min(block, permutations - s)
        for row in Z[:b]:  # a permuted copy of the values: sequential writes, ~1.8x a row shuffle in place
            row[:] = rng.permutation(d)
        L = W @ Z[:b].T
        sims[s : s + b] = scale * np.einsum("nb,bn->b", L, Z[:b])
    moran_i = out["moran_i"]
    tol = 1e-9 * max(1.0, abs(moran_i))
    above, below = (sims >= moran_i - tol).sum(), (sims <= moran_i + tol).sum()
    p_perm = float(min(1.0, 2 * (1 + min(above, below)) / (1 + permutations)))
    return {
        **out,
        "p_value": p_perm,
        "p_value_permutation": p_perm,
        "test": "permutation",
        "permutations": permutations,
        "expected_permutation": float(sims.mean()),
        "variance_permutation": float(sims.var(ddof=1)),  # beside ``variance``: the moments the analytic test uses
    }
