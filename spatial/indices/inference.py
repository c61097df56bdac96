"""Inference for every index: p-values against a named null, bootstrap intervals, comparisons.

Simulations are drawn in blocks of arrays and evaluated in one call of the index's batched
evaluator (see :mod:`spatial.indices`), so memory is bounded by the block size, not by
``n × permutations``; the geometry-dependent set-up of spatial indices is built once, before.

Null models
-----------
``random_allocation``
    Each area keeps its population, which is re-drawn to groups at the city-wide proportions
    (binomial for two groups, multinomial for several). It answers "is there more segregation
    than chance alone would give areas of these sizes?" and its mean is the index expected under
    no segregation (small groups in small areas look segregated by chance; Carrington & Troske 1997).
``permutation``
    Areas' compositions are shuffled over the fixed geometry. Aspatial indices are invariant to
    it, so it only makes sense for spatial indices: "does where the areas lie matter?".

p-values are two-sided around the null mean, with the +1 correction (Davison & Hinkley 1997,
eq. 4.11), so never 0: ``(1 + #{|s − m| ≥ |obs − m|}) / (1 + N)``.

Confidence intervals come from a parametric bootstrap: every area's counts are re-drawn from its
own observed composition (binomial/multinomial), the geometry fixed. Re-drawing adds sampling
noise, which biases segregation indices (unevenness rises, spatial smoothness falls), so raw
percentiles sit off-centre; the interval is the observed value plus the bootstrap's percentile
deviations from its own mean: ``[v + (q_lo − m), v + (q_hi − m)]`` (a bias-corrected interval).
"""
from __future__ import annotations

from typing import Callable, Sequence

import numpy as np

from ..cancel import checkpoint

NULLS = ("random_allocation", "permutation")
_BLOCK_BYTES = 64 * 2**20  # upper bound on one simulated block


def _block_size(n: int, k: int, requested: int | None) -> int:
    if requested:
        return max(1, int(requested))
    return int(max(1, min(1000, _BLOCK_BYTES // (8 * max(1, n) * max(1, k) * 4))))


def _simulate(evaluate: Callable, draw: Callable, count: int, block: int, progress, done0=0, total=None):
    out = np.empty(count)
    done = 0
    while done < count:
        b = min(block, count - done)
        checkpoint()
        out[done:done + b] = evaluate(*draw(b))
        done += b
        if progress:
            progress(done0 + done, total or count)
    return out


NORMAL_APPROX_MIN_VAR = 9.0  # t·p·(1−p) from which a binomial count is drawn from its normal approximation (the textbook rule)


def binomial_counts(rng: np.random.Generator, t: np.ndarray, p: np.ndarray | float, b: int) -> np.ndarray:
    """``b`` draws of Binomial(t_i, p_i) per area, shape (b, n), as float32.

    Areas whose variance t·p·(1−p) is at least 9 use the de Moivre–Laplace normal approximation,
    rounded and clipped to [0, t], its variance reduced by the 1/12 that rounding adds (Sheppard):
    float32 normals scaled in place cost ~9 ns a draw, numpy's exact sampler ~100 ns, which dominated
    simulations at 100,000 areas. Smaller areas are drawn exactly. tests/test_inference.py checks
    the null distribution of D against exact draws (KS).
    Counts below 2^24 are exact in float32.
    """
    p = np.broadcast_to(np.asarray(p, dtype=float), t.shape)
    var = t * p * (1 - p)
    exact = np.flatnonzero(var < NORMAL_APPROX_MIN_VAR)
    exact = exact[np.argsort(t[exact], kind="stable")]  # equal n side by side: numpy's sampler reuses its set-up
    out = rng.standard_normal((b, len(t)), dtype=np.float32)
    # Rounding to integers adds variance 1/12 (Sheppard); take it off so the counts' variance is t·p·(1−p).
    sd = np.sqrt(np.clip(var - 1 / 12, 0, None))
    out *= sd.astype(np.float32)
    out += (t * p).astype(np.float32)
    np.rint(out, out=out)
    np.clip(out, np.float32(0), t.astype(np.float32), out=out)
    if len(exact):
        out[:, exact] = rng.binomial(np.rint(t[exact]).astype(np.int64), np.clip(p[exact], 0, 1), size=(b, len(exact)))
    return out


def _drawers(data: Sequence[np.ndarray], kind: str, rng: np.random.Generator):
    """Return (null draws by name, bootstrap draw) for the observed data."""
    if kind == "two_group":
        x, t = (np.asarray(a, dtype=float) for a in data)
        ti = np.rint(t).astype(np.int64)
        t32 = t.astype(np.float32)
        P = x.sum() / t.sum()
        with np.errstate(divide="ignore", invalid="ignore"):
            p_obs = np.where(t > 0, x / np.where(t > 0, t, 1), 0.0)

        def random_allocation(b):
            return binomial_counts(rng, ti.astype(float), P, b), np.broadcast_to(t32, (b, len(t)))

        def permutation(b):
            idx = rng.permuted(np.broadcast_to(np.arange(len(t)), (b, len(t))), axis=1)
            return x[idx], t[idx]

        def bootstrap(b):
            return binomial_counts(rng, ti.astype(float), np.clip(p_obs, 0, 1), b), np.broadcast_to(t32, (b, len(t)))

        return {"random_allocation": random_allocation, "permutation": permutation}, bootstrap

    (X,) = data
    X = np.asarray(X, dtype=float)
    Xi = np.rint(X).astype(np.int64)
    ti = Xi.sum(axis=1)
    Pk = X.sum(axis=0) / X.sum()
    with np.errstate(divide="ignore", invalid="ignore"):
        pik = np.where(ti[:, None] > 0, Xi / np.where(ti > 0, ti, 1)[:, None], 1.0 / X.shape[1])

    def random_allocation(b):
        return (rng.multinomial(np.broadcast_to(ti, (b, len(ti))), Pk).astype(float),)

    def permutation(b):
        idx = rng.permuted(np.broadcast_to(np.arange(len(ti)), (b, len(ti))), axis=1)
        return (X[idx],)

    def bootstrap(b):
        return (rng.multinomial(np.broadcast_to(ti, (b, len(ti))), np.broadcast_to(pik, (b, *pik.shape))).astype(float),)

    return {"random_allocation": random_allocation, "permutation": permutation}, bootstrap


def two_sided_p(observed: float, simulated: np.ndarray) -> float:
    sims = simulated[np.isfinite(simulated)]
    if not np.isfinite(observed) or sims.size == 0:
        return float("nan")
    centre = sims.mean()
    extreme = np.count_nonzero(np.abs(sims - centre) >= abs(observed - centre) - 1e-12)
    return float((1 + extreme) / (1 + sims.size))


def infer(evaluate: Callable, data: Sequence[np.ndarray], *, kind: str, null: str = "random_allocation",
          permutations: int = 999, seed: int | None = None, ci_level: float = 0.95,
          block_size: int | None = None, progress: Callable | None = None) -> dict:
    """p-value, bootstrap interval and expected value of one index on one dataset.

    ``permutations`` draws are made under ``null`` and as many for the bootstrap.
    """
    if null not in NULLS:
        from ..errors import ValidationError, problem
        raise ValidationError(problem("unknown_null", f"Unknown null model {null!r}; choose from {list(NULLS)}"))
    permutations = int(permutations)
    rng = np.random.default_rng(seed)
    observed = float(evaluate(*data))
    nulls, bootstrap = _drawers(data, kind, rng)
    n = len(data[0])
    k = data[0].shape[1] if kind == "multigroup" else 2
    block = _block_size(n, k, block_size)
    sims = _simulate(evaluate, nulls[null], permutations, block, progress, 0, 2 * permutations)
    boots = _simulate(evaluate, bootstrap, permutations, block, progress, permutations, 2 * permutations)
    lo, hi = _percentile_interval(boots, ci_level)
    centre = float(np.nanmean(boots)) if np.isfinite(boots).any() else float("nan")
    lo, hi = observed + (lo - centre), observed + (hi - centre)
    return {"value": observed, "p_value": two_sided_p(observed, sims), "ci_low": lo, "ci_high": hi,
            "expected": float(np.nanmean(sims)) if np.isfinite(sims).any() else float("nan"),
            "null": null, "permutations": permutations, "seed": seed}


def _percentile_interval(draws: np.ndarray, level: float) -> tuple[float, float]:
    d = draws[np.isfinite(draws)]
    if d.size == 0:
        return float("nan"), float("nan")
    a = (1 - level) / 2
    return float(np.quantile(d, a)), float(np.quantile(d, 1 - a))


def compare_samples(evaluate_a: Callable, data_a: Sequence[np.ndarray], evaluate_b: Callable,
                    data_b: Sequence[np.ndarray], *, kind: str, permutations: int = 999, seed: int | None = None,
                    ci_level: float = 0.95, block_size: int | None = None, progress: Callable | None = None) -> dict:
    """Is index(a) − index(b) different from 0? Two independent parametric bootstraps.

    Each sample's counts are re-drawn from its own areas' compositions; the difference of the
    two draws gives a percentile interval, and the p-value is the two-sided bootstrap test of a
    zero difference, ``(1 + 2·min(#{d ≤ 0}, #{d ≥ 0})) / (1 + N)`` capped at 1. Works for two
    cities, two years or two groups, and for spatial indices (each sample keeps its geometry).
    """
    rng = np.random.default_rng(seed)
    a, b = float(evaluate_a(*data_a)), float(evaluate_b(*data_b))
    _, boot_a = _drawers(data_a, kind, rng)
    _, boot_b = _drawers(data_b, kind, rng)
    k = data_a[0].shape[1] if kind == "multigroup" else 2
    block = _block_size(max(len(data_a[0]), len(data_b[0])), k, block_size)
    da = _simulate(evaluate_a, boot_a, permutations, block, progress, 0, 2 * permutations)
    db = _simulate(evaluate_b, boot_b, permutations, block, progress, permutations, 2 * permutations)
    d = da - db
    d = d[np.isfinite(d)]
    lo, hi = _percentile_interval(d, ci_level)
    if d.size:  # centred on the observed difference, as in `infer`
        lo, hi = (a - b) + (lo - d.mean()), (a - b) + (hi - d.mean())
    tail = min(np.count_nonzero(d <= 0), np.count_nonzero(d >= 0))
    p = min(1.0, (1 + 2 * tail) / (1 + d.size)) if d.size else float("nan")
    return {"value_a": a, "value_b": b, "difference": a - b, "p_value": float(p), "ci_low": lo, "ci_high": hi,
            "method": "parametric_bootstrap", "permutations": int(permutations), "seed": seed}
