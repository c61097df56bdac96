"""OGC API – Features: paging and bbox in process, and GDAL's OAPIF driver as a real client over a socket."""

from __future__ import annotations

import shutil
import subprocess

import pytest


def test_landing_conformance_collections_and_paging(app_client):
    http, base = app_client, "/ogc"
    assert any(l["rel"] == "conformance" for l in http.get(base).json()["links"])
    assert (
        "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/core"
        in http.get(f"{base}/conformance").json()["conformsTo"]
    )
    ids = [c["id"] for c in http.get(f"{base}/collections").json()["collections"]]
    assert "georgia-1990" in ids
    page = http.get(f"{base}/collections/georgia-1990/items", params={"limit": 50}).json()
    assert page["numberMatched"] == 159 and page["numberReturned"] == 50
    nxt = next(l["href"] for l in page["links"] if l["rel"] == "next")
    second = http.get(nxt).json()
    assert {f["id"] for f in second["features"]}.isdisjoint({f["id"] for f in page["features"]})
    atlanta = http.get(f"{base}/collections/georgia-1990/items", params={"bbox": "-84.5,33.6,-84.2,33.9"}).json()
    assert 0 < atlanta["numberMatched"] < 20 and "13121" in {f["id"] for f in atlanta["features"]}
    bad = http.get(f"{base}/collections/georgia-1990/items", params={"bbox": "1,2,3"})
    assert bad.status_code == 422 and bad.headers["content-type"] == "application/problem+json"
    assert http.get(f"{base}/collections/nope/items").status_code == 404


def test_local_results_are_collections_too(app_client):
    http, base = app_client, "/ogc/collections"
    ids = [c["id"] for c in http.get(base).json()["collections"]]
    assert {"georgia-1990~lisa~black", "georgia-1990~gi_star~black"} <= set(ids)
    page = http.get(f"{base}/georgia-1990~lisa~black/items", params={"limit": 200}).json()
    assert page["numberMatched"] == 159
    labels = {f["properties"]["label"] for f in page["features"]}
    assert (
        labels <= {"high_high", "low_low", "high_low", "low_high", "not_significant", "no_neighbours", "suppressed"}
        and "high_high" in labels
    )
    # The same numbers as the local endpoint with its defaults: permutations chosen for the correction, not 999.
    local = http.get(
        "/v1/datasets/georgia-1990/local", params={"group": "black", "statistic": "lisa", "seed": 0}
    ).json()
    assert local["segmap"]["permutations"] > 999
    by_id = {f["properties"]["id"]: f["properties"] for f in local["features"]}
    for f in page["features"]:
        assert by_id[f["id"]]["label"] == f["properties"]["label"]
        assert by_id[f["id"]]["p_value"] == f["properties"]["p_value"]
    for bad in ("georgia-1990~lisa~nope", "georgia-1990~median~black", "georgia-1990~lisa"):
        assert http.get(f"{base}/{bad}/items").status_code == 404


@pytest.mark.skipif(shutil.which("ogrinfo") is None, reason="GDAL's ogrinfo (Debian gdal-bin) is not installed")
@pytest.mark.parametrize(
    "layer, field", [("georgia-1990", "foreign_born: Real"), ("georgia-1990~gi_star~foreign_born", "label: String")]
)
@pytest.mark.server
def test_gdal_opens_the_items(live_server, layer, field):
    out = subprocess.run(
        ["ogrinfo", "-ro", "-so", f"OAPIF:{live_server}/ogc", layer], capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stderr
    assert "Feature Count: 159" in out.stdout and field in out.stdout
