"""Local change between two dates on the same areas.

* :func:`local_change` — per area, the group's share at each date and its change in percentage points, with a
  two-proportion z-test of whether the change exceeds binomial noise (each person of the area is taken as a
  draw with the area's probability of belonging to the group), corrected for multiple testing (FDR by default);
  and the location quotient (share ÷ city share) at each date and its change.
* :func:`lisa_transitions` — LISA cluster labels at two dates tabulated as transitions (giddy's
  ``LISA_Markov``: where the labels are the four quadrants, the counts are its ``transitions``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy.stats import norm

from ..errors import ValidationError, problem
from ..local.statistics import QUADRANTS
from ..multiple_testing import adjust
from ..results import NOT_SIGNIFICANT


def _columns(counts: pd.DataFrame, group: str, total: str, name: str) -> tuple[np.ndarray, np.ndarray]:
    missing = [c for c in (group, total) if c not in counts.columns]
    if missing:
        raise ValidationError(problem("missing_group", f"{name} has no column {missing}; columns are {list(counts)}"))
    x = pd.to_numeric(counts[group], errors="coerce").to_numpy(float)
    t = pd.to_numeric(counts[total], errors="coerce").to_numpy(float)
    bad = ~np.isfinite(x) | ~np.isfinite(t) | (x < 0) | (x > t)
    if bad.any():
        raise ValidationError(
            problem("bad_count", f"{name}: {group!r} missing, negative or above {total!r}", counts.index[bad])
        )
    return x, t


def _same_areas(a: pd.Index, b: pd.Index) -> None:
    diff = [*a.difference(b), *b.difference(a)]
    if diff or a.has_duplicates or b.has_duplicates:
        raise ValidationError(
            problem("units_differ", "Both dates must have the same areas (harmonise the geographies first)", diff)
        )


def two_proportion_test(x1, t1, x2, t2) -> tuple[np.ndarray, np.ndarray]:
    """(z, two-sided p) of H0: the same proportion at both dates (pooled standard error). NaN where no test
    applies: an area empty at a date, or a pooled share of exactly 0 or 1 (no variation to test)."""
    x1, t1, x2, t2 = (np.asarray(v, dtype=float) for v in (x1, t1, x2, t2))
    ok = (t1 > 0) & (t2 > 0)
    pooled = np.divide(x1 + x2, t1 + t2, out=np.zeros_like(t1), where=ok)
    se = np.sqrt(pooled * (1 - pooled) * (1 / np.where(ok, t1, 1) + 1 / np.where(ok, t2, 1)))
    ok &= se > 0
    diff = np.divide(x2, t2, out=np.zeros_like(t2), where=ok) - np.divide(x1, t1, out=np.zeros_like(t1), where=ok)
    z = np.where(ok, diff / np.where(ok, se, 1), np.nan)
    return z, np.where(ok, 2 * norm.sf(np.abs(z)), np.nan)


def local_change(
    counts1: pd.DataFrame,
    counts2: pd.DataFrame,
    group: str,
    total: str,
    *,
    alpha: float = 0.05,
    correction: str = "fdr",
) -> pd.DataFrame:
    """One row per area (index of ``counts1``): share1, share2, change_pp, z, p_value, q_value, significant,
    direction (increase / decrease / not_significant), lq1, lq2, lq_change."""
    if not 0 < alpha < 1:
        raise ValidationError(problem("bad_parameter", f"alpha must lie between 0 and 1, not {alpha}"))
    _same_areas(counts1.index, counts2.index)
    counts2 = counts2.loc[counts1.index]
    x1, t1 = _columns(counts1, group, total, "date 1")
    x2, t2 = _columns(counts2, group, total, "date 2")
    if t1.sum() == 0 or t2.sum() == 0 or x1.sum() == 0 or x2.sum() == 0:
        raise ValidationError(problem("no_population", f"{group!r} or {total!r} is zero across the city at a date"))
    s1 = np.divide(x1, t1, out=np.full_like(t1, np.nan), where=t1 > 0)
    s2 = np.divide(x2, t2, out=np.full_like(t2, np.nan), where=t2 > 0)
    z, p = two_proportion_test(x1, t1, x2, t2)
    q, sig = adjust(p, alpha, correction)
    lq1, lq2 = s1 / (x1.sum() / t1.sum()), s2 / (x2.sum() / t2.sum())
    change = 100 * (s2 - s1)
    direction = np.where(sig & (change > 0), "increase", np.where(sig & (change < 0), "decrease", NOT_SIGNIFICANT))
    return pd.DataFrame(
        {
            "share1": s1,
            "share2": s2,
            "change_pp": change,
            "z": z,
            "p_value": p,
            "q_value": q,
            "significant": sig,
            "direction": direction,
            "lq1": lq1,
            "lq2": lq2,
            "lq_change": lq2 - lq1,
        },
        index=counts1.index,
    )


@dataclass
class LisaTransitions:
    """``counts``: areas by label at date 1 (rows) and date 2 (columns); ``probabilities``: each row divided by
    its sum (giddy's ``p``); ``per_area``: "from→to" per area."""

    counts: pd.DataFrame
    probabilities: pd.DataFrame
    per_area: pd.Series

    def to_dict(self) -> dict:
        return {
            "states": list(self.counts.index),
            "counts": self.counts.to_numpy().tolist(),
            "probabilities": np.nan_to_num(self.probabilities.to_numpy()).tolist(),
        }


def _states(labels: np.ndarray) -> list[str]:
    """The four quadrants in giddy's order (1 high_high, 2 low_high, 3 low_low, 4 high_low), then
    not_significant, then any other label seen."""
    base = [*QUADRANTS, NOT_SIGNIFICANT]
    return base + sorted(set(labels) - set(base))


def lisa_transitions(labels1, labels2) -> LisaTransitions:
    """Tabulate LISA labels (e.g. ``LocalResult.labels``) of the same areas at two dates. Two Series are
    aligned on their index; arrays are taken in order."""
    if isinstance(labels1, pd.Series) and isinstance(labels2, pd.Series):
        _same_areas(labels1.index, labels2.index)
        labels2 = labels2.loc[labels1.index]
        index = labels1.index
    else:
        index = pd.RangeIndex(len(labels1))
    a = np.asarray(labels1, dtype=object).astype(str)
    b = np.asarray(labels2, dtype=object).astype(str)
    if a.shape != b.shape or a.ndim != 1:
        raise ValidationError(problem("units_differ", f"Label arrays differ in length ({len(a)} and {len(b)})"))
    states = _states(np.concatenate([a, b]))
    pos = {s: i for i, s in enumerate(states)}
    k = len(states)
    flat = np.fromiter((pos[x] * k + pos[y] for x, y in zip(a, b)), dtype=np.int64, count=len(a))
    counts = np.bincount(flat, minlength=k * k).reshape(k, k)
    rows = counts.sum(axis=1, keepdims=True)
    probs = np.divide(counts, rows, out=np.full((k, k), np.nan), where=rows > 0)
    frame = pd.DataFrame(counts, index=pd.Index(states, name="from"), columns=pd.Index(states, name="to"))
    return LisaTransitions(
        counts=frame,
        probabilities=pd.DataFrame(probs, index=frame.index, columns=frame.columns),
        per_area=pd.Series(np.char.add(np.char.add(a, "→"), b), index=index, name="transition"),
    )
