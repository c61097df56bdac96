"""The global pixel-cell grid that small areas merge into, and its Morton (Z-order) numbering.

Areas smaller than a cell of ``AGGREGATE_PX`` screen pixels at a zoom merge, by centroid, into one square per
cell of a grid fixed in Web Mercator: 128 × 128 cells a tile, the same cells in every tile. Numbering each
area's finest cell (zoom ``FINE_ZOOM``) along the Z-order curve makes every tile, and every cell of every zoom,
a contiguous run of the areas sorted by that number. So a shared index sorts the areas once, and a tile of
a million areas finds its members by two binary searches and groups them into cells without sorting.
"""

from __future__ import annotations

import math

import numpy as np

WORLD = 2 * math.pi * 6378137.0
ORIGIN = WORLD / 2
AGGREGATE_PX = 2  # areas smaller than this many display pixels square merge into grid cells of that size
CELL_BITS = 7  # 256 / AGGREGATE_PX = 2**7 cells a tile side
FINE_ZOOM = 24  # the finest cells numbered: those of tile zoom 24 (tiles go to 22); 2 × 31 bits fit in uint64

_MASKS = [np.uint64(m) for m in (0x0000FFFF0000FFFF, 0x00FF00FF00FF00FF, 0x0F0F0F0F0F0F0F0F, 0x3333333333333333)]
_ODD = np.uint64(0x5555555555555555)
_LOW32 = np.uint64(0xFFFFFFFF)


def cell_size(z: int) -> float:
    """A cell's side in Web Mercator metres: exactly half that of zoom z - 1 (a power-of-two division)."""
    return AGGREGATE_PX * WORLD / (256 * 2**z)


def cell_xy(centroids: np.ndarray, z: int) -> tuple[np.ndarray, np.ndarray]:
    """Column and row (from the top) of the zoom-``z`` cell holding each centroid."""
    size, last = cell_size(z), 2 ** (z + CELL_BITS) - 1
    gx = np.clip(np.floor((centroids[:, 0] + ORIGIN) / size), 0, last).astype(np.int64)
    gy = np.clip(np.floor((ORIGIN - centroids[:, 1]) / size), 0, last).astype(np.int64)
    return gx, gy


def _spread(v) -> np.ndarray:
    v = np.asarray(v).astype(np.uint64) & _LOW32
    for shift, mask in zip((16, 8, 4, 2), _MASKS):
        v = (v | (v << np.uint64(shift))) & mask
    return (v | (v << np.uint64(1))) & _ODD


def _squeeze(v: np.ndarray) -> np.ndarray:
    v = v & _ODD
    for shift, mask in zip((1, 2, 4, 8), _MASKS[::-1]):
        v = (v | (v >> np.uint64(shift))) & mask
    return ((v | (v >> np.uint64(16))) & _LOW32).astype(np.int64)


def morton(gx, gy) -> np.ndarray:
    return _spread(gx) | (_spread(gy) << np.uint64(1))


def grid_order(centroids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The areas' finest-cell Morton codes, sorted, and the order that sorts them (what a shared index keeps)."""
    codes = morton(*cell_xy(centroids, FINE_ZOOM))
    order = np.argsort(codes, kind="stable")
    return codes[order], order


def _spread_int(v: int) -> int:
    for shift, mask in zip((16, 8, 4, 2, 1), (*map(int, _MASKS), int(_ODD))):
        v = (v | (v << shift)) & mask
    return v


def tile_run(codes: np.ndarray, z: int, x: int, y: int) -> tuple[int, int]:
    """Positions [lo, hi) in the sorted ``codes`` of the areas whose centroid lies in tile (z, x, y)."""
    shift = 2 * (FINE_ZOOM + CELL_BITS - z)
    prefix = _spread_int(x) | (_spread_int(y) << 1)  # Python ints: a numpy call per bit step costs ~50 µs a tile
    lo, hi = np.uint64(prefix << shift), np.uint64((prefix + 1) << shift)
    return int(np.searchsorted(codes, lo)), int(np.searchsorted(codes, hi))


def _ranked(gx: np.ndarray, gy: np.ndarray, run: np.ndarray, z: int):
    """Cells in (column, row) order, as a tile has always listed them; ``run``: each member's cell before."""
    perm = np.argsort(gx * (2**z * 256) + gy)
    rank = np.empty_like(perm)
    rank[perm] = np.arange(len(perm))
    return rank[run], gx[perm], gy[perm]


def cells_of_run(fine_codes: np.ndarray, z: int):
    """Members' cell number and each cell's column and row at zoom ``z``, from their sorted finest codes."""
    codes = fine_codes >> np.uint64(2 * (FINE_ZOOM - z))
    new = np.empty(len(codes), dtype=bool)
    new[:1] = True
    np.not_equal(codes[1:], codes[:-1], out=new[1:])
    starts = codes[new]
    return _ranked(_squeeze(starts), _squeeze(starts >> np.uint64(1)), np.cumsum(new) - 1, z)


def cells_of_centroids(centroids: np.ndarray, z: int, x: int, y: int):
    """As :func:`cells_of_run` for areas in any order: which lie in tile (z, x, y), their cells and the cells."""
    gx, gy = cell_xy(centroids, z)
    inside = np.flatnonzero(((gx >> CELL_BITS) == x) & ((gy >> CELL_BITS) == y))
    keys, run = np.unique(gx[inside] * (2**z * 256) + gy[inside], return_inverse=True)
    cell, cgx, cgy = _ranked(keys // (2**z * 256), keys % (2**z * 256), run.reshape(-1), z)
    return inside, cell, cgx, cgy
