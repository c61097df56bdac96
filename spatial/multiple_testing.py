"""Multiple-testing control applied to local labels: Benjamini–Hochberg FDR, Bonferroni, or none.

NaN p-values (areas with no test, e.g. islands) are left out of the family and stay NaN.

With N permutations the smallest two-sided p-value is 2/(N+1), while the first threshold of FDR and
Bonferroni over m tests is α/m: :func:`permutations_needed` is the fewest permutations for which one
area, however extreme, can pass.
"""

from __future__ import annotations

import math

import numpy as np

from .errors import ValidationError, problem

CORRECTIONS = ("fdr", "bonferroni", "none")


def benjamini_hochberg(p: np.ndarray) -> np.ndarray:
    """BH-adjusted p-values (q-values): q_(i) = min_{j ≥ i} p_(j) m / j (Benjamini & Hochberg 1995)."""
    p = np.asarray(p, dtype=float)
    q = np.full_like(p, np.nan)
    ok = np.isfinite(p)
    m = int(ok.sum())
    if m == 0:
        return q
    order = np.argsort(p[ok])
    ranked = p[ok][order] * m / np.arange(1, m + 1)
    ranked = np.minimum.accumulate(ranked[::-1])[::-1]
    out = np.empty(m)
    out[order] = np.minimum(ranked, 1.0)
    q[ok] = out
    return q


def adjust(p: np.ndarray, alpha: float, correction: str = "fdr") -> tuple[np.ndarray, np.ndarray]:
    """(adjusted p-values, significant at ``alpha``) under ``correction``."""
    if correction not in CORRECTIONS:
        raise ValidationError(
            problem("bad_parameter", f"Unknown correction {correction!r}; choose from {list(CORRECTIONS)}")
        )
    p = np.asarray(p, dtype=float)
    if correction == "fdr":
        q = benjamini_hochberg(p)
    elif correction == "bonferroni":
        q = np.minimum(p * np.isfinite(p).sum(), 1.0)
    else:
        q = p.copy()
    return q, np.nan_to_num(q, nan=1.0) <= alpha


def smallest_p(permutations: int) -> float:
    """The smallest two-sided permutation p-value, 2 · (1 + 0) / (N + 1)."""
    return min(1.0, 2.0 / (permutations + 1))


def first_threshold(m: int, alpha: float, correction: str) -> float:
    """The p-value the most extreme of ``m`` tests must reach to be significant on its own."""
    return alpha / max(m, 1) if correction in ("fdr", "bonferroni") else alpha


def permutations_needed(m: int, alpha: float, correction: str, floor: int = 999) -> int:
    """Fewest permutations (at least ``floor``, rounded up to end in 999) with 2/(N+1) ≤ the first threshold."""
    need = math.ceil(2.0 / first_threshold(m, alpha, correction) * (1 - 1e-12)) - 1
    return max(floor, 1000 * math.ceil((need + 1) / 1000) - 1)
