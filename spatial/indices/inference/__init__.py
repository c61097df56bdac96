"""Inference for every index: p-values against a named null, bias-corrected intervals, comparisons.

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

Bias correction and intervals
-----------------------------
The counts of an area are a draw around its true composition, and that noise makes a city look
more segregated than it is (unevenness up, exposure down), most where areas are small. The usual
bootstrap correction (the R package ``segregation``: ``2·value − mean of the bootstrap``) measures
the bias at the observed compositions, which are noisier than the true ones, so it under-corrects
where the bias matters (95 % intervals of D covered the truth 88 % of the time in a city of 30
areas × 3,000 people with true D 0.029; centring on the observed value, 74 %).

Here the correction is calibrated instead (test inversion on a one-parameter family; Carpenter 1999,
"Test inversion bootstrap confidence intervals", JRSS B 61): the family scales every area's
deviation from the city-wide shares by λ, ``P + λ·(p̂_i − P)`` — λ = 0 is random allocation, λ = 1
the observed compositions, geometry and area populations fixed. Counts are simulated along λ; the
bias-corrected value is the index of the member whose simulated mean equals the observed value,
and the interval holds the members for which the observed value lies within the central
``ci_level`` of their simulations. A nested one-step re-estimation on simulated cities widens the
interval by the variability of the correction itself (never narrows it). Where even random
allocation reaches the observed value the interval ends at the no-segregation member and the
result says ``within_noise``. Indices that do not move along λ (city-wide diversity) fall back to
the basic bootstrap of ``segregation``. benchmarks/calibration.py measures the coverage.

From ``FAST_MIN_AREAS`` areas the calibration takes its large-city path (:mod:`.asymptotic`,
``interval_method`` ``test_inversion_asymptotic``): fewer simulated cities per λ with common random
numbers, the normal band and no nested widening, and the simulations' normals from a quantile table. For
aspatial two-group indices its family scales deconvolved shares instead of observed ones (:mod:`.deconvolve`).
Seeded calibration work is reused within a process (:mod:`.reuse`): a comparison or a trend's change
row does not simulate again what the level row did. benchmarks/calibration_large.py measures both.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from . import threaded
from .asymptotic import FAST_DRAWS, FAST_MIN_AREAS, fast_path
from .calibration import CAL_DRAWS, FINE, GRID, MAX_WIDENING, calibrate
from .draws import (
    _BLOCK_BYTES,
    NORMAL_APPROX_MIN_VAR,
    BinomialSampler,
    _binomial_rows,
    _block_size,
    _bootstrap,
    _drawers,
    _simulate,
    _stream,
    binomial_counts,
    null_sampler,
)
from .family import _local_eb, _neighbourhoods, _Scaled

NULLS = ("random_allocation", "permutation")

__all__ = [
    "BinomialSampler",
    "CAL_DRAWS",
    "FAST_DRAWS",
    "FAST_MIN_AREAS",
    "FINE",
    "GRID",
    "MAX_WIDENING",
    "NORMAL_APPROX_MIN_VAR",
    "NULLS",
    "_BLOCK_BYTES",
    "_Scaled",
    "_binomial_rows",
    "_block_size",
    "_bootstrap",
    "_drawers",
    "_local_eb",
    "_neighbourhoods",
    "_simulate",
    "_stream",
    "binomial_counts",
    "calibrate",
    "compare_samples",
    "fast_path",
    "infer",
    "noise_note",
    "two_sided_p",
]


def two_sided_p(observed: float, simulated: np.ndarray) -> float:
    sims = simulated[np.isfinite(simulated)]
    if not np.isfinite(observed) or sims.size == 0:
        return float("nan")
    centre = sims.mean()
    extreme = np.count_nonzero(np.abs(sims - centre) >= abs(observed - centre) - 1e-12)
    return float((1 + extreme) / (1 + sims.size))


def noise_note(observed: float, cal: dict) -> str:
    """The sentence that goes with ``within_noise``."""
    return (
        f"The observed value {observed:.4g} is within what random allocation alone produces in areas of these "
        f"sizes: the data are consistent with no segregation, and the interval reaches the no-segregation "
        f"value {cal['floor']:.4g}."
    )


def _check_null(null: str) -> None:
    if null not in NULLS:
        from ..errors import ValidationError, problem

        raise ValidationError(problem("unknown_null", f"Unknown null model {null!r}; choose from {list(NULLS)}"))


def _infer_result(observed: float, sims: np.ndarray, cal: dict, null: str, permutations: int, seed) -> dict:
    out = {
        "value": observed,
        "value_bias_corrected": cal["estimate"],
        "bias": observed - cal["estimate"],
        "p_value": two_sided_p(observed, sims),
        "ci_low": cal["ci_low"],
        "ci_high": cal["ci_high"],
        "expected": float(np.nanmean(sims)) if np.isfinite(sims).any() else float("nan"),
        "within_noise": cal["within_noise"],
        "interval_method": cal["method"],
        "calibration_family": cal.get("family", "scaled"),  # deconvolved: the large path's aspatial two-group family
        "null": null,
        "permutations": permutations,
        "seed": seed,
    }
    if cal["within_noise"]:
        out["note"] = noise_note(observed, cal)
    return out


def infer(
    evaluate: Callable,
    data: Sequence[np.ndarray],
    *,
    kind: str,
    null: str = "random_allocation",
    permutations: int = 999,
    seed: int | None = None,
    ci_level: float = 0.95,
    block_size: int | None = None,
    progress: Callable | None = None,
    neighbours: tuple | None = None,
    calibration: str = "auto",
) -> dict:
    """p-value, bias-corrected value and interval, and expected value of one index on one dataset.

    ``permutations`` draws are made under ``null`` for the p-value; the calibration adds
    ``min(permutations, 200)`` (at least 20) per simulated λ, or ``FAST_DRAWS`` on its large-city path
    (``calibration``: auto, full or asymptotic; see :func:`calibrate`), where the null's normals also come
    from a quantile table (:func:`table_normals`). ``value`` stays the observed index;
    ``value_bias_corrected`` is the estimate the interval is built around.
    """
    _check_null(null)
    permutations = int(permutations)
    rng = np.random.default_rng(seed)
    observed = float(evaluate(*data))
    fast = fast_path(calibration, len(data[0]))
    k = data[0].shape[1] if kind == "multigroup" else 2
    block = _block_size(len(data[0]), k, block_size)
    draws = max(20, min(permutations, CAL_DRAWS))
    total = permutations + len(GRID) * (min(draws, FAST_DRAWS) if fast else draws) + (0 if fast else 3 * draws)
    if fast and kind == "two_group" and null == "random_allocation" and neighbours is None:
        sampler, t32 = null_sampler(data, fast=True)  # two threads, chunks with their own streams
        sims = threaded.simulate_null(evaluate, sampler, t32, permutations, block, seed, progress, total)
    else:
        nulls, _ = _drawers(data, kind, rng, fast=fast)
        sims = _simulate(evaluate, nulls[null], permutations, block, progress, 0, total)
    cal = calibrate(
        evaluate,
        data,
        kind,
        observed,
        seed=seed,
        draws=draws,
        level=ci_level,
        block=block,
        progress=(lambda done, _: progress(permutations + done, total)) if progress else None,
        neighbours=neighbours,
        path=calibration,
    )
    return _infer_result(observed, sims, cal, null, permutations, seed)


def _percentile_interval(draws: np.ndarray, level: float) -> tuple[float, float]:
    d = draws[np.isfinite(draws)]
    if d.size == 0:
        return float("nan"), float("nan")
    a = (1 - level) / 2
    return float(np.quantile(d, a)), float(np.quantile(d, 1 - a))


def _difference_interval(cal_a: dict, cal_b: dict, ci_level: float) -> tuple[float, float, float]:
    """Interval and p-value of the bias-corrected difference from the two samples' simulated estimators."""
    est_a, est_b = cal_a["estimate"], cal_b["estimate"]
    diff = est_a - est_b
    m = min(len(cal_a["draws"]), len(cal_b["draws"]))
    err = (cal_a["draws"][:m] - est_a) - (cal_b["draws"][:m] - est_b)
    err = err[np.isfinite(err)]
    if not (err.size and np.isfinite(diff)):
        return float("nan"), float("nan"), float("nan")
    q_lo, q_hi = _percentile_interval(err, ci_level)
    plausible = diff - err  # true differences consistent with the data
    tail = min(np.count_nonzero(plausible <= 0), np.count_nonzero(plausible >= 0))
    return diff - q_hi, diff - q_lo, min(1.0, (1 + 2 * tail) / (1 + plausible.size))


def compare_samples(
    evaluate_a: Callable,
    data_a: Sequence[np.ndarray],
    evaluate_b: Callable,
    data_b: Sequence[np.ndarray],
    *,
    kind: str,
    permutations: int = 999,
    seed: int | None = None,
    ci_level: float = 0.95,
    block_size: int | None = None,
    progress: Callable | None = None,
    neighbours_a: tuple | None = None,
    neighbours_b: tuple | None = None,
    calibration: str = "auto",
) -> dict:
    """Is index(a) − index(b) different from 0, once each is corrected for its own noise bias?

    Each sample is calibrated as in :func:`infer` (the bias of a city of small areas is larger than
    that of a city of large ones, so raw differences mislead). ``permutations`` simulated cities per
    sample give the spread of each bias-corrected estimator; their independent differences give the
    interval around ``difference_bias_corrected`` and the two-sided p-value of a zero true
    difference, ``(1 + 2·min(#{d ≤ 0}, #{d ≥ 0})) / (1 + N)`` capped at 1. ``value_a``, ``value_b``
    and ``difference`` stay the observed values. Works for two cities, two years or two groups, and
    for spatial indices (each sample keeps its geometry).
    """
    permutations = int(permutations)
    a, b = float(evaluate_a(*data_a)), float(evaluate_b(*data_b))
    k = data_a[0].shape[1] if kind == "multigroup" else 2
    block = _block_size(max(len(data_a[0]), len(data_b[0])), k, block_size)
    draws = max(20, min(permutations, CAL_DRAWS))
    half = len(GRID) * draws + 3 * permutations

    def calibrated(evaluate, data, observed, neighbours, stream, offset):
        report = (lambda done, steps: progress(offset + done * half // max(steps, 1), 2 * half)) if progress else None
        common = {"seed": seed, "draws": draws, "level": ci_level, "block": block, "outer": permutations}
        return calibrate(
            evaluate,
            data,
            kind,
            observed,
            stream=stream,
            progress=report,
            neighbours=neighbours,
            path=calibration,
            **common,
        )

    cal_a = calibrated(evaluate_a, data_a, a, neighbours_a, 2, 0)
    cal_b = calibrated(evaluate_b, data_b, b, neighbours_b, 3, half)
    lo, hi, p = _difference_interval(cal_a, cal_b, ci_level)
    return _comparison(a, b, cal_a, cal_b, (lo, hi, p), permutations, seed)


def _comparison(a: float, b: float, cal_a: dict, cal_b: dict, interval: tuple, permutations: int, seed) -> dict:
    lo, hi, p = interval
    return {
        "value_a": a,
        "value_b": b,
        "difference": a - b,
        "value_a_bias_corrected": cal_a["estimate"],
        "value_b_bias_corrected": cal_b["estimate"],
        "difference_bias_corrected": cal_a["estimate"] - cal_b["estimate"],
        "p_value": float(p),
        "ci_low": float(lo),
        "ci_high": float(hi),
        "within_noise_a": cal_a["within_noise"],
        "within_noise_b": cal_b["within_noise"],
        "method": "parametric_bootstrap",
        "interval_methods": [cal_a["method"], cal_b["method"]],
        "bias_corrected": True,
        "permutations": permutations,
        "seed": seed,
    }
