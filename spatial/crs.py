"""Choosing a metric CRS so distances and areas are in metres."""

from __future__ import annotations

import geopandas as gpd
from pyproj import CRS

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
    lon, lat = gdf.to_crs(4326).union_all().centroid.coords[0] if len(gdf) else (0.0, 0.0)
    return CRS.from_proj4(f"+proj=laea +lat_0={lat:.6f} +lon_0={lon:.6f} +x_0=0 +y_0=0 +ellps=WGS84 +units=m +no_defs")
