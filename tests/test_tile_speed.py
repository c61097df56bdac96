"""Speed paths of the tile service give the same bytes as the plain ones: merged cells encoded as squares without
GEOS boxes, their counts summed by runs of the Z-order."""

from __future__ import annotations

import numpy as np
import shapely

from app.mvt import encode_polygons
from app.tiles import _summer


def test_squares_encode_byte_for_byte_as_their_shapely_boxes():
    rng = np.random.default_rng(5)
    n = 300
    x0, y0 = rng.integers(-64, 4096, n), rng.integers(-64, 4096, n)  # some in the buffer, left of / above the tile
    drawn = np.array(
        [shapely.Polygon([(0, 0), (0, 90), (70, 60)]), None, shapely.box(5, 5, 40, 40).buffer(0)], dtype=object
    )
    cols = {
        "areas": np.concatenate([[np.nan] * 3, rng.integers(1, 9, n).astype(float)]),
        "share": np.concatenate([[0.5, 0.1, np.nan], rng.random(n)]),
        "label": np.array(["a", None, "b"] + [None] * n, dtype=object),
    }
    boxes = shapely.box(x0, y0, x0 + 32, y0 + 32)
    plain = encode_polygons(np.concatenate([drawn, boxes]), cols)
    assert plain and encode_polygons(drawn, cols, squares=(x0, y0, 32)) == plain
    only = {k: v[3:] for k, v in cols.items()}
    assert encode_polygons(np.empty(0, dtype=object), only, squares=(x0, y0, 32)) == encode_polygons(boxes, only)


def test_cell_sums_by_runs_equal_bincount_and_keep_nan():
    rng = np.random.default_rng(6)
    sizes = rng.integers(1, 40, 500)
    rank = rng.permutation(500)  # runs in Z-order, cells numbered in (column, row) order
    cell = np.repeat(rank, sizes)
    values = rng.integers(0, 1500, len(cell)).astype(float)
    values[rng.choice(len(cell), 30, replace=False)] = np.nan
    want = np.bincount(cell, weights=values, minlength=500)
    got = _summer(cell, 500)(values)
    assert np.array_equal(got, want, equal_nan=True) and np.isnan(got).sum() == np.isnan(want).sum() > 0
    shuffled = rng.permutation(cell)  # members of a cell not in one run: the plain count
    assert np.array_equal(_summer(shuffled, 500)(np.ones(len(cell))), np.bincount(shuffled, minlength=500))
    assert len(_summer(np.empty(0, np.int64), 0)(np.empty(0))) == 0
