"""Small-count disclosure control for public outputs.

Counts of people between 1 and ``threshold − 1`` are suppressed (shown as null), and every value
derived from a suppressed count that would let it be recomputed (its share, smoothed share,
location quotient) is hidden too. Zeros are shown: an empty group is not a person. When only one
count of an area would be hidden but its total and the other counts are shown, it could be found
by subtraction, so the smallest other count of that area is suppressed as well (complementary
suppression). Indices are computed on the true counts; only what is published is protected.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

DERIVED = ("share", "smoothed_share")
# Per-area outputs of a local statistic that give the area's own share back.
REVEALS_SHARE = {"lq": ("value",), "lisa": ("z",), "bivariate_lisa": ("z",)}


def derived_columns(statistic: str | None) -> tuple[str, ...]:
    """Columns to hide with a suppressed count, for the given local statistic."""
    return DERIVED + REVEALS_SHARE.get(statistic or "", ())


def protect_frame(frame: pd.DataFrame, count_cols: list[str], threshold: int = 10, *, total: str | None = None,
                  derived: tuple[str, ...] = DERIVED) -> tuple[pd.DataFrame, dict | None]:
    """Return (protected copy, report) for the per-area ``frame``; ``threshold <= 1`` disables."""
    if threshold <= 1 or not count_cols:
        return frame, None
    out = frame.copy()
    counts = out[count_cols].astype(float)
    hidden = (counts > 0) & (counts < threshold)
    total = total if total in count_cols else None
    groups = [c for c in count_cols if c != total]
    if total and groups:
        # One hidden group next to a shown total and shown others is recoverable by subtraction.
        rest = counts[total] - counts[groups].sum(axis=1)
        single = hidden[groups].sum(axis=1) == 1
        recoverable = single & ~hidden[total] & (len(groups) > 1 or True) & (rest.abs() >= 0)
        if len(groups) == 1:
            # total − group is the rest; if the rest is small it reveals the group: hide the total too.
            small_rest = (rest > 0) & (rest < threshold)
            hidden.loc[small_rest, total] = True
        else:
            for idx in np.flatnonzero(recoverable.to_numpy()):
                shown = [g for g in groups if not hidden.iloc[idx][g] and counts.iloc[idx][g] > 0]
                if shown:
                    smallest = min(shown, key=lambda g: counts.iloc[idx][g])
                    hidden.iloc[idx, hidden.columns.get_loc(smallest)] = True
    for col in count_cols:
        out[col] = out[col].astype(float).where(~hidden[col], np.nan)
    area_hidden = hidden[groups].any(axis=1) if groups else hidden.any(axis=1)
    n_derived = 0
    for col in derived:
        if col in out.columns:
            out[col] = out[col].astype(float).where(~area_hidden, np.nan)
            n_derived += int(area_hidden.sum())
    report = {"threshold": int(threshold), "rule": f"counts from 1 to {threshold - 1} are suppressed, with values "
              "derived from them and complementary cells that would reveal them",
              "suppressed_cells": {c: int(hidden[c].sum()) for c in count_cols}, "areas_affected": int(hidden.any(axis=1).sum()),
              "hidden_derived_values": n_derived}
    return out, report


def round_index(value: float | None, digits: int = 3) -> float | None:
    """Indices are published to ``digits`` decimals: enough to compare, too coarse to reverse-engineer."""
    return None if value is None else round(float(value), digits)
