"""Local statistics of a group's share: where the concentrations are, with honest significance.

* ``lisa`` — local Moran's I (Anselin 1995, "Local indicators of spatial association — LISA",
  Geographical Analysis 27(2)), with the four cluster labels of GeoDa;
* ``gi_star`` — Getis-Ord Gi* (Ord & Getis 1995, Geographical Analysis 27(4)) on binary weights
  that include the area itself; labels ``hot_spot`` / ``cold_spot``;
* ``lq`` — location quotient (share ÷ city-wide share) with an exact binomial test;
* ``entropy`` — local diversity across several groups (Shannon entropy ÷ ln K), no test;
* ``bivariate_lisa`` — the group's share against another column (Anselin, Syabri & Smirnov 2002).

Layout: :mod:`.prologue` validates, smooths, builds the weights among populated areas, chooses the
permutations and summarises significance; :mod:`.permutation` is the conditional-permutation engine
(two-sided p-values); :mod:`.statistics` holds one registered function per statistic
(:mod:`.registry`). Labels are corrected for multiple testing (:mod:`spatial.multiple_testing`).
"""

from __future__ import annotations

from ..dataset import AreaDataset
from ..results import LocalResult
from ..weights import SpatialWeights
from .permutation import _draw_others, conditional_permutation, global_moran  # noqa: F401 (tests use _draw_others)
from .prologue import (
    CORRECTION_NAMES,
    GLOBAL_TESTS,
    MAX_AUTO_PERMUTATIONS,
    NO_POPULATION,
    VARIATION_TOL,
    compare_with_neighbours,
    empirical_bayes,
    prepare,
)
from .registry import ALIASES, REGISTRY, LocalSpec, get, register
from .statistics import GLOBAL_PERMUTATIONS, QUADRANTS, check_permutations

STATISTICS = tuple(REGISTRY)  # in the order they are defined in .statistics

__all__ = [
    "ALIASES",
    "CORRECTION_NAMES",
    "GLOBAL_PERMUTATIONS",
    "GLOBAL_TESTS",
    "MAX_AUTO_PERMUTATIONS",
    "NO_POPULATION",
    "QUADRANTS",
    "STATISTICS",
    "VARIATION_TOL",
    "LocalSpec",
    "conditional_permutation",
    "empirical_bayes",
    "get",
    "global_moran",
    "local_statistic",
    "register",
]


def local_statistic(
    dataset: AreaDataset,
    group: str,
    statistic: str = "lisa",
    *,
    total: str | None = None,
    weights: str | SpatialWeights = "queen",
    k: int | None = None,
    distance: float | None = None,
    permutations: int | None = None,
    seed: int | None = None,
    alpha: float = 0.05,
    correction: str = "fdr",
    other: str | None = None,
    smoothing: str | None = None,
    groups: list[str] | None = None,
    max_permutations: int = MAX_AUTO_PERMUTATIONS,
    global_test: str = "randomisation",
) -> LocalResult:
    """One local statistic of ``group``'s share of ``total`` per area, labelled after multiple-testing control.

    ``permutations=None`` chooses them from the number of tested areas, ``alpha`` and ``correction`` (enough
    that the smallest possible p-value can pass, at most ``max_permutations``); a given number that cannot
    reach significance is kept, with a note. Areas with no population are labelled ``no_population``.
    LISA's global Moran's I is tested with its randomisation moments, or by permutation with
    ``global_test='permutation'`` (summary ``global_moran.test`` names the one ``p_value`` comes from).
    """
    spec = get(statistic)
    check_permutations(spec.name, permutations, global_test, max_permutations)
    ctx = prepare(
        dataset,
        group,
        spec.name,
        total=total,
        permutations=permutations,
        seed=seed,
        alpha=alpha,
        correction=correction,
        smoothing=smoothing,
        groups=groups,
        global_test=global_test,
    )
    if spec.neighbours:
        compare_with_neighbours(
            ctx,
            weights,
            k=k,
            distance=distance,
            other=other,
            bivariate=spec.bivariate,
            max_permutations=max_permutations,
        )
    return spec.func(ctx)
