"""A worker that has not read a large dataset version yet answers its tiles at once (app/tilesource.py): from the
disk cache when another worker encoded them, else provisional (no-store, max-age=2, no ETag), while it reads the
version in the background. Checked with a reader held on an event, not with timings."""

from __future__ import annotations

import threading

import pytest
from fastapi.testclient import TestClient
from tile_fixtures import georgia_only

import app.tilesource as tilesource
import app.tilestore as tilestore
from app.main import create_app
from app.settings import Settings

TILES = "/v1/datasets/georgia-1990/tiles"
FINAL = "public, max-age=31536000, immutable"


@pytest.fixture
def held_reader(monkeypatch):
    """Large from the first area on; the dataset's read waits for ``release``; the index is built inline."""
    monkeypatch.setattr(tilesource, "LAZY_AREAS", 0)
    monkeypatch.setattr(tilestore, "INLINE_COORDS", 10**9)
    release, real = threading.Event(), tilesource.load_source

    def slow_load(*args):
        assert release.wait(60)
        return real(*args)

    monkeypatch.setattr(tilesource, "load_source", slow_load)
    return release


def _until_final(c: TestClient, url: str):
    for _ in range(300):
        r = c.get(url)
        if "etag" in r.headers:
            return r
        threading.Event().wait(0.1)
    pytest.fail("the tile never became final")


def test_a_worker_still_reading_a_version_answers_at_once_then_from_its_cache(tmp_path, held_reader):
    bundle = georgia_only(tmp_path / "bundle")
    settings = Settings(data_dir=tmp_path / "data", bundled_dir=bundle)
    with TestClient(create_app(settings)) as c:
        version = c.get("/v1/datasets/georgia-1990/tilejson.json").json()["tiles"][0].split("/tiles/")[1][:16]
        first = [c.get(f"{TILES}/{version}/6/16/25.mvt") for _ in range(2)]  # the read is held: not waited for
        held_reader.set()
        final = _until_final(c, f"{TILES}/{version}/6/16/25.mvt")
    for r in first:
        assert r.status_code == 200 and r.content == b"" and "etag" not in r.headers
        assert r.headers["cache-control"] == "no-store, max-age=2"
    assert final.headers["cache-control"] == FINAL and final.content

    held_reader.clear()  # a second worker (same data folder), whose read is held again
    with TestClient(create_app(settings)) as c:
        cached = c.get(f"{TILES}/{version}/6/16/25.mvt")  # encoded by the first worker: final at once
        other = c.get(f"{TILES}/{version}/6/17/25.mvt")  # never encoded: provisional
        unknown = c.get(f"{TILES}/{version}/6/16/25.mvt?group=nobody")  # checked against the catalogue's groups
        held_reader.set()
    assert cached.headers["cache-control"] == FINAL and cached.content == final.content
    assert cached.headers["etag"] == final.headers["etag"]
    assert other.headers["cache-control"] == "no-store, max-age=2" and "etag" not in other.headers
    assert unknown.status_code == 422 and "nobody" in unknown.text
