"""Choosing a metric CRS so distances and areas are in metres."""

from __future__ import annotations

import geopandas as gpd
import numpy as np
import shapely
from pyproj import CRS, Transformer

from .errors import ValidationError


def metric_crs(gdf: gpd.GeoDataFrame) -> CRS:
    """The CRS to measure in: the layer's own if it is projected in metres, else its local UTM zone."""
    if gdf.crs is None:
        raise ValidationError(
            "The boundary file has no CRS. Add a .prj (or set the CRS, e.g. EPSG:4326) and upload again.", code="no_crs"
        )
    crs = CRS.from_user_input(gdf.crs)
    if crs.is_projected and crs.axis_info and crs.axis_info[0].unit_name in ("metre", "meter"):
        # Web Mercator distorts distances by 1/cos(lat): never measure in it.
        if crs.to_epsg() not in (3857, 3395, 900913):
            return crs
    utm = gdf.estimate_utm_crs() if len(gdf) else None
    if utm is None:
        raise ValidationError("Cannot choose a metric CRS for an empty layer.", code="empty")
    return utm


def to_metric(gdf: gpd.GeoDataFrame) -> gpd.GeoDataFrame:
    crs = metric_crs(gdf)
    return gdf if gdf.crs == crs else gdf.to_crs(crs)


def equal_area_crs(gdf: gpd.GeoDataFrame) -> CRS:
    """A Lambert azimuthal equal-area CRS centred on the layer, for measuring areas exactly."""
    if gdf.crs is None:
        raise ValidationError("The layer has no CRS. Set one (e.g. EPSG:4326) and try again.", code="no_crs")
    lon, lat = _centre(gdf) if len(gdf) else (0.0, 0.0)
    return CRS.from_proj4(f"+proj=laea +lat_0={lat:.6f} +lon_0={lon:.6f} +x_0=0 +y_0=0 +ellps=WGS84 +units=m +no_defs")


def _centre(gdf: gpd.GeoDataFrame) -> tuple[float, float]:
    """Longitude and latitude of the layer's area-weighted centroid: its union's for areas that do not overlap,
    without the union (30 s at a million areas). Any centre near the layer keeps areas exact (equal-area)."""
    geoms = np.asarray(gdf.geometry.values, dtype=object)
    points = shapely.centroid(geoms)
    coords, index = shapely.get_coordinates(points, return_index=True)  # empty areas have no centroid
    centroids = np.full((len(geoms), 2), np.nan)
    centroids[index] = coords
    weight = shapely.area(geoms)
    ok = np.isfinite(centroids).all(axis=1)
    weight = np.where(ok, weight, 0.0) if weight[ok].sum() > 0 else ok.astype(float)
    x, y = (centroids[ok] * weight[ok, None]).sum(axis=0) / weight[ok].sum()
    lon, lat = Transformer.from_crs(gdf.crs, 4326, always_xy=True).transform(x, y)
    return float(lon), float(lat)
