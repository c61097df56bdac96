"""A dataset version's tile index is built once, on disk, and shared by every worker; while it is built, tiles
are still answered (provisional: never cached), and once built they equal an in-memory index's bytes."""

from __future__ import annotations

import fcntl
import time

import numpy as np
import pytest
from shapely.geometry import box
from tile_fixtures import georgia_only

import app.tilestore as tilestore
from app.tiles import Provisional, TileAttributes, TileIndex, tiles_covering
from app.tilestore import SharedTileIndex


def _city(n_side: int = 30, cell: float = 0.002):
    """A grid of n_side² small squares in degrees (EPSG:4326), with a count column."""
    import geopandas as gpd

    cells = [
        box(10 + i * cell, 50 + j * cell, 10 + (i + 1) * cell, 50 + (j + 1) * cell)
        for i in range(n_side)
        for j in range(n_side)
    ]
    ids = np.arange(len(cells))
    return gpd.GeoDataFrame({"id": ids.astype(str), "n": ids % 7}, geometry=cells, crs=4326)


@pytest.fixture(scope="module")
def city():
    return _city()


def _attributes(areas) -> TileAttributes:
    return TileAttributes({"id": areas["id"].to_numpy(dtype=object), "n": areas["n"].to_numpy(float)}, sums=("n",))


def _sample(index) -> list[tuple[int, int, int]]:
    return [t for z in (3, 8, 11, 13, 15) for t in tiles_covering(index.bounds_3857, z)[:4]]


def test_a_shared_index_draws_the_in_memory_tiles(city, tmp_path):
    memory, shared = TileIndex(city), SharedTileIndex(city, tmp_path / "city.v1")  # small: built before it returns
    attrs = _attributes(city)
    assert np.allclose(shared.bounds_3857, memory.bounds_3857)
    tiles = _sample(memory)
    assert len(tiles) >= 12
    for z, x, y in tiles:
        body = shared.tile(z, x, y, attrs)
        assert not isinstance(body, Provisional) and body == memory.tile(z, x, y, attrs), (z, x, y)
    assert sum(bool(memory.tile(z, x, y, attrs)) for z, x, y in tiles) >= 8


def test_a_second_worker_reads_what_the_first_built(city, tmp_path, monkeypatch):
    SharedTileIndex(city, tmp_path / "city.v1")
    stamps = {p.name: p.stat().st_mtime_ns for p in (tmp_path / "city.v1").iterdir()}
    calls = []
    monkeypatch.setattr(tilestore, "simplify_level", lambda *a: calls.append(a) or pytest.fail("rebuilt"))
    again = SharedTileIndex(city, tmp_path / "city.v1")
    z, x, y = _sample(again)[4]
    assert again.tile(z, x, y, _attributes(city)) and calls == []
    assert {p.name: p.stat().st_mtime_ns for p in (tmp_path / "city.v1").iterdir()} == stamps


def test_tiles_are_answered_while_another_worker_builds(city, tmp_path, monkeypatch):
    monkeypatch.setattr(tilestore, "INLINE_COORDS", 0)  # as for a large city: built in the background
    folder = tmp_path / "city.v2"
    folder.mkdir()
    attrs, memory = _attributes(city), TileIndex(city)
    with open(folder / "build.lock", "a+b") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # another worker is building (and has written nothing yet)
        index = SharedTileIndex(city, folder)
        for z, x, y in _sample(memory):
            started = time.perf_counter()
            body = index.tile(z, x, y, attrs)
            assert time.perf_counter() - started < 1.0
            final = memory.tile(z, x, y, attrs)
            assert isinstance(body, Provisional) == bool(final) and bool(body) == bool(final), (z, x, y)
        exported = index.tile(*_sample(memory)[4], attrs, final=True)  # an export waits for (or makes) the level
        assert not isinstance(exported, Provisional) and exported == memory.tile(*_sample(memory)[4], attrs)
        fcntl.flock(lock, fcntl.LOCK_UN)  # that worker died: this one takes over within a second or so
    deadline = time.monotonic() + 60
    while not index._complete() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert index._complete()
    for z, x, y in _sample(memory):
        body = index.tile(z, x, y, attrs)
        assert not isinstance(body, Provisional) and body == memory.tile(z, x, y, attrs)


def test_a_level_still_being_built_is_drawn_from_the_shared_originals(city, tmp_path, monkeypatch):
    SharedTileIndex(city, tmp_path / "city.v1")
    (tmp_path / "city.v1" / "11.off.npy").unlink()  # zoom 11 not written yet
    monkeypatch.setattr(tilestore, "INLINE_COORDS", 0)
    attrs, memory = _attributes(city), TileIndex(city)
    with open(tmp_path / "city.v1" / "build.lock", "a+b") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        index = SharedTileIndex(city, tmp_path / "city.v1")
        for z, x, y in [t for t in _sample(memory) if t[0] in (11, 13)]:
            body, final = index.tile(z, x, y, attrs), memory.tile(z, x, y, attrs)
            assert isinstance(body, Provisional) == (z == 11 and bool(final)) and bool(body) == bool(final)
            if z == 13:
                assert body == final
        fcntl.flock(lock, fcntl.LOCK_UN)


def test_a_new_version_replaces_the_old_files(city, tmp_path):
    SharedTileIndex(city, tmp_path / "city.v1")
    SharedTileIndex(city, tmp_path / "other.v1")
    SharedTileIndex(city.iloc[:100], tmp_path / "city.v2")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["city.v2", "other.v1"]


def test_provisional_tiles_are_never_cached_over_http(tmp_path, monkeypatch):
    from fastapi.testclient import TestClient

    from app.main import create_app
    from app.settings import Settings

    monkeypatch.setattr(tilestore, "INLINE_COORDS", 0)
    bundle = georgia_only(tmp_path / "bundle")
    with TestClient(create_app(Settings(data_dir=tmp_path / "data", bundled_dir=bundle))) as c:
        info = c.get("/v1/datasets/georgia-1990").json()
        folder = tmp_path / "data" / "tiles" / f"georgia-1990.{info['version']}"
        folder.mkdir(parents=True)
        with open(folder / "build.lock", "a+b") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            r = c.get("/v1/datasets/georgia-1990/tiles/6/16/25.mvt")
            again = c.get("/v1/datasets/georgia-1990/tiles/6/16/25.mvt")
            fcntl.flock(lock, fcntl.LOCK_UN)
    assert r.status_code == 200 and r.content and r.headers["cache-control"] == "no-store" and "etag" not in r.headers
    assert again.headers["cache-control"] == "no-store"  # not served from the memory layer either
