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
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
from scipy import stats
from scipy.interpolate import PchipInterpolator

from ..cancel import checkpoint

NULLS = ("random_allocation", "permutation")
_BLOCK_BYTES = 64 * 2**20  # upper bound on one simulated block

GRID = np.array([0.0, 0.25, 0.5, 0.7, 0.85, 1.0, 1.15, 1.3, 1.5])  # λ simulated (denser where solutions fall)
FINE = np.linspace(0.0, GRID[-1], 91)  # λ at which the family's own index values are computed and curves solved
CAL_DRAWS = 200  # simulations per λ: the curves are fitted across λ, so their noise averages out
MAX_WIDENING = 1.5  # cap on the nested widening factor, which is itself estimated


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
        out[done : done + b] = evaluate(*draw(b))
        done += b
        if progress:
            progress(done0 + done, total or count)
    return out


NORMAL_APPROX_MIN_VAR = (
    9.0  # t·p·(1−p) from which a binomial count is drawn from its normal approximation (the textbook rule)
)


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


def _binomial_rows(rng: np.random.Generator, t: np.ndarray, p: np.ndarray) -> np.ndarray:
    """One draw of Binomial(t_i, p_bi) for every row b of ``p`` (shape (b, n)), as :func:`binomial_counts`."""
    t = np.broadcast_to(t, p.shape)
    var = t * p * (1 - p)
    out = rng.standard_normal(p.shape, dtype=np.float32)
    out *= np.sqrt(np.clip(var - 1 / 12, 0, None)).astype(np.float32)
    out += (t * p).astype(np.float32)
    np.rint(out, out=out)
    np.clip(out, np.float32(0), t.astype(np.float32), out=out)
    exact = var < NORMAL_APPROX_MIN_VAR
    if exact.any():
        out[exact] = rng.binomial(np.rint(t[exact]).astype(np.int64), np.clip(p[exact], 0, 1))
    return out


def _drawers(data: Sequence[np.ndarray], kind: str, rng: np.random.Generator):
    """Return (null draws by name, plain bootstrap draw at the observed compositions) for the observed data."""
    if kind == "two_group":
        x, t = (np.asarray(a, dtype=float) for a in data)
        ti = np.rint(t).astype(np.int64)
        t32 = t.astype(np.float32)
        P = x.sum() / t.sum()

        def random_allocation(b):
            return binomial_counts(rng, ti.astype(float), P, b), np.broadcast_to(t32, (b, len(t)))

        def permutation(b):
            idx = rng.permuted(np.broadcast_to(np.arange(len(t)), (b, len(t))), axis=1)
            return x[idx], t[idx]

        return {"random_allocation": random_allocation, "permutation": permutation}, _bootstrap(data, kind, rng)

    (X,) = data
    X = np.asarray(X, dtype=float)
    ti = np.rint(X).astype(np.int64).sum(axis=1)
    Pk = X.sum(axis=0) / X.sum()

    def random_allocation(b):
        return (rng.multinomial(np.broadcast_to(ti, (b, len(ti))), Pk).astype(float),)

    def permutation(b):
        idx = rng.permuted(np.broadcast_to(np.arange(len(ti)), (b, len(ti))), axis=1)
        return (X[idx],)

    return {"random_allocation": random_allocation, "permutation": permutation}, _bootstrap(data, kind, rng)


def _bootstrap(data, kind, rng):
    fam = _Scaled(data, kind)
    p = fam.shares(1.0)
    return lambda b: fam.draw(rng, p, b)


def _neighbourhoods(n: int, neighbours: tuple[np.ndarray, np.ndarray]):
    """Sparse 0/1 matrix of each area's neighbourhood: itself and its neighbours."""
    import scipy.sparse as sp

    rows, cols = (np.asarray(a, dtype=np.int64) for a in neighbours)
    A = sp.csr_matrix((np.ones(len(rows) + n), (np.r_[rows, np.arange(n)], np.r_[cols, np.arange(n)])), shape=(n, n))
    A.data[:] = 1.0
    return A


def _local_eb(x: np.ndarray, t: np.ndarray, A) -> np.ndarray:
    """Local empirical-Bayes shares (Marshall 1991) of a batch of counts ``x`` (b, n).

    Each area's share is shrunk towards its neighbourhood's by the part of the neighbourhood's spread
    that binomial noise explains: not at all where neighbours differ for real, fully where they differ
    by noise only. Spatial indices compare neighbours, and the noise of small areas makes a smooth
    city look rough; simulating from raw shares would keep that roughness and mis-measure the bias.
    """
    tn = A @ t
    X = (A @ x.T).T
    with np.errstate(divide="ignore", invalid="ignore"):
        m = np.where(tn > 0, X / tn, 0.0)
        p = np.where(t > 0, x / np.where(t > 0, t, 1), m)
        spread = np.clip(((A @ (t * p**2).T).T - 2 * m * X + m**2 * tn) / tn, 0.0, None)
        noise = m * (1 - m)
        size = np.asarray(A.sum(axis=1)).ravel()
        signal = np.clip(spread - noise / (tn / size), 0.0, None)
        w = np.where((t > 0) & (signal + noise / np.where(t > 0, t, 1) > 0), signal / (signal + noise / t), 1.0)
    return np.where(tn > 0, m + w * (p - m), p)


class _Scaled:
    """Compositions with every area's deviation from the city-wide shares scaled by λ.

    Two groups: share ``P + λ·(p̂_i − P)`` clipped to [0, 1]; several: the same per group, clipped
    at 0 and renormalised (only needed for λ > 1, below it the shares are a mixture of p̂_i and P).
    Area populations stay as observed. ``rows`` versions take a batch of simulated cities, each
    with its own P and p̂ (for the nested re-estimation). With ``neighbours`` (spatial indices),
    p̂ is the local empirical-Bayes share (:func:`_local_eb`).
    """

    def __init__(self, data: Sequence[np.ndarray], kind: str, neighbours: tuple | None = None):
        self.kind = kind
        self.A = None
        if neighbours is not None and kind == "two_group":
            self.A = _neighbourhoods(len(data[0]), neighbours)
        if kind == "two_group":
            x, t = (np.asarray(a, dtype=float) for a in data)
            self.t = np.rint(t)
            self.base, self.dev = self._split(x[None], self.t)
        else:
            X = np.rint(np.asarray(data[0], dtype=float))
            self.t = X.sum(axis=1)
            self.base, self.dev = self._split(X[None], self.t)
        self.base, self.dev = self.base[0], self.dev[0]

    def _split(self, counts: np.ndarray, t: np.ndarray):
        """City-wide shares and each area's deviation from them, for a batch of counts."""
        T = t.sum()
        if self.kind == "two_group":
            P = counts.sum(axis=-1) / T
            if self.A is not None:
                return P, _local_eb(np.asarray(counts, dtype=float), t, self.A) - P[:, None]
            with np.errstate(divide="ignore", invalid="ignore"):
                p = np.where(t > 0, counts / np.where(t > 0, t, 1), P[:, None])
            return P, p - P[:, None]
        P = counts.sum(axis=-2) / T
        with np.errstate(divide="ignore", invalid="ignore"):
            p = np.where(t[:, None] > 0, counts / np.where(t > 0, t, 1)[:, None], P[:, None, :])
        return P, p - P[:, None, :]

    def shares(self, lam, base=None, dev=None) -> np.ndarray:
        """Shares at ``lam`` (a number, or one per row of a batch ``base``/``dev``)."""
        base = self.base if base is None else base
        dev = self.dev if dev is None else dev
        lam = np.asarray(lam, dtype=float)
        if self.kind == "two_group":
            return np.clip(np.expand_dims(base, -1) + lam[..., None] * dev, 0.0, 1.0)
        p = np.clip(np.expand_dims(base, -2) + lam[..., None, None] * dev, 0.0, None)
        return p / p.sum(axis=-1, keepdims=True)

    def expected(self, p: np.ndarray) -> tuple:
        """The counts an area population would hold at shares ``p`` (the member's own index value)."""
        if self.kind == "two_group":
            return self.t * p, np.broadcast_to(self.t, p.shape)
        return (self.t[:, None] * p,)

    def draw(self, rng: np.random.Generator, p: np.ndarray, b: int | None = None) -> tuple:
        """Counts drawn at shares ``p``: ``b`` cities at one set of shares, or one per row of ``p``."""
        if self.kind == "two_group":
            x = binomial_counts(rng, self.t, p, b) if b is not None else _binomial_rows(rng, self.t, p)
            return x, np.broadcast_to(self.t.astype(np.float32), x.shape)
        rows = (b, *p.shape) if b is not None else p.shape
        ti = np.broadcast_to(self.t.astype(np.int64), rows[:-1])
        return (rng.multinomial(ti, np.broadcast_to(p, rows)).astype(float),)


def _sequence(items: np.ndarray, make: Callable) -> Callable:
    """A draw function for :func:`_simulate` that hands out ``make(items[i:i + b])`` in turn."""
    state = {"at": 0}

    def draw(b):
        i = state["at"]
        state["at"] = i + b
        return make(items[i : i + b])

    return draw


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


def _stream(seed: int | None, which: int) -> np.random.Generator:
    """Independent generators derived from one seed (fresh entropy without one)."""
    return np.random.default_rng(None if seed is None else [int(seed), 17, which])


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
        d = _simulate(evaluate, lambda b, p=p: fam.draw(rng, p, b), draws, block, None)
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
    p_est = fam.shares(lam)
    rng = _stream(seed, stream)
    v_star, re = np.empty(outer), np.empty(outer)
    done = 0
    while done < outer:
        checkpoint()
        b = min(block, outer - done)
        xs = fam.draw(rng, p_est, b)
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
) -> dict:
    """p-value, bias-corrected value and interval, and expected value of one index on one dataset.

    ``permutations`` draws are made under ``null`` for the p-value; the calibration adds
    ``min(permutations, 200)`` (at least 20) per simulated λ. ``value`` stays the observed index;
    ``value_bias_corrected`` is the estimate the interval is built around.
    """
    if null not in NULLS:
        from ..errors import ValidationError, problem

        raise ValidationError(problem("unknown_null", f"Unknown null model {null!r}; choose from {list(NULLS)}"))
    permutations = int(permutations)
    rng = np.random.default_rng(seed)
    observed = float(evaluate(*data))
    nulls, _ = _drawers(data, kind, rng)
    n = len(data[0])
    k = data[0].shape[1] if kind == "multigroup" else 2
    block = _block_size(n, k, block_size)
    draws = max(20, min(permutations, CAL_DRAWS))
    steps = len(GRID) * draws + 3 * draws
    total = permutations + steps
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
    )
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
        "null": null,
        "permutations": permutations,
        "seed": seed,
    }
    if cal["within_noise"]:
        out["note"] = noise_note(observed, cal)
    return out


def _percentile_interval(draws: np.ndarray, level: float) -> tuple[float, float]:
    d = draws[np.isfinite(draws)]
    if d.size == 0:
        return float("nan"), float("nan")
    a = (1 - level) / 2
    return float(np.quantile(d, a)), float(np.quantile(d, 1 - a))


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

    def part(offset):
        return (lambda done, _: progress(offset + done, 2 * half)) if progress else None

    cal_a = calibrate(
        evaluate_a,
        data_a,
        kind,
        a,
        seed=seed,
        draws=draws,
        level=ci_level,
        block=block,
        outer=permutations,
        stream=2,
        progress=part(0),
        neighbours=neighbours_a,
    )
    cal_b = calibrate(
        evaluate_b,
        data_b,
        kind,
        b,
        seed=seed,
        draws=draws,
        level=ci_level,
        block=block,
        outer=permutations,
        stream=3,
        progress=part(half),
        neighbours=neighbours_b,
    )
    est_a, est_b = cal_a["estimate"], cal_b["estimate"]
    diff = est_a - est_b
    m = min(len(cal_a["draws"]), len(cal_b["draws"]))
    err = (cal_a["draws"][:m] - est_a) - (cal_b["draws"][:m] - est_b)
    err = err[np.isfinite(err)]
    if err.size and np.isfinite(diff):
        q_lo, q_hi = _percentile_interval(err, ci_level)
        lo, hi = diff - q_hi, diff - q_lo
        plausible = diff - err  # true differences consistent with the data
        tail = min(np.count_nonzero(plausible <= 0), np.count_nonzero(plausible >= 0))
        p = min(1.0, (1 + 2 * tail) / (1 + plausible.size))
    else:
        lo = hi = p = float("nan")
    return {
        "value_a": a,
        "value_b": b,
        "difference": a - b,
        "value_a_bias_corrected": est_a,
        "value_b_bias_corrected": est_b,
        "difference_bias_corrected": diff,
        "p_value": float(p),
        "ci_low": float(lo),
        "ci_high": float(hi),
        "within_noise_a": cal_a["within_noise"],
        "within_noise_b": cal_b["within_noise"],
        "method": "parametric_bootstrap",
        "bias_corrected": True,
        "permutations": permutations,
        "seed": seed,
    }
