"""Per-area tables of results, for CSV / GeoJSON / GeoPackage output (CLI, HTTP, maps)."""

from __future__ import annotations

import io
import re

import geopandas as gpd
import numpy as np
import pandas as pd

from .dataset import ID, AreaDataset
from .results import LocalResult

FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")
_NUMBER = re.compile(r"-?\d+(\.\d+)?([eE][-+]?\d+)?")  # "-5", "-1.5e3": negative numbers, not formulas


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


def _risky(text: str) -> bool:
    return text.startswith(FORMULA_PREFIXES) and not _NUMBER.fullmatch(text)


def csv_cell(value):
    """One CSV cell made inert for spreadsheets: text that a spreadsheet would run as a formula gets a leading
    quote (OWASP CSV injection); numbers, and text that is a plain number such as "-5", are left alone."""
    return "'" + value if isinstance(value, str) and _risky(value) else value


def csv_safe(frame: pd.DataFrame) -> pd.DataFrame:
    """``frame`` ready for CSV: formulas neutralised in the header and in every text cell (see :func:`csv_cell`)."""
    out = frame.copy()
    for col in out.columns:
        s = out[col]
        if isinstance(s.dtype, pd.CategoricalDtype) or s.dtype == object or pd.api.types.is_string_dtype(s):
            text = s.astype(object)
            risky = np.array([isinstance(v, str) and _risky(v) for v in text], dtype=bool)
            if risky.any():
                out[col] = text.where(~risky, "'" + text.astype(str))
    # Column names are cells too (the header row): a column named "=1+2" must not run.
    return out.rename(columns={c: csv_cell(c) for c in out.columns if isinstance(c, str) and _risky(c)})


# Download formats: extension → (GDAL driver or writer, media type). All four are read by GDAL (ogrinfo, pyogrio).
FORMATS = {
    "gpkg": ("GPKG", "application/geopackage+sqlite3"),
    "fgb": ("FlatGeobuf", "application/flatgeobuf"),
    "parquet": ("GeoParquet", "application/vnd.apache.parquet"),
    "csv": ("CSV", "text/csv; charset=utf-8"),
}


def table_bytes(frame: gpd.GeoDataFrame, fmt: str, layer: str) -> bytes:
    """``frame`` as one file of ``fmt`` (a key of :data:`FORMATS`). CSV has no geometry and is made inert for
    spreadsheets (:func:`csv_safe`); the others keep the outlines in the frame's CRS."""
    if fmt == "csv":
        return csv_safe(pd.DataFrame(frame.drop(columns="geometry", errors="ignore"))).to_csv(index=False).encode()
    buf = io.BytesIO()
    if fmt == "parquet":
        frame.to_parquet(buf, index=False, geometry_encoding="WKB", write_covering_bbox=True)
    else:
        # Nullable booleans go as integers 0/1 (GPKG/FGB have no null-able boolean through every GDAL version).
        out = frame.copy()
        for col in out.columns:
            if isinstance(out[col].dtype, pd.BooleanDtype):
                out[col] = out[col].astype("Int8")
        out.to_file(buf, driver=FORMATS[fmt][0], layer=layer, engine="pyogrio")
    return buf.getvalue()
