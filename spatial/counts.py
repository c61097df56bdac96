"""Count columns: read as numbers and checked (every bad id named), and survey estimates clipped within a
tolerance. Used by :func:`spatial.dataset.validate`."""

from __future__ import annotations

import numpy as np
import pandas as pd

from .errors import Problem, problem


def as_counts(df: pd.DataFrame, col: str, ids: pd.Series, problems: list[Problem], role: str = "Column") -> pd.Series:
    raw = df[col]
    values = pd.to_numeric(raw, errors="coerce")
    if pd.api.types.is_numeric_dtype(raw.dtype):  # no text to read (and a million str() calls saved)
        blank = nan_text = pd.Series(False, index=raw.index)
    else:
        text = raw.astype(str).str.strip()
        blank = text == ""
        # "nan" written as text is a number that is not one: said so, not "non-numeric" (NaN read as a float is missing)
        nan_text = raw.notna() & text.str.lower().isin(["nan", "+nan", "-nan"])
    bad = values.isna() & raw.notna() & ~blank & ~nan_text
    if bad.any():
        problems.append(
            problem(
                "non_numeric_count",
                f"{role} {col!r} has non-numeric values; use plain numbers (no thousands separators or text)",
                ids[bad],
            )
        )
    missing = (raw.isna() | blank) & ~nan_text
    if missing.any():
        problems.append(
            problem(
                "missing_count",
                f"{role} {col!r} has missing values (empty, NA or NaN); fill them (0 if nobody lives there) or drop those areas",
                ids[missing],
            )
        )
    neg = values < 0
    if neg.any():
        problems.append(problem("negative_count", f"{role} {col!r} has negative counts; counts must be ≥ 0", ids[neg]))
    infinite = np.isinf(values.to_numpy(dtype=float)) | nan_text.to_numpy()
    if infinite.any():
        problems.append(
            problem(
                "non_finite_count",
                f"{role} {col!r} has infinite or NaN values; counts must be finite numbers",
                ids[infinite],
            )
        )
    return values.astype(float)


TOLERANCE_HINT = (
    "survey estimates that differ by a person or two can be clipped to the total with a tolerance "
    "(CLI --tolerance N, upload field tolerance)"
)


def clip_to_total(
    gdf: pd.DataFrame, members: list[str], total: str, tolerance: float, ids: pd.Series, problems: list[Problem]
) -> list[Problem]:
    """Refuse groups above the total, except excesses up to ``tolerance``: those are clipped and reported."""
    touched = pd.Series(False, index=gdf.index)
    worst = 0.0
    finite = np.isfinite(gdf[total])
    for g in members:
        excess = gdf[g] - gdf[total]
        over = (excess > 1e-9) & np.isfinite(gdf[g]) & finite  # inf: said above
        fits = over & (excess <= tolerance)
        if fits.any():
            gdf.loc[fits, g] = gdf.loc[fits, total]
            touched |= fits
            worst = max(worst, float(excess[fits].max()))
        if (over & ~fits).any():
            problems.append(
                problem(
                    "group_exceeds_total",
                    f"Group {g!r} is larger than total {total!r}; check that the "
                    f"total counts everyone in the group ({TOLERANCE_HINT})",
                    ids[over & ~fits],
                )
            )
    if tolerance > 0 and len(members) > 1:
        # Groups that add up to a little more than the total (ACS estimates): larger excesses are left
        # alone, as the groups may overlap on purpose; multigroup indices refuse those themselves.
        excess = gdf[members].sum(axis=1) - gdf[total]
        fits = (excess > 1e-9) & (excess <= tolerance) & finite
        for i in np.flatnonzero(fits.to_numpy()):
            row, left = gdf.index[i], float(excess.iloc[i])
            for g in sorted(members, key=lambda c: -gdf.at[row, c]):
                take = min(left, float(gdf.at[row, g]))
                gdf.at[row, g] -= take
                left -= take
                if left <= 1e-12:
                    break
        if fits.any():
            touched |= fits
            worst = max(worst, float(excess[fits].max()))
    if not touched.any():
        return []
    return [
        problem(
            "clipped_to_total",
            f"Groups exceeded total {total!r} by at most {worst:g} in {int(touched.sum())} "
            f"areas, within the tolerance of {tolerance:g}: clipped to the total (the excess taken from the "
            "largest groups)",
            ids[touched],
        )
    ]
