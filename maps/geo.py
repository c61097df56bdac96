"""Areas as GeoJSON for the map pages and the data link: WGS84, coordinates rounded to what the map shows."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import shapely
from shapely.errors import ShapelyError

from spatial.dataset import ID, AreaDataset

from .data import SHARE_VIEWS, ViewData

DATA_COLUMNS = (ID, "name", "total", "count", "share", "value", "p_value", "label", "colour")


def _digits(bounds) -> int:
    """Decimal places for lon/lat that keep ~1/4000 of the extent: what the fitted zoom needs."""
    extent = max(bounds[2] - bounds[0], bounds[3] - bounds[1], 1e-6)
    return int(min(6, max(3, math.ceil(-math.log10(extent / 4000)))))


def _geometries(dataset: AreaDataset, digits: int | None = None):
    wgs = dataset.areas.to_crs(4326)
    digits = digits if digits is not None else _digits(wgs.total_bounds)
    geoms = wgs.geometry.to_numpy()
    try:  # shared edges stay shared: no gaps or slivers between neighbours after simplifying
        geoms = shapely.coverage_simplify(geoms, 10.0**-digits)
    except ShapelyError:  # GEOS before 3.12, or areas that are not a clean coverage
        geoms = shapely.simplify(geoms, 10.0**-digits, preserve_topology=True)
    return shapely.transform(geoms, lambda c: np.round(c, digits))


def _clean(rec: dict) -> dict:
    return {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in rec.items()}


def _round(v, digits=4):
    return None if v is None or not math.isfinite(v) else round(float(v), digits)


def _feature(geometry, properties: dict) -> dict:
    return {"type": "Feature", "properties": properties, "geometry": shapely.geometry.mapping(geometry)}


def geojson(dataset: AreaDataset, vd: ViewData, digits: int | None = None) -> dict:
    """Areas in WGS84 with rounded coordinates and one view's numbers as properties (the data link)."""
    f = vd.frame
    records = f[[c for c in DATA_COLUMNS if c in f]].to_dict("records")
    features = [_feature(g, _clean(rec)) for g, rec in zip(_geometries(dataset, digits), records)]
    return {"type": "FeatureCollection", "features": features}


def page_geojson(dataset: AreaDataset, data: dict[str, ViewData], digits: int | None = None) -> tuple[dict, dict]:
    """One geometry per area for every view, kept small: per view a class code (``k_<view>``) into a
    palette of (label, colour), the value (``v_<view>``) and p-value (``p_<view>``) to 4 decimals.
    Returns (GeoJSON, palettes by view). Full precision stays in the data link."""
    first = next(iter(data.values())).frame
    codes, palettes = {}, {}
    for v, vd in data.items():
        pairs = vd.frame["label"].astype(str) + "\x00" + vd.frame["colour"].astype(str)
        codes[v], uniques = pd.factorize(pairs)
        palettes[v] = [u.split("\x00") for u in uniques]
    features = []
    for n, g in enumerate(_geometries(dataset, digits)):
        props = {
            ID: str(first[ID].iat[n]),
            "name": str(first["name"].iat[n]),
            "total": _round(first["total"].iat[n], 1),
            "count": _round(first["count"].iat[n], 1),
            "share": _round(first["share"].iat[n], 5),
        }
        for v, vd in data.items():
            props[f"k_{v}"] = int(codes[v][n])
            if v not in SHARE_VIEWS:
                props[f"v_{v}"] = _round(vd.frame["value"].iat[n])
                props[f"p_{v}"] = _round(vd.frame["p_value"].iat[n])
        features.append(_feature(g, props))
    return {"type": "FeatureCollection", "features": features}, palettes
