"""Writing areas as GeoParquet with their WKB encoded once, so the caller can hash the same bytes.

At a million areas encoding WKB takes seconds; geopandas' ``to_parquet`` would encode it again. The file is
what geopandas writes (GeoParquet 1.0.0 metadata: WKB, PROJJSON CRS, geometry types, bbox) and reads back.
"""

from __future__ import annotations

import json
import os

import geopandas as gpd
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import shapely

_TYPES = {
    0: "Point",
    1: "LineString",
    2: "LinearRing",
    3: "Polygon",
    4: "MultiPoint",
    5: "MultiLineString",
    6: "MultiPolygon",
    7: "GeometryCollection",
}


def wkb_of(areas: gpd.GeoDataFrame) -> tuple[np.ndarray, bool]:
    """(WKB of every geometry, whether any has Z). 2D WKB is the same in the ISO and extended flavours."""
    values = areas.geometry.values
    has_z = bool(shapely.has_z(values).any())
    return shapely.to_wkb(values, flavor="iso" if has_z else "extended"), has_z


def write_geoparquet(areas: gpd.GeoDataFrame, wkb: np.ndarray, path: str | os.PathLike) -> None:
    """Write ``areas`` to ``path`` as GeoParquet, its geometry column given as ``wkb`` (from :func:`wkb_of`)."""
    name = areas.geometry.name
    frame = pd.DataFrame(areas.drop(columns=name))
    frame.insert(list(areas.columns).index(name), name, wkb)
    table = pa.Table.from_pandas(frame, preserve_index=False)
    meta = dict(table.schema.metadata or {})
    meta[b"geo"] = json.dumps(_geo_metadata(areas)).encode()
    pq.write_table(table.replace_schema_metadata(meta), path)


def _geo_metadata(areas: gpd.GeoDataFrame) -> dict:
    values = areas.geometry.values
    kinds = shapely.get_type_id(values).astype(np.int64) * 2 + shapely.has_z(values)
    types = [_TYPES[k // 2] + (" Z" if k % 2 else "") for k in np.unique(kinds[kinds >= 0])]
    bbox = [float(v) for v in areas.geometry.total_bounds]
    column = {"encoding": "WKB", "crs": areas.crs.to_json_dict() if areas.crs else None, "geometry_types": types}
    if np.isfinite(bbox).all():
        column["bbox"] = bbox
    return {"primary_column": areas.geometry.name, "columns": {areas.geometry.name: column}, "version": "1.0.0"}
