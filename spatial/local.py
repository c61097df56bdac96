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

import math

import numpy as np
import scipy.sparse as sp
from scipy import stats

from .cancel import checkpoint
from .dataset import AreaDataset
from .errors import ValidationError, format_ids, problem
from .multiple_testing import CORRECTIONS, adjust, first_threshold, permutations_needed, smallest_p
from .results import NO_NEIGHBOURS, NOT_SIGNIFICANT, LocalResult
from .weights import SpatialWeights, build_weights

STATISTICS = ("lisa", "gi_star", "lq", "entropy", "bivariate_lisa")
ALIASES = {"moran": "lisa", "local_moran": "lisa", "getis_ord": "gi_star", "location_quotient": "lq",
           "bivariate_moran": "bivariate_lisa"}
QUADRANTS = np.array(["high_high", "low_high", "low_low", "high_low"])
_BLOCK_ELEMENTS = 4_000_000  # areas × permutations × neighbours per block (~32 MB of float64)
GLOBAL_PERMUTATIONS = 999  # global Moran's I is one test (p to 0.002); each permutation shuffles all n areas
MAX_AUTO_PERMUTATIONS = 99_999  # chosen permutations stop here (10,000 areas: see benchmarks/README.md)
VARIATION_TOL = 1e-9  # relative sd below which values count as equal (float noise, not variation)
NO_POPULATION = "no_population"
CORRECTION_NAMES = {"fdr": "FDR (Benjamini–Hochberg)", "bonferroni": "Bonferroni", "none": "no"}


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
    return np.zeros_like(y) if _constant(y) else (y - y.mean()) / y.std()


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
        raise ValidationError(problem("bad_parameter", f"An area has {kmax} neighbours but there are only {n - 1} other "
                                      "areas: the weights do not belong to these areas"))
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
                    permutations: int | None = None, seed: int | None = None, alpha: float = 0.05,
                    correction: str = "fdr", other: str | None = None, smoothing: str | None = None,
                    groups: list[str] | None = None, max_permutations: int = MAX_AUTO_PERMUTATIONS) -> LocalResult:
    """One local statistic of ``group``'s share of ``total`` per area, labelled after multiple-testing control.

    ``permutations=None`` chooses them from the number of tested areas, ``alpha`` and ``correction`` (enough
    that the smallest possible p-value can pass, at most ``max_permutations``); a given number that cannot
    reach significance is kept, with a note. Areas with no population are labelled ``no_population``.
    """
    statistic = ALIASES.get(statistic, statistic)
    if statistic not in STATISTICS:
        raise ValidationError(problem("unknown_statistic", f"Unknown local statistic {statistic!r}; choose from {list(STATISTICS)}"))
    if not 0 < alpha < 1:
        raise ValidationError(problem("bad_parameter", f"alpha must be between 0 and 1, got {alpha}"))
    if correction not in CORRECTIONS:
        raise ValidationError(problem("bad_parameter", f"Unknown correction {correction!r}; choose from {list(CORRECTIONS)}"))
    auto = permutations is None
    permutations = 0 if auto else int(permutations)
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
        labels[np.isnan(pv)] = NO_POPULATION
        common["permutations"] = 0  # an exact test
        return _with_significance(LocalResult(values=lq, labels=labels, p_value=pv, q_value=q,
                                              summary={"city_share": float(P), **_counts(labels)}, **common),
                                  int(np.isfinite(pv).sum()), False)

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

    if dataset.n < 2:
        raise ValidationError(problem("one_area", f"{statistic} compares each area with its neighbours, but the dataset has "
                                      f"only one area ({format_ids(dataset.ids)}), which has no neighbours: use a dataset "
                                      "of several areas (the location quotient, statistic=lq, works on one)"))
    sw = weights if isinstance(weights, SpatialWeights) else build_weights(dataset, weights, k=k, distance=distance)
    common["weights"] = sw.describe()
    n_all = dataset.n
    # A share of nobody is undefined (the LQ says no_population too): such areas are not tested, are nobody's
    # neighbour (weights re-standardised without them) and are not in the multiple-testing family.
    keep = np.flatnonzero(t > 0)
    if len(keep) < n_all:
        notes.append(problem("no_population", f"{n_all - len(keep)} areas have no population ({total or dataset.total} "
                             "is 0), so their share is undefined: labelled no_population and left out of the statistic, "
                             "of their neighbours' averages and of the multiple-testing family",
                             dataset.ids[t <= 0]))
    if len(keep) < 2:
        raise ValidationError(problem("one_area", f"{'Only one area has' if len(keep) else 'No area has'} any population: "
                                      f"{statistic} needs several populated areas to compare with each other"))
    W = sw.sparse if len(keep) == n_all else sw.sparse[keep][:, keep].tocsr()
    islands = np.diff(W.indptr) == 0
    if islands.any():
        cut_off = int((islands & (sw.cardinalities[keep] > 0)).sum())
        why = f" ({cut_off} because all their neighbours have no population)" if cut_off else ""
        notes.append(problem("islands", f"{int(islands.sum())} areas have no neighbours under {sw.kind} weights{why}: "
                             "labelled no_neighbours, no p-value", dataset.ids[keep][islands]))
    ys = y[keep]
    flat = _constant(ys)
    if statistic == "bivariate_lisa":
        if not other:
            raise ValidationError(problem("bad_parameter", "bivariate_lisa needs `other`: the column to compare the share with"))
        other_values = dataset.share(other, total) if other in dataset.groups else dataset.column(other)
        columns["other"] = other_values
        flat = flat or _constant(other_values[keep])
    if flat:
        value = f" ({ys[0]:.6g})" if _constant(ys) else ""
        notes.append(problem("no_variation", f"Every tested area has the same {'share' if _constant(ys) else other}{value}, "
                             "up to float rounding: there is no variation to form clusters, so no area is significant"
                             + (" and Moran's I is undefined" if statistic == "lisa" else "")))
    m = 0 if flat else int((~islands).sum())  # the multiple-testing family
    permutations, perm_notes = _choose_permutations(permutations, auto, max_permutations, m, alpha, correction)
    notes += perm_notes
    common["permutations"] = permutations
    n = len(ys)

    def full(sub, fill=np.nan):  # back to every area, the untested ones filled
        out = np.full(n_all, fill, dtype=object if isinstance(fill, str) else float)
        out[keep] = sub
        return out

    if statistic in ("lisa", "bivariate_lisa"):
        if len(keep) < n_all or not sw.row_standardised:
            W = _row_standardise(W)
        zx = _standardise(ys)
        zy = _standardise(other_values[keep]) if statistic == "bivariate_lisa" else zx
        den = (zx * zx).sum()
        scale = np.full(n, (n - 1) / den if den > 0 else 0.0) * zx
        lag = W @ zy
        I = scale * lag
        pv = q = None
        sig = np.zeros(n, bool)
        if permutations and not flat:
            pv, exp = conditional_permutation(zy, W, I, scale, permutations, rng)
            q, sig = adjust(pv, alpha, correction)
            columns["expected"] = full(exp)
        elif permutations:
            pv = q = np.full(n, np.nan)
        quad = np.select([(zx > 0) & (lag > 0), (zx <= 0) & (lag > 0), (zx <= 0) & (lag <= 0)], [0, 1, 2], 3)
        labels = full(_labels(sig, QUADRANTS[quad], islands), NO_POPULATION)
        columns["lag"] = full(lag)
        summary = _counts(labels)
        if statistic == "lisa":
            if flat:
                summary["global_moran"] = {"moran_i": None, "p_value": None, "expected": -1 / (n - 1)}
            elif permutations:  # one test: 999 resolve p to 0.002, and n × N shuffles would dominate the time
                summary["global_moran"] = global_moran(zx, W, min(permutations, GLOBAL_PERMUTATIONS), rng)
            else:
                summary["global_moran"] = {"moran_i": float(n / W.sum() * (zx @ (W @ zx)) / den) if den and W.sum() else None}
        result = LocalResult(values=full(I), labels=labels, z=full(zx), p_value=None if pv is None else full(pv),
                             q_value=None if q is None else full(q), summary=summary, **common)
        return _with_significance(result, m, auto)

    # Gi*: binary weights with the area itself included (Ord & Getis 1995, eq. 8).
    B = (W != 0).astype(float)
    B = (B - sp.diags(B.diagonal()) + sp.eye(n)).tocsr()
    xbar, s = ys.mean(), ys.std()
    wi = np.asarray(B.sum(axis=1)).ravel()
    wi2 = np.asarray(B.multiply(B).sum(axis=1)).ravel()
    with np.errstate(divide="ignore", invalid="ignore"):
        gz = (B @ ys - xbar * wi) / (s * np.sqrt((n * wi2 - wi**2) / (n - 1)))
    gz = np.zeros(n) if flat else np.where(np.isfinite(gz), gz, 0.0)
    sig = np.zeros(n, bool)
    if flat:
        pv = np.full(n, np.nan)
    elif permutations:
        # The self term is fixed; permute the neighbours' values (the part of the sum that can vary).
        off = (B - sp.eye(n)).tocsr()
        pv, _ = conditional_permutation(ys, off, off @ ys, np.ones(n), permutations, rng)
    else:
        pv = 2 * stats.norm.sf(np.abs(gz))
        pv[islands] = np.nan  # no test, so not in the family
    q, sig = adjust(pv, alpha, correction)
    labels = full(_labels(sig, np.where(gz > 0, "hot_spot", "cold_spot"), islands), NO_POPULATION)
    result = LocalResult(values=full(gz), labels=labels, z=full(gz), p_value=full(pv), q_value=full(q),
                         summary=_counts(labels), **common)
    return _with_significance(result, m, auto)


def _constant(y: np.ndarray) -> bool:
    """No variation beyond float rounding: sd below 1e-9 of the largest magnitude (e.g. 2.8e-17 on equal shares)."""
    return not y.std() > VARIATION_TOL * np.abs(y).max() if len(y) else True


def _choose_permutations(permutations: int | None, auto: bool, cap: int, m: int, alpha: float,
                         correction: str) -> tuple[int, list]:
    """Permutations to run and notes: enough (when not given) for the smallest p-value to pass the correction."""
    if m == 0:
        return (0 if auto else permutations), []
    needed = permutations_needed(m, alpha, correction)
    threshold = first_threshold(m, alpha, correction)
    how = f"{CORRECTION_NAMES[correction]} over {m} areas"
    if auto:
        if needed <= cap:
            return needed, []
        permutations = cap
    if permutations == 0 or smallest_p(permutations) <= threshold:
        return permutations, []
    p_min = smallest_p(permutations)
    if correction == "fdr":
        k = math.ceil(m * p_min / alpha * (1 - 1e-12))
        effect = (f"an area can pass only together with at least {k - 1} others as extreme, so a small cluster "
                  "cannot be found")
    else:
        effect = "no area can be significant"
    why = "the most this computation allows" if auto else "as asked"
    return permutations, [problem("permutations_too_few", (
        f"With {permutations:,} permutations ({why}) the smallest possible p-value is 2/({permutations:,}+1) = "
        f"{p_min:.2g}, above {threshold:.2g}, the p-value the most extreme area needs under {how} (alpha/{m}): "
        f"{effect}. {needed:,} permutations would be enough" + ("" if auto else
                                                                  ", or leave permutations unset to choose them")))]


def _with_significance(res: LocalResult, m: int, auto: bool) -> LocalResult:
    """Adds the areas with p ≤ alpha before correction (column and count), marked apart from the corrected
    labels, with one sentence on the difference."""
    p = res.p_value
    if p is None:
        return res
    alpha, correction = res.alpha, res.correction
    raw = np.nan_to_num(p, nan=1.0) <= alpha
    tested = int(np.isfinite(p).sum())
    sig = np.nan_to_num(res.q_value, nan=1.0) <= alpha
    n_raw, n_sig = int(raw.sum()), int(sig.sum())
    res.columns["significant_uncorrected"] = raw
    info = {"tested": tested, "significant": n_sig, "significant_uncorrected": n_raw}
    if res.permutations:
        info.update(permutations=res.permutations, permutations_chosen="auto" if auto else "given",
                    smallest_possible_p=smallest_p(res.permutations))
    if tested:
        info["first_threshold"] = first_threshold(tested, alpha, correction)
    chance = f"{alpha * tested:.0f}" if alpha * tested >= 1 else f"{alpha * tested:.1g}"
    if correction == "none":
        text = (f"{n_raw} of {tested} areas have p ≤ {alpha} with no correction for testing {tested} areas at once: "
                f"about {chance} would by chance alone even with no clusters at all.")
    elif n_raw == n_sig:
        text = (f"All {n_raw} areas with p ≤ {alpha} remain significant after {CORRECTION_NAMES[correction]} correction "
                f"for testing {tested} areas at once (about {chance} would reach p ≤ {alpha} by chance alone).")
    else:
        text = (f"{n_raw} areas have p ≤ {alpha} before correction, {n_sig} after {CORRECTION_NAMES[correction]} "
                f"correction: testing {tested} areas at once, about {chance} would reach p ≤ {alpha} by chance alone "
                "even with no clusters at all, so only the corrected labels are evidence of a cluster; the others are "
                "places to look at, not findings.")
        if n_sig == 0:
            i = int(np.nanargmin(p))
            text += (f" None passes: the smallest adjusted p-value is {np.nanmin(res.q_value):.2g} (above {alpha}); "
                     f"the strongest evidence, p = {p[i]:.2g}, would have needed p ≤ {alpha / tested:.2g} on its own.")
    info["explanation"] = text
    res.summary["significance"] = info
    return res


def _row_standardise(W: sp.csr_matrix) -> sp.csr_matrix:
    rs = np.asarray(W.sum(axis=1)).ravel()
    return sp.diags(np.divide(1.0, rs, out=np.zeros_like(rs), where=rs > 0)) @ W


def _counts(labels: np.ndarray) -> dict:
    names, counts = np.unique(labels.astype(str), return_counts=True)
    return {"labels": {str(a): int(b) for a, b in zip(names, counts)}}
