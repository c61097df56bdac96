"""Mapbox vector tiles of a dataset's areas (Web Mercator, 4096 extent).

Per dataset the areas are projected to Web Mercator once and put in an STRtree. Per zoom the
drawn areas are simplified once with ``shapely.coverage_simplify`` (shared borders stay shared, so
no gaps open between neighbours) at half a pixel of that zoom, in a background thread when the
index is built. Areas smaller than a 2×2-pixel cell at a zoom are not drawn as sub-pixel polygons
(100,000 of them would make a 4 MB tile that takes seconds): they merge into squares of a global
pixel grid whose counts are summed and shares recomputed, and ``areas`` says how many merged. No
area is dropped. A tile then only queries the tree, clips, maps coordinates to integer tile units
and encodes with the vectorised encoder in :mod:`app.mvt`.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable
from dataclasses import dataclass, field

import geopandas as gpd
import numpy as np
import shapely

from spatial.cancel import checkpoint

from .mvt import encode_polygons
from .tilegrid import AGGREGATE_PX, ORIGIN, WORLD, cell_size, cells_of_centroids  # noqa: F401 (re-exported)

EXTENT = 4096
BUFFER = 64  # tile units of overlap, so strokes don't show seams
LAYER = "areas"
MAX_ZOOM = 22


def tile_bounds(z: int, x: int, y: int) -> tuple[float, float, float, float]:
    size = WORLD / 2**z
    minx = -ORIGIN + x * size
    maxy = ORIGIN - y * size
    return minx, maxy - size, minx + size, maxy


def tiles_covering(bounds_3857: tuple[float, float, float, float], z: int) -> list[tuple[int, int, int]]:
    """Every tile of zoom ``z`` that a Web Mercator box touches."""
    minx, miny, maxx, maxy = bounds_3857
    size = WORLD / 2**z
    last = 2**z - 1
    x0, x1 = (min(last, max(0, int((v + ORIGIN) // size))) for v in (minx, maxx))
    y0, y1 = (min(last, max(0, int((ORIGIN - v) // size))) for v in (maxy, miny))
    return [(z, x, y) for x in range(x0, x1 + 1) for y in range(y0, y1 + 1)]


def offline_tiles(
    index: TileIndex, attributes: TileAttributes, budget_bytes: int = 12 * 2**20, view_px: tuple[int, int] = (1024, 768)
) -> tuple[dict[str, bytes], tuple[int, int]]:
    """Tiles of a dataset for an offline page: from the zoom that fits the city in ``view_px`` down,
    zoom by zoom while the total stays within ``budget_bytes`` (a page opened from a file can't ask
    a server for more). Returns {"z/x/y": bytes} and the (first, last) zoom embedded."""
    minx, miny, maxx, maxy = index.bounds_3857
    span = max((maxx - minx) / view_px[0], (maxy - miny) / view_px[1], 1e-9) * 256
    first = int(max(0, min(MAX_ZOOM, math.floor(math.log2(WORLD / span)))))
    tiles: dict[str, bytes] = {}
    used, last = 0, first
    for z in range(first, min(first + 5, 17)):
        checkpoint()
        level = {
            f"{z}/{x}/{y}": index.tile(z, x, y, attributes, final=True)
            for z, x, y in tiles_covering(index.bounds_3857, z)
        }
        size = sum(len(b) for b in level.values())
        if tiles and used + size > budget_bytes:
            break
        tiles.update({k: b for k, b in level.items() if b})
        used, last = used + size, z
    return tiles, (first, last)


def valid_tile(z: int, x: int, y: int) -> bool:
    return 0 <= z <= MAX_ZOOM and 0 <= x < 2**z and 0 <= y < 2**z


SIMPLIFIED_BELOW = 14  # zooms below this draw simplified coverage; from it on, the original vertices


class Provisional(bytes):
    """A tile drawn while its zoom's shared simplification is being built: right, but not the final bytes, so
    it is neither cached nor served as immutable."""


@dataclass
class Selection:
    """What a tile draws: ``drawn`` areas as polygons (sorted; ``geometries()`` gives their zoom's shapes, None
    while not yet available: they are left out) and ``members`` merged into pixel cells: ``cell`` numbers each
    member's cell, ``gx``/``gy`` are each cell's column and row. ``provisional``: not the final bytes."""

    drawn: np.ndarray
    geometries: Callable[[], np.ndarray] | None
    members: np.ndarray
    cell: np.ndarray
    gx: np.ndarray
    gy: np.ndarray
    provisional: bool = False


def simplify_level(geoms: np.ndarray, area: np.ndarray, z: int) -> np.ndarray:
    """Zoom ``z``'s geometries: the drawn areas' coverage simplified at half a pixel (shared borders stay shared),
    the merged ones (smaller than a cell) as they are. Deterministic: every process computes the same."""
    tolerance = 0.5 * WORLD / (256 * 2**z)
    out = geoms.copy()
    drawn = np.flatnonzero(area >= cell_size(z) ** 2)  # merged areas are never drawn as polygons
    if len(drawn):
        try:
            simplified = shapely.coverage_simplify(geoms[drawn], tolerance)
        except shapely.errors.GEOSException:
            simplified = shapely.simplify(geoms[drawn], tolerance, preserve_topology=True)
        # A tiny area may vanish at a low zoom; keep it visible as its own outline.
        empty = shapely.is_empty(simplified)
        simplified[empty] = geoms[drawn][empty]
        out[drawn] = simplified
    return out


@dataclass
class TileAttributes:
    """Per-area feature properties, aligned with the index's areas, and how they merge.

    When areas smaller than a pixel cell merge, ``sums`` are added (NaN, e.g. a suppressed count,
    stays NaN, and ``withheld`` counts such members), ``ratios`` (name: numerator, denominator[, factor]) are
    recomputed from the sums over the members whose two counts are published, ``modes`` take
    the most common value; other columns (id, name, p-value) are left out of merged features, which
    carry ``areas`` (how many areas merged) instead.
    """

    columns: dict[str, np.ndarray]
    sums: tuple[str, ...] = ()
    ratios: dict[str, tuple] = field(default_factory=dict)
    modes: tuple[str, ...] = ()
    _coded: dict = field(default_factory=dict, repr=False, compare=False)

    def coded(self, name: str) -> tuple[np.ndarray, np.ndarray]:
        """A mode column as sorted labels and each area's label number (-1: none), made once: a tile of a million
        areas then counts labels per cell with one bincount, not by comparing strings."""
        if name not in self._coded:
            values = self.columns[name]
            ok = np.array([v is not None for v in values], dtype=bool)
            labels, code = np.unique(values[ok].astype(str), return_inverse=True)
            codes = np.full(len(values), -1, dtype=np.int64)
            codes[ok] = code.reshape(-1)
            self._coded[name] = (labels, codes)
        return self._coded[name]


class TileIndex:
    """Web Mercator geometry, spatial index and per-zoom simplified coverage of one dataset."""

    def __init__(self, areas: gpd.GeoDataFrame):
        merc = areas.geometry.to_crs(3857)
        self.geoms = np.asarray(merc.values, dtype=object)
        self.tree = shapely.STRtree(self.geoms)
        self.bounds_3857 = tuple(merc.total_bounds)
        self.area = shapely.area(self.geoms)
        self.centroids = shapely.get_coordinates(shapely.centroid(self.geoms))
        self._by_zoom: dict[int, np.ndarray] = {}
        self._lock = threading.Lock()

    def warm(self, on_done=None) -> threading.Thread:
        """Simplify every zoom in the background (street zooms first), so tiles don't wait for it."""

        def run():
            for z in range(13, -1, -1):
                self.geometries(z)
            if on_done:
                on_done()

        thread = threading.Thread(target=run, name="segmap-tile-warm", daemon=True)
        thread.start()
        return thread

    cell_size = staticmethod(cell_size)

    def small(self, z: int) -> np.ndarray:
        """Areas drawn as merged pixel cells at zoom ``z`` (smaller than one cell)."""
        return self.area < cell_size(z) ** 2

    def geometries(self, z: int) -> np.ndarray:
        if z >= SIMPLIFIED_BELOW:  # at street scale the original vertices are what the eye needs
            return self.geoms
        with self._lock:
            if z not in self._by_zoom:
                self._by_zoom[z] = simplify_level(self.geoms, self.area, z)
            return self._by_zoom[z]

    def select(self, z: int, x: int, y: int, box: tuple, final: bool = False) -> Selection | None:
        """The areas drawn in tile (z, x, y) (boxes meeting ``box``) and those merged into its pixel cells."""
        hits = self.tree.query(shapely.box(*box))
        hits.sort()
        small = self.area[hits] < cell_size(z) ** 2
        drawn, merged = hits[~small], hits[small]
        inside, cell, gx, gy = cells_of_centroids(self.centroids[merged], z, x, y)
        return Selection(drawn, lambda: self.geometries(z)[drawn], merged[inside], cell, gx, gy)

    def tile(self, z: int, x: int, y: int, attributes: TileAttributes, final: bool = False) -> bytes:
        """One encoded tile; ``final``: never :class:`Provisional` (an export waits for, or makes, the level)."""
        minx, miny, maxx, maxy = tile_bounds(z, x, y)
        pad = (maxx - minx) * BUFFER / EXTENT
        box = (minx - pad, miny - pad, maxx + pad, maxy + pad)
        sel = self.select(z, x, y, box, final)
        if sel is None:  # nothing shared yet: an empty tile the client asks for again
            return Provisional(b"")
        if len(sel.drawn) == 0 and len(sel.members) == 0:
            return b""
        drawn = sel.drawn if sel.geometries is not None else sel.drawn[:0]
        scale = EXTENT / (maxx - minx)
        geoms = shapely.clip_by_rect(sel.geometries(), *box) if len(drawn) else np.empty(0, dtype=object)
        # To tile units (y down), rounded to the integer grid. Not shapely.set_precision: it is ~20 µs a polygon
        # (a GEOS overlay per geometry), and the encoder already drops the rings rounding collapses.
        geoms = shapely.transform(
            geoms, lambda c: np.rint(np.column_stack(((c[:, 0] - minx) * scale, (maxy - c[:, 1]) * scale)))
        )
        columns = {name: values[drawn] for name, values in attributes.columns.items()}
        squares = None
        if len(sel.members):
            squares, merged_columns = _merge(sel, z, minx, maxy, scale, attributes)
            columns = _concat_columns(columns, merged_columns, len(drawn), len(squares[0]))
        body = encode_polygons(geoms, columns, layer=LAYER, extent=EXTENT, squares=squares)
        return Provisional(body) if sel.provisional else body


def _merge(sel: Selection, z: int, minx: float, maxy: float, scale: float, attributes: TileAttributes):
    """Areas under a pixel cell become one square per cell of the global grid (same cells in every tile):
    their corners (x0, y0) and side in tile units, and their columns."""
    members, cell, n = sel.members, sel.cell, len(sel.gx)
    size = cell_size(z)
    x0 = np.rint((sel.gx * size - ORIGIN - minx) * scale).astype(np.int64)
    y0 = np.rint((ORIGIN - sel.gy * size - maxy) * -scale).astype(np.int64)
    side = int(np.rint(size * scale))
    of = {}  # each count column of the members, gathered once (a zoom-9 tile of 1M areas has ~76,000 members)
    for name in {*attributes.sums, *(c for num, den, *_ in attributes.ratios.values() for c in (num, den))}:
        of[name] = attributes.columns[name][members].astype(float)
    total = _summer(cell, n)
    out = {"areas": np.bincount(cell, minlength=n).astype(float)}
    for name in attributes.sums:
        out[name] = total(of[name])
    if attributes.sums:  # members with a withheld count: the cell's sums stay NaN, its ratios use the others
        hidden = np.zeros(len(members), dtype=bool)
        for s in attributes.sums:
            hidden |= np.isnan(of[s])
        withheld = total(hidden.astype(float)) if hidden.any() else np.zeros(n)
        out["withheld"] = np.where(withheld > 0, withheld, np.nan)
    for name, (num, den, *factor) in attributes.ratios.items():
        # over the members whose two counts are both published: a function of public values only, so a cell
        # holding one withheld area still has a colour (at low zoom, one in 20 hidden would grey out every cell)
        a, b = of[num], of[den]
        ok = np.isfinite(a) & np.isfinite(b)
        top, bottom = (total(np.where(ok, v, 0.0)) for v in (a, b))
        with np.errstate(divide="ignore", invalid="ignore"):
            out[name] = np.where(bottom > 0, top / bottom * (factor[0] if factor else 1.0), np.nan)
    for name in attributes.modes:
        labels, codes = attributes.coded(name)
        code = codes[members]
        ok = code >= 0
        width = max(1, len(labels))
        counts = np.bincount(cell[ok] * width + code[ok], minlength=n * width).reshape(n, width)
        mode = np.empty(n, dtype=object)
        if len(labels):
            mode[:] = labels[counts.argmax(axis=1)]
            mode[counts.sum(axis=1) == 0] = None
        out[name] = mode
    return (x0, y0, side), out


def _summer(cell: np.ndarray, n: int):
    """Per-cell sums of the members' values. A shared index lists each cell's members as one run (the Z-order):
    then the runs are summed with ``np.add.reduceat``, several times quicker than ``np.bincount`` over the million
    members of a zoomed-out tile (counts are whole numbers: any order of addition gives the same sums)."""
    starts = np.flatnonzero(np.diff(cell)) + 1 if len(cell) else np.empty(0, np.int64)
    starts = np.concatenate([[0], starts]) if len(cell) else starts
    if len(starts) != n:  # members of a cell not contiguous (an in-memory index): count them one by one
        return lambda values: np.bincount(cell, weights=values, minlength=n)
    which = cell[starts]

    def total(values: np.ndarray) -> np.ndarray:
        out = np.zeros(n)
        out[which] = np.add.reduceat(values, starts)
        return out

    return total


def _concat_columns(drawn: dict, merged: dict, n_drawn: int, n_merged: int) -> dict:
    """Columns of drawn areas followed by merged cells; a column missing on one side is missing (NaN/None) there."""
    out = {}
    for name in list(drawn) + [m for m in merged if m not in drawn]:
        a, b = drawn.get(name), merged.get(name)
        if a is None or b is None:
            like = a if a is not None else b
            blank = np.full(
                n_drawn if a is None else n_merged,
                None if like.dtype == object else np.nan,
                dtype=object if like.dtype == object else float,
            )
            a, b = (blank, b) if a is None else (a, blank)
        if a.dtype == object or b.dtype == object:
            a, b = a.astype(object), b.astype(object)
        out[name] = np.concatenate([a, b])
    return out
