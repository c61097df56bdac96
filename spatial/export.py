"""Per-area tables of results, for CSV / GeoJSON / GeoPackage output (CLI, HTTP, maps)."""
from __future__ import annotations

import geopandas as gpd
import numpy as np
import pandas as pd

from .dataset import ID, AreaDataset
from .results import LocalResult

FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")


def local_frame(dataset: AreaDataset, result: LocalResult, geometry: bool = True, wgs84: bool = True) -> pd.DataFrame:
    """One row per area: id, name, total, the group count, and the statistic's columns."""
    frame = result.to_frame()
    extra = [c for c in (dataset.name_col, dataset.total, result.group) if c and c not in frame.columns]
    base = dataset.areas[[ID, *extra] + (["geometry"] if geometry else [])]
    out = base.merge(frame, on=ID, how="left", validate="one_to_one")
    if geometry:
        out = gpd.GeoDataFrame(out, geometry="geometry", crs=dataset.areas.crs)
        if wgs84:
            out = out.to_crs(4326)
    return out


def csv_safe(frame: pd.DataFrame) -> pd.DataFrame:
    """Neutralise spreadsheet formulas in text cells (CSV injection): prefix them with a quote."""
    out = frame.copy()
    for col in out.columns:
        if out[col].dtype == object or pd.api.types.is_string_dtype(out[col]):
            s = out[col].astype("string")
            risky = s.str.startswith(FORMULA_PREFIXES, na=False) & ~s.str.fullmatch(r"-?\d+(\.\d+)?", na=False)
            out[col] = np.where(risky, "'" + s.fillna(""), out[col])
    return out
