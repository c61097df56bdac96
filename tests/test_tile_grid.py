"""The Z-order numbering of pixel cells (app/tilegrid.py): a tile's merged areas found as one run of the sorted
codes, grouped into the same cells, in the same order, as by testing every centroid against the tile."""

from __future__ import annotations

import numpy as np
import pytest

from app.tilegrid import (
    CELL_BITS,
    FINE_ZOOM,
    ORIGIN,
    cell_size,
    cell_xy,
    cells_of_centroids,
    cells_of_run,
    grid_order,
    morton,
    tile_run,
)


def _interleave(x: int, y: int) -> int:
    """Bit by bit, by hand: x's bits at even positions, y's at odd."""
    return sum(((x >> b) & 1) << (2 * b) | ((y >> b) & 1) << (2 * b + 1) for b in range(31))


def test_morton_codes_interleave_the_bits():
    rng = np.random.default_rng(3)
    xs, ys = rng.integers(0, 2**31, 50), rng.integers(0, 2**31, 50)
    assert [int(c) for c in morton(xs, ys)] == [_interleave(int(x), int(y)) for x, y in zip(xs, ys)]


def test_a_cell_of_one_zoom_is_four_of_the_next():
    pts = np.random.default_rng(4).uniform(-ORIGIN, ORIGIN, (2000, 2))
    for z in (0, 5, 13, 21):
        gx, gy = cell_xy(pts, z)
        fx, fy = cell_xy(pts, z + 1)
        assert (fx >> 1 == gx).all() and (fy >> 1 == gy).all() and cell_size(z) == 2 * cell_size(z + 1)


@pytest.mark.parametrize("z", [3, 7, 10, 12, 16])
def test_a_tiles_run_holds_the_same_members_and_cells_as_testing_every_centroid(z):
    rng = np.random.default_rng(z)
    # A city of clustered centroids (many per cell at low zooms) plus some on exact cell corners.
    pts = np.concatenate([rng.normal([1.66e6, 5.65e6], 3e3, (20000, 2)), rng.normal([1.67e6, 5.64e6], 300, (5000, 2))])
    corners = (np.floor((pts[:50] + [ORIGIN, -ORIGIN]) / cell_size(z)) * cell_size(z)) - [ORIGIN, -ORIGIN]
    pts = np.concatenate([pts, corners])
    codes, order = grid_order(pts)
    assert (np.diff(codes.astype(np.float64)) >= 0).all() and FINE_ZOOM + CELL_BITS == 31
    gx, gy = cell_xy(pts[:1], z)
    x, y = int(gx[0] >> CELL_BITS), int(gy[0] >> CELL_BITS)
    lo, hi = tile_run(codes, z, x, y)
    cell, cgx, cgy = cells_of_run(codes[lo:hi], z)
    inside, want_cell, want_gx, want_gy = cells_of_centroids(pts, z, x, y)
    assert hi - lo == len(inside) > 0
    assert (cgx == want_gx).all() and (cgy == want_gy).all()  # same cells, same order
    assert dict(zip(order[lo:hi].tolist(), cell.tolist())) == dict(zip(inside.tolist(), want_cell.tolist()))
