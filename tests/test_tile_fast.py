"""The cached-tile fast path (app/tilefast.py): a repeated anonymous tile is answered before FastAPI with the bytes
and headers the whole stack sent for it, 304 when the client holds it, never for a replaced dataset, an owner or a
provisional tile. CORS requests: tests/test_tile_cache_single.py."""

from __future__ import annotations

import asyncio
import sqlite3

import mapbox_vector_tile
import pytest
from fastapi.testclient import TestClient
from test_service import square_geojson

from app.tilefast import FastTiles

ID = "fast-tiles"


def _upload(c: TestClient, scale: int, dataset_id: str = ID) -> None:
    """Four squares as ``dataset_id``, their populations times ``scale`` (a new version each call)."""
    c.delete(f"/v1/datasets/{dataset_id}")
    data = square_geojson(n=4, pop=[scale * p for p in (100, 200, 300, 400)], mig=[30, 40, 50, 60])
    form = {"groups": "mig", "total": "pop", "key": "code", "id": dataset_id}
    r = c.post("/v1/datasets", data=form, files={"boundaries": ("x.geojson", data, "application/json")})
    assert r.status_code == 201, r.text


def _totals(body: bytes) -> list:
    return sorted(f["properties"]["pop"] for f in mapbox_vector_tile.decode(body)["areas"]["features"])


def _tile_url(c: TestClient, z: int, x: int, y: int) -> str:
    return c.get(f"/v1/datasets/{ID}/tilejson.json").json()["tiles"][0].split("testserver")[1].format(z=z, x=x, y=y)


@pytest.fixture(scope="module")
def client(app_client):
    _upload(app_client, 1)
    yield app_client
    app_client.delete(f"/v1/datasets/{ID}")


def _fast(c: TestClient) -> FastTiles:
    return c.app.__dict__["_fast_tiles"]


@pytest.mark.parametrize("versioned", [False, True])
def test_a_repeated_tile_has_the_bytes_and_headers_of_the_full_stack(client, versioned):
    url = _tile_url(client, 1, 1, 0) if versioned else f"/v1/datasets/{ID}/tiles/1/1/0.mvt"
    first = client.get(url)
    hits = _fast(client).hits
    again = client.get(url)
    assert first.status_code == again.status_code == 200 and first.content
    assert _fast(client).hits == hits + 1  # answered by the fast path
    assert again.content == first.content and again.headers.raw == first.headers.raw
    assert again.headers["x-content-type-options"] == "nosniff" and "x-api-key" in again.headers["vary"].lower()


def test_if_none_match_is_a_304_with_the_headers_of_the_full_stack(client):
    url = f"/v1/datasets/{ID}/tiles/2/2/1.mvt"
    etag = client.get(url).headers["etag"]
    fast = _fast(client)
    fast._entries = type(fast._entries)(fast.max_bytes, sizeof=lambda e: len(e[1]))  # forget it: the full stack
    hits = fast.hits
    full = client.get(url, headers={"If-None-Match": etag})
    assert full.status_code == 304 and fast.hits == hits
    client.get(url)  # stored again
    quick = client.get(url, headers={"If-None-Match": f'"other", {etag}'})
    assert quick.status_code == 304 and fast.hits == hits + 1 and not quick.content
    assert quick.headers.raw == full.headers.raw
    assert client.get(url, headers={"If-None-Match": '"other"'}).status_code == 200


def test_an_owner_is_never_answered_nor_stored_by_the_fast_path(client):
    url = f"/v1/datasets/{ID}/tiles/3/4/3.mvt"
    hits = _fast(client).hits
    owner = [client.get(url, headers={"X-API-Key": "any"}) for _ in range(2)]
    assert all(r.status_code == 200 and r.content for r in owner) and _fast(client).hits == hits
    assert client.get(url).content and _fast(client).hits == hits  # the owner's requests stored nothing


def test_a_replaced_dataset_is_never_served_from_the_fast_path(client):
    url = f"/v1/datasets/{ID}/tiles/0/0/0.mvt"
    before = [client.get(url) for _ in range(2)][1]
    _upload(client, 3)  # a replacement by another worker changes the catalogue alike
    after = client.get(url)
    assert after.status_code == 200 and after.headers["etag"] != before.headers["etag"]
    assert _totals(after.content) == [3 * t for t in _totals(before.content)] and sum(_totals(after.content)) == 3000
    _upload(client, 1)


def _run(fast: FastTiles, app, headers=()) -> list:
    sent = []

    async def send(message):
        sent.append(message)

    async def receive():
        return {"type": "http.request", "body": b""}

    scope = {"type": "http", "method": "GET", "path": "/v1/datasets/d/tiles/1/0/0.mvt", "headers": list(headers)}
    asyncio.run(fast(scope, receive, send, app))
    return sent


def _tile_app(cache_control: bytes, calls: list):
    async def app(scope, receive, send):
        calls.append(1)
        headers = [(b"etag", b'"t"'), (b"cache-control", cache_control)]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": b"tile"})

    return app


def test_provisional_tiles_are_never_answered_from_memory(tmp_path):
    sqlite3.connect(tmp_path / "catalog.sqlite").execute("CREATE TABLE t (x)")
    for control, stored in ((b"no-store, max-age=2", False), (b"public, max-age=3600", True)):
        fast, calls = FastTiles(tmp_path / "catalog.sqlite"), []
        app = _tile_app(control, calls)
        assert _run(fast, app)[1]["body"] == _run(fast, app)[1]["body"] == b"tile"
        assert len(calls) == (1 if stored else 2), control
