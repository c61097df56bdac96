"""Reading boundaries and count tables, joining them, and returning a validated dataset.

Boundaries: GeoPackage, GeoJSON, Shapefile (plain or zipped), GeoParquet, FlatGeobuf.
Counts: CSV or Parquet, joined on a key column; or the boundary file's own columns.
Readers take a local path or the raw bytes of an upload (with its file name as a format
hint); bytes are read in memory only, never from a path or URL named inside them.
"""
from __future__ import annotations

import io
import os
import zipfile
from pathlib import Path
from typing import Sequence

import geopandas as gpd
import pandas as pd
import pyogrio

from .dataset import AreaDataset, Metadata, validate
from .errors import ValidationError, problem

BOUNDARY_FORMATS = {".gpkg": "GPKG", ".geojson": "GeoJSON", ".json": "GeoJSON", ".shp": "ESRI Shapefile",
                    ".zip": "zip", ".parquet": "parquet", ".geoparquet": "parquet", ".fgb": "FlatGeobuf"}
COUNT_FORMATS = {".csv", ".txt", ".parquet"}
SHAPEFILE_PARTS = (".shp", ".shx", ".dbf")
MAX_UNCOMPRESSED_BYTES = 1 << 30  # a zip may not expand beyond this (zip bombs); the service lowers it


def _suffix(name: str) -> str:
    name = name.lower()
    return ".geoparquet" if name.endswith(".geoparquet") else os.path.splitext(name)[1]


def read_boundaries(source: str | os.PathLike | bytes, filename: str | None = None) -> gpd.GeoDataFrame:
    """Read a boundary layer from a path, or from bytes with ``filename`` giving the format."""
    name = filename or (os.fspath(source) if not isinstance(source, bytes) else "")
    ext = _suffix(name)
    if ext not in BOUNDARY_FORMATS:
        raise ValidationError(problem("unsupported_format", f"Unsupported boundary format {ext or name!r}; use one of {sorted(BOUNDARY_FORMATS)}"))
    try:
        if ext in (".parquet", ".geoparquet"):
            data = io.BytesIO(source) if isinstance(source, bytes) else source
            return gpd.read_parquet(data)
        if ext == ".zip":
            return _read_zipped_shapefile(source)
        if ext == ".shp" and not isinstance(source, bytes):
            missing = [p for p in (".shx", ".dbf") if not Path(source).with_suffix(p).exists()]
            if missing:
                raise ValidationError(problem("incomplete_shapefile", f"Shapefile {Path(source).name!r} is missing {missing}; upload all parts, ideally zipped together"))
        if isinstance(source, bytes):
            if ext == ".shp":
                raise ValidationError(problem("incomplete_shapefile", "A shapefile needs its .shx and .dbf too: upload them zipped together (.zip)"))
            return pyogrio.read_dataframe(io.BytesIO(source))
        return pyogrio.read_dataframe(source)
    except ValidationError:
        raise
    except FileNotFoundError:
        raise ValidationError(problem("not_found", f"File not found: {name}"))
    except Exception as exc:  # GDAL/Arrow errors: report, don't crash
        raise ValidationError(problem("unreadable", f"Could not read {Path(name).name!r} as {BOUNDARY_FORMATS[ext]}: {exc}"))


def _read_zipped_shapefile(source) -> gpd.GeoDataFrame:
    with zipfile.ZipFile(io.BytesIO(source) if isinstance(source, bytes) else source) as zf:
        members = [m for m in zf.infolist() if not m.is_dir() and not os.path.basename(m.filename).startswith(".")]
        shps = [m for m in members if m.filename.lower().endswith(".shp")]
        if len(shps) != 1:
            raise ValidationError(problem("bad_zip", f"The zip must hold exactly one .shp; found {len(shps)}"))
        expanded = sum(m.file_size for m in members)
        if expanded > MAX_UNCOMPRESSED_BYTES:
            raise ValidationError(problem("too_large", f"The zip expands to {expanded / 2**20:.0f} MB, more than the {MAX_UNCOMPRESSED_BYTES / 2**20:.0f} MB allowed; upload a smaller layer"))
        stem = shps[0].filename[:-4]
        parts = {m.filename[len(stem):].lower(): m for m in members if m.filename[:-4] == stem or m.filename.lower().startswith(stem.lower() + ".")}
        missing = [p for p in SHAPEFILE_PARTS if p not in parts]
        if missing:
            raise ValidationError(problem("incomplete_shapefile", f"The zipped shapefile is missing {missing}; include .shp, .shx and .dbf (and .prj)"))
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w") as out:  # flatten: GDAL reads a zip with the parts at its root
            for ext, m in parts.items():
                out.writestr("layer" + ext, zf.read(m))
        return pyogrio.read_dataframe(io.BytesIO(buf.getvalue()))


def read_counts(source: str | os.PathLike | bytes, key: str, filename: str | None = None) -> pd.DataFrame:
    """Read a count table, keeping the key as text (ids such as '01011101' keep their zeros)."""
    name = filename or (os.fspath(source) if not isinstance(source, bytes) else "")
    ext = _suffix(name)
    if ext not in COUNT_FORMATS:
        raise ValidationError(problem("unsupported_format", f"Unsupported count table format {ext or name!r}; use .csv or .parquet"))
    data = io.BytesIO(source) if isinstance(source, bytes) else source
    try:
        if ext == ".parquet":
            df = pd.read_parquet(data)
        else:
            df = pd.read_csv(data, dtype={key: str}, sep=None, engine="python", encoding="utf-8-sig")
    except FileNotFoundError:
        raise ValidationError(problem("not_found", f"File not found: {name}"))
    except UnicodeDecodeError:
        raise ValidationError(problem("bad_encoding", "The count table is not UTF-8 text; save it as UTF-8 CSV"))
    except Exception as exc:
        raise ValidationError(problem("unreadable", f"Could not read the count table {Path(name).name!r}: {exc}"))
    if key not in df.columns:
        raise ValidationError(problem("missing_key", f"Key column {key!r} is not in the count table; its columns are {list(df.columns)}"))
    return df


def join_counts(boundaries: gpd.GeoDataFrame, counts: pd.DataFrame, key: str, boundary_key: str | None = None,
                drop_unmatched: bool = False) -> gpd.GeoDataFrame:
    """Attach ``counts`` to ``boundaries``; every key must be on both sides unless ``drop_unmatched``."""
    bkey = boundary_key or key
    if bkey not in boundaries.columns:
        raise ValidationError(problem("missing_key", f"Key column {bkey!r} is not in the boundary file; its columns are {[c for c in boundaries.columns if c != 'geometry']}"))
    left = boundaries.copy()
    left["__key"] = _norm_key(left[bkey])
    right = counts.copy()
    right["__key"] = _norm_key(right[key])
    problems = []
    for side, frame, col in (("count table", right, key), ("boundary file", left, bkey)):
        dup = frame["__key"][frame["__key"].duplicated()]
        if len(dup):
            problems.append(problem("duplicate_id", f"The {side} has duplicate keys in {col!r}; keep one row per area", sorted(set(dup))))
    only_counts = sorted(set(right["__key"]) - set(left["__key"]))
    only_areas = sorted(set(left["__key"]) - set(right["__key"]))
    if (only_counts or only_areas) and not drop_unmatched:
        if only_counts:
            problems.append(problem("unmatched_key", f"{len(only_counts)} keys in the count table have no polygon; fix the keys or drop those rows (CLI: --drop-unmatched)", only_counts))
        if only_areas:
            problems.append(problem("unmatched_key", f"{len(only_areas)} polygons have no row in the count table; add their counts or drop them (CLI: --drop-unmatched)", only_areas))
    if problems:
        raise ValidationError(problems)
    right = right.drop(columns=[c for c in right.columns if c in left.columns and c != "__key"] + ([key] if key != bkey and key in right.columns else []), errors="ignore")
    merged = left.merge(right, on="__key", how="inner", validate="many_to_one")
    merged[bkey] = merged.pop("__key")
    return gpd.GeoDataFrame(merged, geometry=boundaries.geometry.name, crs=boundaries.crs)


def _norm_key(s: pd.Series) -> pd.Series:
    s = s.astype(str).str.strip()
    return s.str.replace(r"\.0$", "", regex=True)


def load_dataset(
    boundaries: str | os.PathLike | bytes | gpd.GeoDataFrame,
    *,
    groups: Sequence[str],
    total: str | None = None,
    counts: str | os.PathLike | bytes | pd.DataFrame | None = None,
    key: str | None = None,
    boundary_key: str | None = None,
    name_col: str | None = None,
    region_col: str | None = None,
    drop_unmatched: bool = False,
    boundaries_filename: str | None = None,
    counts_filename: str | None = None,
    meta: Metadata | None = None,
) -> AreaDataset:
    """Read, join and validate in one call. ``key`` names the join key (and the area id)."""
    gdf = boundaries if isinstance(boundaries, gpd.GeoDataFrame) else read_boundaries(boundaries, boundaries_filename)
    if counts is not None:
        if key is None:
            raise ValidationError(problem("missing_key", "A count table needs --key: the column that joins it to the boundaries"))
        table = counts if isinstance(counts, pd.DataFrame) else read_counts(counts, key, counts_filename)
        gdf = join_counts(gdf, table, key, boundary_key, drop_unmatched)
        id_col = boundary_key or key
    else:
        id_col = boundary_key or key
    if meta is None:
        src = boundaries_filename or (Path(boundaries).name if isinstance(boundaries, (str, os.PathLike)) else None)
        meta = Metadata(name=Path(src).stem if src else "dataset", source=src)
    return validate(gdf, id_col=id_col, groups=groups, total=total, name_col=name_col, region_col=region_col, meta=meta)
