"""Vector tiles over a real server: decoded, checked against the data, read by GDAL as a real client."""
from __future__ import annotations

import shutil
import subprocess

import geopandas as gpd
import httpx
import mapbox_vector_tile
import numpy as np
import pytest
import shapely

from app.tiles import EXTENT, TileIndex, tile_bounds
from spatial.io import load_dataset

pytestmark = pytest.mark.server


def lonlat_tile(lon, lat, z):
    n = 2**z
    x = int((lon + 180) / 360 * n)
    y = int((1 - np.arcsinh(np.tan(np.radians(lat))) / np.pi) / 2 * n)
    return z, x, y


@pytest.fixture(scope="module")
def georgia(georgia_paths):
    return load_dataset(georgia_paths["boundaries"], counts=georgia_paths["counts"], key="area_key",
                        groups=["foreign_born", "black"], total="total_population")


def test_tile_features_sit_where_the_areas_are(georgia):
    index = TileIndex(georgia.areas)
    z, x, y = lonlat_tile(-84.39, 33.75, 7)  # Atlanta
    props = [{"id": i} for i in georgia.ids]
    tile = mapbox_vector_tile.decode(index.tile(z, x, y, props))
    features = tile["areas"]["features"]
    minx, miny, maxx, maxy = tile_bounds(z, x, y)
    merc = georgia.areas.to_crs(3857)
    expected = set(merc.loc[merc.intersects(shapely.box(minx, miny, maxx, maxy)), "id"])
    got = {f["properties"]["id"] for f in features}
    assert expected <= got  # nothing truncated; the buffer may add neighbours just outside
    f = next(f for f in features if f["properties"]["id"] == "13121")  # Fulton county
    ring = np.array(f["geometry"]["coordinates"][0] if f["geometry"]["type"] == "Polygon" else f["geometry"]["coordinates"][0][0])
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


def test_tiles_over_http(live_server):
    z, x, y = lonlat_tile(-84.39, 33.75, 6)
    url = f"{live_server}/v1/datasets/georgia-1990/tiles/{z}/{x}/{y}.mvt"
    r = httpx.get(url, params={"group": "black", "statistic": "lisa", "permutations": 99}, timeout=60)
    assert r.status_code == 200 and r.headers["content-type"] == "application/vnd.mapbox-vector-tile"
    props = [f["properties"] for f in mapbox_vector_tile.decode(r.content)["areas"]["features"]]
    assert props and {"id", "total_population", "black", "black_share", "value", "label"} <= set().union(*props)
    assert {p["label"] for p in props} <= {"high_high", "low_low", "high_low", "low_high", "not_significant", "no_neighbours"}
    again = httpx.get(url, params={"group": "black", "statistic": "lisa", "permutations": 99}, headers={"If-None-Match": r.headers["etag"]})
    assert again.status_code == 304
    bad = httpx.get(f"{live_server}/v1/datasets/georgia-1990/tiles/3/8/1.mvt")
    assert bad.status_code == 404 and bad.headers["content-type"] == "application/problem+json"
    assert httpx.get(f"{live_server}/v1/datasets/nope/tiles/0/0/0.mvt").status_code == 404
    tj = httpx.get(f"{live_server}/v1/datasets/georgia-1990/tilejson.json").json()
    assert tj["tilejson"] == "3.0.0" and tj["vector_layers"][0]["id"] == "areas"
    assert "foreign_born_share" in tj["vector_layers"][0]["fields"]


@pytest.mark.skipif(shutil.which("ogrinfo") is None, reason="GDAL's ogrinfo (Debian gdal-bin) is not installed")
def test_gdal_reads_a_tile(live_server, tmp_path):
    z, x, y = lonlat_tile(-84.39, 33.75, 6)
    path = tmp_path / f"{y}.mvt"
    path.write_bytes(httpx.get(f"{live_server}/v1/datasets/georgia-1990/tiles/{z}/{x}/{y}.mvt").content)
    out = subprocess.run(["ogrinfo", "-ro", "-al", "-so", "-oo", f"X={x}", "-oo", f"Y={y}", "-oo", f"Z={z}", f"MVT:{path}"],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert "Layer name: areas" in out.stdout and "Feature Count:" in out.stdout
    count = int(out.stdout.split("Feature Count:")[1].split()[0])
    assert count > 10
