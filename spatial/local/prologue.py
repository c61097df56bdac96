"""What every local statistic shares: validation, smoothing, weights among the populated areas, the number of
permutations, and the multiple-testing summary of the result (the last two in :mod:`.significance`).

:func:`prepare` makes a :class:`LocalContext` for any statistic; :func:`compare_with_neighbours` adds what the
statistics that compare an area with its neighbours need. A statistic then computes its values, builds its
:class:`LocalResult` with :meth:`LocalContext.result` and passes it through :meth:`LocalContext.finish`.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

import numpy as np
import scipy.sparse as sp

from ..dataset import AreaDataset
from ..errors import Problem, ValidationError, format_ids, problem
from ..multiple_testing import CORRECTIONS
from ..results import NO_NEIGHBOURS, NOT_SIGNIFICANT, LocalResult
from ..weights import SpatialWeights, build_weights
from .significance import CORRECTION_NAMES, choose_permutations, with_significance  # noqa: F401 (spatial.local)

MAX_AUTO_PERMUTATIONS = 99_999  # chosen permutations stop here (10,000 areas: see benchmarks/README.md)
VARIATION_TOL = 1e-9  # relative sd below which values count as equal (float noise, not variation)
NO_POPULATION = "no_population"
GLOBAL_TESTS = ("randomisation", "permutation")  # how LISA tests global Moran's I


@dataclass
class LocalContext:
    """The validated request and the values a statistic starts from.

    ``y`` is the group's share (smoothed if asked) for every area. For statistics with neighbours, ``keep``
    holds the populated areas (the ones tested), ``W`` the weights among them as given, ``islands`` which of
    them have no neighbour, ``flat`` whether there is no variation to test, and ``permutations`` the number to run.
    """

    dataset: AreaDataset
    statistic: str
    group: str
    total: str | None
    alpha: float
    correction: str
    seed: int | None
    rng: np.random.Generator
    auto: bool  # permutations chosen here, not given
    permutations: int
    x: np.ndarray
    t: np.ndarray
    y: np.ndarray
    groups: list[str] | None = None
    columns: dict[str, np.ndarray] = field(default_factory=dict)
    notes: list[Problem] = field(default_factory=list)
    weights: dict = field(default_factory=dict)
    sw: SpatialWeights | None = None
    keep: np.ndarray | None = None
    W: sp.csr_matrix | None = None
    islands: np.ndarray | None = None
    other: np.ndarray | None = None  # a bivariate statistic's second column, every area
    flat: bool = False
    global_test: str = "randomisation"  # LISA's global Moran's I: analytic moments, or "permutation"
    max_permutations: int = MAX_AUTO_PERMUTATIONS  # no test runs more (LISA's global one included)

    @property
    def n(self) -> int:
        return len(self.keep)

    @property
    def ys(self) -> np.ndarray:
        return self.y[self.keep]

    def full(self, sub: np.ndarray, fill=np.nan) -> np.ndarray:
        """Back to every area, the untested ones filled."""
        dtype = object if isinstance(fill, str) else float
        if len(self.keep) == self.dataset.n:  # every area tested (keep is then 0 … n−1)
            return np.array(sub, dtype=dtype)
        out = np.full(self.dataset.n, fill, dtype=dtype)
        out[self.keep] = sub
        return out

    def row_standardised(self) -> sp.csr_matrix:
        """``W`` with rows summing to 1 (re-standardised where unpopulated neighbours were dropped)."""
        if len(self.keep) < self.dataset.n or not self.sw.row_standardised:
            return row_standardise(self.W)
        return self.W

    def result(self, **fields) -> LocalResult:
        common = {
            "statistic": self.statistic,
            "ids": self.dataset.ids,
            "alpha": self.alpha,
            "correction": self.correction,
            "permutations": self.permutations,
            "seed": self.seed,
            "group": self.group,
            "notes": self.notes,
            "columns": self.columns,
            "weights": self.weights,
        }
        return LocalResult(**{**common, **fields})

    def finish(self, res: LocalResult) -> LocalResult:
        return with_significance(res, self.auto)


def prepare(
    dataset: AreaDataset,
    group: str,
    statistic: str,
    *,
    total: str | None,
    permutations: int | None,
    seed: int | None,
    alpha: float,
    correction: str,
    smoothing: str | None,
    groups: list[str] | None,
    global_test: str = "randomisation",
) -> LocalContext:
    """Checks the parameters and computes the share (smoothed when ``smoothing='eb'``)."""
    if global_test not in GLOBAL_TESTS:
        raise ValidationError(
            problem("bad_parameter", f"Unknown global_test {global_test!r}; choose from {list(GLOBAL_TESTS)}")
        )
    if not 0 < alpha < 1:
        raise ValidationError(problem("bad_parameter", f"alpha must be between 0 and 1, got {alpha}"))
    if correction not in CORRECTIONS:
        raise ValidationError(
            problem("bad_parameter", f"Unknown correction {correction!r}; choose from {list(CORRECTIONS)}")
        )
    auto = permutations is None
    permutations = 0 if auto else int(permutations)
    if permutations < 0:
        raise ValidationError(problem("bad_parameter", "permutations must be 0 or more"))
    rng = np.random.default_rng(seed)
    x, t = dataset.counts(group, total)
    share = dataset.share(group, total)
    c = LocalContext(
        dataset,
        statistic,
        group,
        total,
        alpha,
        correction,
        seed,
        rng,
        auto,
        permutations,
        x,
        t,
        share,
        groups,
        columns={"share": share},
        global_test=global_test,
    )
    if smoothing is not None:
        _smooth(c, smoothing)
    return c


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


def _smooth(c: LocalContext, smoothing: str) -> None:
    if smoothing != "eb":
        raise ValidationError(problem("bad_parameter", f"Unknown smoothing {smoothing!r}; use 'eb' (empirical Bayes)"))
    share = c.y
    c.y, _ = empirical_bayes(c.x, c.t)
    c.columns["smoothed_share"] = c.y
    affected = np.abs(c.y - share) > 0.1 * max(c.x.sum() / c.t.sum(), 1e-12)
    c.columns["smoothing_changed"] = affected
    c.notes.append(
        problem(
            "smoothed",
            f"Empirical Bayes smoothing moved {int(affected.sum())} areas' shares by more "
            "than 10 % of the city-wide share (small populations)",
            c.dataset.ids[affected],
        )
    )


def compare_with_neighbours(
    c: LocalContext,
    weights: str | SpatialWeights,
    *,
    k: int | None,
    distance: float | None,
    other: str | None,
    bivariate: bool,
    max_permutations: int,
) -> None:
    """Weights among the populated areas, the second column of a bivariate statistic, whether there is any
    variation, and the permutations to run; each with its note."""
    dataset = c.dataset
    if dataset.n < 2:
        raise ValidationError(
            problem(
                "one_area",
                f"{c.statistic} compares each area with its neighbours, but the "
                f"dataset has only one area ({format_ids(dataset.ids)}), which has no "
                "neighbours: use a dataset of several areas (the location quotient, "
                "statistic=lq, works on one)",
            )
        )
    c.sw = weights if isinstance(weights, SpatialWeights) else build_weights(dataset, weights, k=k, distance=distance)
    c.weights = c.sw.describe()
    _populated_areas(c)
    if bivariate:
        if not other:
            raise ValidationError(
                problem("bad_parameter", f"{c.statistic} needs `other`: the column to compare the share with")
            )
        c.other = dataset.share(other, c.total) if other in dataset.groups else dataset.column(other)
        c.columns["other"] = c.other
    _variation(c, other)
    c.max_permutations = max_permutations
    m = 0 if c.flat else int((~c.islands).sum())  # the multiple-testing family
    c.permutations, notes = choose_permutations(c.permutations, c.auto, max_permutations, m, c.alpha, c.correction)
    c.notes += notes


def _populated_areas(c: LocalContext) -> None:
    """A share of nobody is undefined (the LQ says no_population too): such areas are not tested, are nobody's
    neighbour (weights re-standardised without them) and are not in the multiple-testing family."""
    dataset, sw = c.dataset, c.sw
    n_all = dataset.n
    keep = np.flatnonzero(c.t > 0)
    if len(keep) < n_all:
        c.notes.append(
            problem(
                "no_population",
                f"{n_all - len(keep)} areas have no population "
                f"({c.total or dataset.total} is 0), so their share is undefined: labelled "
                "no_population and left out of the statistic, of their neighbours' averages and of the "
                "multiple-testing family",
                dataset.ids[c.t <= 0],
            )
        )
    if len(keep) < 2:
        raise ValidationError(
            problem(
                "one_area",
                f"{'Only one area has' if len(keep) else 'No area has'} any "
                f"population: {c.statistic} needs several populated areas to compare with each "
                "other",
            )
        )
    c.keep = keep
    c.W = sw.sparse if len(keep) == n_all else sw.sparse[keep][:, keep].tocsr()
    c.islands = np.diff(c.W.indptr) == 0
    if c.islands.any():
        cut_off = int((c.islands & (sw.cardinalities[keep] > 0)).sum())
        why = f" ({cut_off} because all their neighbours have no population)" if cut_off else ""
        c.notes.append(
            problem(
                "islands",
                f"{int(c.islands.sum())} areas have no neighbours under {sw.kind} weights"
                f"{why}: labelled no_neighbours, no p-value",
                dataset.ids[keep][c.islands],
            )
        )


def _variation(c: LocalContext, other: str | None) -> None:
    """Equal shares (or equal ``other`` values) leave nothing to test: no area can be significant."""
    ys = c.ys
    c.flat = constant(ys) or (c.other is not None and constant(c.other[c.keep]))
    if c.flat:
        value = f" ({ys[0]:.6g})" if constant(ys) else ""
        c.notes.append(
            problem(
                "no_variation",
                f"Every tested area has the same {'share' if constant(ys) else other}"
                f"{value}, up to float rounding: there is no variation to form clusters, so no area is "
                "significant" + (" and Moran's I is undefined" if c.statistic == "lisa" else ""),
            )
        )


def constant(y: np.ndarray) -> bool:
    """No variation beyond float rounding: sd below 1e-9 of the largest magnitude (e.g. 2.8e-17 on equal shares)."""
    return not y.std() > VARIATION_TOL * np.abs(y).max() if len(y) else True


def standardise(y: np.ndarray) -> np.ndarray:
    return np.zeros_like(y) if constant(y) else (y - y.mean()) / y.std()


def row_standardise(W: sp.csr_matrix) -> sp.csr_matrix:
    rs = np.asarray(W.sum(axis=1)).ravel()
    return sp.diags(np.divide(1.0, rs, out=np.zeros_like(rs), where=rs > 0)) @ W


def labels_for(significant: np.ndarray, names: np.ndarray, islands: np.ndarray) -> np.ndarray:
    """``names`` where significant, else not_significant; islands no_neighbours (strings made only where
    significant: at a million areas, one per area costs 0.1 s)."""
    out = np.full(len(significant), NOT_SIGNIFICANT, dtype=object)
    out[significant] = names[significant]
    out[islands] = NO_NEIGHBOURS
    return out


def label_counts(labels: np.ndarray) -> dict:
    """Areas per label, by name (a hash count: sorting a million strings took 0.5 s)."""
    return {"labels": {str(a): int(b) for a, b in sorted(Counter(labels.tolist()).items())}}
