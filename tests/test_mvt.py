"""The vectorised MVT encoder, checked by decoding with mapbox-vector-tile and against its encoder."""

from __future__ import annotations

import math
import shutil
import subprocess

import mapbox_vector_tile
import numpy as np
import pytest
import shapely
from shapely.geometry import shape

from app.mvt import encode_polygons


def decode(data: bytes, layer: str = "areas") -> list[dict]:
    return mapbox_vector_tile.decode(data, default_options={"y_coord_down": True})[layer]["features"]


def present(value) -> bool:
    return value is not None and not (isinstance(value, float) and math.isnan(value))


def expected_props(columns: dict, i: int) -> dict:
    out = {}
    for name, col in columns.items():
        v = col[i]
        if present(v):
            out[name] = v.item() if isinstance(v, np.generic) else v
    return out


def assert_same(features: list[dict], geoms, columns: dict, rows) -> None:
    assert len(features) == len(rows)
    for f, i in zip(features, rows):
        assert f["id"] == i
        assert f["properties"] == expected_props(columns, i)
        got = shape(f["geometry"])
        assert got.is_valid and got.equals(geoms[i]), (i, got.wkt, geoms[i].wkt)


def grid(n: int, cell: int = 40):
    i, j = np.divmod(np.arange(n), 90)
    return shapely.box(i * cell - 64, j * cell - 64, i * cell - 64 + cell, j * cell - 64 + cell)


def mixed_columns(n: int, rng) -> dict:
    floats = rng.normal(size=n).round(3)
    floats[::7] = np.nan
    names = np.array([f"area {k % 13} é" for k in range(n)], dtype=object)
    names[::5] = None
    return {
        "id": np.arange(n),
        "neg": np.arange(n) - n // 2,
        "share": floats,
        "whole": np.where(np.arange(n) % 3 == 0, np.nan, np.arange(n) % 4).astype(float),
        "name": names,
        "flag": np.arange(n) % 2 == 0,
    }


def random_polygons(n: int, rng):
    pts = shapely.points(rng.uniform(0, 4096, (n, 2)))
    geoms = shapely.set_precision(shapely.buffer(pts, rng.uniform(1, 80, n), quad_segs=2), 1.0)
    donut = shapely.set_precision(shapely.difference(shapely.buffer(pts[:10], 60), shapely.buffer(pts[:10], 25)), 1.0)
    multi = shapely.set_precision(
        shapely.union(
            shapely.buffer(pts[10:20], 20), shapely.buffer(shapely.points(rng.uniform(0, 4096, (10, 2))), 20)
        ),
        1.0,
    )
    geoms[:10], geoms[10:20] = donut, multi
    return geoms


def test_grid_round_trip_and_properties():
    n = 500
    geoms, cols = grid(n), mixed_columns(n, np.random.default_rng(0))
    assert_same(decode(encode_polygons(geoms, cols)), geoms, cols, range(n))


def test_holes_multipolygons_and_random_shapes():
    rng = np.random.default_rng(1)
    geoms = random_polygons(300, rng)
    assert {g.geom_type for g in geoms} == {"Polygon", "MultiPolygon"}
    assert any(len(g.interiors) for g in geoms if g.geom_type == "Polygon")
    cols = mixed_columns(300, rng)
    assert_same(decode(encode_polygons(geoms, cols, layer="x"), "x"), geoms, cols, range(300))


def test_empty_non_polygonal_and_degenerate_entries_are_skipped():
    square = shapely.box(0, 0, 10, 10)
    dup_vertices = shapely.Polygon([(0, 0), (0, 0), (10, 0), (10, 10), (10, 10), (0, 10), (0, 0), (0, 0)])
    collapsed_hole = shapely.Polygon([(0, 0), (50, 0), (50, 50), (0, 50)], [[(10, 10), (10, 10), (20, 10), (10, 10)]])
    line_hole = shapely.Polygon([(0, 0), (50, 0), (50, 50), (0, 50)], [[(10, 10), (20, 10), (30, 10)]])
    collapsed = shapely.Polygon([(5, 5), (6, 5), (5, 5), (5, 5)])
    multi_one_collapsed = shapely.MultiPolygon([square, collapsed])
    geoms = np.array(
        [
            square,
            shapely.Polygon(),
            None,
            shapely.LineString([(0, 0), (1, 1)]),
            dup_vertices,
            collapsed_hole,
            collapsed,
            line_hole,
            multi_one_collapsed,
            shapely.MultiPolygon(),
        ],
        dtype=object,
    )
    cols = {"k": np.arange(len(geoms)), "s": np.array(list("abcdefghij"), dtype=object)}
    features = decode(encode_polygons(geoms, cols))
    big = shapely.box(0, 0, 50, 50)
    expected = {0: square, 4: square, 5: big, 7: big, 8: square}
    assert_same(features, expected, cols, sorted(expected))
    assert encode_polygons(geoms[[1, 2, 3, 6]], cols) == b""
    assert encode_polygons(np.array([], dtype=object), {}) == b""


def test_all_missing_column_has_no_key_and_features_may_have_no_tags():
    geoms = grid(3)
    cols = {"gone": np.full(3, np.nan), "some": np.array([None, "x", None], dtype=object)}
    layer = mapbox_vector_tile.decode(encode_polygons(geoms, cols), default_options={"y_coord_down": True})["areas"]
    assert [f["properties"] for f in layer["features"]] == [{}, {"some": "x"}, {}]
    assert layer["extent"] == 4096 and layer["version"] == 2


def test_same_result_as_mapbox_vector_tile():
    rng = np.random.default_rng(2)
    geoms = np.concatenate([grid(200), random_polygons(200, rng)])
    cols = mixed_columns(400, rng)
    ours = decode(encode_polygons(geoms, cols))
    feats = [{"geometry": g, "properties": expected_props(cols, i)} for i, g in enumerate(geoms)]
    theirs = decode(
        mapbox_vector_tile.encode(
            [{"name": "areas", "features": feats}],
            default_options={"extents": 4096, "y_coord_down": True, "check_winding_order": True},
        )
    )
    assert len(ours) == len(theirs) == 400
    for a, b in zip(ours, theirs):
        assert a["properties"] == b["properties"]
        assert shape(a["geometry"]).equals(shape(b["geometry"]))


def commands(geometry: list[int]) -> list[np.ndarray]:
    """Rings of a raw MVT polygon command stream, as absolute coordinates."""
    rings, cursor, i = [], np.zeros(2, int), 0
    zz = lambda v: (v >> 1) ^ -(v & 1)  # noqa: E731
    while i < len(geometry):
        cmd, count = geometry[i] & 7, geometry[i] >> 3
        i += 1
        if cmd == 7:
            continue
        pts = []
        for _ in range(count):
            cursor = cursor + [zz(geometry[i]), zz(geometry[i + 1])]
            pts.append(cursor)
            i += 2
        rings.append(np.array(pts)) if cmd == 1 else rings.__setitem__(-1, np.vstack([rings[-1], pts]))
    return rings


def test_winding_exterior_positive_hole_negative():
    # Both rings given in the "wrong" orientation for y-down tiles, so both must be reversed.
    poly = shapely.Polygon([(0, 0), (0, 100), (100, 100), (100, 0)], [[(10, 10), (20, 10), (20, 20), (10, 20)]])
    area = lambda r: 0.5 * np.sum(r[:, 0] * np.roll(r[:, 1], -1) - np.roll(r[:, 0], -1) * r[:, 1])  # noqa: E731
    data = encode_polygons(np.array([poly]), {})
    geometry = _raw_geometry(data)
    ext, hole = commands(geometry)
    assert area(ext) > 0 > area(hole)
    assert len(ext) == len(hole) == 4  # closing point dropped


def _raw_geometry(data: bytes) -> list[int]:
    """The packed geometry of the first feature, parsed by hand (only the fields our encoder writes)."""

    def varint(buf, i):
        v = shift = 0
        while True:
            b = buf[i]
            i += 1
            v |= (b & 0x7F) << shift
            shift += 7
            if b < 0x80:
                return v, i

    def fields(buf):
        i, out = 0, []
        while i < len(buf):
            key, i = varint(buf, i)
            if key & 7 == 0:
                v, i = varint(buf, i)
            else:
                n, i = varint(buf, i)
                v, i = buf[i : i + n], i + n
            out.append((key >> 3, v))
        return out

    layer = dict(fields(data))[3]
    feature = dict(fields(layer))[2]
    packed = dict(fields(feature))[4]
    vals, i = [], 0
    while i < len(packed):
        v, i = varint(packed, i)
        vals.append(v)
    return vals


def test_gdal_reads_the_tile(tmp_path):
    if not shutil.which("ogrinfo"):
        pytest.skip("ogrinfo (GDAL) not installed")
    geoms = random_polygons(50, np.random.default_rng(3))
    path = tmp_path / "tile.mvt"
    path.write_bytes(encode_polygons(geoms, mixed_columns(50, np.random.default_rng(3))))
    out = subprocess.run(["ogrinfo", "-ro", "-al", "-so", str(path)], capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stderr
    assert "Feature Count: 50" in out.stdout and "Layer name: areas" in out.stdout
