"""Multiple-testing control applied to local labels: Benjamini–Hochberg FDR, Bonferroni, or none.

NaN p-values (areas with no test, e.g. islands) are left out of the family and stay NaN.
"""
from __future__ import annotations

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
        raise ValidationError(problem("bad_parameter", f"Unknown correction {correction!r}; choose from {list(CORRECTIONS)}"))
    p = np.asarray(p, dtype=float)
    if correction == "fdr":
        q = benjamini_hochberg(p)
    elif correction == "bonferroni":
        q = np.minimum(p * np.isfinite(p).sum(), 1.0)
    else:
        q = p.copy()
    return q, np.nan_to_num(q, nan=1.0) <= alpha
