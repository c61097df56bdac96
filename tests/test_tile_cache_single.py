"""One memory tile cache (app/tilefast.py), CORS requests included: a tile asked with an Origin is answered from
memory with the bytes and headers the whole stack sends for that Origin (a 304 too), never with another Origin's
headers, never for a replaced dataset; the tile's body is held once whatever the origins."""

from __future__ import annotations

import asyncio
import sqlite3

import mapbox_vector_tile
import pytest
from fastapi.testclient import TestClient
from starlette.middleware.cors import CORSMiddleware
from test_tile_fast import _upload as upload_squares

from app.main import create_app
from app.middleware import KeyedCaching, SecurityHeaders
from app.settings import Settings
from app.tilefast import ENTRY_COST, HEADER_COST, MAX_QUERY, SLOT, FastTiles

ID = "single-cache"
A, A2, B, C = "https://city.example", "https://other-city.example", "https://evil.example", "https://worse.example"
URL = f"/v1/datasets/{ID}/tiles/0/0/0.mvt"


def _upload(c: TestClient, scale: int) -> None:
    upload_squares(c, scale, ID)


@pytest.fixture(scope="module")
def client(tmp_path_factory):
    settings = Settings(
        data_dir=tmp_path_factory.mktemp("single"), register_bundled=False, cors_origins=[A, A2], statistics=False
    )
    with TestClient(create_app(settings)) as c:
        _upload(c, 1)
        yield c


def _fast(c: TestClient) -> FastTiles:
    return c.app.__dict__["_fast_tiles"]


def _headers(origin: str | None, **more) -> dict:
    return {**({"Origin": origin} if origin else {}), **more}


def _full_then_cached(c: TestClient, headers: dict):
    """The whole stack's answer (memory emptied first), then the same request again, from memory."""
    c.get(URL)  # the fast path exists
    _fast(c).clear()
    full = c.get(URL, headers=headers)
    hits = _fast(c).hits
    cached = c.get(URL, headers=headers)
    assert _fast(c).hits == hits + 1, headers  # answered from memory
    return full, cached


@pytest.mark.parametrize("origin", [None, A, A2, B])
def test_a_tile_with_an_origin_is_the_full_stacks_answer_for_that_origin(client, origin):
    full, cached = _full_then_cached(client, _headers(origin))
    assert full.status_code == cached.status_code == 200 and full.content
    assert cached.content == full.content and cached.headers.raw == full.headers.raw
    vary = [t.strip().lower() for t in cached.headers["vary"].split(",")]
    assert vary.count("origin") == 1 and vary.count("x-api-key") == 1
    allowed = cached.headers.get("access-control-allow-origin")
    assert allowed == (origin if origin in (A, A2) else None)  # a refused origin is never allowed, even from memory


def test_each_origin_gets_its_own_cors_headers_from_one_stored_body(client):
    _fast(client).clear()
    first = {o: client.get(URL, headers=_headers(o)) for o in (A, B)}
    hits = _fast(client).hits
    other = client.get(URL, headers=_headers(A2))  # allowed too, but A's headers name A: the full stack answers
    assert _fast(client).hits == hits and other.headers["access-control-allow-origin"] == A2
    refused = client.get(URL, headers=_headers(C))  # refused like B: CORS adds the same, so B's answer serves
    assert _fast(client).hits == hits + 1 and "access-control-allow-origin" not in refused.headers
    _fast(client).clear()
    assert client.get(URL, headers=_headers(C)).headers.raw == refused.headers.raw  # C's own full-stack answer
    assert first[A].content == first[B].content == other.content


def test_the_tile_is_held_once_and_counted_with_every_header(client):
    _fast(client).clear()
    origins = (None, A, A2, B)
    answers = [client.get(URL, headers=_headers(o)) for o in origins]
    etag = answers[0].headers["etag"]
    not_modified = [client.get(URL, headers=_headers(o, **{"If-None-Match": etag})) for o in origins]
    assert {r.status_code for r in not_modified} == {304}
    heads = [h for r in answers for h in r.headers.raw]
    slots = sum(len(r.headers.raw) for r in not_modified)
    expected = len(answers[0].content) + sum(len(k) + len(v) + HEADER_COST for k, v in heads) + SLOT * slots
    expected += ENTRY_COST + len(URL)  # the entry and its key (no query string)
    assert _fast(client).size == expected  # one body, four header variants: no second copy anywhere
    layers, node = [], client.app.middleware_stack
    while node is not None:
        layers.append(type(node).__name__)
        assert not hasattr(node, "_entries"), type(node)  # no other layer keeps tiles in memory
        node = getattr(node, "app", None)
    assert "CORSMiddleware" in layers and "CachedTiles" not in layers


@pytest.mark.parametrize("origin", [A, B])
def test_a_304_with_an_origin_has_the_headers_of_the_full_stack(client, origin):
    etag = client.get(URL).headers["etag"]
    _fast(client).clear()
    asked = _headers(origin, **{"If-None-Match": f'"x", {etag}'})
    full = client.get(URL, headers=asked)  # not stored: a 304 has no body
    client.get(URL, headers=_headers(origin))
    hits = _fast(client).hits
    cached = client.get(URL, headers=asked)
    assert _fast(client).hits == hits + 1
    assert full.status_code == cached.status_code == 304 and not cached.content
    assert cached.headers.raw == full.headers.raw
    assert cached.headers.get("access-control-allow-origin") == (origin if origin == A else None)


def _totals(body: bytes) -> list:
    return sorted(f["properties"]["pop"] for f in mapbox_vector_tile.decode(body)["areas"]["features"])


def test_a_replaced_dataset_is_never_served_to_an_origin_from_memory(client):
    before = [client.get(URL, headers=_headers(A)) for _ in range(2)][1]
    _upload(client, 3)
    after = client.get(URL, headers=_headers(A))
    assert after.status_code == 200 and after.headers["etag"] != before.headers["etag"]
    assert _totals(after.content) == [3 * t for t in _totals(before.content)] and sum(_totals(after.content)) == 3000
    _upload(client, 1)


def test_an_owner_with_an_origin_is_neither_answered_nor_stored(client):
    _fast(client).clear()
    owner = [client.get(URL, headers=_headers(A, **{"X-API-Key": "k"})) for _ in range(2)]
    assert all(r.status_code == 200 and r.content for r in owner) and _fast(client).size == 0
    public = [client.get(URL, headers=_headers(A)) for _ in range(2)]  # now stored
    hits = _fast(client).hits
    again = client.get(URL, headers=_headers(A, **{"X-API-Key": "k"}))
    assert _fast(client).hits == hits and "private" in again.headers["cache-control"]
    assert "public" in public[1].headers["cache-control"]


# -- the cache against the app's CORS layer however configured (no dataset: a stand-in tile route) ----------------


def _route(calls: list, vary: bytes = b""):
    async def tile(scope, receive, send):
        calls.append(1)
        asked = dict(scope["headers"]).get(b"if-none-match", b"")
        headers = [(b"etag", b'"t1"'), (b"cache-control", b"public, max-age=60")] + ([(b"vary", vary)] if vary else [])
        status = 304 if b'"t1"' in asked else 200
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": b"" if status == 304 else b"tile bytes"})

    return tile


def _call(app, headers: list, fast: FastTiles | None = None) -> tuple:
    sent: list = []

    async def send(message):
        sent.append(message)

    async def receive():
        return {"type": "http.request", "body": b""}

    scope = {"type": "http", "method": "GET", "path": "/v1/datasets/d/tiles/1/0/0.mvt", "headers": headers}
    asyncio.run(fast(scope, receive, send, app) if fast else app(scope, receive, send))
    return sent[0]["status"], sent[0]["headers"], sent[1]["body"]


CONFIGS = [
    {"allow_origins": [A]},
    {"allow_origin_regex": r"https://[a-z-]+\.city\.example"},
    {"allow_origins": ["*"]},
    {"allow_origins": ["*"], "allow_credentials": True},  # echoes each origin: one variant per origin
]
ASKED = [None, A, "https://north.city.example", "https://south.city.example", B, C, A]


@pytest.mark.parametrize("config", CONFIGS)
def test_every_answer_from_memory_is_the_cors_layers_answer(tmp_path, config):
    sqlite3.connect(tmp_path / "catalog.sqlite").execute("CREATE TABLE t (x)")
    calls: list = []
    stack = SecurityHeaders(CORSMiddleware(KeyedCaching(_route(calls)), expose_headers=["ETag"], **config))
    fast = FastTiles(tmp_path / "catalog.sqlite", CORSMiddleware(None, expose_headers=["ETag"], **config))
    for condition in (None, '"t1"'):
        for origin in ASKED:
            asked = [(b"origin", origin.encode())] if origin else []
            asked += [(b"if-none-match", condition.encode())] if condition else []
            expected = _call(stack, asked)
            assert _call(stack, asked, fast) == _call(stack, asked, fast) == expected, (config, origin, condition)
    assert fast.hits >= len(ASKED)  # most answers came from memory


def test_an_answer_varying_on_a_header_not_in_the_key_is_not_stored(tmp_path):
    sqlite3.connect(tmp_path / "catalog.sqlite").execute("CREATE TABLE t (x)")
    for vary, stored in ((b"Accept-Encoding", False), (b"*", False), (b"X-API-Key, Origin", True)):
        calls: list = []
        fast = FastTiles(tmp_path / "catalog.sqlite")
        for _ in range(2):
            _call(_route(calls, vary), [], fast)
        assert len(calls) == (1 if stored else 2), vary


def test_every_entry_counts_its_key_and_long_query_strings_are_not_stored(client):
    """Review: a tile ignores unknown query parameters, so ?x=<i><4,000 bytes> made a new entry per request; an
    empty tile (outside the data) counted 0 bytes and the keys were free: memory without bound."""
    fast = _fast(client)
    fast.clear()
    empty = f"/v1/datasets/{ID}/tiles/10/0/0.mvt"  # outside the data: 200, empty body, ETag
    pad = "a" * (MAX_QUERY - 10)
    for i in range(20):
        assert client.get(f"{empty}?x={i:03d}{pad}").status_code == 200
    assert len(fast._entries._data) == 20
    heads = sum(fast._entries._data[k].key_bytes for k in fast._entries._data)
    assert heads == 20 * (len(empty) + len(f"x=000{pad}"))
    assert fast.size >= 20 * (ENTRY_COST + MAX_QUERY)  # bounded by the budget like any body
    for i in range(20):  # over the limit: answered by the full stack, never stored
        assert client.get(f"{empty}?x={i:03d}{pad}{'b' * 20}").status_code == 200
    assert len(fast._entries._data) == 20
