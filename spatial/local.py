"""Local statistics of a group's share: where the concentrations are, with honest significance.

* ``lisa`` — local Moran's I (Anselin 1995, "Local indicators of spatial association — LISA",
  Geographical Analysis 27(2)), with the four cluster labels of GeoDa;
* ``gi_star`` — Getis-Ord Gi* (Ord & Getis 1995, Geographical Analysis 27(4)) on binary weights
  that include the area itself; labels ``hot_spot`` / ``cold_spot``;
* ``lq`` — location quotient (share ÷ city-wide share) with an exact binomial test;
* ``entropy`` — local diversity across several groups (Shannon entropy ÷ ln K), no test;
* ``bivariate_lisa`` — the group's share against another column (Anselin, Syabri & Smirnov 2002).

Significance is by conditional permutation (the area's own value fixed, its neighbours drawn from
the other areas), two-sided: ``min(1, 2 · (1 + min(#sim ≥ obs, #sim ≤ obs)) / (1 + N))``. esda's
default ``p_sim`` is the one-sided folded value, about half of this (esda issue 199). Labels are
then corrected for multiple testing (:mod:`spatial.multiple_testing`). Each simulation draws one
set of areas shared by all areas (esda's ``rids``); for equal-weight rows the counts come from one
sorted sum per neighbour count and a binary search (see :func:`conditional_permutation`), so memory
grows with n + simulations, not n × simulations, and there is no JIT warm-up.
"""
from __future__ import annotations

import numpy as np
import scipy.sparse as sp
from scipy import stats

from .cancel import checkpoint
from .dataset import AreaDataset
from .errors import ValidationError, problem
from .multiple_testing import adjust
from .results import NO_NEIGHBOURS, NOT_SIGNIFICANT, LocalResult
from .weights import SpatialWeights, build_weights

STATISTICS = ("lisa", "gi_star", "lq", "entropy", "bivariate_lisa")
ALIASES = {"moran": "lisa", "local_moran": "lisa", "getis_ord": "gi_star", "location_quotient": "lq",
           "bivariate_moran": "bivariate_lisa"}
QUADRANTS = np.array(["high_high", "low_high", "low_low", "high_low"])
_BLOCK_ELEMENTS = 4_000_000  # areas × permutations × neighbours per block (~32 MB of float64)


def empirical_bayes(x: np.ndarray, t: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Global empirical Bayes smoothed shares (Marshall 1991) and each area's shrinkage weight.

    Areas with small totals are pulled towards the city-wide share, so a handful of people cannot
    make a hot spot. Returns (smoothed share, weight on the area's own share).
    """
    T = t.sum()
    b = x.sum() / T
    r = np.divide(x, t, out=np.full_like(x, b), where=t > 0)
    s2 = (t * (r - b) ** 2).sum() / T
    a = max(s2 - b / t[t > 0].mean(), 0.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        w = np.where(t > 0, a / (a + b / np.where(t > 0, t, 1)), 0.0)
    return w * r + (1 - w) * b, w


def _standardise(y: np.ndarray) -> np.ndarray:
    sd = y.std()
    return (y - y.mean()) / sd if sd > 0 else np.zeros_like(y)


def _neighbour_table(W: sp.csr_matrix) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Off-diagonal neighbours as padded (n, kmax) weights, plus cardinalities and self-weights."""
    W = W.tocsr()
    diag = W.diagonal().copy()
    off = (W - sp.diags(diag)).tocsr()
    off.eliminate_zeros()
    card = np.diff(off.indptr)
    kmax = int(card.max()) if len(card) else 0
    weights = np.zeros((W.shape[0], max(kmax, 1)))
    rows = np.repeat(np.arange(W.shape[0]), card)
    cols = np.arange(off.nnz) - np.repeat(off.indptr[:-1], card)
    weights[rows, cols] = off.data
    return weights, card, diag


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


def conditional_permutation(z: np.ndarray, W: sp.csr_matrix, observed: np.ndarray, scale: np.ndarray,
                            permutations: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
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
    weights, card, _ = _neighbour_table(W)
    kmax = weights.shape[1]
    if kmax + 1 > n:
        raise ValidationError(problem("bad_parameter", "An area has more neighbours than there are other areas"))
    draws = _draw_others(rng, permutations, n, kmax + 1)
    p = np.full(n, np.nan)
    expected = np.full(n, np.nan)
    cols = np.arange(kmax)
    present = cols[None, :] < card[:, None]
    w_first = weights[:, 0]
    uniform = (card > 0) & np.where(present, np.isclose(weights, w_first[:, None], rtol=1e-12, atol=0), True).all(axis=1)
    coef = scale * w_first

    for k in np.unique(card[uniform]):
        checkpoint()
        members = np.flatnonzero(uniform & (card == k))
        z_draw = z[draws[:, :k]]
        sums = z_draw.sum(axis=1)  # S_k[p]
        spare = z[draws[:, k]]
        c = coef[members]
        # Threshold on S: c·S >= obs  <=>  S >= obs / c (c > 0), S <= obs / c (c < 0); min(above, below) is
        # the same either way. c == 0 means the statistic is 0 in every simulation.
        safe = np.where(c != 0, c, 1.0)
        t = observed[members] / safe
        tol = 1e-9 * np.maximum(1.0, np.abs(t))
        ordered = np.sort(sums)
        above = permutations - np.searchsorted(ordered, t - tol, side="left")
        below = np.searchsorted(ordered, t + tol, side="right")
        total = np.full(len(members), sums.sum())
        # Correct the simulations where the area drew itself.
        position = np.full(n, -1)
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
        obs0 = observed[members][zero]
        above[zero] = permutations * (obs0 <= 0)
        below[zero] = permutations * (obs0 >= 0)
        p[members] = _fold(above, below, permutations)
        expected[members] = c * total / permutations

    rest = np.flatnonzero(~uniform & (card > 0))
    block = max(1, _BLOCK_ELEMENTS // max(1, permutations * kmax))
    for start in range(0, len(rest), block):
        checkpoint()
        idx = rest[start:start + block]
        ids = np.broadcast_to(draws[None, :, :kmax], (len(idx), permutations, kmax))
        ids = np.where(ids == idx[:, None, None], draws[:, card[idx]].T[:, :, None], ids)  # the spare replaces the area
        sims = np.einsum("cpk,ck->cp", z[ids], weights[idx]) * scale[idx, None]
        obs = observed[idx, None]
        tol = 1e-9 * np.maximum(1.0, np.abs(obs))
        p[idx] = _fold((sims >= obs - tol).sum(axis=1), (sims <= obs + tol).sum(axis=1), permutations)
        expected[idx] = sims.mean(axis=1)
    return p, expected


def _labels(significant: np.ndarray, names: np.ndarray, islands: np.ndarray) -> np.ndarray:
    out = np.where(significant, names, NOT_SIGNIFICANT).astype(object)
    out[islands] = NO_NEIGHBOURS
    return out


def global_moran(z: np.ndarray, W: sp.csr_matrix, permutations: int, rng: np.random.Generator) -> dict:
    """Global Moran's I of standardised values with a two-sided permutation p-value (+1 corrected)."""
    n = len(z)
    S0 = W.sum()
    den = (z * z).sum()
    if S0 == 0 or den == 0:
        return {"moran_i": None, "p_value": None, "expected": -1 / (n - 1)}
    I = n / S0 * (z @ (W @ z)) / den
    sims = np.empty(permutations)
    block = max(1, 2_000_000 // n)
    for s in range(0, permutations, block):
        checkpoint()
        b = min(block, permutations - s)
        Z = np.empty((b, n))
        Z[:] = z
        for row in Z:  # in-place shuffles: ~30 % faster than Generator.permuted over an axis
            rng.shuffle(row)
        sims[s:s + b] = n / S0 * np.einsum("bn,bn->b", Z, (W @ Z.T).T) / den
    above, below = (sims >= I).sum(), (sims <= I).sum()
    return {"moran_i": float(I), "p_value": float(min(1.0, 2 * (1 + min(above, below)) / (1 + permutations))),
            "expected": -1 / (n - 1), "permutations": permutations}


def local_statistic(dataset: AreaDataset, group: str, statistic: str = "lisa", *, total: str | None = None,
                    weights: str | SpatialWeights = "queen", k: int | None = None, distance: float | None = None,
                    permutations: int = 999, seed: int | None = None, alpha: float = 0.05, correction: str = "fdr",
                    other: str | None = None, smoothing: str | None = None, groups: list[str] | None = None) -> LocalResult:
    """One local statistic of ``group``'s share of ``total`` per area, labelled after multiple-testing control."""
    statistic = ALIASES.get(statistic, statistic)
    if statistic not in STATISTICS:
        raise ValidationError(problem("unknown_statistic", f"Unknown local statistic {statistic!r}; choose from {list(STATISTICS)}"))
    if not 0 < alpha < 1:
        raise ValidationError(problem("bad_parameter", f"alpha must be between 0 and 1, got {alpha}"))
    permutations = int(permutations)
    if permutations < 0:
        raise ValidationError(problem("bad_parameter", "permutations must be 0 or more"))
    rng = np.random.default_rng(seed)
    x, t = dataset.counts(group, total)
    share = dataset.share(group, total)
    columns = {"share": share}
    notes = []
    y = share
    if smoothing is not None:
        if smoothing != "eb":
            raise ValidationError(problem("bad_parameter", f"Unknown smoothing {smoothing!r}; use 'eb' (empirical Bayes)"))
        y, w_own = empirical_bayes(x, t)
        columns["smoothed_share"] = y
        affected = np.abs(y - share) > 0.1 * max(x.sum() / t.sum(), 1e-12)
        columns["smoothing_changed"] = affected
        notes.append(problem("smoothed", f"Empirical Bayes smoothing moved {int(affected.sum())} areas' shares by more "
                             "than 10 % of the city-wide share (small populations)", dataset.ids[affected]))
    common = dict(statistic=statistic, ids=dataset.ids, alpha=alpha, correction=correction, permutations=permutations,
                  seed=seed, group=group, notes=notes, columns=columns)

    if statistic == "lq":
        P = x.sum() / t.sum()
        lq = np.divide(y, P, out=np.zeros_like(y), where=P > 0)
        xi, ti = np.rint(x), np.rint(t)
        upper = stats.binom.sf(xi - 1, ti, P)
        lower = stats.binom.cdf(xi, ti, P)
        pv = np.where(ti > 0, np.minimum(1.0, 2 * np.minimum(upper, lower)), np.nan)
        q, sig = adjust(pv, alpha, correction)
        names = np.where(lq > 1, "over_represented", "under_represented")
        labels = _labels(sig, names, np.zeros(len(y), bool))
        labels[np.isnan(pv)] = "no_population"
        return LocalResult(values=lq, labels=labels, p_value=pv, q_value=q,
                           summary={"city_share": float(P), **_counts(labels)}, **common)

    if statistic == "entropy":
        cols = groups or list(dataset.groups)
        X = dataset.matrix(cols)
        rest = t - X.sum(axis=1)
        if (rest > 1e-9).any():
            X = np.column_stack([X, np.clip(rest, 0, None)])
        ti = X.sum(axis=1, keepdims=True)
        pik = np.divide(X, ti, out=np.zeros_like(X), where=ti > 0)
        with np.errstate(divide="ignore", invalid="ignore"):
            h = -np.where(pik > 0, pik * np.log(pik), 0).sum(axis=1) / np.log(X.shape[1])
        return LocalResult(values=h, labels=np.full(len(h), "not_tested", dtype=object),
                           summary={"groups": cols, "normalised_by": f"ln {X.shape[1]}"}, **common)

    sw = weights if isinstance(weights, SpatialWeights) else build_weights(dataset, weights, k=k, distance=distance)
    common["weights"] = sw.describe()
    islands = sw.cardinalities == 0
    if islands.any():
        notes.append(problem("islands", f"{int(islands.sum())} areas have no neighbours under {sw.kind} weights: "
                             "labelled no_neighbours, no p-value", dataset.ids[islands]))

    if statistic in ("lisa", "bivariate_lisa"):
        W = sw.sparse if sw.row_standardised else _row_standardise(sw.sparse)
        zx = _standardise(y)
        if statistic == "bivariate_lisa":
            if not other:
                raise ValidationError(problem("bad_parameter", "bivariate_lisa needs `other`: the column to compare the share with"))
            other_values = dataset.share(other, total) if other in dataset.groups else dataset.column(other)
            zy = _standardise(other_values)
            columns["other"] = other_values
        else:
            zy = zx
        n = len(zx)
        den = (zx * zx).sum()
        scale = np.full(n, (n - 1) / den if den > 0 else 0.0) * zx
        lag = W @ zy
        I = scale * lag
        pv = q = None
        sig = np.zeros(n, bool)
        if permutations:
            pv, exp = conditional_permutation(zy, W, I, scale, permutations, rng)
            q, sig = adjust(pv, alpha, correction)
            columns["expected"] = exp
        quad = np.select([(zx > 0) & (lag > 0), (zx <= 0) & (lag > 0), (zx <= 0) & (lag <= 0)], [0, 1, 2], 3)
        labels = _labels(sig, QUADRANTS[quad], islands)
        columns["lag"] = lag
        summary = _counts(labels)
        if statistic == "lisa":
            summary["global_moran"] = global_moran(zx, W, permutations or 0, rng) if permutations else \
                {"moran_i": float(n / W.sum() * (zx @ (W @ zx)) / den) if den and W.sum() else None}
        return LocalResult(values=I, labels=labels, z=zx, p_value=pv, q_value=q, summary=summary, **common)

    # Gi*: binary weights with the area itself included (Ord & Getis 1995, eq. 8).
    B = (sw.sparse != 0).astype(float)
    B = (B - sp.diags(B.diagonal()) + sp.eye(B.shape[0])).tocsr()
    n = len(y)
    xbar, s = y.mean(), y.std()
    wi = np.asarray(B.sum(axis=1)).ravel()
    wi2 = np.asarray(B.multiply(B).sum(axis=1)).ravel()
    with np.errstate(divide="ignore", invalid="ignore"):
        gz = (B @ y - xbar * wi) / (s * np.sqrt((n * wi2 - wi**2) / (n - 1)))
    gz = np.where(np.isfinite(gz), gz, 0.0)
    pv = q = None
    sig = np.zeros(n, bool)
    if permutations:
        # The self term is fixed; permute the neighbours' values (the part of the sum that can vary).
        off = (B - sp.eye(n)).tocsr()
        observed = off @ y
        pv, _ = conditional_permutation(y, off, observed, np.ones(n), permutations, rng)
        q, sig = adjust(pv, alpha, correction)
    else:
        pv = 2 * stats.norm.sf(np.abs(gz))
        q, sig = adjust(pv, alpha, correction)
        pv[islands] = np.nan
    labels = _labels(sig, np.where(gz > 0, "hot_spot", "cold_spot"), islands)
    return LocalResult(values=gz, labels=labels, z=gz, p_value=pv, q_value=q, summary=_counts(labels), **common)


def _row_standardise(W: sp.csr_matrix) -> sp.csr_matrix:
    rs = np.asarray(W.sum(axis=1)).ravel()
    return sp.diags(np.divide(1.0, rs, out=np.zeros_like(rs), where=rs > 0)) @ W


def _counts(labels: np.ndarray) -> dict:
    names, counts = np.unique(labels.astype(str), return_counts=True)
    return {"labels": {str(a): int(b) for a, b in zip(names, counts)}}
