"""A dataset deleted or replaced while requests read it: old version, new version or 404, never a 500."""

from __future__ import annotations

import io
import threading
import time

import geopandas as gpd
import httpx
import pandas as pd
import pytest

from conftest import BUNDLED
from server import LiveServer

pytestmark = pytest.mark.server
KEY = "k"


def _upload_body(scale: int) -> dict:
    gdf = gpd.read_file(BUNDLED / "boundaries" / "georgia_counties.gpkg").head(40)
    counts = pd.read_csv(BUNDLED / "census" / "georgia_counties_1990.csv", dtype={"area_key": str}).head(40)
    counts["total_population"] *= scale
    buf = io.BytesIO()
    gdf.to_file(buf, driver="GPKG")
    return {"boundaries": ("g.gpkg", buf.getvalue()), "counts": ("c.csv", counts.to_csv(index=False).encode())}


def test_reads_during_replace_and_delete_never_fail():
    form = {"id": "churn", "key": "area_key", "total": "total_population", "groups": "foreign_born,black"}
    bodies = [_upload_body(s) for s in (1, 2, 3)]
    urls = [
        "/v1/datasets/churn",
        "/v1/datasets/churn/indices?group=black&index=dissimilarity",
        "/v1/datasets/churn/local?group=black&statistic=lq",
        "/v1/datasets/churn/tiles/5/8/12.mvt",
        "/v1/datasets/churn/tiles/5/8/12.mvt?group=black&statistic=lq",
        "/maps/churn/data?group=black",
        "/ogc/collections/churn/items?limit=5",
        "/v1/datasets/churn/tilejson.json",
    ]
    statuses: list[tuple[str, int]] = []
    stop = threading.Event()
    with LiveServer(env={"SEGMAP_API_KEY": KEY, "SEGMAP_REGISTER_BUNDLED": "false"}) as base:

        def churn():
            with httpx.Client(base_url=base, timeout=60, headers={"X-API-Key": KEY}) as c:
                for i in range(12):  # bounded: 12 delete + upload rounds
                    c.delete("/v1/datasets/churn")
                    r = c.post("/v1/datasets", files=bodies[i % 3], data=form)
                    assert r.status_code == 201, r.text
            stop.set()

        def read():
            with httpx.Client(base_url=base, timeout=60) as c:
                deadline = time.monotonic() + 120
                while not stop.is_set() and time.monotonic() < deadline:
                    for url in urls:
                        statuses.append((url, c.get(url).status_code))

        writer = threading.Thread(target=churn)
        readers = [threading.Thread(target=read) for _ in range(2)]
        for t in (writer, *readers):
            t.start()
        for t in (writer, *readers):
            t.join(180)
    bad = [(u, s) for u, s in statuses if s not in (200, 404)]
    assert len(statuses) > 50 and not bad, bad[:10]
    assert sum(s == 200 for _, s in statuses) > 20
