"""Bias-corrected value and interval of one index by test inversion along the scaled family (Carpenter 1999)."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
from scipy import stats
from scipy.interpolate import PchipInterpolator

from ...cancel import checkpoint
from . import asymptotic, reuse
from .draws import _sequence, _simulate, _stream
from .family import _Scaled, family, family_name

GRID = np.array([0.0, 0.25, 0.5, 0.7, 0.85, 1.0, 1.15, 1.3, 1.5])  # λ simulated (denser where solutions fall)
FINE = np.linspace(0.0, GRID[-1], 91)  # λ at which the family's own index values are computed and curves solved
CAL_DRAWS = 200  # simulations per λ: the curves are fitted across λ, so their noise averages out
MAX_WIDENING = 1.5  # cap on the nested widening factor, which is itself estimated


def _first_crossing(curve: np.ndarray, target: float) -> float | None:
    """Fractional index into FINE where an increasing ``curve`` first reaches ``target`` (None: never)."""
    above = np.flatnonzero(curve >= target)
    if not len(above):
        return None
    j = above[0]
    if j == 0:
        return 0.0
    return j - 1 + (target - curve[j - 1]) / (curve[j] - curve[j - 1])


def _at(values: np.ndarray, index: float) -> float:
    return float(np.interp(index, np.arange(len(values)), values))


def _basic(boot: np.ndarray, null: np.ndarray, floor: float, observed: float, a: float, why: str, segregation: bool):
    """The bootstrap at the observed compositions, reflected (Elbers' segregation: 2·value − draws)."""
    if len(boot) < 2 or not np.isfinite(observed):
        return {
            "estimate": float("nan"),
            "ci_low": float("nan"),
            "ci_high": float("nan"),
            "within_noise": False,
            "method": "basic_bootstrap",
            "why": why,
            "floor": float("nan"),
            "draws": np.array([]),
        }
    m = float(boot.mean())
    lo, hi = np.quantile(boot, [a, 1 - a])
    noise = bool(segregation and len(null) > 1 and np.quantile(null, a) <= observed <= np.quantile(null, 1 - a))
    return {
        "estimate": 2 * observed - m,
        "ci_low": float(2 * observed - hi),
        "ci_high": float(2 * observed - lo),
        "within_noise": noise,
        "method": "basic_bootstrap",
        "why": why,
        "floor": floor,
        "draws": 2 * observed - boot,
    }


def _simulate_family(
    evaluate: Callable, fam: _Scaled, rng, draws: int, block: int, report, fast: bool = False
) -> tuple[list, np.ndarray]:
    """Finite simulated values at each λ of GRID, and the family's own index values along FINE.

    ``fast``: the large-city path (:mod:`.asymptotic`), common random numbers across λ."""
    if fast:
        sims = [d[np.isfinite(d)] for d in asymptotic.simulate_grid(evaluate, fam, GRID, rng, draws, block, report)]
    else:
        sims = []
        for j, lam in enumerate(GRID):
            d = _simulate(evaluate, fam.drawer(rng, fam.shares(lam)), draws, block, None)
            sims.append(d[np.isfinite(d)])
            if report:
                report((j + 1) * draws)
    truth = _simulate(evaluate, _sequence(FINE, lambda lams: fam.expected(fam.shares(lams))), len(FINE), block, None)
    truth[np.abs(truth) < 1e-12] = 0.0  # rounding at no segregation (D of equal shares is 0, not 8.7e-17)
    return sims, truth


def _unusable(sims: list, truth: np.ndarray, observed: float, draws: int) -> tuple[str, bool] | None:
    """Why test inversion cannot work here (and whether the null band still means something), or None."""
    if not np.isfinite(observed) or not np.isfinite(truth).all() or min(len(d) for d in sims) < 10:
        return "some simulated cities have no value", True
    M = np.array([d.mean() for d in sims])
    S = np.array([d.std(ddof=1) for d in sims])
    sign = 1.0 if truth[-1] >= truth[0] else -1.0
    span = abs(truth[np.searchsorted(FINE, 1.0)] - truth[0])
    if span <= 1e-9 * max(1.0, abs(observed)) or sign * (M[-1] - M[0]) <= 2 * S.max() / np.sqrt(draws):
        return "the index does not change with the strength of segregation", False
    return None


class _Curves:
    """Mean and spread of the simulated index along FINE, oriented so that larger means more segregated.

    ``normal``: the band's quantiles are the normal's (the large-city path), not the pooled simulated ones."""

    def __init__(self, sims: list, truth: np.ndarray, a: float, normal: bool = False):
        M = np.array([d.mean() for d in sims])
        S = np.array([d.std(ddof=1) for d in sims])
        self.sign = sign = 1.0 if truth[-1] >= truth[0] else -1.0
        # Standardized shape pooled over λ.
        z = [] if normal else np.concatenate([sign * (d - d.mean()) / s for d, s in zip(sims, S) if s > 0])
        self.z_lo, self.z_hi = np.quantile(z, [a, 1 - a]) if len(z) else (stats.norm.ppf(a), stats.norm.ppf(1 - a))
        # Shape-preserving interpolation, not one polynomial: where shares reach 0 or 1 the curves bend at λ = 1.
        mf = PchipInterpolator(GRID, sign * M)(FINE)
        sf = np.clip(PchipInterpolator(GRID, S)(FINE), 0.0, None)
        # Past its maximum the cubic only extrapolates; a flat start (D barely moves near λ = 0) is kept flat.
        self.valid = valid = int(np.argmax(mf)) + 1
        self.mf, self.sf, self.tr = np.maximum.accumulate(mf[:valid]), sf[:valid], truth[:valid]

    def rises(self) -> bool:
        return self.valid > np.searchsorted(FINE, 1.15)

    def slopes(self, i: float) -> tuple[float, float]:
        """Slopes per unit λ of the mean curve and of the family's index at fractional index ``i`` into FINE."""
        dfine = FINE[1] - FINE[0]
        k = min(int(i), self.valid - 2)
        return (self.mf[k + 1] - self.mf[k]) / dfine, (self.tr[k + 1] - self.tr[k]) / dfine

    def invert(self, observed: float) -> tuple[float, float, float, bool]:
        """Fractional indices into FINE of the estimate and the interval's ends, and whether within noise."""
        u = self.sign * observed
        i_est, _ = _solve(self.mf, u)
        # lowest segregation whose upper band still reaches the observation, and highest whose lower band does
        i_lo, noise = _solve(np.maximum.accumulate(self.mf + self.z_hi * self.sf), u)
        i_hi, _ = _solve(np.maximum.accumulate(self.mf + self.z_lo * self.sf), u)
        return i_est, i_lo, i_hi, noise

    def truth_at(self, i: float) -> float:
        tr = self.tr
        if i <= len(tr) - 1:
            return _at(tr, i)
        return float(tr[-1] + (i - (len(tr) - 1)) * (tr[-1] - tr[-2]))


def _solve(curve: np.ndarray, u: float) -> tuple[float, bool]:
    """(index into FINE, at the no-segregation end) where ``curve`` reaches the oriented observed value ``u``."""
    if u <= curve[0]:
        return 0.0, True
    i = _first_crossing(curve, u)
    if i is None:  # beyond the simulated range: extend the last stretch linearly
        slope = (curve[-1] - curve[-2]) or 1e-12
        i = len(curve) - 1 + (u - curve[-1]) / slope
    return i, False


def _nested(evaluate: Callable, fam: _Scaled, rng, lam: float, sign: float, dm: float, outer: int, block: int, report):
    """Simulated cities at ``lam`` (values ``v_star``), each re-estimated (``re``) by one Newton step of slope ``dm``.

    ``report`` gets the number of cities done so far.
    """
    at_estimate = fam.drawer(rng, fam.shares(lam))
    v_star, re = np.empty(outer), np.empty(outer)
    done = 0
    while done < outer:
        checkpoint()
        b = min(block, outer - done)
        xs = at_estimate(b)
        v_star[done : done + b] = evaluate(*xs)
        base, dev = fam._split(xs[0], fam.t)
        inner = evaluate(*fam.draw(rng, fam.shares(np.full(b, lam), base, dev)))
        lam_star = np.clip(lam + sign * (v_star[done : done + b] - inner) / max(dm, 1e-12), 0.0, FINE[-1])
        re[done : done + b] = evaluate(*fam.expected(fam.shares(lam_star, base, dev)))
        done += b
        if report:
            report(done)
    keep = np.isfinite(re) & np.isfinite(v_star)
    return v_star[keep], re[keep]


def _through_slope(c: _Curves, i_hi: float, floor: float, v_star: np.ndarray) -> tuple[float, np.ndarray, float]:
    """At the no-segregation end one Newton step is unstable: map the spread of the simulated values
    through the mean slope of the family up to the upper bound instead, and do not widen."""
    mf = c.mf
    rise = _at(mf, i_hi) - mf[0] if i_hi <= len(mf) - 1 else mf[-1] - mf[0]
    ratio = (c.truth_at(i_hi) - floor) / (c.sign * rise) if rise > 0 else 1.0
    spread = (v_star - v_star.mean()) * ratio if len(v_star) else np.zeros(1)
    return 1.0, spread, float(spread.var())


def _one_step(c: _Curves, lam: float, dm: float, dtr: float, re: np.ndarray, sd_ti: float):
    """Widening factor, centred estimates and variance of the nested one-step re-estimates."""
    s_est = float(np.interp(lam, FINE[: c.valid], c.sf))
    raw = float(re.var())
    real = max(raw - (dtr * s_est / dm) ** 2, 0.0)  # minus the noise of the one inner draw
    widen = float(np.clip(np.sqrt(real) / sd_ti, 1.0, MAX_WIDENING)) if sd_ti > 0 else 1.0
    spread = (re - re.mean()) * (np.sqrt(real / raw) if raw > 0 else 0.0)
    return widen, spread, real


def calibrate(
    evaluate: Callable,
    data: Sequence[np.ndarray],
    kind: str,
    observed: float,
    *,
    seed: int | None = None,
    draws: int = CAL_DRAWS,
    level: float = 0.95,
    block: int = 64,
    outer: int | None = None,
    stream: int = 1,
    progress: Callable | None = None,
    neighbours: tuple | None = None,
    path: str = "auto",
) -> dict:
    """Bias-corrected value and interval of one index by test inversion along the scaled family.

    ``neighbours`` (pairs of area positions, both directions) is for spatial indices: the family
    then scales local empirical-Bayes shares instead of raw ones.

    The simulations along λ come from their own stream of ``seed``, so a dataset's bias-corrected value
    is the same in :func:`infer` and in a comparison; the nested step uses stream ``stream``. ``outer``
    is its number of simulated cities (default ``draws``); their re-estimated values are returned as
    ``draws`` (what the bias-corrected estimator gives on cities like this one), which comparisons combine.
    ``path``: ``auto`` takes the large-city path (:mod:`.asymptotic`) from ``FAST_MIN_AREAS`` areas on,
    ``full`` and ``asymptotic`` force one; ``method`` in the result says which ran.
    """
    fast = asymptotic.fast_path(path, len(data[0]))
    draws = min(draws, asymptotic.FAST_DRAWS) if fast else draws
    fam = None if fast else _Scaled(data, kind, neighbours)  # the large path's family is fitted only if not reused
    outer = int(outer or draws)
    a = (1 - level) / 2
    steps = len(GRID) * draws + (0 if fast else 3 * outer)
    report = (lambda done: progress(done, steps)) if progress else None
    key = None if seed is None else ("family", fast, kind, int(seed), draws, block, _data_key(data, neighbours))

    def simulate():
        f = fam or family(data, kind, neighbours, fast)
        out = _simulate_family(evaluate, f, _stream(seed, 0), draws, block, report, fast)
        alt = None
        if family_name(f) == "deconvolved":  # the scaled family too: the interval spans both (see _union)
            alt = _simulate_family(evaluate, _Scaled(data, kind), _stream(seed, 4), draws, block, None, fast)
        return (*out, family_name(f), alt)

    sims, truth, name, alt = reuse.cached(key, evaluate, simulate)
    # λ = 1: the observed shares' bootstrap (deconvolved shares' on the large path, for aspatial two-group indices)
    boot, floor = sims[int(np.flatnonzero(GRID == 1.0)[0])], float(truth[0])
    why = _unusable(sims, truth, observed, draws)
    if why:
        return _basic(boot, sims[0], floor, observed, a, *why)
    c = _Curves(sims, truth, a, normal=fast)
    if not c.rises():
        why = "the simulated index does not rise with the strength of segregation"
        return _basic(boot, sims[0], floor, observed, a, why, True)
    i_est, i_lo, i_hi, noise = c.invert(observed)
    est, lo, hi = c.truth_at(i_est), c.truth_at(i_lo), c.truth_at(i_hi)
    if fast:
        if alt is not None:
            lo, hi, noise, name = _union(alt, observed, a, draws, (lo, hi, noise))
        spread = asymptotic.normal_spread(seed, stream, outer)
        return {**asymptotic.result(est, lo, hi, noise, floor, c.sign, level, spread), "family": name}
    nested = (evaluate, fam, seed, stream, outer, block, key)
    report_nested = (lambda done: report(len(GRID) * draws + 3 * done)) if report else None
    return _widened(c, nested, i_est, i_hi, est, lo, hi, noise, floor, a, report_nested)


def _union(alt: tuple, observed: float, a: float, draws: int, main: tuple) -> tuple:
    """The interval spanning the deconvolved family's and the scaled family's (the estimate stays the deconvolved
    one's). Which is right depends on the shape of the true shares, which noisy counts do not pin down (Cai & Low
    2011): with Beta-shaped shares the scaled family leaves ~1.4 % of the noise bias, with two modes the
    deconvolved one leaves ~3 % (benchmarks/results/calibration_large.md). Spanning both keeps the stated coverage
    for either, at the price of a wider interval where they disagree."""
    lo, hi, noise = main
    sims, truth = alt
    if _unusable(sims, truth, observed, draws):
        return lo, hi, noise, "deconvolved"
    c = _Curves(sims, truth, a, normal=True)
    if not c.rises():
        return lo, hi, noise, "deconvolved"
    _, i_lo, i_hi, noise_alt = c.invert(observed)
    ends = (lo, hi, c.truth_at(i_lo), c.truth_at(i_hi))
    return min(ends), max(ends), noise or noise_alt, "deconvolved+scaled"


def _data_key(data: Sequence[np.ndarray], neighbours) -> str:
    return reuse.digest([np.asarray(a, dtype=float) for a in data] + list(neighbours or ()))


def _widened(c: _Curves, nested: tuple, i_est, i_hi, est, lo, hi, noise, floor, a, report) -> dict:
    """Nested one-step re-estimation: simulated cities at the estimate, each re-solved by one Newton step
    from its own observed compositions; the spread of those estimates is the estimator's, correction included."""
    evaluate, fam, seed, stream, outer, block, key = nested
    lam = float(np.interp(i_est, np.arange(len(FINE)), FINE))
    dm, dtr = c.slopes(i_est)
    v_star, re = reuse.cached(
        None if key is None else ("nested", key, stream, outer, lam, c.sign, dm),
        evaluate,
        lambda: _nested(evaluate, fam, _stream(seed, stream), lam, c.sign, dm, outer, block, report),
    )
    sd_ti = (max(lo, hi) - min(lo, hi)) / (2 * stats.norm.ppf(1 - a))
    if noise or dm <= 0 or len(re) < 2:
        widen, spread, real = _through_slope(c, i_hi, floor, v_star)
    else:
        widen, spread, real = _one_step(c, lam, dm, dtr, re, sd_ti)
    lo, hi = est - widen * (est - lo), est + widen * (hi - est)
    if c.sign * (lo - floor) < 0:  # never below no segregation
        lo = floor
    return _inversion_result(est, lo, hi, noise, floor, widen, sd_ti, real, spread)


def _inversion_result(est, lo, hi, noise, floor, widen, sd_ti, real, spread) -> dict:
    return {
        "estimate": est,
        "ci_low": min(lo, hi),
        "ci_high": max(lo, hi),
        "within_noise": noise,
        "method": "test_inversion",
        "floor": floor,
        "widening": widen,
        "sd_inversion": sd_ti,
        "sd_nested": float(np.sqrt(real)),
        "draws": est + spread,
    }
