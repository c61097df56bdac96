"""The map page and its offline download for cities too large for one file (issue 20), at small scale: the
limits are settings, so Georgia's 159 counties stand in for a million areas (benchmarks/scale_page.py runs the
real size in Chromium)."""

from __future__ import annotations

import pytest

LIMIT = 100  # below Georgia's 159 counties


@pytest.fixture
def client(app_client, monkeypatch):
    """The session's app (bundled Georgia) with the offline-file limit below Georgia's size for one test."""
    monkeypatch.setattr(app_client.app.state.settings, "max_offline_areas", LIMIT)
    return app_client


def test_offline_download_over_the_limit_names_the_limit_and_what_to_use_instead(client):
    r = client.get("/maps/georgia-1990/download", params={"group": "black", "view": "lisa"})
    assert r.status_code == 422, r.text
    assert r.headers["content-type"].startswith("application/problem+json")
    assert "content-disposition" not in r.headers  # no half file offered for saving
    body = r.json()
    assert body["problems"][0]["code"] == "too_many_areas"
    detail = body["detail"]
    assert "159 areas" in detail and f"limit {LIMIT}" in detail and "SEGMAP_MAX_OFFLINE_AREAS" in detail
    pmtiles = "/v1/datasets/georgia-1990/export.pmtiles?group=black&statistic=lisa"
    assert pmtiles in detail and "/v1/datasets/georgia-1990/map.png" in detail  # tests/test_pmtiles.py: it works
    assert "/v1/datasets/georgia-1990/download.parquet" in detail and "segmap export" in detail


def test_explicit_tiles_do_not_get_round_the_limit(client):
    r = client.get("/maps/georgia-1990/download", params={"group": "black", "tiles": "on"})
    assert r.status_code == 422 and "SEGMAP_MAX_OFFLINE_AREAS" in r.json()["detail"]


def test_page_over_the_limit_links_the_pmtiles_archive_not_the_offline_file(client):
    html = client.get("/maps/georgia-1990", params={"group": "black", "view": "share"}).text
    assert "/v1/datasets/georgia-1990/export.pmtiles?group=black" in html
    assert "/maps/georgia-1990/download?" not in html


def test_under_the_limit_the_offline_file_is_still_made(app_client):
    html = app_client.get("/maps/georgia-1990", params={"group": "black"}).text
    assert "/maps/georgia-1990/download?" in html and "export.pmtiles" not in html
    r = app_client.get("/maps/georgia-1990/download", params={"group": "black"})
    assert r.status_code == 200 and "attachment" in r.headers["content-disposition"]


def test_map_position_is_client_state_one_cached_page_for_every_position(client):
    """A pan rewrites at= in the URL; a reload or a shared link must not render the page again (at 1,000,000
    areas a render is tens of seconds): the page is the same, the script reads at= from the URL."""
    base = {"group": "black", "view": "lisa"}
    a = client.get("/maps/georgia-1990", params={**base, "at": "32.7,-83.4,7"})
    b = client.get("/maps/georgia-1990", params={**base, "at": "33.1,-84.2,11"})
    assert a.status_code == b.status_code == 200
    assert a.headers["etag"] == b.headers["etag"] and a.content == b.content
    assert '"at": null' in b.text and "33.1,-84.2,11" not in b.text  # the position is not baked into the page
    assert client.get("/maps/georgia-1990", params={**base, "at": "1,2"}).status_code == 422  # still checked


def test_page_bounds_from_the_hull_equal_every_vertex_reprojected(app_client):
    """The page's lon/lat box comes from the convex hull's vertices (~2 s at 1,000,000 areas, not ~20 s)."""
    import numpy as np

    from app.deps import load_source
    from maps.views import _bounds

    app = app_client.app
    src = load_source(app.state.registry, app.state.settings, "georgia-1990", owner=False)
    west, south, east, north = src.data.areas.to_crs(4326).total_bounds
    assert src.data.areas.crs.to_epsg() != 4326
    np.testing.assert_allclose(_bounds(src.data), [[south, west], [north, east]], rtol=0, atol=1e-9)


def test_area_panel_reuses_the_pages_views(app_client, monkeypatch):
    """At 1,000,000 areas a LISA view takes tens of seconds: the panel must not compute it again at every click."""
    import app.pages as pages

    calls = []
    real = pages.view_data
    monkeypatch.setattr(pages, "view_data", lambda *a, **kw: calls.append(a[2]) or real(*a, **kw))
    q = {"group": "black", "view": "lisa", "seed": 7}
    assert app_client.get("/maps/georgia-1990", params=q).status_code == 200
    made = list(calls)  # Georgia is embedded: every view, LISA and LQ among them
    assert "lisa" in made and "lq" in made
    first = app_client.get("/maps/georgia-1990/area", params={**q, "area": "13121"})
    again = app_client.get("/maps/georgia-1990/area", params={**q, "area": "13089"})
    assert first.status_code == again.status_code == 200
    assert calls == made  # both clicks reuse the page's LISA and LQ views
    assert first.json()["views"]["lisa"]["label"]
