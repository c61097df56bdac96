"""Reading boundaries and count tables, joining them, and returning a validated dataset.

Boundaries: GeoPackage, GeoJSON, Shapefile (plain or zipped), GeoParquet, FlatGeobuf.
Counts: CSV or Parquet, joined on a key column; or the boundary file's own columns.
Readers take a local path or the raw bytes of an upload (with its file name as a format hint).

Uploads are untrusted. segmap, not GDAL, chooses the format, from the file name, and the bytes must carry
that format's signature (:mod:`.checks`); GDAL keeps only the four drivers segmap reads and reaches no
network (:mod:`.gdal`), so a file can never make the server open another file or a URL. Bytes are read
in memory only. Limits hold before decoding: zip members by declared size and compression, Parquet by its
page headers and still-coded dictionaries (:mod:`.parquet`), vertices by counting positions, records or
WKB headers; the exact vertex count is checked again before any repair. Coordinates must fit their CRS
(:mod:`spatial.coords`).
"""

from __future__ import annotations

import io
import logging
import os
from collections.abc import Sequence
from pathlib import Path

import geopandas as gpd
import pandas as pd
import shapely

from ..coords import coordinate_problems
from ..dataset import AreaDataset, Metadata, geometry_problems, validate
from ..errors import ValidationError, problem
from . import checks, parquet
from .gdal import read_vector
from .geopackage import check_geopackage
from .shapefile import unpack_shapefile

log = logging.getLogger("segmap.io")

BOUNDARY_FORMATS = {
    ".gpkg": "GPKG",
    ".geojson": "GeoJSON",
    ".json": "GeoJSON",
    ".shp": "ESRI Shapefile",
    ".zip": "zip",
    ".parquet": "parquet",
    ".geoparquet": "parquet",
    ".fgb": "FlatGeobuf",
}
COUNT_FORMATS = {".csv", ".txt", ".parquet"}
# What a zip or Parquet file may decode to when the caller names no limit; the service passes its own setting
# (max_uncompressed_bytes) on every call, and nothing assigns this.
MAX_UNCOMPRESSED_BYTES = 1 << 30


def _suffix(name: str) -> str:
    name = name.lower()
    return ".geoparquet" if name.endswith(".geoparquet") else os.path.splitext(name)[1]


def read_boundaries(
    source: str | os.PathLike | bytes,
    filename: str | None = None,
    *,
    max_vertices: int | None = None,
    max_uncompressed_bytes: int | None = None,
    check_coordinates: bool = True,
) -> gpd.GeoDataFrame:
    """Read a boundary layer from a path, or from bytes with ``filename`` giving the format.

    ``max_vertices`` (none by default) is enforced before decoding where the format allows, and exactly
    before returning; ``max_uncompressed_bytes`` defaults to :data:`MAX_UNCOMPRESSED_BYTES`.
    ``check_coordinates=False`` leaves the coordinates to the caller's validation (which names areas by id,
    together with every other problem).
    """
    name = filename or (os.fspath(source) if not isinstance(source, bytes) else "")
    ext = _suffix(name)
    if ext not in BOUNDARY_FORMATS:
        raise ValidationError(
            problem(
                "unsupported_format",
                f"Unsupported boundary format {ext or name!r}; use one of {sorted(BOUNDARY_FORMATS)}",
            )
        )
    fmt, shown = BOUNDARY_FORMATS[ext], Path(name).name
    limit = MAX_UNCOMPRESSED_BYTES if max_uncompressed_bytes is None else max_uncompressed_bytes
    if not isinstance(source, bytes):
        source = os.fspath(source)
        if not os.path.isfile(source):
            raise ValidationError(problem("not_found", f"File not found: {name}"))
    if fmt == "ESRI Shapefile":
        _check_shapefile_parts(source, shown)
    checks.expect(fmt, checks.head_of(source), shown)
    if fmt == "parquet":
        gdf = _read_geoparquet(source, shown, limit, max_vertices)
    elif fmt == "zip":
        gdf = read_vector(unpack_shapefile(source, shown, limit, max_vertices), checks.LABELS[fmt], shown)
    else:
        gdf = _read_with_gdal(source, fmt, shown, max_vertices)
    if not isinstance(gdf, gpd.GeoDataFrame) or gdf.geometry.name not in gdf.columns:
        raise ValidationError(problem("no_geometry", f"{shown!r} has no geometry column; upload a layer with polygons"))
    _check_vertices(gdf, max_vertices)
    problems = coordinate_problems(gdf.geometry.values, gdf.crs) if check_coordinates else []
    if problems:
        raise ValidationError(problems)
    return gdf


def _check_shapefile_parts(source: str | bytes, shown: str) -> None:
    """A plain .shp is read from disk beside its .shx and .dbf; alone (as bytes, or without them) it is refused."""
    if isinstance(source, bytes):
        raise ValidationError(
            problem(
                "incomplete_shapefile", "A shapefile needs its .shx and .dbf too: upload them zipped together (.zip)"
            )
        )
    missing = [p for p in (".shx", ".dbf") if not Path(source).with_suffix(p).exists()]
    if missing:
        raise ValidationError(
            problem(
                "incomplete_shapefile",
                f"Shapefile {shown!r} is missing {missing}; upload all parts, ideally zipped together",
            )
        )


def _read_geoparquet(source: str | bytes, shown: str, limit: int, max_vertices: int | None) -> gpd.GeoDataFrame:
    data = source if isinstance(source, bytes) else Path(source).read_bytes()
    parquet.check(data, shown, limit, max_vertices)
    try:
        return gpd.read_parquet(io.BytesIO(data))
    except Exception as exc:
        log.warning("could not read GeoParquet %r: %r", shown, exc)
        raise ValidationError(
            problem(
                "unreadable",
                f"Could not read {shown!r} as GeoParquet: the file is damaged or "
                "has no geometry column (GeoParquet 'geo' metadata). Export it again and "
                "upload that",
            )
        ) from None


def _read_with_gdal(source: str | bytes, fmt: str, shown: str, max_vertices: int | None) -> gpd.GeoDataFrame:
    """GeoJSON, GeoPackage, Shapefile or FlatGeobuf, after the checks GDAL would not make."""
    if fmt == "GeoJSON":  # GDAL holds a whole GeoJSON in memory anyway: read it once, check it, hand it over
        source = source if isinstance(source, bytes) else Path(source).read_bytes()
        checks.check_geojson_vertices(source, max_vertices)
        checks.check_geojson_crs(source, shown)
    if fmt == "GPKG":
        check_geopackage(source, shown)
    # LIST_ALL_TABLES=NO: only the layers gpkg_contents registers (checked above), never other tables or views.
    return read_vector(source, checks.LABELS[fmt], shown, **({"LIST_ALL_TABLES": "NO"} if fmt == "GPKG" else {}))


def _check_vertices(gdf: gpd.GeoDataFrame, max_vertices: int | None) -> None:
    if max_vertices is not None:
        vertices = int(shapely.get_num_coordinates(gdf.geometry.values).sum())
        if vertices > max_vertices:
            raise checks.too_complex(vertices, max_vertices)


def read_counts(
    source: str | os.PathLike | bytes,
    key: str,
    filename: str | None = None,
    *,
    max_uncompressed_bytes: int | None = None,
) -> pd.DataFrame:
    """Read a count table, keeping the key as text (ids such as '01011101' keep their zeros)."""
    name = filename or (os.fspath(source) if not isinstance(source, bytes) else "")
    ext = _suffix(name)
    if ext not in COUNT_FORMATS:
        raise ValidationError(
            problem("unsupported_format", f"Unsupported count table format {ext or name!r}; use .csv or .parquet")
        )
    if not isinstance(source, bytes) and not os.path.isfile(source):
        raise ValidationError(problem("not_found", f"File not found: {name}"))
    shown = Path(name).name
    limit = MAX_UNCOMPRESSED_BYTES if max_uncompressed_bytes is None else max_uncompressed_bytes
    checks.expect("counts-parquet" if ext == ".parquet" else "csv", checks.head_of(source), shown)
    try:
        if ext == ".parquet":
            data = source if isinstance(source, bytes) else Path(source).read_bytes()
            parquet.check(data, shown, limit)
            df = pd.read_parquet(io.BytesIO(data))
        else:
            df = pd.read_csv(
                io.BytesIO(source) if isinstance(source, bytes) else source,
                dtype={key: str},
                sep=None,
                engine="python",
                encoding="utf-8-sig",
            )
    except ValidationError:
        raise
    except UnicodeDecodeError:
        raise ValidationError(
            problem("bad_encoding", "The count table is not UTF-8 text; save it as UTF-8 CSV")
        ) from None
    except Exception as exc:
        log.warning("could not read count table %r: %r", shown, exc)
        raise ValidationError(
            problem(
                "unreadable",
                f"Could not read the count table {shown!r}: it is damaged, or not "
                f"{'Parquet' if ext == '.parquet' else 'a CSV table with one header row'}",
            )
        ) from None
    if key not in df.columns:
        raise ValidationError(
            problem("missing_key", f"Key column {key!r} is not in the count table; its columns are {list(df.columns)}")
        )
    return df


def join_counts(
    boundaries: gpd.GeoDataFrame,
    counts: pd.DataFrame,
    key: str,
    boundary_key: str | None = None,
    drop_unmatched: bool = False,
) -> gpd.GeoDataFrame:
    """Attach ``counts`` to ``boundaries``; every key must be on both sides unless ``drop_unmatched``."""
    bkey = boundary_key or key
    if bkey not in boundaries.columns:
        raise ValidationError(
            problem(
                "missing_key",
                f"Key column {bkey!r} is not in the boundary file; its columns are {[c for c in boundaries.columns if c != 'geometry']}",
            )
        )
    left = boundaries.copy()
    left["__key"] = _norm_key(left[bkey])
    right = counts.copy()
    right["__key"] = _norm_key(right[key])
    problems = []
    for side, frame, col in (("count table", right, key), ("boundary file", left, bkey)):
        dup = frame["__key"][frame["__key"].duplicated()]
        if len(dup):
            problems.append(
                problem(
                    "duplicate_id", f"The {side} has duplicate keys in {col!r}; keep one row per area", sorted(set(dup))
                )
            )
    only_counts = sorted(set(right["__key"]) - set(left["__key"]))
    only_areas = sorted(set(left["__key"]) - set(right["__key"]))
    if (only_counts or only_areas) and not drop_unmatched:
        if only_counts:
            problems.append(
                problem(
                    "unmatched_key",
                    f"{len(only_counts)} keys in the count table have no polygon; fix the keys or drop those rows (CLI: --drop-unmatched)",
                    only_counts,
                )
            )
        if only_areas:
            problems.append(
                problem(
                    "unmatched_key",
                    f"{len(only_areas)} polygons have no row in the count table; add their counts or drop them (CLI: --drop-unmatched)",
                    only_areas,
                )
            )
    if problems:
        raise ValidationError(problems)
    right = right.drop(
        columns=[c for c in right.columns if c in left.columns and c != "__key"]
        + ([key] if key != bkey and key in right.columns else []),
        errors="ignore",
    )
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
    max_vertices: int | None = None,
    max_uncompressed_bytes: int | None = None,
    tolerance: float = 0,
    check_overlaps: bool = True,
) -> AreaDataset:
    """Read, join and validate in one call. ``key`` names the join key (and the area id).

    ``tolerance``: groups over the total by up to this many people are clipped and reported
    (:func:`spatial.dataset.validate`); 0 refuses them. ``check_overlaps``: areas overlapping each other are
    refused (:mod:`spatial.overlaps`): every path that publishes a dataset loads it here.

    The limits (none by default, see :func:`read_boundaries`) apply to files read here; a GeoDataFrame
    passed in is checked for vertices before validation repairs anything.
    """
    from_file = not isinstance(boundaries, gpd.GeoDataFrame)
    if not from_file:
        gdf = boundaries
        _check_vertices(gdf, max_vertices)
    else:
        gdf = read_boundaries(
            boundaries,
            boundaries_filename,
            max_vertices=max_vertices,
            max_uncompressed_bytes=max_uncompressed_bytes,
            check_coordinates=False,  # validate checks them, naming the areas with every other problem
        )
    if counts is not None:
        if key is None:
            raise ValidationError(
                problem("missing_key", "A count table needs --key: the column that joins it to the boundaries")
            )
        table = (
            counts
            if isinstance(counts, pd.DataFrame)
            else read_counts(counts, key, counts_filename, max_uncompressed_bytes=max_uncompressed_bytes)
        )
        gdf = _join_naming_shapes(
            gdf, table, key, boundary_key, drop_unmatched, from_file=from_file, overlaps=check_overlaps
        )
    id_col = boundary_key or key
    if meta is None:
        src = boundaries_filename or (Path(boundaries).name if isinstance(boundaries, (str, os.PathLike)) else None)
        meta = Metadata(name=Path(src).stem if src else "dataset", source=src)
    return validate(
        gdf,
        id_col=id_col,
        groups=groups,
        total=total,
        name_col=name_col,
        region_col=region_col,
        meta=meta,
        tolerance=tolerance,
        from_file=from_file,
        overlaps=check_overlaps,
    )


def _join_naming_shapes(
    gdf, table, key, boundary_key, drop_unmatched, *, from_file: bool, overlaps: bool
) -> gpd.GeoDataFrame:
    """:func:`join_counts`; when it refuses the keys, the shapes' problems are named in the same answer."""
    try:
        return join_counts(gdf, table, key, boundary_key, drop_unmatched)
    except ValidationError as exc:
        bkey = boundary_key or key
        if bkey not in gdf.columns:
            raise
        ids = _norm_key(gdf[bkey]).reset_index(drop=True)
        geom = gdf.geometry.reset_index(drop=True)
        found, _ = geometry_problems(geom, ids, degrees_as_metres=from_file, refused=True, overlaps=overlaps)
        if not found:
            raise
        raise ValidationError(exc.problems + found) from None
