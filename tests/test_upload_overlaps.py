"""Areas that overlap each other within one upload are refused (spatial/overlaps.py): one table cannot be protected
against itself (a coarse area minus the visible fine ones inside it gives a withheld count). Slivers up to 1 % of the
smaller area are digitising noise and accepted. The nested-grid attack itself is in tests/test_attacks_linked.py.
"""

from __future__ import annotations

import io

import geopandas as gpd
import numpy as np
import pytest
import shapely

import spatial.overlaps
from conftest import BUNDLED, in_process, shared_path
from spatial.errors import ValidationError
from spatial.io import load_dataset
from spatial.overlaps import MAX_FOUND, _pairs_bound, _separated_neighbours, overlapping_pairs

KEY = "overlap-key"
SIDE, CELL = 10, 100.0  # a 10 × 10 grid of 100 m cells


@pytest.fixture(scope="module")
def client(tmp_path_factory):
    with in_process(
        tmp_path_factory.mktemp("overlaps"), register_bundled=False, api_key=KEY, maps=False, statistics=False
    ) as c:
        yield c


def grid(widen: float = 0.0) -> gpd.GeoDataFrame:
    """The grid; ``widen`` metres added to each cell's east side (over its neighbour: a digitising sliver)."""
    j, i = np.divmod(np.arange(SIDE * SIDE), SIDE)
    x, y = 500_000.0 + CELL * i, 5_000_000.0 + CELL * j
    n = SIDE * SIDE
    return gpd.GeoDataFrame(
        {"id": [f"a{k}" for k in range(n)], "total": np.full(n, 100), "migrants": np.full(n, 20)},
        geometry=shapely.box(x, y, x + CELL + widen, y + CELL),
        crs="EPSG:32633",
    )


def shifted(gdf: gpd.GeoDataFrame, row: int, dx: float) -> gpd.GeoDataFrame:
    gdf = gdf.copy()
    gdf.loc[row, "geometry"] = shapely.affinity.translate(gdf.geometry[row], xoff=dx)
    return gdf


def parquet(gdf: gpd.GeoDataFrame) -> bytes:
    buf = io.BytesIO()
    gdf.to_parquet(buf, index=False)
    return buf.getvalue()


def post(client, files: dict, **form):
    form = {"groups": "migrants", "total": "total", "key": "id", **form}
    return client.post("/v1/datasets", files=files, data=form, headers={"X-API-Key": KEY})


def stored(client) -> tuple[list, list]:
    ids = sorted(d["id"] for d in client.get("/v1/datasets").json()["datasets"])
    files = sorted(p.name for p in client.app.state.settings.data_dir.joinpath("datasets").iterdir())
    return ids, files


def problems(r) -> dict:
    assert r.status_code == 422, r.text
    assert r.headers["content-type"].startswith("application/problem+json")
    return {p["code"]: p for p in r.json()["problems"]}


# -- the measure, against hand values and an independent overlay ----------------------------------------------------
LAYER = {
    "A": shapely.box(0, 0, 100, 100),
    "B": shapely.box(50, 0, 150, 100),  # half of A: 50 %
    "C": shapely.box(200, 0, 300, 100),
    "D": shapely.box(299.9, 0, 400, 100),  # a sliver over C: 10 m² of 10,000 = 0.1 %
    "E": shapely.box(20, 20, 40, 40),  # inside A: 100 %
    "F": shapely.box(500, 0, 600, 100).difference(shapely.box(520, 20, 580, 80)),  # a ring …
    "G": shapely.box(530, 30, 570, 70),  # … and an enclave in its hole: no overlap
    "H": shapely.box(140, 90, 160, 110),  # 100 m² of its 400 over B: 25 %
    "I": shapely.box(1000, 0, 1100, 100),
    "J": shapely.box(1100, 0, 1200, 100),  # touches I only
}
BY_HAND = {("A", "B"): 0.5, ("A", "E"): 1.0, ("B", "H"): 0.25}


def test_shares_match_hand_values_and_geopandas_overlay():
    names = np.array(list(LAYER))
    geoms = np.array(list(LAYER.values()), dtype=object)
    found = overlapping_pairs(geoms)
    got = {(names[i], names[j]): s for i, j, s in zip(found.first, found.second, found.share, strict=True)}
    assert got == pytest.approx(BY_HAND)
    # every pair with any overlap (tolerance 0), against geopandas' overlay of the layer with itself
    layer = gpd.GeoDataFrame({"name": names, "area": shapely.area(geoms)}, geometry=geoms)
    pieces = gpd.overlay(layer, layer, how="intersection", keep_geom_type=True)
    pieces = pieces[(pieces.name_1 < pieces.name_2) & (pieces.area > 0)]
    expected = {
        (a, b): area / min(s1, s2)
        for a, b, area, s1, s2 in zip(pieces.name_1, pieces.name_2, pieces.area, pieces.area_1, pieces.area_2)
    }
    everything = overlapping_pairs(geoms, tol=0)
    got = {(names[i], names[j]): s for i, j, s in zip(everything.first, everything.second, everything.share)}
    assert got == pytest.approx(expected, rel=1e-9)
    assert got[("C", "D")] == pytest.approx(0.001)  # the sliver is measured, and under the tolerance


def test_a_stack_of_copies_stops_early_and_the_query_bound_holds():
    """Hostile layers make box pairs grow as n²: queries go in pieces by a bound on each box's pairs, and measuring
    stops at MAX_FOUND overlapping pairs (the message says "or more")."""
    stack = np.array([shapely.box(0, 0, 1, 1)] * 20_000, dtype=object)
    found = overlapping_pairs(stack)
    assert len(found) == MAX_FOUND and not found.complete
    rng = np.random.default_rng(1)
    xy, size = rng.uniform(0, 1000, (3000, 2)), rng.exponential(10, (3000, 2)) ** rng.uniform(0.5, 1.6, (3000, 1))
    boxes = shapely.box(xy[:, 0], xy[:, 1], xy[:, 0] + size[:, 0], xy[:, 1] + size[:, 1])
    boxes[::97] = None
    meets = np.bincount(shapely.STRtree(boxes).query(boxes)[0], minlength=len(boxes))
    assert (_pairs_bound(shapely.bounds(boxes)) >= meets).all()


def test_convex_neighbours_skip_the_shape_test_only_when_an_edge_separates_them(monkeypatch):
    """A shared edge walked in opposite directions by two convex areas separates them (the Voronoi shortcut); a
    copy (same direction) or a reversed copy (same area, other winding) must not be taken as separated."""
    pts = shapely.multipoints(np.random.default_rng(3).uniform(0, 1000, (1500, 2)))
    cells = shapely.intersection(shapely.get_parts(shapely.voronoi_polygons(pts)), shapely.box(0, 0, 1000, 1000))
    cells[5] = shapely.affinity.translate(cells[5], 5, 0)
    cells[200], cells[300] = cells[201], shapely.reverse(cells[301])
    keys = _separated_neighbours(cells)
    a, b = np.divmod(keys, len(cells))
    assert len(keys) > 3000 and not shapely.relate_pattern(cells[a], cells[b], "T********").any()
    assert not np.isin([200 * len(cells) + 201, 300 * len(cells) + 301], keys).any()
    plain = overlapping_pairs(cells)
    monkeypatch.setattr(spatial.overlaps, "CHUNK", 100)  # the shortcut is taken from this many candidate pairs
    short = overlapping_pairs(cells)
    assert {(200, 201), (300, 301)} <= set(zip(short.first.tolist(), short.second.tolist()))
    assert (short.first.tolist(), short.second.tolist()) == (plain.first.tolist(), plain.second.tolist())


# -- uploads ---------------------------------------------------------------------------------------------------------
def test_two_overlapping_areas_are_refused_and_nothing_is_stored(client):
    before = stored(client)
    r = post(client, {"boundaries": ("areas.parquet", parquet(shifted(grid(), 55, 40.0)))}, id="overlapping")
    refusal = problems(r)["overlapping_areas"]
    assert refusal["pairs"] == [{"ids": ["a55", "a56"], "share": pytest.approx(0.4)}]
    assert refusal["ids"] == ["a55", "a56"]
    assert "a55 and a56 (40% of the smaller)" in r.json()["detail"]
    assert "as its own dataset" in r.json()["detail"]
    assert stored(client) == before


@pytest.mark.parametrize(("widen", "status"), [(0.1, 201), (0.9, 201), (1.5, 422)], ids=["0.1%", "0.9%", "1.5%"])
def test_digitising_slivers_are_accepted(client, widen, status):
    """Every cell reaches ``widen`` % of its width into its neighbour: up to 1 % is digitising noise."""
    r = post(client, {"boundaries": ("areas.parquet", parquet(grid(widen)))}, id=f"slivers-{int(widen * 10)}")
    assert r.status_code == status, r.text
    if status == 422:
        assert problems(r)["overlapping_areas"]["n_pairs"] == SIDE * (SIDE - 1)


def broken() -> gpd.GeoDataFrame:
    """An overlap (a55 over a56), a repeated id (a90 named a0) and a self-intersecting shape (a33)."""
    gdf = shifted(grid(), 55, 40.0)
    x, y, *_ = gdf.geometry[33].bounds
    gdf.loc[33, "geometry"] = shapely.Polygon([(x, y), (x + CELL, y + CELL), (x + CELL, y), (x, y + CELL)])
    gdf.loc[90, "id"] = "a0"
    return gdf


def test_an_overlap_is_named_with_a_repeated_id_and_an_invalid_shape(client):
    before = stored(client)
    named = problems(post(client, {"boundaries": ("areas.parquet", parquet(broken()))}))
    assert named["duplicate_id"]["ids"] == ["a0"]
    assert named["invalid_geometry"]["ids"] == ["a33"]
    assert named["overlapping_areas"]["ids"] == ["a55", "a56"]
    assert stored(client) == before


def test_with_counts_joined_from_a_table_every_problem_is_named_too(client):
    gdf = broken()
    counts = gdf[["id", "total", "migrants"]].drop_duplicates("id").to_csv(index=False).encode()
    before = stored(client)
    r = post(client, {"boundaries": ("areas.parquet", parquet(gdf[["id", "geometry"]])), "counts": ("c.csv", counts)})
    named = problems(r)
    assert {"duplicate_id", "invalid_geometry", "overlapping_areas"} <= set(named)
    assert named["overlapping_areas"]["ids"] == ["a55", "a56"]
    assert stored(client) == before


# -- the other paths that read files for publication: command line, batch, bundled data ------------------------------
def test_a_file_read_by_the_command_line_is_refused_too(tmp_path, segmap):
    path = tmp_path / "areas.parquet"
    path.write_bytes(parquet(shifted(grid(), 55, 40.0)))
    with pytest.raises(ValidationError) as err:  # load_dataset: the loader of the CLI, batch jobs, bundled data
        load_dataset(path, groups=["migrants"], total="total", key="id")
    assert [p.code for p in err.value.problems] == ["overlapping_areas"]
    out = segmap("indices", path, "--group", "migrants", "--total", "total", "--key", "id")
    assert out.returncode == 2 and out.stdout == ""
    assert "a55 and a56 (40% of the smaller)" in out.stderr


REAL = [
    "berlin/berlin-lor-planning-areas-until-2020.geojson",
    "berlin/berlin-lor-district-regions-until-2020.geojson",
    "berlin/berlin-lor-forecast-areas-until-2020.geojson",
    "berlin/berlin-lor-forecast-areas-from-2021.geojson",
    "berlin/berlin-lor-districts.geojson",
    "chicago/Chicago_2020.geojson",
    "rio/Limite_de_Bairros.shp",
    "rio/Limite_Favelas.shp",
    "sacramento/sacramento1.geojson",
]


def _largest_share(gdf: gpd.GeoDataFrame) -> float:
    geoms = shapely.make_valid(np.asarray(gdf.geometry.values, dtype=object))
    return float(overlapping_pairs(geoms, tol=0).share.max(initial=0))


def test_bundled_boundaries_are_not_refused():
    """Their slivers are far under 1 % (measured: at most 7e-8 of the smaller area)."""
    shares = {p.name: _largest_share(gpd.read_parquet(p)) for p in (BUNDLED / "boundaries").glob("*.parquet")}
    shares["georgia"] = _largest_share(gpd.read_file(BUNDLED / "boundaries" / "georgia_counties.gpkg"))
    assert len(shares) == 5 and max(shares.values()) < 1e-6, shares


@pytest.mark.parametrize("name", REAL)
def test_real_boundaries_are_not_refused(name):
    """Berlin, Chicago, Rio (bairros; the favelas too) and Sacramento: slivers of at most 7e-8 of the smaller area.
    (Cape Town's settlements overlap each other by up to 99.9 %: a settlements layer, never uploaded as areas.)"""
    assert _largest_share(gpd.read_file(shared_path(*name.split("/")))) < 1e-6
