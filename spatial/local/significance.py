"""The multiple-testing side of a local statistic: how many permutations to run, and the summary of which
areas pass before and after the correction, with one sentence on the difference."""

from __future__ import annotations

import math

import numpy as np

from ..errors import problem
from ..multiple_testing import first_threshold, permutations_needed, smallest_p
from ..results import LocalResult

CORRECTION_NAMES = {"fdr": "FDR (Benjamini–Hochberg)", "bonferroni": "Bonferroni", "none": "no"}


def choose_permutations(
    permutations: int, auto: bool, cap: int, m: int, alpha: float, correction: str
) -> tuple[int, list]:
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
        effect = (
            f"an area can pass only together with at least {k - 1} others as extreme, so a small cluster "
            "cannot be found"
        )
    else:
        effect = "no area can be significant"
    why = "the most this computation allows" if auto else "as asked"
    return permutations, [
        problem(
            "permutations_too_few",
            (
                f"With {permutations:,} permutations ({why}) the smallest possible p-value is 2/({permutations:,}+1) = "
                f"{p_min:.2g}, above {threshold:.2g}, the p-value the most extreme area needs under {how} (alpha/{m}): "
                f"{effect}. {needed:,} permutations would be enough"
                + ("" if auto else ", or leave permutations unset to choose them")
            ),
        )
    ]


def with_significance(res: LocalResult, auto: bool) -> LocalResult:
    """Adds the areas with p ≤ alpha before correction (column and count), marked apart from the corrected
    labels, with one sentence on the difference."""
    p = res.p_value
    if p is None:
        return res
    alpha = res.alpha
    raw = np.nan_to_num(p, nan=1.0) <= alpha
    tested = int(np.isfinite(p).sum())
    sig = np.nan_to_num(res.q_value, nan=1.0) <= alpha
    res.columns["significant_uncorrected"] = raw
    info = {"tested": tested, "significant": int(sig.sum()), "significant_uncorrected": int(raw.sum())}
    if res.permutations:
        info.update(
            permutations=res.permutations,
            permutations_chosen="auto" if auto else "given",
            smallest_possible_p=smallest_p(res.permutations),
        )
    if tested:
        info["first_threshold"] = first_threshold(tested, alpha, res.correction)
    info["explanation"] = _explain(res, tested, int(raw.sum()), int(sig.sum()))
    res.summary["significance"] = info
    return res


def _explain(res: LocalResult, tested: int, n_raw: int, n_sig: int) -> str:
    """One sentence on the uncorrected count against the corrected one."""
    alpha, correction, p = res.alpha, res.correction, res.p_value
    chance = f"{alpha * tested:.0f}" if alpha * tested >= 1 else f"{alpha * tested:.1g}"
    if correction == "none":
        return (
            f"{n_raw} of {tested} areas have p ≤ {alpha} with no correction for testing {tested} areas at once: "
            f"about {chance} would by chance alone even with no clusters at all."
        )
    if n_raw == n_sig:
        return (
            f"All {n_raw} areas with p ≤ {alpha} remain significant after {CORRECTION_NAMES[correction]} "
            f"correction for testing {tested} areas at once (about {chance} would reach p ≤ {alpha} by chance "
            "alone)."
        )
    text = (
        f"{n_raw} areas have p ≤ {alpha} before correction, {n_sig} after {CORRECTION_NAMES[correction]} "
        f"correction: testing {tested} areas at once, about {chance} would reach p ≤ {alpha} by chance alone "
        "even with no clusters at all, so only the corrected labels are evidence of a cluster; the others are "
        "places to look at, not findings."
    )
    if n_sig == 0:
        i = int(np.nanargmin(p))
        text += (
            f" None passes: the smallest adjusted p-value is {np.nanmin(res.q_value):.2g} (above {alpha}); "
            f"the strongest evidence, p = {p[i]:.2g}, would have needed p ≤ {alpha / tested:.2g} on its own."
        )
    return text
