"""OGC API – Features: paging and bbox over HTTP, and GDAL's OAPIF driver as a real client."""

from __future__ import annotations

import shutil
import subprocess

import httpx
import pytest

pytestmark = pytest.mark.server


def test_landing_conformance_collections_and_paging(live_server):
    base = f"{live_server}/ogc"
    assert any(l["rel"] == "conformance" for l in httpx.get(base).json()["links"])
    assert (
        "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/core"
        in httpx.get(f"{base}/conformance").json()["conformsTo"]
    )
    ids = [c["id"] for c in httpx.get(f"{base}/collections").json()["collections"]]
    assert "georgia-1990" in ids
    page = httpx.get(f"{base}/collections/georgia-1990/items", params={"limit": 50}).json()
    assert page["numberMatched"] == 159 and page["numberReturned"] == 50
    nxt = next(l["href"] for l in page["links"] if l["rel"] == "next")
    second = httpx.get(nxt).json()
    assert {f["id"] for f in second["features"]}.isdisjoint({f["id"] for f in page["features"]})
    atlanta = httpx.get(f"{base}/collections/georgia-1990/items", params={"bbox": "-84.5,33.6,-84.2,33.9"}).json()
    assert 0 < atlanta["numberMatched"] < 20 and "13121" in {f["id"] for f in atlanta["features"]}
    bad = httpx.get(f"{base}/collections/georgia-1990/items", params={"bbox": "1,2,3"})
    assert bad.status_code == 422 and bad.headers["content-type"] == "application/problem+json"
    assert httpx.get(f"{base}/collections/nope/items").status_code == 404


def test_local_results_are_collections_too(live_server):
    base = f"{live_server}/ogc/collections"
    ids = [c["id"] for c in httpx.get(base).json()["collections"]]
    assert {"georgia-1990~lisa~black", "georgia-1990~gi_star~black"} <= set(ids)
    page = httpx.get(f"{base}/georgia-1990~lisa~black/items", params={"limit": 200}, timeout=120).json()
    assert page["numberMatched"] == 159
    labels = {f["properties"]["label"] for f in page["features"]}
    assert (
        labels <= {"high_high", "low_low", "high_low", "low_high", "not_significant", "no_neighbours", "suppressed"}
        and "high_high" in labels
    )
    # The same numbers as the local endpoint with the same settings.
    local = httpx.get(
        f"{live_server}/v1/datasets/georgia-1990/local",
        params={"group": "black", "statistic": "lisa", "permutations": 999, "seed": 0},
        timeout=120,
    ).json()
    by_id = {f["properties"]["id"]: f["properties"]["label"] for f in local["features"]}
    assert all(by_id[f["id"]] == f["properties"]["label"] for f in page["features"])
    for bad in ("georgia-1990~lisa~nope", "georgia-1990~median~black", "georgia-1990~lisa"):
        assert httpx.get(f"{base}/{bad}/items").status_code == 404


@pytest.mark.skipif(shutil.which("ogrinfo") is None, reason="GDAL's ogrinfo (Debian gdal-bin) is not installed")
@pytest.mark.parametrize(
    "layer, field", [("georgia-1990", "foreign_born: Real"), ("georgia-1990~gi_star~foreign_born", "label: String")]
)
def test_gdal_opens_the_items(live_server, layer, field):
    out = subprocess.run(
        ["ogrinfo", "-ro", "-so", f"OAPIF:{live_server}/ogc", layer], capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stderr
    assert "Feature Count: 159" in out.stdout and field in out.stdout
