"""OGC API – Tiles over every collection (datasets and local results): tilesets, tileset metadata, the
WebMercatorQuad tile matrix set and tiles equal to the service's XYZ tiles; GDAL as a client on a real server."""

from __future__ import annotations

import re
import shutil
import subprocess

import httpx
import mapbox_vector_tile
import morecantile
import pytest
from fastapi.testclient import TestClient
from tile_fixtures import georgia_only

from app.main import create_app
from app.settings import Settings
from server import LiveServer

ID = "georgia-1990"
OGC = "/ogc/collections"
MVT = "application/vnd.mapbox-vector-tile"
ATLANTA = (7, 33, 51)  # z, x (column), y (row): Atlanta


@pytest.fixture(scope="module")
def client(tmp_path_factory):
    bundle = georgia_only(tmp_path_factory.mktemp("ogc-tiles-bundle"))
    with TestClient(create_app(Settings(data_dir=tmp_path_factory.mktemp("ogc-tiles"), bundled_dir=bundle))) as c:
        yield c


def _link(doc: dict, rel: str) -> dict:
    return next(link for link in doc["links"] if link["rel"] == rel)


def test_a_collection_leads_to_its_tileset_and_tiles(client):
    collection = client.get(f"{OGC}/{ID}").json()
    tilesets = client.get(_link(collection, "http://www.opengis.net/def/rel/ogc/1.0/tilesets-vector")["href"]).json()
    (summary,) = tilesets["tilesets"]
    assert summary["dataType"] == "vector" and summary["tileMatrixSetURI"].endswith("/WebMercatorQuad")
    tileset = client.get(_link(summary, "self")["href"]).json()
    template = _link(tileset, "item")
    assert template["type"] == MVT and template["href"].endswith("/{tileMatrix}/{tileRow}/{tileCol}")
    assert tileset["layers"][0]["id"] == "areas"
    assert tileset["layers"][0]["propertiesSchema"]["properties"]["foreign_born_share"] == {"type": "number"}
    z, x, y = ATLANTA
    limits = {lim["tileMatrix"]: lim for lim in tileset["tileMatrixSetLimits"]}
    assert limits[str(z)]["minTileCol"] <= x <= limits[str(z)]["maxTileCol"]
    assert limits[str(z)]["minTileRow"] <= y <= limits[str(z)]["maxTileRow"]
    assert limits["0"] == {"tileMatrix": "0", "minTileRow": 0, "maxTileRow": 0, "minTileCol": 0, "maxTileCol": 0}

    url = template["href"].format(tileMatrix=z, tileRow=y, tileCol=x)
    ogc = client.get(url)
    assert ogc.status_code == 200 and ogc.headers["content-type"] == MVT
    assert ogc.content == client.get(f"/v1/datasets/{ID}/tiles/{z}/{x}/{y}.mvt").content  # row is y, column is x
    ids = {f["properties"].get("id") for f in mapbox_vector_tile.decode(ogc.content)["areas"]["features"]}
    assert "13121" in ids  # Fulton county (Atlanta)


def test_a_local_result_collection_tiles_its_statistic(client):
    z, x, y = ATLANTA
    url = f"{OGC}/{ID}~lisa~black/tiles/WebMercatorQuad/{z}/{y}/{x}"
    ogc = client.get(url)
    same = client.get(
        f"/v1/datasets/{ID}/tiles/{z}/{x}/{y}.mvt", params={"group": "black", "statistic": "lisa", "permutations": 999}
    )
    assert ogc.status_code == 200 and ogc.content == same.content
    labels = {f["properties"].get("label") for f in mapbox_vector_tile.decode(ogc.content)["areas"]["features"]}
    assert labels & {"high_high", "low_low", "not_significant", "high_low", "low_high"}
    tileset = client.get(f"{OGC}/{ID}~lisa~black/tiles/WebMercatorQuad").json()
    assert "label" in tileset["layers"][0]["propertiesSchema"]["properties"]


def test_the_tile_matrix_set_is_web_mercator_quad(client):
    listed = client.get("/ogc/tileMatrixSets").json()["tileMatrixSets"]
    assert [t["id"] for t in listed] == ["WebMercatorQuad"]
    tms = client.get("/ogc/tileMatrixSets/WebMercatorQuad").json()
    assert morecantile.TileMatrixSet.model_validate(tms).matrix(7).matrixWidth == 128
    assert tms["crs"] == "http://www.opengis.net/def/crs/EPSG/0/3857" and tms["uri"].endswith("/WebMercatorQuad")
    conformance = client.get("/ogc/conformance").json()["conformsTo"]
    for c in ("core", "tileset", "tilesets-list", "geodata-tilesets", "mvt"):
        assert f"http://www.opengis.net/spec/ogcapi-tiles-1/1.0/conf/{c}" in conformance


def test_bad_tile_requests_are_clear_404s(client):
    for url in (
        f"{OGC}/{ID}/tiles/WorldCRS84Quad",
        f"{OGC}/{ID}/tiles/WebMercatorQuad/3/1/8",  # column 8 at matrix 3 (0-7)
        f"{OGC}/nope/tiles",
        f"{OGC}/{ID}~lisa~nogroup/tiles/WebMercatorQuad/0/0/0",
        "/ogc/tileMatrixSets/WorldCRS84Quad",
    ):
        r = client.get(url)
        assert r.status_code == 404 and r.headers["content-type"] == "application/problem+json", url


needs_gdal = pytest.mark.skipif(shutil.which("ogrinfo") is None, reason="GDAL (Debian gdal-bin) is not installed")


def _gdal_version() -> tuple[int, int]:
    out = subprocess.run(["gdalinfo", "--version"], capture_output=True, text=True).stdout
    major, minor = re.search(r"GDAL (\d+)\.(\d+)", out).groups()
    return int(major), int(minor)


@needs_gdal
@pytest.mark.server
def test_gdal_opens_the_collections_and_reads_tiles(tmp_path):
    with LiveServer(env={"SEGMAP_BUNDLED_DIR": georgia_only(tmp_path / "bundle")}) as base:
        listing = subprocess.run(["gdalinfo", f"OGCAPI:{base}{OGC}"], capture_output=True, text=True, timeout=120)
        assert listing.returncode == 0, listing.stderr
        assert f"OGCAPI:{base}{OGC}/{ID}~lisa~black" in listing.stdout

        # The tile the tileset template names, read by GDAL's MVT driver at its place in the matrix.
        z, x, y = ATLANTA
        tileset = httpx.get(f"{base}{OGC}/{ID}/tiles/WebMercatorQuad").json()
        url = _link(tileset, "item")["href"].format(tileMatrix=z, tileRow=y, tileCol=x)
        (tmp_path / "t.mvt").write_bytes(httpx.get(url, timeout=60).content)
        opts = ["-oo", f"X={x}", "-oo", f"Y={y}", "-oo", f"Z={z}"]
        out = subprocess.run(
            ["ogrinfo", "-ro", "-al", "-so", *opts, f"MVT:{tmp_path / 't.mvt'}"], capture_output=True, text=True
        )
        assert out.returncode == 0 and "Layer name: areas" in out.stdout, out.stderr
        assert "foreign_born_share: Real" in out.stdout

        # The OGCAPI driver's own vector-tile reader. GDAL reads the collection's CRS84 bbox as tile-matrix-set
        # coordinates for vector tiles, so the extent is given in EPSG:3857.
        grid = morecantile.tms.get("WebMercatorQuad")
        w, s, e, n = httpx.get(f"{base}{OGC}/{ID}").json()["extent"]["spatial"]["bbox"][0]
        (x0, y0), (x1, y1) = grid.xy(w, s), grid.xy(e, n)
        box = ["-oo", f"MINX={x0}", "-oo", f"MINY={y0}", "-oo", f"MAXX={x1}", "-oo", f"MAXY={y1}"]
        out = subprocess.run(
            ["ogrinfo", "-ro", "-so", *box, f"OGCAPI:{base}{OGC}/{ID}"], capture_output=True, text=True
        )
        if out.returncode != 0 and _gdal_version() < (3, 7):
            pytest.skip("this GDAL's OGCAPI driver has no vector-tile reader (Debian's 3.6.2 is built without it)")
        assert out.returncode == 0 and "Zoom level 7" in out.stdout, out.stdout + out.stderr
