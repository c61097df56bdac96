"""True shares separated from binomial noise, for the large-city calibration's family of compositions.

The observed shares x_i/t_i are the true shares convolved with binomial noise: their distribution is wider and
more bell-shaped than the truth's. Scaling them towards the city share (the old family) fixes the spread but
not the shape, and the bias of D depends on the shape (how many areas sit within noise of the city share): it
left ~1.4 % of the raw bias uncorrected at any n (benchmarks/results/calibration_large.md).

Here the distribution of true shares, G, is estimated by Efron's g-modeling ("Empirical Bayes deconvolution
estimates", Biometrika 103, 2016): log g on a grid of shares is a smooth function (the logs of θ and 1 − θ, so
every Beta distribution is inside, and powers of logit θ up to ``DEGREE``), fitted by maximum marginal
likelihood of the binomial counts. Each area then gets a share from its own posterior under G (its count and
population), at a quantile from a low-discrepancy sequence: the shares' distribution is G's, each area's
population keeps the share its count speaks for, and the result is deterministic (no seed; a random draw would
add noise of the size of the interval). Only smooth distributions of shares are recovered this way: the
distribution behind noisy counts is not identified in its fine detail (Cai & Low 2011, Ann. Statist. 39).
"""

from __future__ import annotations

import numpy as np
from scipy import optimize
from scipy.special import xlogy

MIN_AREAS = 2_000  # fewer areas do not pin down a distribution of shares (the family then scales observed ones)
GRID_POINTS = 150  # shares on a logit-spaced grid spanning the observed ones
EDGE = 1e-4  # the grid's nearest share to 0 and to 1
DEGREE = 5  # highest power of logit θ in log g
KNOTS = 4  # inner knots of the alternative, spline log g (8 or more overfit: benchmarks/results/calibration_large.md)
RIDGE = 1e-5  # on the (standardised) coefficients, against runaway fits; per area of log-likelihood
EXACT_ROWS = 5_000  # beyond this many distinct (count, population) pairs, areas are pooled into rows
T_STEP, P_STEP = 0.05, 0.1  # the pooling: populations within 5 %, shares within a tenth of their noise
GOLDEN = (np.sqrt(5.0) - 1) / 2


def _rows(x: np.ndarray, t: np.ndarray, P: float) -> tuple:
    """(x̄, t̄, count) of areas pooled by share and population, the areas sorted by row, and their rows.

    Distinct (x, t) pairs when at most ``EXACT_ROWS``; else populations to ``T_STEP`` (log) and shares to
    ``P_STEP`` of their binomial noise, which widens the pooled shares' noise by ~0.1 % of its variance.
    One sort: it is most of the cost at a million areas."""
    order, row = _group(x * (t.max() + 1) + t) if len(x) <= 10 * EXACT_ROWS else (None, None)
    if row is None or row[-1] + 1 > EXACT_ROWS:
        tb = np.rint(np.log(t) / T_STEP)
        width = P_STEP * np.sqrt(P * (1 - P) / np.exp(tb * T_STEP))
        order, row = _group(tb * 2**31 + np.rint(x / t / width))
    count = np.bincount(row).astype(float)
    xs, ts = np.bincount(row, weights=x[order]) / count, np.bincount(row, weights=t[order]) / count
    return xs, ts, count, order, row


def _group(key: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The order sorting ``key`` and each sorted area's group of equal keys (0, 1, ...)."""
    order = np.argsort(key, kind="stable")
    k = key[order]
    return order, np.cumsum(np.r_[False, k[1:] != k[:-1]])


def _grid(xs: np.ndarray, ts: np.ndarray, count: np.ndarray) -> np.ndarray:
    """``GRID_POINTS`` logit-spaced shares over the observed ones (0.05 % to 99.95 % of areas, (x + ½)/(t + 1))
    widened by a quarter of that logit span each side, within [EDGE, 1 − EDGE]. Tied to the data's range: shares
    within 0.17–0.23 need a fine grid (one from half-way to 0 to half-way to 1 spaced them at half their true
    spread: coverage 0.66 at 10,000 areas × 3,000 people, D 0.02); a grid on to EDGE for every city made the fit
    of moderate shares noisy, and coarser tails with their cell widths as an offset biased it."""
    ph = (xs + 0.5) / (ts + 1)
    order = np.argsort(ph)
    cum = np.cumsum(count[order]) / count.sum()
    lo, hi = np.log(
        ph[order][np.searchsorted(cum, [0.0005, 0.9995])] / (1 - ph[order][np.searchsorted(cum, [0.0005, 0.9995])])
    )
    pad = max(0.25 * (hi - lo), 0.01)
    edge = np.log(EDGE / (1 - EDGE))
    lo, hi = max(lo - pad, edge), min(hi + pad, -edge)
    return 1 / (1 + np.exp(-np.linspace(lo, hi, GRID_POINTS)))


def _likelihood(xs: np.ndarray, ts: np.ndarray, grid: np.ndarray) -> np.ndarray:
    """Each row's binomial likelihood at every grid share, up to a factor per row (floored: no denormals)."""
    ll = xlogy(xs[:, None], grid) + xlogy((ts - xs)[:, None], 1 - grid)
    return np.exp(np.maximum(ll - ll.max(axis=1, keepdims=True), -40.0))


def _basis(grid: np.ndarray) -> np.ndarray:
    """log θ, log(1 − θ) (every Beta) and powers 2..``DEGREE`` of standardised logit θ."""
    z = np.log(grid / (1 - grid))
    z = (z - z.mean()) / (z.std() or 1.0)
    return _standardised(np.column_stack([np.log(grid), np.log1p(-grid)] + [z**k for k in range(2, DEGREE + 1)]))


def _spline_basis(grid: np.ndarray, xs: np.ndarray, ts: np.ndarray, count: np.ndarray) -> np.ndarray:
    """log θ, log(1 − θ) and cubic B-splines in logit θ with ``KNOTS`` inner knots at quantiles of the observed
    shares (for shapes the polynomial misses, e.g. two modes)."""
    from scipy.interpolate import BSpline

    z = np.log(grid / (1 - grid))
    ph = (xs + 0.5) / (ts + 1)
    o = np.argsort(ph)
    cum = np.cumsum(count[o]) / count.sum()
    zp = np.log(ph[o] / (1 - ph[o]))
    inner = np.unique(np.clip(zp[np.searchsorted(cum, np.linspace(0, 1, KNOTS + 2)[1:-1])], z[0] + 1e-6, z[-1] - 1e-6))
    knots = np.r_[[z[0]] * 4, inner, [z[-1]] * 4]
    B = BSpline.design_matrix(z, knots, 3).toarray()
    return _standardised(np.column_stack([np.log(grid), np.log1p(-grid), B[:, 1:]]))


def _standardised(Q: np.ndarray) -> np.ndarray:
    sd = Q.std(axis=0)
    return (Q - Q.mean(axis=0)) / np.where(sd > 0, sd, 1.0)


def _best(L: np.ndarray, count: np.ndarray, bases: list) -> np.ndarray | None:
    """The fit of largest BIC among the bases, the first preferred on a tie. AIC picked the spline for Beta shares
    on likelihood gains of 1-3 (noise) and its G then left the scaled family's bias; two modes gain 70-90."""
    best, score = None, -np.inf
    for Q in bases:
        g = fit(L, count, Q)
        if g is not None:
            ll = float(np.einsum("i,i->", count, np.log(np.maximum(_mix(L, g), 1e-300))))
            s = ll - 0.5 * Q.shape[1] * np.log(count.sum())
            best, score = (g, s) if s > score else (best, score)
    return best


def _mix(L: np.ndarray, g: np.ndarray) -> np.ndarray:
    """L·g by einsum's own loop (here and below, not BLAS): a threaded BLAS took 5.5 s instead of 0.2 s for a fit of
    5,000 areas while another process kept both cores busy."""
    return np.einsum("ij,j->i", L, g)


def fit(L: np.ndarray, count: np.ndarray, Q: np.ndarray) -> np.ndarray | None:
    """Grid probabilities g = softmax(Q·α) of maximum penalised marginal likelihood (None: the fit failed)."""
    c = count / count.sum()

    def g_of(a):
        eta = _mix(Q, a)
        g = np.exp(eta - eta.max())
        return g / g.sum()

    def loss(a):
        g = g_of(a)
        f = np.maximum(_mix(L, g), 1e-300)
        grad = -np.einsum("kj,k->j", Q, g * (np.einsum("ik,i->k", L, c / f) - 1.0)) + 2 * RIDGE * a
        return -np.sum(c * np.log(f)) + RIDGE * a @ a, grad

    # BFGS in numpy, not L-BFGS-B: its Fortran calls a threaded BLAS (4x slower on a busy machine)
    res = optimize.minimize(loss, np.zeros(Q.shape[1]), jac=True, method="BFGS", options={"maxiter": 500, "gtol": 1e-7})
    g = g_of(res.x)
    return g if np.isfinite(g).all() and np.isfinite(res.fun) else None


def shares(x: np.ndarray, t: np.ndarray) -> np.ndarray | None:
    """Each area's share from its posterior under the fitted G (areas with no population: None's share, the city's).

    None when there is nothing to deconvolve (one group empty, fewer than two populated areas) or the fit fails."""
    x, t = np.asarray(x, dtype=float), np.asarray(t, dtype=float)
    live = t > 0
    P = x[live].sum() / t[live].sum() if live.any() else 0.0
    if live.sum() < 2 or not 0 < P < 1:
        return None
    xs, ts, count, order, row = _rows(x[live], t[live], P)
    grid = _grid(xs, ts, count)
    L = _likelihood(xs, ts, grid)
    g = _best(L, count, [_basis(grid), _spline_basis(grid, xs, ts, count)])
    if g is None:
        return None
    q = np.full(len(t), P)
    q[live] = _posterior_quantiles(L * g, grid, order, row)
    return q


def _posterior_quantiles(post: np.ndarray, grid: np.ndarray, order: np.ndarray, row: np.ndarray) -> np.ndarray:
    """Each area's share at a quantile of its row's posterior ``post``: the areas in row order (``order``, their
    rows ``row``) take the golden-ratio sequence's points in turn, so a row's areas spread over its posterior and
    single-area rows next to each other over theirs. Searched in that order, lookups stay within a row's memory."""
    cdf = np.cumsum(post, axis=1)
    cdf /= cdf[:, -1:]
    flat = (np.arange(len(cdf))[:, None] + cdf).ravel()  # rows' cdfs laid end to end: increasing
    u = (0.5 + GOLDEN * np.arange(len(row))) % 1.0
    k = np.searchsorted(flat, row + u) - row * len(grid)
    out = np.empty(len(row))
    out[order] = grid[np.clip(k, 0, len(grid) - 1)]
    return out
