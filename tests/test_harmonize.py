"""Boundary harmonisation (spatial/change/harmonize.py): tobler's area_interpolate as the reference for the
area method, hand-computed dasymetric numbers, identical areas one to one, integers conserved, 4xx errors."""

from __future__ import annotations

import importlib

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import shapely
from shapely.geometry import box

from spatial.change.harmonize import harmonize
from spatial.errors import ValidationError

tobler = pytest.importorskip("tobler", reason="tobler is in the test extra (pip install -e .[test])")
from tobler.area_weighted import area_interpolate  # noqa: E402
from tobler.area_weighted.area_interpolate import _area_tables_binning  # noqa: E402

LAEA_EUROPE = "EPSG:3035"  # equal area: used as is, so integer grid areas stay exact in tobler's float32 table
X0, Y0 = 4_321_000, 3_210_000
COUNTS = ["people", "migrants"]


def grid(nx: int, ny: int, size: int, dx: int = 0, dy: int = 0, prefix: str = "s") -> gpd.GeoDataFrame:
    cells = [box(X0 + dx + i * size, Y0 + dy + j * size, X0 + dx + (i + 1) * size, Y0 + dy + (j + 1) * size)
             for j in range(ny) for i in range(nx)]  # fmt: skip
    return gpd.GeoDataFrame({"id": [f"{prefix}{k}" for k in range(len(cells))]}, geometry=cells, crs=LAEA_EUROPE)


def with_counts(gdf: gpd.GeoDataFrame, seed: int = 0) -> gpd.GeoDataFrame:
    rng = np.random.default_rng(seed)
    people = rng.integers(0, 2000, len(gdf))
    return gdf.assign(people=people, migrants=rng.binomial(people, 0.3))


@pytest.fixture(scope="module")
def source():
    return with_counts(grid(12, 12, 7))


def test_area_equals_tobler_on_exact_grids(source):
    target = grid(17, 17, 5, dx=2, dy=-3, prefix="t")  # overhangs the source on two sides
    res = harmonize(source, target, COUNTS)
    # tobler's own area table (float32, exact here: integer areas), in float64 so its row sums and their
    # reciprocals are not rounded to float32 as its default path does (~5e-8 relative)
    table = _area_tables_binning(source, target, "auto").astype(np.float64)
    ref = area_interpolate(source, target, extensive_variables=COUNTS, table=table)
    np.testing.assert_allclose(res.estimates.to_numpy(), ref[COUNTS].to_numpy(), rtol=1e-9, atol=1e-9)
    own = area_interpolate(source, target, extensive_variables=COUNTS)
    np.testing.assert_allclose(res.estimates.to_numpy(), own[COUNTS].to_numpy(), rtol=1e-6)
    assert res.crs == source.crs  # an equal-area CRS is kept, not reprojected


def overlay_table(src: gpd.GeoDataFrame, tgt: gpd.GeoDataFrame):
    """float64 intersection areas from geopandas' overlay (independent of harmonize's STRtree pairs)."""
    import scipy.sparse as sp

    a = src.assign(_i=np.arange(len(src)))[["_i", "geometry"]]
    b = tgt.assign(_j=np.arange(len(tgt)))[["_j", "geometry"]]
    pieces = gpd.overlay(a, b, how="intersection", keep_geom_type=True)
    return sp.csr_matrix((pieces.area.to_numpy(), (pieces["_i"], pieces["_j"])), shape=(len(src), len(tgt)))


def voronoi(n: int, seed: int, prefix: str) -> gpd.GeoDataFrame:
    rng = np.random.default_rng(seed)
    frame = box(13.1, 52.35, 13.7, 52.65)
    pts = shapely.points(rng.uniform(13.1, 13.7, n), rng.uniform(52.35, 52.65, n))
    cells = shapely.get_parts(shapely.voronoi_polygons(shapely.multipoints(pts), extend_to=frame))
    cells = shapely.intersection(cells, frame)
    return gpd.GeoDataFrame({"id": [f"{prefix}{k}" for k in range(len(cells))]}, geometry=cells, crs="EPSG:4326")


def test_area_equals_tobler_on_irregular_areas_in_degrees():
    """Degrees in, so harmonize chooses the equal-area CRS; tobler gets the same reprojected layers. tobler keeps
    its area table in float32, so against its own table the agreement is ~1e-7; with a float64 table of the
    same intersections it is 1e-9."""
    src = with_counts(voronoi(300, 1, "s"), seed=2)
    tgt = voronoi(200, 3, "t")
    res = harmonize(src, tgt, COUNTS)
    s, t = src.to_crs(res.crs), tgt.to_crs(res.crs)
    exact = area_interpolate(s, t, extensive_variables=COUNTS, table=overlay_table(s, t))
    np.testing.assert_allclose(res.estimates.to_numpy(), exact[COUNTS].to_numpy(), rtol=1e-9, atol=1e-9)
    own = area_interpolate(s, t, extensive_variables=COUNTS)
    np.testing.assert_allclose(res.estimates.to_numpy(), own[COUNTS].to_numpy(), rtol=1e-6)


def test_pieces_cut_on_threads_are_the_same(source, monkeypatch):
    module = importlib.import_module("spatial.change.harmonize")  # the package's `harmonize` is the function

    target = grid(17, 17, 5, dx=2, dy=-3, prefix="t")
    one = harmonize(source, target, COUNTS).estimates
    monkeypatch.setattr(module, "THREADS", 3)
    monkeypatch.setattr(module, "CHUNK", 50)
    pd.testing.assert_frame_equal(harmonize(source, target, COUNTS).estimates, one)


def test_a_request_that_gave_up_stops_between_chunks(source, monkeypatch):
    from spatial.cancel import Cancelled, CancelToken, running

    module = importlib.import_module("spatial.change.harmonize")
    monkeypatch.setattr(module, "THREADS", 1)
    monkeypatch.setattr(module, "CHUNK", 50)
    token, calls = CancelToken(), []
    original = shapely.intersection

    def intersection(*args, **kwargs):
        calls.append(1)
        token.cancel("client gone")
        return original(*args, **kwargs)

    monkeypatch.setattr(shapely, "intersection", intersection)
    with running(token), pytest.raises(Cancelled):
        harmonize(source, grid(17, 17, 5, dx=2, dy=-3, prefix="t"), COUNTS)
    assert len(calls) == 1  # the worker thread saw the caller's token: the second chunk never ran


def test_integers_conserve_totals_and_stay_within_one(source):
    target = grid(17, 17, 5, dx=2, dy=-3, prefix="t")
    res = harmonize(source, target, COUNTS)
    for c in COUNTS:
        assert res.frame[c].dtype == np.int64
        assert res.frame[c].sum() == source[c].sum()
        assert (np.abs(res.frame[c].to_numpy() - res.estimates[c].to_numpy()) < 1).all()
    assert list(res.frame["id"]) == list(target["id"])


def renamed_with_a_reform(source: gpd.GeoDataFrame) -> gpd.GeoDataFrame:
    """The source with new ids, shuffled, and its first four cells (a 2×2 block) redrawn as two halves."""
    block_rows = [0, 1, 12, 13]
    keep = source.drop(index=block_rows).assign(id=lambda d: "new" + d["id"])
    rng = np.random.default_rng(5)
    keep = keep.iloc[rng.permutation(len(keep))]
    block = source.loc[block_rows].union_all()
    x0, y0, x1, y1 = block.bounds
    halves = gpd.GeoDataFrame(
        {"id": ["west", "east"]},
        geometry=[box(x0, y0, (x0 + x1) / 2, y1), box((x0 + x1) / 2, y0, x1, y1)],
        crs=source.crs,
    )
    return pd.concat([keep[["id", "geometry"]], halves], ignore_index=True)


def test_identical_areas_map_one_to_one_whatever_their_ids(source):
    target = renamed_with_a_reform(source)
    res = harmonize(source, target, COUNTS)
    pairs = dict(zip(res.matched["source_id"], res.matched["target_id"]))
    expected = {sid: "new" + sid for sid in source["id"].drop(index=[0, 1, 12, 13])}
    assert pairs == expected  # the redrawn block's cells are not matched
    out = res.frame.set_index("id")
    src = source.set_index("id")
    for sid, tid in expected.items():
        assert out.loc[tid, "people"] == src.loc[sid, "people"]
        assert out.loc[tid, "estimated_share"] == 0
    # cells 0 and 12 lie in the west half, 1 and 13 in the east: each is carried whole, nothing estimated
    assert out.loc["west", "people"] == src.loc[["s0", "s12"], "people"].sum()
    assert res.city_estimated_share == 0


def test_estimated_share_counts_people_of_split_areas(source):
    """A target that cuts source cells in half: all its people come from split areas; the city figure is the
    share of people in split source cells."""
    target = grid(24, 24, 3.5, prefix="t")  # every source cell (7 m) split in four
    res = harmonize(source, target, COUNTS)
    populated = res.frame["people"] > 0
    assert (res.estimated_share[populated.to_numpy()] == 1).all()
    assert res.city_estimated_share == pytest.approx(1.0)
    coarse = grid(6, 6, 14, prefix="t")  # every source cell inside one target: carried whole
    res = harmonize(source, coarse, COUNTS)
    assert (res.estimated_share == 0).all() and res.city_estimated_share == 0
    assert (res.table.max(axis=1).toarray().ravel() == 1).all()


def test_population_method_follows_where_people_live():
    """Two source squares; the target cuts them at x = 50. The finer layer says the people of the left square
    live in its western quarter (900) and the rest is empty (100 in three quarters), so by population the west
    target gets 90 % of the left square, by area 50 %."""
    crs = LAEA_EUROPE
    sq = lambda x, y, w, h: box(X0 + x, Y0 + y, X0 + x + w, Y0 + y + h)  # noqa: E731
    src = gpd.GeoDataFrame(
        {"id": ["L", "R"], "people": [1000, 400]}, geometry=[sq(0, 0, 100, 100), sq(100, 0, 100, 100)], crs=crs
    )
    tgt = gpd.GeoDataFrame({"id": ["W", "E"]}, geometry=[sq(0, 0, 50, 100), sq(50, 0, 150, 100)], crs=crs)
    fine = gpd.GeoDataFrame(
        {"n": [900, 100, 400]}, geometry=[sq(0, 0, 25, 100), sq(25, 0, 75, 100), sq(100, 0, 100, 100)], crs=crs
    )
    by_area = harmonize(src, tgt, ["people"]).frame.set_index("id")["people"]
    assert by_area.to_dict() == {"W": 500, "E": 900}
    res = harmonize(src, tgt, ["people"], method="population", weights=fine, weight_column="n")
    # left square: 900 + 100·(25/75) = 933.3 of its fine-layer people live west of x = 50 → 1000 · 933.3/1000
    assert res.estimates.loc["W", "people"] == pytest.approx(1000 * (900 + 100 / 3) / 1000)
    assert res.frame.set_index("id")["people"].to_dict() == {"W": 933, "E": 467}


def test_a_population_raster_works_as_the_finer_layer():
    """The finer layer of the test above as a raster of 25 m × 100 m cells: the same numbers. A no-data cell
    under a source area is refused."""
    from spatial.change.layers import raster_cells

    crs = LAEA_EUROPE
    sq = lambda x, y, w, h: box(X0 + x, Y0 + y, X0 + x + w, Y0 + y + h)  # noqa: E731
    src = gpd.GeoDataFrame(
        {"id": ["L", "R"], "people": [1000, 400]}, geometry=[sq(0, 0, 100, 100), sq(100, 0, 100, 100)], crs=crs
    )
    tgt = gpd.GeoDataFrame({"id": ["W", "E"]}, geometry=[sq(0, 0, 50, 100), sq(50, 0, 150, 100)], crs=crs)
    grid = np.array([[900, 100 / 3, 100 / 3, 100 / 3, 100, 100, 100, 100]])
    cells = raster_cells(grid, (X0, Y0 + 100), (25, 100), crs)
    res = harmonize(src, tgt, ["people"], method="population", weights=cells, weight_column="population")
    assert res.frame.set_index("id")["people"].to_dict() == {"W": 933, "E": 467}
    grid[0, 5] = np.nan
    with pytest.raises(ValidationError) as err:
        harmonize(
            src,
            tgt,
            ["people"],
            method="population",
            weights=raster_cells(grid, (X0, Y0 + 100), (25, 100), crs),
            weight_column="population",
        )
    assert err.value.code == "weights_do_not_cover"


def test_groups_stay_within_the_total_when_each_follows_its_own_layer():
    """Totals follow a finer layer where 90 % live east, migrants one where all live west: by their own weights
    the west would get 900 migrants among 100 people. The integers keep migrants ≤ total and both sums."""
    sq = lambda x, w: box(X0 + x, Y0, X0 + x + w, Y0 + 100)  # noqa: E731
    src = gpd.GeoDataFrame({"id": ["L"], "people": [1000], "migrants": [900]}, geometry=[sq(0, 100)], crs=LAEA_EUROPE)
    tgt = gpd.GeoDataFrame({"id": ["W", "E"]}, geometry=[sq(0, 50), sq(50, 50)], crs=LAEA_EUROPE)
    fine = gpd.GeoDataFrame({"n": [100, 900], "m": [900, 0]}, geometry=[sq(0, 50), sq(50, 50)], crs=LAEA_EUROPE)
    res = harmonize(src, tgt, COUNTS, method="population", weights=fine, weight_column={"people": "n", "migrants": "m"})
    assert res.estimates.loc["W", "migrants"] == pytest.approx(900)
    out = res.frame.set_index("id")
    assert out["people"].to_dict() == {"W": 100, "E": 900}
    assert out["migrants"].to_dict() == {"W": 100, "E": 800}


@pytest.mark.parametrize(
    ("change", "code"),
    [
        (lambda s, t: (s, t.set_geometry(t.translate(1e5, 0))), "no_overlap"),
        (lambda s, t: (s, t.iloc[:50]), "source_outside_target"),
        (lambda s, t: (s.assign(people=-s["people"]), t), "bad_count"),
        (lambda s, t: (s.assign(id="same"), t), "duplicate_id"),
        (lambda s, t: (s, t.set_crs(None, allow_override=True)), "no_crs"),
        (lambda s, t: (s.drop(columns="migrants"), t), "unknown_column"),
    ],
)
def test_bad_input_is_refused_with_what_to_fix(source, change, code):
    src, tgt = change(source, grid(12, 12, 7, prefix="t"))
    with pytest.raises(ValidationError) as err:
        harmonize(src, tgt, COUNTS)
    assert err.value.code == code


def test_finer_layer_must_cover_the_source(source):
    target = grid(17, 17, 5, dx=2, dy=-3, prefix="t")
    fine = grid(24, 12, 3.5, prefix="f").assign(n=10)  # covers the lower half of the source only
    with pytest.raises(ValidationError) as err:
        harmonize(source, target, COUNTS, method="population", weights=fine, weight_column="n")
    assert err.value.code == "weights_do_not_cover"
    with pytest.raises(ValidationError) as err:
        harmonize(source, target, COUNTS, method="population")
    assert err.value.code == "missing_weights"
