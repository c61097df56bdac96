"""Vector tiles over HTTP (in process): decoded, checked against the data, read by GDAL as a real client."""

from __future__ import annotations

import shutil
import subprocess

import geopandas as gpd
import mapbox_vector_tile
import numpy as np
import pytest
import shapely

from app.tiles import EXTENT, TileAttributes, TileIndex, tile_bounds
from spatial.io import load_dataset


def lonlat_tile(lon, lat, z):
    n = 2**z
    x = int((lon + 180) / 360 * n)
    y = int((1 - np.arcsinh(np.tan(np.radians(lat))) / np.pi) / 2 * n)
    return z, x, y


@pytest.fixture(scope="module")
def georgia(georgia_paths):
    return load_dataset(
        georgia_paths["boundaries"],
        counts=georgia_paths["counts"],
        key="area_key",
        groups=["foreign_born", "black"],
        total="total_population",
    )


def test_tile_features_sit_where_the_areas_are(georgia):
    index = TileIndex(georgia.areas)
    z, x, y = lonlat_tile(-84.39, 33.75, 7)  # Atlanta
    props = TileAttributes({"id": np.asarray(georgia.ids, dtype=object)})
    tile = mapbox_vector_tile.decode(index.tile(z, x, y, props))
    features = tile["areas"]["features"]
    minx, miny, maxx, maxy = tile_bounds(z, x, y)
    merc = georgia.areas.to_crs(3857)
    expected = set(merc.loc[merc.intersects(shapely.box(minx, miny, maxx, maxy)), "id"])
    got = {f["properties"]["id"] for f in features}
    assert expected <= got  # nothing truncated; the buffer may add neighbours just outside
    f = next(f for f in features if f["properties"]["id"] == "13121")  # Fulton county
    ring = np.array(
        f["geometry"]["coordinates"][0] if f["geometry"]["type"] == "Polygon" else f["geometry"]["coordinates"][0][0]
    )
    cx, cy = merc.set_index("id").geometry["13121"].centroid.coords[0]
    # decoded y is up (mapbox-vector-tile flips by default); compare in tile units
    tx, ty = (cx - minx) / (maxx - minx) * EXTENT, (cy - miny) / (maxy - miny) * EXTENT
    assert ring[:, 0].min() - 50 <= tx <= ring[:, 0].max() + 50 and ring[:, 1].min() - 50 <= ty <= ring[:, 1].max() + 50


def test_shared_borders_stay_shared_when_simplified(georgia):
    index = TileIndex(georgia.areas)
    low = index.geometries(5)
    union_before = shapely.union_all(index.geoms).area
    gaps = union_before - shapely.union_all(low).area
    assert abs(gaps) / union_before < 0.01
    assert shapely.get_num_coordinates(low).sum() < shapely.get_num_coordinates(index.geoms).sum()


def test_tiles_over_http(app_client):
    http = app_client
    z, x, y = lonlat_tile(-84.39, 33.75, 6)
    url = f"/v1/datasets/georgia-1990/tiles/{z}/{x}/{y}.mvt"
    r = http.get(url, params={"group": "black", "statistic": "lisa", "permutations": 99})
    assert r.status_code == 200 and r.headers["content-type"] == "application/vnd.mapbox-vector-tile"
    props = [f["properties"] for f in mapbox_vector_tile.decode(r.content)["areas"]["features"]]
    assert props and {"id", "total_population", "black", "black_share", "value", "label"} <= set().union(*props)
    assert {p["label"] for p in props} <= {
        "high_high",
        "low_low",
        "high_low",
        "low_high",
        "not_significant",
        "no_neighbours",
        "suppressed",
    }
    again = http.get(
        url,
        params={"group": "black", "statistic": "lisa", "permutations": 99},
        headers={"If-None-Match": r.headers["etag"]},
    )
    assert again.status_code == 304
    bad = http.get("/v1/datasets/georgia-1990/tiles/3/8/1.mvt")
    assert bad.status_code == 404 and bad.headers["content-type"] == "application/problem+json"
    assert http.get("/v1/datasets/nope/tiles/0/0/0.mvt").status_code == 404
    tj = http.get("/v1/datasets/georgia-1990/tilejson.json").json()
    assert tj["tilejson"] == "3.0.0" and tj["vector_layers"][0]["id"] == "areas"
    assert "foreign_born_share" in tj["vector_layers"][0]["fields"]


@pytest.mark.skipif(shutil.which("ogrinfo") is None, reason="GDAL's ogrinfo (Debian gdal-bin) is not installed")
def test_gdal_reads_a_tile(app_client, tmp_path):
    z, x, y = lonlat_tile(-84.39, 33.75, 6)
    path = tmp_path / f"{y}.mvt"
    path.write_bytes(app_client.get(f"/v1/datasets/georgia-1990/tiles/{z}/{x}/{y}.mvt").content)
    out = subprocess.run(
        ["ogrinfo", "-ro", "-al", "-so", "-oo", f"X={x}", "-oo", f"Y={y}", "-oo", f"Z={z}", f"MVT:{path}"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    assert "Layer name: areas" in out.stdout and "Feature Count:" in out.stdout
    count = int(out.stdout.split("Feature Count:")[1].split()[0])
    assert count > 10


def _grid(n_side=40, cell=100.0):
    from shapely.geometry import box

    from spatial.dataset import validate

    i, j = np.divmod(np.arange(n_side * n_side), n_side)
    x0, y0 = 500_000.0, 5_000_000.0
    rng = np.random.default_rng(1)
    total = rng.integers(20, 500, len(i)).astype(float)
    migrants = np.floor(total * rng.uniform(0, 0.4, len(i)))
    gdf = gpd.GeoDataFrame(
        {"id": [f"a{k}" for k in range(len(i))], "total": total, "migrants": migrants},
        geometry=[box(x0 + a * cell, y0 + b * cell, x0 + (a + 1) * cell, y0 + (b + 1) * cell) for a, b in zip(i, j)],
        crs="EPSG:32633",
    )
    return validate(gdf, id_col="id", groups=["migrants"], total="total")


def _attributes(ds, suppress=()):
    migrants = ds.areas["migrants"].to_numpy(float).copy()
    migrants[list(suppress)] = np.nan
    total = ds.areas["total"].to_numpy(float)
    return TileAttributes(
        {
            "id": np.asarray(ds.ids, dtype=object),
            "total": total,
            "migrants": migrants,
            "migrants_share": migrants / total,
        },
        sums=("total", "migrants"),
        ratios={"migrants_share": ("migrants", "total")},
    )


def test_areas_under_a_pixel_merge_into_cells_that_conserve_counts():
    ds = _grid()
    index = TileIndex(ds.areas)
    z = 9  # a 100 m cell is well under the 2-pixel merge size (~600 m) here
    assert index.small(z).all() and not index.small(15).any()
    lon, lat = ds.areas.to_crs(4326).geometry.union_all().centroid.coords[0]
    centre = lonlat_tile(lon, lat, z)
    features = []
    for dx in (-1, 0, 1):  # the city may straddle tiles: each area is counted in exactly one
        for dy in (-1, 0, 1):
            body = index.tile(z, centre[1] + dx, centre[2] + dy, _attributes(ds))
            if body:
                features += mapbox_vector_tile.decode(body)["areas"]["features"]
    props = [f["properties"] for f in features]
    assert all("id" not in p for p in props)  # a merged cell is no single area
    assert sum(p["areas"] for p in props) == len(ds.ids)
    assert sum(p["total"] for p in props) == ds.areas["total"].sum()
    assert sum(p["migrants"] for p in props) == ds.areas["migrants"].sum()
    for p in props:
        assert p["migrants_share"] == pytest.approx(p["migrants"] / p["total"])


def _centre_z9():
    """The grid city, its tile index and the zoom-9 tile at its centre (where its 100 m cells merge)."""
    ds = _grid()
    lon, lat = ds.areas.to_crs(4326).geometry.union_all().centroid.coords[0]
    _, x, y = lonlat_tile(lon, lat, 9)
    return ds, TileIndex(ds.areas), 9, x, y


def test_a_suppressed_count_keeps_its_merged_cell_hidden():
    ds, index, z, x, y = _centre_z9()
    bodies = [
        index.tile(z, x + dx, y + dy, _attributes(ds, suppress=range(len(ds.ids))))
        for dx in (-1, 0, 1)
        for dy in (-1, 0, 1)
    ]
    props = [f["properties"] for b in bodies if b for f in mapbox_vector_tile.decode(b)["areas"]["features"]]
    assert props and all("migrants" not in p and "migrants_share" not in p and "total" in p for p in props)


def test_a_merged_cell_with_one_withheld_member_is_coloured_by_its_published_ones():
    ds, index, z, x, y = _centre_z9()
    attributes = _attributes(ds, suppress=range(0, len(ds.ids), 7))
    props = [f["properties"] for f in mapbox_vector_tile.decode(index.tile(z, x, y, attributes))["areas"]["features"]]
    merged = [p for p in props if "withheld" in p]
    assert merged, "no merged cell held a withheld area"
    share = attributes.columns["migrants"].astype(float) / attributes.columns["total"].astype(float)
    for p in merged:
        assert "migrants" not in p and 0 < p["withheld"] < p["areas"]  # no summed count; some members published
        assert 0 <= p["migrants_share"] <= 1
    # each share is that of the cell's published members: between their smallest and largest share
    published = share[np.isfinite(share)]
    assert all(published.min() - 1e-9 <= p["migrants_share"] <= published.max() + 1e-9 for p in merged)
