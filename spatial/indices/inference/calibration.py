"""Bias-corrected value and interval of one index by test inversion along the scaled family (Carpenter 1999)."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
from scipy import stats
from scipy.interpolate import PchipInterpolator

from ...cancel import checkpoint
from .draws import _sequence, _simulate, _stream
from .family import _Scaled

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
) -> dict:
    """Bias-corrected value and interval of one index by test inversion along the scaled family.

    ``neighbours`` (pairs of area positions, both directions) is for spatial indices: the family
    then scales local empirical-Bayes shares instead of raw ones.

    The simulations along λ come from their own stream of ``seed``, so a dataset's bias-corrected value
    is the same in :func:`infer` and in a comparison; the nested step uses stream ``stream``. ``outer``
    is its number of simulated cities (default ``draws``); their re-estimated values are returned as
    ``draws`` (what the bias-corrected estimator gives on cities like this one), which comparisons combine.
    """
    fam = _Scaled(data, kind, neighbours)
    rng = _stream(seed, 0)
    outer = int(outer or draws)
    a = (1 - level) / 2
    steps = len(GRID) * draws + 3 * outer
    report = (lambda done: progress(done, steps)) if progress else None
    sims = []
    for j, lam in enumerate(GRID):
        p = fam.shares(lam)
        d = _simulate(evaluate, fam.drawer(rng, p), draws, block, None)
        sims.append(d[np.isfinite(d)])
        if report:
            report((j + 1) * draws)
    truth = _simulate(evaluate, _sequence(FINE, lambda lams: fam.expected(fam.shares(lams))), len(FINE), block, None)
    truth[np.abs(truth) < 1e-12] = 0.0  # rounding at no segregation (D of equal shares is 0, not 8.7e-17)
    boot = sims[int(np.flatnonzero(GRID == 1.0)[0])]

    def basic(why: str, segregation: bool = True) -> dict:
        # The bootstrap at the observed compositions, reflected (Elbers' segregation: 2·value − draws).
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
        null = sims[0]
        noise = bool(segregation and len(null) > 1 and np.quantile(null, a) <= observed <= np.quantile(null, 1 - a))
        return {
            "estimate": 2 * observed - m,
            "ci_low": float(2 * observed - hi),
            "ci_high": float(2 * observed - lo),
            "within_noise": noise,
            "method": "basic_bootstrap",
            "why": why,
            "floor": float(truth[0]),
            "draws": 2 * observed - boot,
        }

    if not np.isfinite(observed) or not np.isfinite(truth).all() or min(len(d) for d in sims) < 10:
        return basic("some simulated cities have no value")
    M = np.array([d.mean() for d in sims])
    S = np.array([d.std(ddof=1) for d in sims])
    sign = 1.0 if truth[-1] >= truth[0] else -1.0
    span = abs(truth[np.searchsorted(FINE, 1.0)] - truth[0])
    if span <= 1e-9 * max(1.0, abs(observed)) or sign * (M[-1] - M[0]) <= 2 * S.max() / np.sqrt(draws):
        return basic("the index does not change with the strength of segregation", segregation=False)
    # Oriented so that larger means more segregated; standardized shape pooled over λ.
    z = np.concatenate([sign * (d - d.mean()) / s for d, s in zip(sims, S) if s > 0])
    z_lo, z_hi = np.quantile(z, [a, 1 - a]) if len(z) else (stats.norm.ppf(a), stats.norm.ppf(1 - a))
    # Shape-preserving interpolation, not one polynomial: where shares reach 0 or 1 the curves bend at λ = 1.
    mf = PchipInterpolator(GRID, sign * M)(FINE)
    sf = np.clip(PchipInterpolator(GRID, S)(FINE), 0.0, None)
    # Past its maximum the cubic only extrapolates; a flat start (D barely moves near λ = 0) is kept flat.
    valid = int(np.argmax(mf)) + 1
    if valid <= np.searchsorted(FINE, 1.15):
        return basic("the simulated index does not rise with the strength of segregation")
    mf, sf, tr = np.maximum.accumulate(mf[:valid]), sf[:valid], truth[:valid]
    u = sign * observed

    def solve(curve):
        """(index into FINE, at the no-segregation end) where ``curve`` reaches the observed value."""
        if u <= curve[0]:
            return 0.0, True
        i = _first_crossing(curve, u)
        if i is None:  # beyond the simulated range: extend the last stretch linearly
            slope = (curve[-1] - curve[-2]) or 1e-12
            i = len(curve) - 1 + (u - curve[-1]) / slope
        return i, False

    def truth_at(i):
        if i <= len(tr) - 1:
            return _at(tr, i)
        return float(tr[-1] + (i - (len(tr) - 1)) * (tr[-1] - tr[-2]))

    i_est, _ = solve(mf)
    # lowest segregation whose upper band still reaches the observation, and highest whose lower band does
    i_lo, noise = solve(np.maximum.accumulate(mf + z_hi * sf))
    i_hi, _ = solve(np.maximum.accumulate(mf + z_lo * sf))
    est, lo, hi = truth_at(i_est), truth_at(i_lo), truth_at(i_hi)
    floor = float(truth[0])
    # Nested one-step re-estimation: simulated cities at the estimate, each re-solved by one Newton step
    # from its own observed compositions; the spread of those estimates is the estimator's, correction included.
    lam = float(np.interp(i_est, np.arange(len(FINE)), FINE))
    dfine = FINE[1] - FINE[0]
    k = min(int(i_est), valid - 2)
    dm = (mf[k + 1] - mf[k]) / dfine
    dtr = (tr[k + 1] - tr[k]) / dfine
    rng = _stream(seed, stream)
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
            report(len(GRID) * draws + 3 * done)
    keep = np.isfinite(re) & np.isfinite(v_star)
    v_star, re = v_star[keep], re[keep]
    z = stats.norm.ppf(1 - a)
    sd_ti = (max(lo, hi) - min(lo, hi)) / (2 * z)
    if noise or dm <= 0 or len(re) < 2:
        # At the no-segregation end one Newton step is unstable: map the spread of the simulated values
        # through the mean slope of the family up to the upper bound instead, and do not widen.
        rise = _at(mf, i_hi) - mf[0] if i_hi <= len(mf) - 1 else mf[-1] - mf[0]
        ratio = (truth_at(i_hi) - floor) / (sign * rise) if rise > 0 else 1.0
        widen, spread = 1.0, (v_star - v_star.mean()) * ratio if len(v_star) else np.zeros(1)
        real = float(spread.var())
    else:
        s_est = float(np.interp(lam, FINE[:valid], sf))
        raw = float(re.var())
        real = max(raw - (dtr * s_est / dm) ** 2, 0.0)  # minus the noise of the one inner draw
        widen = float(np.clip(np.sqrt(real) / sd_ti, 1.0, MAX_WIDENING)) if sd_ti > 0 else 1.0
        spread = (re - re.mean()) * (np.sqrt(real / raw) if raw > 0 else 0.0)
    lo, hi = est - widen * (est - lo), est + widen * (hi - est)
    if sign * (lo - floor) < 0:  # never below no segregation
        lo = floor
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
