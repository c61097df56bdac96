"""Mapbox vector tiles of a dataset's areas (Web Mercator, 4096 extent).

Per dataset the areas are projected to Web Mercator once and put in an STRtree. Per zoom the
whole coverage is simplified once with ``shapely.coverage_simplify`` (shared borders stay shared,
so no gaps open between neighbours) at half a pixel of that zoom. A tile then only queries the tree,
clips, maps coordinates to the tile grid and snaps them to integers before encoding, so
mapbox-vector-tile's encoder has no reprojection or rounding left to do. Tiles are never truncated:
every area that touches the tile is in it.
"""
from __future__ import annotations

import math
import threading
from collections import OrderedDict

import geopandas as gpd
import mapbox_vector_tile
import numpy as np
import shapely

EXTENT = 4096
BUFFER = 64  # tile units of overlap, so strokes don't show seams
WORLD = 2 * math.pi * 6378137.0
ORIGIN = WORLD / 2
LAYER = "areas"
MAX_ZOOM = 22


def tile_bounds(z: int, x: int, y: int) -> tuple[float, float, float, float]:
    size = WORLD / 2**z
    minx = -ORIGIN + x * size
    maxy = ORIGIN - y * size
    return minx, maxy - size, minx + size, maxy


def valid_tile(z: int, x: int, y: int) -> bool:
    return 0 <= z <= MAX_ZOOM and 0 <= x < 2**z and 0 <= y < 2**z


class TileIndex:
    """Web Mercator geometry, spatial index and per-zoom simplified coverage of one dataset."""

    def __init__(self, areas: gpd.GeoDataFrame):
        merc = areas.geometry.to_crs(3857)
        self.geoms = np.asarray(merc.values, dtype=object)
        self.tree = shapely.STRtree(self.geoms)
        self.bounds_3857 = tuple(merc.total_bounds)
        self._by_zoom: dict[int, np.ndarray] = {}
        self._lock = threading.Lock()

    def geometries(self, z: int) -> np.ndarray:
        if z >= 14:  # at street scale the original vertices are what the eye needs
            return self.geoms
        with self._lock:
            if z not in self._by_zoom:
                tolerance = 0.5 * WORLD / (256 * 2**z)
                try:
                    simplified = shapely.coverage_simplify(self.geoms, tolerance)
                except shapely.errors.GEOSException:
                    simplified = shapely.simplify(self.geoms, tolerance, preserve_topology=True)
                # A tiny area may vanish at a low zoom; keep it visible as its own outline.
                empty = shapely.is_empty(simplified)
                simplified[empty] = self.geoms[empty]
                self._by_zoom[z] = simplified
            return self._by_zoom[z]

    def tile(self, z: int, x: int, y: int, properties: list[dict]) -> bytes:
        minx, miny, maxx, maxy = tile_bounds(z, x, y)
        pad = (maxx - minx) * BUFFER / EXTENT
        hits = self.tree.query(shapely.box(minx - pad, miny - pad, maxx + pad, maxy + pad))
        if len(hits) == 0:
            return b""
        hits.sort()
        geoms = shapely.clip_by_rect(self.geometries(z)[hits], minx - pad, miny - pad, maxx + pad, maxy + pad)
        scale = EXTENT / (maxx - minx)
        # To tile units (y down), then snapped to the integer grid the encoder would round to anyway.
        geoms = shapely.transform(geoms, lambda c: np.column_stack(((c[:, 0] - minx) * scale, (maxy - c[:, 1]) * scale)))
        geoms = shapely.set_precision(geoms, 1.0)
        keep = ~shapely.is_empty(geoms)
        features = [{"geometry": g, "properties": properties[i]} for g, i in zip(geoms[keep], hits[keep])]
        if not features:
            return b""
        return mapbox_vector_tile.encode([{"name": LAYER, "features": features}],
                                         default_options={"extents": EXTENT, "y_coord_down": True, "check_winding_order": True})


class TileCache:
    """A bounded in-process LRU of encoded tiles, keyed by dataset version and request."""

    def __init__(self, entries: int = 4096):
        self.entries = entries
        self._data: OrderedDict = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key):
        with self._lock:
            if key in self._data:
                self._data.move_to_end(key)
                return self._data[key]
        return None

    def put(self, key, value) -> None:
        with self._lock:
            self._data[key] = value
            self._data.move_to_end(key)
            while len(self._data) > self.entries:
                self._data.popitem(last=False)
