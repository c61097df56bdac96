"""Crash safety, several workers sharing one data directory, and fuzzing the loaders."""

from __future__ import annotations

import json
import threading
import time

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from server import LiveServer
from spatial.errors import ValidationError
from spatial.io import read_boundaries, read_counts

pytestmark = pytest.mark.server


def geojson(n=400, pop=100):
    feats = [
        {
            "type": "Feature",
            "properties": {"code": f"a{i}", "pop": pop + i, "mig": i % 50},
            "geometry": {
                "type": "Polygon",
                "coordinates": [
                    [[i * 0.01, 0], [i * 0.01 + 0.01, 0], [i * 0.01 + 0.01, 0.01], [i * 0.01, 0.01], [i * 0.01, 0]]
                ],
            },
        }
        for i in range(n)
    ]
    return json.dumps({"type": "FeatureCollection", "features": feats}).encode()


def quietly_get(url):
    try:
        httpx.get(url, timeout=30)
    except httpx.HTTPError:
        pass  # the server is killed mid-request on purpose


def registry_is_consistent(url):
    listed = httpx.get(f"{url}/v1/datasets", timeout=30).json()["datasets"]
    for d in listed:  # every dataset the catalogue names is readable, and whole
        r = httpx.get(f"{url}/v1/datasets/{d['id']}/indices", params={"index": "dissimilarity"}, timeout=60)
        assert r.status_code in (200, 422), r.text  # 422 only for a degenerate group, never a broken file
        assert (
            httpx.get(f"{url}/ogc/collections/{d['id']}/items", params={"limit": 1}).json()["numberMatched"]
            == d["n_areas"]
        )
    return {d["id"] for d in listed}


def test_sigkill_during_uploads_leaves_old_or_new_never_half(tmp_path):
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    body = geojson()
    server = LiveServer(data_dir=data_dir, georgia_only=True)
    url = server.start()
    try:
        for round_ in range(2):  # round 1 writes to the server restarted after round 0's kill

            def upload(i, url=url, round_=round_):
                try:
                    httpx.post(
                        f"{url}/v1/datasets",
                        files={"boundaries": ("x.geojson", body, "application/json")},
                        data={"groups": "mig", "total": "pop", "key": "code", "id": f"up-{round_}-{i}"},
                        timeout=30,
                    )
                except httpx.HTTPError:
                    pass

            threads = [threading.Thread(target=upload, args=(i,)) for i in range(4)]
            for t in threads:
                t.start()
            time.sleep(0.25 + 0.2 * round_)  # kill at different moments of the writes
            threading.Thread(
                target=quietly_get, args=(f"{url}/v1/datasets/georgia-1990/local?seed={round_}",), daemon=True
            ).start()  # a cache write in flight
            time.sleep(0.05)
            server.kill()
            for t in threads:
                t.join()
            server = LiveServer(data_dir=data_dir, georgia_only=True)
            url = server.start()
            ids = registry_is_consistent(url)
            assert "georgia-1990" in ids
            files = {p.name for p in (data_dir / "datasets").iterdir()}
            assert not any(f.endswith(".tmp") for f in files)  # the killed writers' temp files went at the restart
    finally:
        server.stop()


def test_two_workers_share_registry_and_cache(tmp_path):
    with LiveServer(data_dir=tmp_path, workers=2, georgia_only=True) as url:
        with httpx.Client(base_url=url, timeout=60) as c:
            r = c.post(
                "/v1/datasets",
                files={"boundaries": ("x.geojson", geojson(50), "application/json")},
                data={"groups": "mig", "total": "pop", "key": "code", "id": "shared"},
            )
            assert r.status_code == 201, r.text
            # Whichever worker answers, the dataset is there and results agree.
            values = {
                c.get("/v1/datasets/shared/indices", params={"index": "gini"}).json()["gini"]["value"] for _ in range(8)
            }
            assert len(values) == 1
            assert c.delete("/v1/datasets/shared").status_code == 204
            assert all(c.get("/v1/datasets/shared").status_code == 404 for _ in range(6))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    data=st.binary(max_size=2000),
    ext=st.sampled_from([".geojson", ".gpkg", ".zip", ".parquet", ".fgb", ".shp", ".json"]),
)
def test_boundary_loader_never_crashes_on_garbage(data, ext):
    try:
        read_boundaries(data, "upload" + ext)
    except ValidationError:
        pass  # a clear, named problem is the only acceptable failure


@settings(max_examples=60, deadline=None)
@given(text=st.text(max_size=500), enc=st.sampled_from(["utf-8", "latin-1", "utf-16"]))
def test_count_loader_never_crashes_on_garbage(text, enc):
    try:
        read_counts(("key,a\n" + text).encode(enc, errors="replace"), "key", "t.csv")
    except ValidationError:
        pass
