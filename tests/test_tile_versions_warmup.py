"""A dataset version's tile index is built once, on disk, by a process of its own, and shared by every worker;
while it is built, tiles are still answered without waiting (provisional: never cached, never immutable), and
once built they equal an in-memory index's bytes."""

from __future__ import annotations

import fcntl
import json
import math
import os
import threading

import numpy as np
import pytest
from shapely.geometry import box
from tile_fixtures import georgia_only

import app.tilestore as tilestore
from app import tilebuild
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


@pytest.fixture(scope="module")
def memory(city):
    return TileIndex(city)


def _attributes(areas) -> TileAttributes:
    return TileAttributes({"id": areas["id"].to_numpy(dtype=object), "n": areas["n"].to_numpy(float)}, sums=("n",))


def _sample(index) -> list[tuple[int, int, int]]:
    return [t for z in (3, 8, 11, 13, 15) for t in tiles_covering(index.bounds_3857, z)[:4]]


def _wait(index) -> None:
    for _ in range(600):
        if index._complete():
            return
        threading.Event().wait(0.1)
    pytest.fail("the index was not built within a minute")


def test_a_shared_index_draws_the_in_memory_tiles(city, memory, tmp_path):
    shared = SharedTileIndex(city, tmp_path / "city.v1")  # small: built before it returns
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
    monkeypatch.setattr(tilestore, "INLINE_COORDS", 0)  # as for a large city: this worker would start a builder
    monkeypatch.setattr(tilestore, "start_builder", lambda *a: pytest.fail("a second builder was started"))
    monkeypatch.setattr(tilebuild, "simplify_level", lambda *a: pytest.fail("rebuilt"))
    again = SharedTileIndex(city, tmp_path / "city.v1")
    z, x, y = _sample(again)[4]
    assert again.tile(z, x, y, _attributes(city))
    assert {p.name: p.stat().st_mtime_ns for p in (tmp_path / "city.v1").iterdir()} == stamps


def test_the_build_runs_in_a_process_of_its_own_and_another_worker_takes_over(city, memory, tmp_path, monkeypatch):
    monkeypatch.setattr(tilestore, "INLINE_COORDS", 0)
    folder = tmp_path / "city.v2"
    folder.mkdir()
    attrs = _attributes(city)
    with open(folder / "build.lock", "a+b") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # another worker is building (and has written nothing yet)
        index = SharedTileIndex(city, folder)
        for z, x, y in _sample(memory):  # answered, not waited for: an empty tile the client asks for again
            body = index.tile(z, x, y, attrs)
            assert isinstance(body, Provisional) and body == b"", (z, x, y)
        exported = index.tile(*_sample(memory)[4], attrs, final=True)  # an export makes the level itself
        assert not isinstance(exported, Provisional) and exported == memory.tile(*_sample(memory)[4], attrs)
        fcntl.flock(lock, fcntl.LOCK_UN)  # that worker died: this one's builder takes over
    _wait(index)
    builders = [json.loads(line)["pid"] for line in (folder / "build.log").read_text().splitlines()]
    assert len(builders) == 1 and builders[0] != os.getpid()  # not a thread of this (worker) process
    for z, x, y in _sample(memory):
        body = index.tile(z, x, y, attrs)
        assert not isinstance(body, Provisional) and body == memory.tile(z, x, y, attrs)


def test_a_tile_never_waits_for_a_slow_builder(city, memory, tmp_path, monkeypatch):
    """A builder that has written the boxes and originals, then stalls: tiles come at once from what is there."""
    monkeypatch.setattr(tilestore, "INLINE_COORDS", 0)
    folder, attrs = tmp_path / "city.v3", _attributes(city)
    written, release = threading.Event(), threading.Event()

    def slow_builder(source, target):
        def run():
            with open(target / "build.lock", "a+b") as lock:
                fcntl.flock(lock, fcntl.LOCK_EX)
                geoms = np.asarray(city.geometry.to_crs(3857).values, dtype=object)
                tilebuild._write_base(target, geoms, np.asarray(memory.area))
                tilebuild._save_wkb(target, tilebuild.ORIG, geoms)
                written.set()
                release.wait(60)  # simplifying every zoom, slowly

        thread = threading.Thread(target=run, daemon=True)
        thread.start()
        return type("Builder", (), {"join": thread.join, "exitcode": 0, "is_alive": thread.is_alive})()

    monkeypatch.setattr(tilestore, "start_builder", slow_builder)
    index = SharedTileIndex(city, folder)
    assert written.wait(30)
    answers = {}
    asker = threading.Thread(target=lambda: answers.update({t: index.tile(*t, attrs) for t in _sample(memory)}))
    asker.start()
    asker.join(30)
    release.set()
    assert not asker.is_alive(), "a tile waited for the builder"
    for (z, x, y), body in answers.items():
        final = memory.tile(z, x, y, attrs)
        drawn = z >= 11  # the 30 × 30 city's areas are drawn as polygons from zoom 11, merged into cells below
        assert isinstance(body, Provisional) == (drawn and z < 14 and bool(final)), (z, x, y)
        if not isinstance(body, Provisional):  # merged cells need only the boxes; street zooms the originals
            assert body == final, (z, x, y)
        assert bool(body) == bool(final)


def test_a_new_version_replaces_the_old_files(city, tmp_path):
    SharedTileIndex(city, tmp_path / "city.v1")
    SharedTileIndex(city, tmp_path / "other.v1")
    SharedTileIndex(city.iloc[:100], tmp_path / "city.v2")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["city.v2", "other.v1"]


def test_another_datasets_files_are_never_drawn(city, tmp_path, monkeypatch):
    SharedTileIndex(city.iloc[:100], tmp_path / "city.v1")
    monkeypatch.setattr(tilestore, "INLINE_COORDS", 0)
    monkeypatch.setattr(tilestore, "start_builder", lambda *a: pytest.fail("the folder looked complete"))
    monkeypatch.setattr(tilestore, "complete", lambda folder: True)
    index = SharedTileIndex(city, tmp_path / "city.v1")  # 900 areas against files of 100
    assert index.tile(8, 135, 86, _attributes(city)) == b"" and index.select(8, 135, 86, (0, 0, 1, 1)) is None


def test_provisional_tiles_are_never_cached_nor_immutable_over_http(tmp_path, monkeypatch):
    from fastapi.testclient import TestClient

    from app.main import create_app
    from app.settings import Settings

    monkeypatch.setattr(tilestore, "INLINE_COORDS", 0)
    bundle = georgia_only(tmp_path / "bundle")
    with TestClient(create_app(Settings(data_dir=tmp_path / "data", bundled_dir=bundle))) as c:
        tj = c.get("/v1/datasets/georgia-1990/tilejson.json").json()
        version = tj["tiles"][0].split("/tiles/")[1].split("/")[0]
        info = c.get("/v1/datasets/georgia-1990").json()
        folder = tmp_path / "data" / "tiles" / f"georgia-1990.{info['version']}"
        folder.mkdir(parents=True)
        lon, lat = tj["center"][:2]  # a street-zoom tile inside a county: final once the originals are written
        z, x = 14, int((lon + 180) / 360 * 2**14)
        y = int((1 - math.asinh(math.tan(math.radians(lat))) / math.pi) / 2 * 2**z)
        urls = [f"/v1/datasets/georgia-1990/tiles/{p}{z}/{x}/{y}.mvt" for p in ("", f"{version}/")]
        with open(folder / "build.lock", "a+b") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            during = [c.get(u) for u in urls for _ in range(2)]  # twice: not from the memory layer either
            fcntl.flock(lock, fcntl.LOCK_UN)
        for _ in range(600):
            if (folder / "orig.off.npy").exists():
                break
            threading.Event().wait(0.1)
        after = c.get(urls[1])
    for r in during:
        cache = r.headers["cache-control"]
        assert r.status_code == 200 and "no-store" in cache and "max-age=2" in cache, cache
        assert "immutable" not in cache and "etag" not in r.headers
    assert after.headers["cache-control"] == "public, max-age=31536000, immutable" and after.content
    assert "etag" in after.headers


def test_an_area_reaching_far_from_its_centroid_is_still_drawn(city, tmp_path):
    """Areas near a tile are found by their centroids; one long strip across the city reaches every tile."""
    import geopandas as gpd
    import pandas as pd

    strip = gpd.GeoDataFrame({"id": ["strip"], "n": [3]}, geometry=[box(10.0, 50.0301, 10.06, 50.0302)], crs=4326)
    areas = pd.concat([city, strip], ignore_index=True)
    memory, shared = TileIndex(areas), SharedTileIndex(areas, tmp_path / "strip.v1")
    attrs = _attributes(areas)
    assert shared._ready("base") and len(shared._reach()[1]) == 1  # the strip, tested whatever the tile
    tiles = [t for z in (13, 15, 16) for t in tiles_covering(shared.bounds_3857, z)]
    strip_tiles = [t for t in tiles if t[2] == tiles_covering(shared.bounds_3857, t[0])[0][2]]
    for z, x, y in tiles[:: max(1, len(tiles) // 40)] + strip_tiles[:6]:
        assert shared.tile(z, x, y, attrs) == memory.tile(z, x, y, attrs), (z, x, y)


def test_a_folder_of_the_first_format_is_completed_not_misread(city, memory, tmp_path):
    folder = tmp_path / "city.v1"
    SharedTileIndex(city, folder)
    for name in ("codes", "order", "area_sorted", "by_area"):  # what the first format did not write
        (folder / f"{name}.npy").unlink()
    (folder / tilebuild.BASE_DONE).rename(folder / "base.done")
    again = SharedTileIndex(city, folder)  # small: completed before it returns
    assert (folder / "codes.npy").exists()
    z, x, y = _sample(memory)[2]
    assert again.tile(z, x, y, _attributes(city)) == memory.tile(z, x, y, _attributes(city))
