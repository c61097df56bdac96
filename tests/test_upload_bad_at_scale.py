"""A large upload with one invalid geometry and one duplicated id (issue 20): one 4xx names both, nothing stored.

The million-area case is timed in benchmarks/scale_upload.py; here 2,000 areas, by the paths an upload takes:
counts in the boundary file, counts joined from a CSV, and a NaN vertex (checked while reading before).
"""

from __future__ import annotations

import io

import geopandas as gpd
import numpy as np
import pytest
import shapely

from conftest import in_process

KEY = "scale-key"
N, BROKEN, REPEATED = 2_000, 700, 1_400  # area BROKEN gets a bad shape, area REPEATED the id of area 0


@pytest.fixture(scope="module")
def client(tmp_path_factory):
    with in_process(
        tmp_path_factory.mktemp("bad-at-scale"), register_bundled=False, api_key=KEY, maps=False, statistics=False
    ) as c:
        yield c


def grid(bad_shape) -> gpd.GeoDataFrame:
    i, j = np.divmod(np.arange(N), 50)
    x, y = 500_000.0 + 100 * i, 5_000_000.0 + 100 * j
    geoms = shapely.box(x, y, x + 100, y + 100)
    geoms[BROKEN] = bad_shape(x[BROKEN], y[BROKEN])
    ids = np.array([f"a{k}" for k in range(N)], dtype=object)
    ids[REPEATED] = ids[0]
    return gpd.GeoDataFrame(
        {"id": ids, "total": np.full(N, 100), "migrants": np.full(N, 10)}, geometry=geoms, crs="EPSG:32633"
    )


def bowtie(x, y):  # self-intersecting: invalid, repairable
    return shapely.Polygon([(x, y), (x + 100, y + 100), (x + 100, y), (x, y + 100), (x, y)])


def nan_vertex(x, y):
    return shapely.Polygon([(x, y), (x + 100, y), (float("nan"), y + 100), (x, y)])


def parquet(gdf: gpd.GeoDataFrame) -> bytes:
    buf = io.BytesIO()
    gdf.to_parquet(buf, index=False)
    return buf.getvalue()


def stored(client) -> tuple[list, list]:
    ids = sorted(d["id"] for d in client.get("/v1/datasets").json()["datasets"])
    files = sorted(p.name for p in client.app.state.settings.data_dir.joinpath("datasets").iterdir())
    return ids, files


def post(client, files: dict, **form):
    form = {"groups": "migrants", "total": "total", "key": "id", **form}
    return client.post("/v1/datasets", files=files, data=form, headers={"X-API-Key": KEY})


def named(r) -> dict:
    assert 400 <= r.status_code < 500, r.text
    assert r.headers["content-type"].startswith("application/problem+json")
    return {p["code"]: p["ids"] for p in r.json()["problems"]}


@pytest.mark.parametrize(
    ("shape", "code"), [(bowtie, "invalid_geometry"), (nan_vertex, "non_finite_coordinates")], ids=["bowtie", "nan"]
)
def test_counts_in_the_file(client, shape, code):
    before = stored(client)
    r = post(client, {"boundaries": ("areas.parquet", parquet(grid(shape)))})
    problems = named(r)
    assert problems["duplicate_id"] == ["a0"]
    assert problems[code] == [f"a{BROKEN}"]
    assert "a0" in r.json()["detail"] and f"a{BROKEN}" in r.json()["detail"]
    assert stored(client) == before


def test_counts_joined_from_a_table(client):
    gdf = grid(bowtie)
    counts = gdf[["id", "total", "migrants"]].iloc[:REPEATED].to_csv(index=False).encode()
    before = stored(client)
    r = post(
        client,
        {"boundaries": ("areas.parquet", parquet(gdf[["id", "geometry"]])), "counts": ("counts.csv", counts)},
    )
    problems = named(r)
    assert problems["duplicate_id"] == ["a0"] and problems["invalid_geometry"] == [f"a{BROKEN}"]
    assert stored(client) == before


def test_alone_the_invalid_shape_is_repaired_and_reported(client):
    gdf = grid(bowtie)
    gdf.loc[REPEATED, "id"] = f"a{REPEATED}"
    r = post(client, {"boundaries": ("areas.parquet", parquet(gdf))}, id="repaired")
    assert r.status_code == 201, r.text
    assert [(p["code"], p["ids"]) for p in r.json()["repairs"]] == [("repaired_geometry", [f"a{BROKEN}"])]
    assert r.json()["n_areas"] == N
