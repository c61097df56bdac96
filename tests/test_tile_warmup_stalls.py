"""What stalled a worker's tiles in the first seconds of a new dataset version (issue 18 item 3), each checked
without timings: FastAPI building its routes in the first request, full garbage collections in the background
read, geometry decoding in large GIL-holding chunks, a builder process competing for the CPU."""

from __future__ import annotations

import asyncio
import gc
import inspect
import json
import os
import sys

import fastapi.routing
import geopandas as gpd
import numpy as np
import shapely
from fastapi.testclient import TestClient
from shapely.geometry import box

from app import tilephases, tilesource, warmup
from app.geoparquet_read import read_geoparquet
from app.main import create_app
from app.quietread import quiet_read
from app.settings import Settings
from app.tilebuild import lower_priority
from app.tileservice import TileService
from app.tilestore import simplified


def test_routes_are_built_at_startup_not_in_the_first_tile_request(tmp_path, monkeypatch):
    app = create_app(Settings(data_dir=tmp_path, register_bundled=False))
    with TestClient(app) as c:
        built, real = [], fastapi.routing.get_dependant
        monkeypatch.setattr(
            fastapi.routing, "get_dependant", lambda *a, **k: built.append(k.get("path")) or real(*a, **k)
        )
        first = c.get("/v1/datasets/nowhere/tiles/3/1/2.mvt")
        c.get("/v1/datasets/nowhere/tiles/0123456789abcdef/3/1/2.mvt")
        c.get("/no-such-page")
        assert first.status_code == 404 and "nowhere" in first.text
        assert built == []  # FastAPI builds a route's dependencies when a request first reaches it: done before
        assert c.get("/v1/datasets").json()["datasets"] == []  # the warm-up requests stored nothing
        assert asyncio.run(warmup.request(app, warmup.PATHS[0])) == 404  # through the whole app, to the tile route


def test_the_default_decode_chunk_is_a_few_milliseconds_of_gil(tmp_path, monkeypatch):
    gpd.GeoDataFrame({"id": range(4_100)}, geometry=[box(i, 0, i + 1, 1) for i in range(4_100)], crs=3857).to_parquet(
        tmp_path / "a.parquet"
    )
    sizes, real = [], shapely.from_wkb
    monkeypatch.setattr(shapely, "from_wkb", lambda wkb, *a, **k: sizes.append(len(wkb)) or real(wkb, *a, **k))
    assert len(read_geoparquet(tmp_path / "a.parquet")) == 4_100
    assert max(sizes) <= 2_000  # 25,000 held the GIL for 100-250 ms on a loaded 2-core machine


class _Pending:
    def __init__(self, fail: bool = False):
        self.fail, self.seen = fail, {}

    def key(self):
        return ("d", "v", 5, None)

    def load(self):
        self.made = [[i] for i in range(500)]  # the read's own objects
        self.seen = {"enabled": gc.isenabled(), "frozen": gc.get_freeze_count(), "switch": sys.getswitchinterval()}
        if self.fail:
            raise OSError("unreadable")
        return None


def test_a_background_read_runs_with_no_collection_and_what_lived_frozen():
    service = TileService(None, None, 99)
    keep = [[i] for i in range(1000)]  # tracked objects alive before the read
    switch = sys.getswitchinterval()
    try:
        assert gc.isenabled()
        pending = _Pending()
        service._read(pending.key(), pending)
        assert pending.seen["enabled"] is False and pending.seen["frozen"] >= len(keep)
        assert pending.seen["switch"] <= 0.001  # a request waiting for the GIL gets it within 1 ms, not 5
        assert gc.isenabled() and sys.getswitchinterval() == switch  # both restored after the read
        assert all(gc.is_tracked(m) for m in pending.made)
        young = {id(o) for o in gc.get_objects()}  # the generations a collection traverses (not the frozen)
        assert not any(id(m) in young for m in pending.made)  # frozen before gc.enable(), not collected
        failing = _Pending(fail=True)
        try:
            service._read(failing.key(), failing)
        except OSError:
            pass
        assert failing.seen["enabled"] is False and gc.isenabled()  # and after a read that failed
        assert sys.getswitchinterval() == switch
    finally:
        service.close()
        gc.unfreeze()


def test_overlapping_reads_restore_collections_and_the_switch_interval_once_the_last_ends():
    switch = sys.getswitchinterval()
    try:
        with quiet_read():
            with quiet_read():
                pass
            assert not gc.isenabled() and sys.getswitchinterval() <= 0.001  # the other read still runs
        assert gc.isenabled() and sys.getswitchinterval() == switch
    finally:
        gc.unfreeze()


def test_the_tile_dependencies_run_on_the_event_loop():
    # A thread-pool call passes the GIL twice, each time waiting for the background read's thread to let go.
    assert inspect.iscoroutinefunction(tilesource.tile_source) and inspect.iscoroutinefunction(tilesource.tile_layer)


def test_the_builder_takes_the_lowest_cpu_priority():
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child lowers itself, as a builder does, and reports
        try:
            lower_priority()
            os.write(write, json.dumps([os.getpriority(os.PRIO_PROCESS, 0), os.sched_getscheduler(0)]).encode())
        finally:
            os._exit(0)
    os.close(write)
    os.waitpid(pid, 0)
    nice, policy = json.loads(os.read(read, 100))
    os.close(read)
    assert nice == 19 and policy == os.SCHED_IDLE
    assert os.sched_getscheduler(0) != os.SCHED_IDLE  # this process (a worker) untouched


def test_phase_marks_are_written_only_when_asked(tmp_path, monkeypatch):
    monkeypatch.setattr(tilephases, "_marks", [])
    monkeypatch.setattr(tilephases, "FOLDER", None)
    tilephases.mark("response", path="/a")
    assert tilephases._marks == []
    monkeypatch.setattr(tilephases, "FOLDER", str(tmp_path))
    tilephases.mark("response", path="/a")
    tilephases.flush()
    (line,) = (tmp_path / f"{os.getpid()}.jsonl").read_text().splitlines()
    got = json.loads(line)
    assert got["what"] == "response" and got["path"] == "/a" and got["pid"] == os.getpid()


def test_a_provisional_tile_simplifies_only_polygons_of_many_coordinates(monkeypatch):
    squares = [box(i, 0, i + 1, 1) for i in range(50)]
    circle = shapely.Point(0, 0).buffer(100, quad_segs=64)  # 257 coordinates
    geoms = np.array([*squares, circle], dtype=object)
    sizes, real = [], shapely.simplify
    monkeypatch.setattr(shapely, "simplify", lambda g, *a, **k: sizes.append(len(g)) or real(g, *a, **k))
    out = simplified(geoms, 5.0)
    assert sizes == [1]  # the circle alone: 50 squares were simplified for nothing
    assert all(a is b for a, b in zip(out[:50], squares)) and geoms[50] is circle  # the input untouched
    assert shapely.get_num_coordinates(out[50]) < 257 and out[50].equals(real(circle, 5.0, preserve_topology=True))
