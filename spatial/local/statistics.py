"""The local statistics, one function each, registered in the order they are offered.

Each receives a :class:`~spatial.local.prologue.LocalContext` (validated parameters, the share, and for
statistics with neighbours the weights among the populated areas and the permutations to run) and returns a
:class:`~spatial.results.LocalResult` whose labels are corrected for multiple testing.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
from scipy import stats

from ..errors import ValidationError, problem
from ..multiple_testing import adjust
from ..results import LocalResult
from .permutation import conditional_permutation, global_moran, off_diagonal
from .prologue import NO_POPULATION, LocalContext, label_counts, labels_for, standardise
from .registry import ALIASES, register

QUADRANTS = np.array(["high_high", "low_high", "low_low", "high_low"])
GLOBAL_PERMUTATIONS = 999  # global Moran's I permutation test, on request (p to 0.002; each permutes all n areas)


def global_permutations(permutations: int, cap: int) -> int:
    """The global test's count: the local one's (999 when it is 0), at most 999 and at most ``cap``."""
    return min(permutations or GLOBAL_PERMUTATIONS, GLOBAL_PERMUTATIONS, cap)


def check_permutations(
    statistic: str, permutations: int | None, global_test: str, cap: int, limit: str = "max_permutations"
) -> None:
    """Refuse, before any weights are built, a request that would run more permutations than ``cap``: a given
    count above it, or LISA's global permutation test at its default 999 (``limit`` names the setting)."""
    if permutations is not None and permutations > cap:
        raise ValidationError(
            problem("bad_parameter", f"permutations={permutations:,} is above the limit of {cap:,} ({limit})")
        )
    if ALIASES.get(statistic, statistic) != "lisa" or global_test != "permutation" or permutations is None:
        return  # chosen permutations stay within the cap (and the global test within them)
    wanted = global_permutations(permutations, GLOBAL_PERMUTATIONS)
    if wanted > cap:
        raise ValidationError(
            problem(
                "bad_parameter",
                f"global_test=permutation runs {wanted:,} permutations of global Moran's I, above the limit of "
                f"{cap:,} ({limit}): give permutations between 1 and {cap:,} (the global test then runs as many), "
                "leave permutations unset, or use global_test=randomisation (analytic moments)",
            )
        )


@register(
    "lisa",
    aliases=("moran", "local_moran"),
    reference='Anselin (1995), "Local indicators of spatial association — LISA", Geographical Analysis 27(2)',
)
def lisa(c: LocalContext) -> LocalResult:
    """Local Moran's I_i = (n−1) z_i Σ_j w_ij z_j / Σ z² of the standardised share on row-standardised weights,
    labelled with GeoDa's four quadrants; the summary adds global Moran's I with its randomisation test
    (``global_test='permutation'``: a permutation test, drawn after the local ones)."""
    W = c.row_standardised()
    z = standardise(c.ys)
    res = _local_moran(c, W, z, z)
    if c.flat:
        res.summary["global_moran"] = {"moran_i": None, "p_value": None, "expected": -1 / (c.n - 1)}
    else:  # analytic randomisation moments; a permutation test (up to 999: one test, p to 0.002) when asked
        perms = global_permutations(c.permutations, c.max_permutations) if c.global_test == "permutation" else 0
        res.summary["global_moran"] = global_moran(z, W, perms, c.rng)
    return c.finish(res)


@register(
    "gi_star",
    aliases=("getis_ord",),
    reference="Ord & Getis (1995), Geographical Analysis 27(4), eq. 8: binary weights with the area itself",
)
def gi_star(c: LocalContext) -> LocalResult:
    """Getis-Ord Gi* as a z-score, labelled hot_spot / cold_spot. Tested by conditional permutation of the
    neighbours (the area's own term is fixed), or by the normal approximation with ``permutations=0``."""
    n, ys = c.n, c.ys
    off = off_diagonal(c.W, binary=True)  # B = off + I: binary weights with the area itself
    xbar, s = ys.mean(), ys.std()
    wi = np.diff(off.indptr) + 1.0  # Σ_j b_ij, and Σ_j b_ij² as well (binary)
    lag = off @ ys
    with np.errstate(divide="ignore", invalid="ignore"):
        gz = (lag + ys - xbar * wi) / (s * np.sqrt((n * wi - wi**2) / (n - 1)))
    gz = np.zeros(n) if c.flat else np.where(np.isfinite(gz), gz, 0.0)
    if c.flat:
        pv = np.full(n, np.nan)
    elif c.permutations:
        # The self term is fixed; permute the neighbours' values (the part of the sum that can vary).
        pv, _ = conditional_permutation(ys, off, lag, np.ones(n), c.permutations, c.rng)
    else:
        pv = 2 * stats.norm.sf(np.abs(gz))
        pv[c.islands] = np.nan  # no test, so not in the family
    q, sig = adjust(pv, c.alpha, c.correction)
    labels = c.full(labels_for(sig, np.where(gz > 0, "hot_spot", "cold_spot"), c.islands), NO_POPULATION)
    return c.finish(
        c.result(
            values=c.full(gz),
            labels=labels,
            z=c.full(gz),
            p_value=c.full(pv),
            q_value=c.full(q),
            summary=label_counts(labels),
        )
    )


@register(
    "lq",
    neighbours=False,
    aliases=("location_quotient",),
    reference="Isard (1960), Methods of Regional Analysis; exact binomial test of x_i ~ Bin(t_i, P)",
)
def location_quotient(c: LocalContext) -> LocalResult:
    """LQ_i = share_i ÷ city-wide share, with a two-sided exact binomial p-value ``min(1, 2 · min tail)``."""
    x, t, y = c.x, c.t, c.y
    P = x.sum() / t.sum()
    lq = np.divide(y, P, out=np.zeros_like(y), where=P > 0)
    xi, ti = np.rint(x), np.rint(t)
    upper = stats.binom.sf(xi - 1, ti, P)
    lower = stats.binom.cdf(xi, ti, P)
    pv = np.where(ti > 0, np.minimum(1.0, 2 * np.minimum(upper, lower)), np.nan)
    q, sig = adjust(pv, c.alpha, c.correction)
    names = np.where(lq > 1, "over_represented", "under_represented")
    labels = labels_for(sig, names, np.zeros(len(y), bool))
    labels[np.isnan(pv)] = NO_POPULATION
    return c.finish(
        c.result(
            values=lq,
            labels=labels,
            p_value=pv,
            q_value=q,
            permutations=0,  # an exact test
            summary={"city_share": float(P), **label_counts(labels)},
        )
    )


@register(
    "entropy",
    neighbours=False,
    reference="Shannon (1948); the area's entropy E_i of Theil's H (Theil 1972; Reardon & Firebaugh 2002)",
)
def entropy(c: LocalContext) -> LocalResult:
    """Local diversity −Σ_k p_ik ln p_ik ÷ ln K across ``groups`` (all by default) plus, where they do not add up
    to the total, the rest as one more group; not tested."""
    cols = c.groups or list(c.dataset.groups)
    X = c.dataset.matrix(cols)
    rest = c.t - X.sum(axis=1)
    if (rest > 1e-9).any():
        X = np.column_stack([X, np.clip(rest, 0, None)])
    ti = X.sum(axis=1, keepdims=True)
    pik = np.divide(X, ti, out=np.zeros_like(X), where=ti > 0)
    with np.errstate(divide="ignore", invalid="ignore"):
        h = -np.where(pik > 0, pik * np.log(pik), 0).sum(axis=1) / np.log(X.shape[1])
    return c.result(
        values=h,
        labels=np.full(len(h), "not_tested", dtype=object),
        summary={"groups": cols, "normalised_by": f"ln {X.shape[1]}"},
    )


@register(
    "bivariate_lisa",
    bivariate=True,
    aliases=("bivariate_moran",),
    reference='Anselin, Syabri & Smirnov (2002), "Visualizing multivariate spatial correlation with '
    'dynamically linked windows"',
)
def bivariate_lisa(c: LocalContext) -> LocalResult:
    """I_i = (n−1) x_i Σ_j w_ij y_j / Σ x²: the standardised share against the lag of the standardised ``other``
    column, permuting ``other``; labelled with the four quadrants."""
    zx = standardise(c.ys)
    zy = standardise(c.other[c.keep])
    return c.finish(_local_moran(c, c.row_standardised(), zx, zy))


def _local_moran(c: LocalContext, W: sp.csr_matrix, zx: np.ndarray, zy: np.ndarray) -> LocalResult:
    """(Bivariate) local Moran's I of ``zx`` against the lag of ``zy``, its permutation test and quadrant labels."""
    n = c.n
    den = (zx * zx).sum()
    scale = np.full(n, (n - 1) / den if den > 0 else 0.0) * zx
    lag = W @ zy
    local_i = scale * lag
    pv = q = None
    sig = np.zeros(n, bool)
    if c.permutations and not c.flat:
        pv, exp = conditional_permutation(zy, W, local_i, scale, c.permutations, c.rng)
        q, sig = adjust(pv, c.alpha, c.correction)
        c.columns["expected"] = c.full(exp)
    elif c.permutations:
        pv = q = np.full(n, np.nan)
    quad = np.select([(zx > 0) & (lag > 0), (zx <= 0) & (lag > 0), (zx <= 0) & (lag <= 0)], [0, 1, 2], 3)
    labels = c.full(labels_for(sig, QUADRANTS[quad], c.islands), NO_POPULATION)
    c.columns["lag"] = c.full(lag)
    return c.result(
        values=c.full(local_i),
        labels=labels,
        z=c.full(zx),
        p_value=None if pv is None else c.full(pv),
        q_value=None if q is None else c.full(q),
        summary=label_counts(labels),
    )
