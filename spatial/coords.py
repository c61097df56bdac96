"""Coordinates that fit their CRS: finite, inside the CRS's area of use, and in its units.

A layer whose coordinates are NaN, infinite or 10^15 m breaks every later step (bounds turn infinite, and
JSON cannot carry them); one in degrees labelled as metres, or the reverse, gives distances that are off
by five orders of magnitude. Both are caught here, with a message that says what to fix.
"""

from __future__ import annotations

import numpy as np
import shapely
from pyproj import CRS, Transformer
from pyproj.exceptions import ProjError

from .errors import Problem, problem

FAR = 1e9  # beyond any place on Earth in metres or feet (the equator is 4e7 m, 1.3e8 ft)
AREA_MARGIN_DEG = 10.0  # layers may spill beyond a CRS's area of use (a UTM zone's neighbours): only gross errors count
_FIX_CRS = "Set the layer's real CRS (in QGIS: Layer ▸ Set CRS; or ogr2ogr -a_srs) and upload again"


def coordinate_problems(geometry, crs, ids=None, *, degrees_as_metres: bool = True) -> list[Problem]:
    """Problems with the coordinates of ``geometry`` (a GeoSeries or array) in ``crs``; empty when they fit.

    ``ids`` name the areas in messages (default: row numbers). ``degrees_as_metres`` flags a projected
    layer lying wholly within ±180 × ±90 units: right for files (no real set of areas spans less than 360 m),
    wrong for the unit-square grids that code builds in memory.
    """
    geoms = np.asarray(geometry, dtype=object)
    coords = shapely.get_coordinates(geoms)
    if not len(coords):
        return []
    if not np.isfinite(coords).all():  # which areas: only then worth the index of every vertex
        coords, index = shapely.get_coordinates(geoms, return_index=True)
        return [_non_finite(np.unique(index[~np.isfinite(coords).all(axis=1)]), ids)]
    if crs is None:
        return []
    crs = CRS.from_user_input(crs)
    (xmin, ymin), (xmax, ymax) = coords.min(axis=0), coords.max(axis=0)
    extent = (xmin, ymin, xmax, ymax)
    found = _wrong_units(crs, extent, degrees_as_metres)
    if found is None:
        found = _outside_area(crs, extent)
    return [] if found is None else [found]


def _where(extent: tuple) -> str:
    xmin, ymin, xmax, ymax = extent
    return f"x {xmin:,.6g} to {xmax:,.6g}, y {ymin:,.6g} to {ymax:,.6g}"


def _non_finite(rows: np.ndarray, ids) -> Problem:
    names = [ids[i] for i in rows] if ids is not None else rows
    return problem(
        "non_finite_coordinates",
        f"{len(rows)} areas have NaN (not a number) or infinite coordinates; "
        "fix or remove those vertices and upload again" + ("" if ids is not None else " (rows, 0-based)"),
        names,
    )


def _wrong_units(crs: CRS, extent: tuple, degrees_as_metres: bool) -> Problem | None:
    """Metres in a degrees CRS, or degrees in a metres/feet one."""
    xmin, ymin, xmax, ymax = extent
    if crs.is_geographic:
        if xmin < -360 or xmax > 360 or ymin < -90.000001 or ymax > 90.000001:
            return problem(
                "coordinates_not_degrees",
                f"The coordinates run {_where(extent)}, but the layer's CRS {_label(crs)} is "
                "longitude/latitude in degrees (within ±180 and ±90): they look like metres or feet of a "
                f"projected CRS. {_FIX_CRS}",
            )
    elif degrees_as_metres and _linear(crs) and -180 <= xmin and xmax <= 180 and -90 <= ymin and ymax <= 90:
        return problem(
            "coordinates_look_like_degrees",
            f"The coordinates run {_where(extent)}, which looks like longitude/"
            f"latitude in degrees, but the layer's CRS {_label(crs)} is in {_UNITS[crs.axis_info[0].unit_name]}. "
            f"If they are degrees, set the CRS to EPSG:4326. {_FIX_CRS}",
        )
    return None


def _outside_area(crs: CRS, extent: tuple) -> Problem | None:
    """Coordinates far outside the CRS's area of use (or, when none is known, off the Earth)."""
    xmin, ymin, xmax, ymax = extent
    box = _usable_box(crs)
    if box is None and not crs.is_geographic:  # no area of use known: at least somewhere on Earth, in any unit
        box = (-FAR, -FAR, FAR, FAR)
    if box is None or (box[0] <= xmin and xmax <= box[2] and box[1] <= ymin and ymax <= box[3]):
        return None
    area = crs.area_of_use.name if crs.area_of_use else "anywhere on Earth"
    return problem(
        "coordinates_outside_crs",
        f"The coordinates run {_where(extent)}, far outside where the layer's CRS "
        f"{_label(crs)} is used ({area}: about x {box[0]:,.6g} to {box[2]:,.6g}, y {box[1]:,.6g} to "
        f"{box[3]:,.6g}, margin included). Check the coordinates, or whether the CRS is the right one. "
        f"{_FIX_CRS}",
    )


def _label(crs: CRS) -> str:
    epsg = crs.to_epsg()
    return f"EPSG:{epsg}" if epsg else repr(crs.name)


_UNITS = {"metre": "metres", "meter": "metres", "foot": "feet", "US survey foot": "US survey feet"}


def _linear(crs: CRS) -> bool:
    return bool(crs.axis_info) and crs.axis_info[0].unit_name in _UNITS


def _usable_box(crs: CRS) -> tuple[float, float, float, float] | None:
    """The CRS's area of use widened by :data:`AREA_MARGIN_DEG`, in the CRS's own x/y; None when unknown."""
    area = crs.area_of_use
    if area is None:
        return None
    west, south, east, north = area.bounds
    if east < west or east - west >= 359:  # crosses the antimeridian, or the whole world: any longitude
        west, east = -360.0, 360.0
    if crs.is_geographic:
        m = AREA_MARGIN_DEG
        return west - m, max(south - m, -90.0), east + m, min(north + m, 90.0)
    for m, widen in ((AREA_MARGIN_DEG, 0.0), (0.0, 0.1)):  # a margin may reach where the projection is undefined
        try:
            box = Transformer.from_crs(4326, crs, always_xy=True).transform_bounds(
                max(west - m, -180.0), max(south - m, -90.0), min(east + m, 180.0), min(north + m, 90.0), densify_pts=21
            )
        except ProjError:
            continue
        if np.isfinite(box).all():
            dx, dy = (box[2] - box[0]) * widen, (box[3] - box[1]) * widen
            return box[0] - dx, box[1] - dy, box[2] + dx, box[3] + dy
    return None
