"""Checking and measuring the layers harmonisation reads: counts, ids, polygons, the equal-area CRS."""

from __future__ import annotations

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from pyproj import CRS

from ..crs import equal_area_crs
from ..errors import ValidationError, problem


def count_matrix(source, counts: list[str]) -> np.ndarray:
    if not isinstance(source, gpd.GeoDataFrame):
        raise ValidationError(problem("not_a_layer", "The source must be a layer with geometry"))
    if not counts:
        raise ValidationError(problem("no_counts", "Name at least one count column to carry"))
    missing = [c for c in counts if c not in source.columns]
    if missing:
        cols = [c for c in source.columns if c != source.geometry.name]
        raise ValidationError(problem("unknown_column", f"No count column {missing} in the source; columns are {cols}"))
    out = np.empty((len(source), len(counts)))
    for k, c in enumerate(counts):
        v = pd.to_numeric(source[c], errors="coerce").to_numpy(float)
        bad = ~np.isfinite(v) | (v < 0)
        if bad.any():
            raise ValidationError(
                problem("bad_count", f"{int(bad.sum())} source areas have a missing, non-numeric or negative {c!r}")
            )
        out[:, k] = v
    return out


def _is_equal_area(crs: CRS) -> bool:
    op = crs.coordinate_operation
    name = (op.method_name if op is not None else "").lower()
    return crs.is_projected and ("equal area" in name or name in ("mollweide", "sinusoidal", "equal earth"))


def area_crs(source: gpd.GeoDataFrame) -> CRS:
    if source.crs is None:
        raise ValidationError(problem("no_crs", "The source layer has no CRS; set one (e.g. EPSG:4326)"))
    crs = CRS.from_user_input(source.crs)
    return crs if _is_equal_area(crs) else equal_area_crs(source)


def _polygonal(geo: np.ndarray) -> np.ndarray:
    """Valid polygons: invalid ones (often pinched by reprojection) repaired, keeping only their areas."""
    bad = ~shapely.is_valid(geo)
    if bad.any():
        geo = geo.copy()
        geo[bad] = shapely.make_valid(geo[bad], method="structure", keep_collapsed=False)
    return geo


def layer(gdf, key: str, role: str, crs: CRS) -> tuple[np.ndarray, np.ndarray]:
    """(ids as strings, polygons in ``crs``), refusing what cannot be measured."""
    if not isinstance(gdf, gpd.GeoDataFrame):
        raise ValidationError(problem("not_a_layer", f"The {role} must be a layer with geometry"))
    if gdf.crs is None:
        raise ValidationError(problem("no_crs", f"The {role} layer has no CRS; set one (e.g. EPSG:4326)"))
    if len(gdf) == 0:
        raise ValidationError(problem("empty", f"The {role} layer has no areas"))
    if key not in gdf.columns:
        cols = [c for c in gdf.columns if c != gdf.geometry.name]
        raise ValidationError(problem("missing_key", f"No id column {key!r} in the {role}; columns are {cols}"))
    ids = gdf[key].astype(str).to_numpy()
    dup = pd.Series(ids).duplicated(keep=False).to_numpy()
    if dup.any():
        raise ValidationError(problem("duplicate_id", f"{role} ids must be unique; repeated", np.unique(ids[dup])))
    geo = np.asarray(gdf.geometry.values, dtype=object)
    empty = shapely.is_missing(geo) | shapely.is_empty(geo)
    polygon = np.isin(shapely.get_type_id(geo), (3, 6))  # Polygon, MultiPolygon
    if (empty | ~polygon).any():
        raise ValidationError(
            problem("not_polygons", f"{role} areas must be non-empty polygons; these are not", ids[empty | ~polygon])
        )
    if CRS.from_user_input(gdf.crs) != crs:
        geo = np.asarray(gdf.geometry.to_crs(crs).values, dtype=object)
    return ids, _polygonal(geo)


def weight_columns(weight_column, counts: list[str]) -> dict[str, str]:
    """count → finer-layer column."""
    if weight_column is None:
        raise ValidationError(
            problem(
                "missing_weights",
                "The population method needs a finer layer with counts (weights) and its count column "
                "(weight_column), e.g. the old planning areas and their inhabitants",
            )
        )
    if isinstance(weight_column, str):
        return dict.fromkeys(counts, weight_column)
    missing = [c for c in counts if c not in weight_column]
    if missing:
        raise ValidationError(problem("missing_weights", f"No finer-layer column given for the counts {missing}"))
    return {c: str(weight_column[c]) for c in counts}


def fine_layer(weights, columns: list[str], crs: CRS) -> tuple[np.ndarray, pd.DataFrame]:
    """(polygons in ``crs``, people per polygon in each of ``columns``) of the finer layer."""
    if weights is None:
        raise ValidationError(
            problem("missing_weights", "The population method needs a finer layer with counts (weights)")
        )
    missing = [c for c in columns if c not in getattr(weights, "columns", ())]
    if missing:
        raise ValidationError(problem("unknown_column", f"No count column {missing} in the finer layer"))
    pop = weights[columns].apply(pd.to_numeric, errors="coerce").astype(float)
    bad = ~np.isfinite(pop.to_numpy()).all(axis=1) | (pop.to_numpy() < 0).any(axis=1)
    if bad.any():
        raise ValidationError(
            problem("bad_count", f"{int(bad.sum())} units of the finer layer have a missing or negative {columns}")
        )
    _, geo = layer(weights.assign(_row=np.arange(len(weights))), "_row", "finer layer", crs)
    return geo, pop


def raster_cells(values, origin: tuple[float, float], cell_size: tuple[float, float], crs, column: str = "population"):
    """A population raster as a finer layer for the population method: one square per cell with a value, in
    ``column``. ``origin`` is the top-left corner (x, y) and ``cell_size`` (width, height) in the CRS's units,
    as a north-up GeoTIFF's transform gives them (rows run south). NaN cells (no data) are left out, so a
    source area over them is refused as not covered; cells of 0 are kept: nobody lives there."""
    v = np.asarray(values, dtype=float)
    w, h = (float(c) for c in cell_size)
    if v.ndim != 2 or not (w > 0 and h > 0):
        raise ValidationError(problem("bad_raster", "A population raster is a 2-D array with positive cell sizes"))
    if (v[np.isfinite(v)] < 0).any() or np.isinf(v).any():
        raise ValidationError(problem("bad_raster", "The population raster has negative or infinite cells"))
    rows, cols = np.nonzero(np.isfinite(v))
    x0, y0 = (float(c) for c in origin)
    cells = shapely.box(x0 + cols * w, y0 - (rows + 1) * h, x0 + (cols + 1) * w, y0 - rows * h)
    return gpd.GeoDataFrame({column: v[rows, cols]}, geometry=cells, crs=crs)
