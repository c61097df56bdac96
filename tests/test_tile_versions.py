"""Versioned tile URLs: immutable for a year, listed by TileJSON, changed by a replacement; an old version is a
clear 404 naming the current one, and the unversioned URLs keep working with a short cache."""

from __future__ import annotations

import io
from urllib.parse import urlsplit

import geopandas as gpd
import mapbox_vector_tile
import pandas as pd
import pytest
from fastapi.testclient import TestClient

from app.main import create_app
from app.settings import Settings
from conftest import BUNDLED

KEY = "k"
ID = "versions"


def _files(scale: int) -> dict:
    gdf = gpd.read_file(BUNDLED / "boundaries" / "georgia_counties.gpkg").head(30)
    counts = pd.read_csv(BUNDLED / "census" / "georgia_counties_1990.csv", dtype={"area_key": str}).head(30)
    counts["total_population"] *= scale
    buf = io.BytesIO()
    gdf.to_file(buf, driver="GPKG")
    return {"boundaries": ("g.gpkg", buf.getvalue()), "counts": ("c.csv", counts.to_csv(index=False).encode())}


def _upload(c: TestClient, scale: int, **form) -> None:
    c.delete(f"/v1/datasets/{ID}", headers={"X-API-Key": KEY})
    data = {"id": ID, "key": "area_key", "total": "total_population", "groups": "foreign_born", **form}
    r = c.post("/v1/datasets", files=_files(scale), data=data, headers={"X-API-Key": KEY})
    assert r.status_code == 201, r.text


@pytest.fixture(scope="module")
def client(tmp_path_factory):
    settings = Settings(data_dir=tmp_path_factory.mktemp("versions"), register_bundled=False, api_key=KEY)
    with TestClient(create_app(settings)) as c:
        yield c


def _tile_url(c: TestClient, z=0, x=0, y=0, **query) -> str:
    tj = c.get(f"/v1/datasets/{ID}/tilejson.json", params=query).json()
    url = urlsplit(tj["tiles"][0])
    return url.path.format(z=z, x=x, y=y) + (f"?{url.query}" if url.query else "")


def _totals(body: bytes) -> list:
    props = [f["properties"] for f in mapbox_vector_tile.decode(body)["areas"]["features"]]
    return sorted(p["total_population"] for p in props if p.get("total_population") is not None)


def test_versioned_tiles_are_immutable_and_replacement_changes_the_urls(client):
    _upload(client, 1)
    url = _tile_url(client)
    assert url.startswith(f"/v1/datasets/{ID}/tiles/") and url.count("/") == 8  # …/tiles/{version}/0/0/0.mvt
    first = client.get(url)
    assert first.status_code == 200 and first.headers["cache-control"] == "public, max-age=31536000, immutable"
    current = client.get(f"/v1/datasets/{ID}/tiles/0/0/0.mvt")
    assert current.content == first.content and current.headers["cache-control"] == "public, max-age=3600"
    again = client.get(url, headers={"If-None-Match": first.headers["etag"]})
    assert again.status_code == 304 and "immutable" in again.headers["cache-control"]
    assert client.get(url).content == first.content  # from the memory layer: same bytes, same headers
    assert client.get(url).headers["cache-control"] == first.headers["cache-control"]

    _upload(client, 2)
    new_url = _tile_url(client)
    assert new_url != url
    old = client.get(url)
    assert old.status_code == 404 and old.headers["content-type"] == "application/problem+json"
    body = old.json()
    assert (
        body["type"].endswith("/replaced_version")
        and body["current_version"] in new_url
        and "tilejson" in body["detail"]
    )
    fresh = client.get(new_url)
    assert fresh.status_code == 200 and _totals(fresh.content) == [2 * t for t in _totals(first.content)]


def test_a_layer_query_stays_on_the_versioned_url(client):
    _upload(client, 1)
    url = _tile_url(client, group="foreign_born", statistic="lq")
    assert "statistic=lq" in url
    r = client.get(url)
    assert r.status_code == 200 and "immutable" in r.headers["cache-control"]
    props = [f["properties"] for f in mapbox_vector_tile.decode(r.content)["areas"]["features"]]
    assert any("value" in p for p in props)


def test_a_new_disclosure_rule_changes_the_urls_even_for_the_same_content(client):
    _upload(client, 1, disclosure_threshold="10")
    url = _tile_url(client)
    _upload(client, 1, disclosure_threshold="50")
    assert _tile_url(client) != url
    assert client.get(url).status_code == 404


def test_the_owner_reads_the_same_urls_privately(client):
    _upload(client, 1)
    url = _tile_url(client)
    r = client.get(url, headers={"X-API-Key": KEY})
    assert (
        r.status_code == 200 and r.headers["cache-control"].startswith("private") and "X-API-Key" in r.headers["vary"]
    )
