"""An exported PMTiles archive drawn in headless Chromium by MapLibre GL with the PMTiles JS protocol (both vendored),
read from the app with HTTP Range requests; the screenshot shows the style's class colours."""

from __future__ import annotations

import io
import os

import pytest

pytestmark = [pytest.mark.browser, pytest.mark.server]

CHROMIUM = "/usr/bin/chromium"
playwright_api = pytest.importorskip("playwright.sync_api", reason="playwright for Python is not installed")
if not os.path.exists(CHROMIUM):
    pytest.skip("Debian chromium not installed at /usr/bin/chromium", allow_module_level=True)

ARCHIVE = "/v1/datasets/georgia-1990/export.pmtiles?maxzoom=7"
RED, BLUE, GREEN = (255, 0, 0), (0, 0, 255), (0, 255, 0)
# A report author's page: MapLibre reads the archive through the pmtiles:// protocol (no tile server).
PAGE = """<!doctype html><html><head><meta charset="utf-8">
<link rel="stylesheet" href="/maps/static/maplibre-gl/maplibre-gl.css">
<script src="/maps/static/pmtiles/pmtiles.js"></script>
<style>html,body,#map{margin:0;width:100%;height:100%}</style></head>
<body><div id="map"></div><script type="module">
import * as maplibregl from "/maps/static/maplibre-gl/maplibre-gl.mjs";
maplibregl.setWorkerUrl("/maps/static/maplibre-gl/maplibre-gl-worker.mjs");
const protocol = new pmtiles.Protocol();
maplibregl.addProtocol("pmtiles", protocol.tile);
const share = ["coalesce", ["get", "black_share"], -1];
const map = new maplibregl.Map({container: "map", center: [-83.4, 32.7], zoom: 5.6, attributionControl: false,
  fadeDuration: 0, style: {version: 8, sources: {g: {type: "vector", url: "pmtiles://" + location.origin + "ARCHIVE"}},
  layers: [{id: "bg", type: "background", paint: {"background-color": "#ffffff"}},
           {id: "areas", type: "fill", source: "g", "source-layer": "areas",
            paint: {"fill-antialias": false, "fill-color": ["step", share, "#00ff00", 0, "#ff0000", 0.3, "#0000ff"]}}]}});
map.on("error", e => { document.documentElement.dataset.error = String(e.error && e.error.message); });
map.on("idle", () => { if (map.areTilesLoaded()) document.documentElement.dataset.drawn = "1"; });
</script></body></html>""".replace("ARCHIVE", ARCHIVE)


@pytest.fixture(scope="module")
def base(live_server):
    return live_server  # the session's server holds Georgia too: no uvicorn started for this one test


def _count(png: bytes, rgb: tuple) -> int:
    from PIL import Image

    pixels = Image.open(io.BytesIO(png)).convert("RGB").getdata()
    return sum(1 for p in pixels if all(abs(a - b) <= 8 for a, b in zip(p, rgb, strict=True)))


def test_maplibre_draws_the_archive_over_range_requests(base, tmp_path):
    ranges = []
    with playwright_api.sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=CHROMIUM,
            headless=True,
            args=["--no-sandbox", "--use-angle=swiftshader", "--enable-unsafe-swiftshader", "--ignore-gpu-blocklist"],
        )
        try:
            context = browser.new_context(viewport={"width": 800, "height": 600})
            context.route(f"{base}/pmtiles-page.html", lambda r: r.fulfill(body=PAGE, content_type="text/html"))
            page = context.new_page()
            errors = []
            page.on("pageerror", lambda e: errors.append(str(e)))

            def seen(response):
                if "export.pmtiles" in response.url:
                    ranges.append((response.request.headers.get("range"), response.status))

            page.on("response", seen)
            page.goto(f"{base}/pmtiles-page.html")
            page.wait_for_function(
                "document.documentElement.dataset.drawn || document.documentElement.dataset.error", timeout=90000
            )
            assert page.evaluate("document.documentElement.dataset.error") is None, errors
            png = page.screenshot()
            (tmp_path / "pmtiles.png").write_bytes(png)
        finally:
            browser.close()
    assert errors == []
    assert ranges and all(r is not None and status == 206 for r, status in ranges), ranges
    # Counties above and below a 30 % black share, and the withheld ones (null share), each in their colour.
    assert _count(png, RED) > 5000 and _count(png, BLUE) > 2000 and _count(png, GREEN) > 200
