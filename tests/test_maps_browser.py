"""Map pages in real headless Chromium (Debian's /usr/bin/chromium), network limited to the app's 127.0.0.1."""

from __future__ import annotations

import io
import os
from pathlib import Path
from urllib.parse import urlparse

import httpx
import pytest

pytestmark = [pytest.mark.browser, pytest.mark.server]

CHROMIUM = "/usr/bin/chromium"
playwright_api = pytest.importorskip("playwright.sync_api", reason="playwright for Python is not installed")
if not os.path.exists(CHROMIUM):
    pytest.skip("Debian chromium not installed at /usr/bin/chromium", allow_module_level=True)
try:
    import app.routers.maps  # noqa: F401
except ImportError as exc:  # pragma: no cover - only while the router is missing
    pytest.skip(f"map router unavailable: {exc}", allow_module_level=True)

SHOTS = Path(os.environ.get("SEGMAP_SHOTS", "/tmp/segmap-shots"))
N_GEORGIA = 159


@pytest.fixture(scope="module")
def browser():
    with playwright_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=["--no-sandbox"])
        yield b
        b.close()


class Watch:
    """A page whose requests outside the allowed origin are aborted and recorded, with console errors."""

    def __init__(self, browser, allowed_host: str | None):
        self.context = browser.new_context(viewport={"width": 1280, "height": 800})
        self.page = self.context.new_page()
        self.requests, self.foreign, self.errors = [], [], []

        def route(r):
            url = r.request.url
            self.requests.append(url)
            scheme = urlparse(url).scheme
            host = urlparse(url).hostname
            local = (
                scheme in ("data", "blob", "about")
                or (scheme == "file" and allowed_host is None)
                or (allowed_host is not None and host == allowed_host)
            )
            if local:
                r.continue_()
            else:
                self.foreign.append(url)
                r.abort()

        self.context.route("**/*", route)
        self.page.on("console", lambda m: self.errors.append(m.text) if m.type == "error" else None)
        self.page.on("pageerror", lambda e: self.errors.append(str(e)))

    def ready(self):
        self.page.wait_for_selector("html[data-segmap-ready]", timeout=15000)
        return self.page

    def open_tiles(self, url: str):
        """Open a vector-tile map page and wait until its tiles have drawn shapes and the network is quiet."""
        self.page.goto(url)
        page = self.ready()
        page.wait_for_function("() => document.querySelectorAll('.leaflet-tile path').length > 0", timeout=15000)
        page.wait_for_load_state("networkidle")
        return page

    def close(self):
        self.context.close()


def _drawn(page) -> int:
    return page.evaluate(
        "document.querySelectorAll('.leaflet-overlay-pane path, .leaflet-overlay-pane canvas').length"
        " && (window.segmap.areas ? window.segmap.areas.getLayers().length : 0)"
    )


def _visible_paths(page) -> int:
    return page.evaluate("document.querySelectorAll('.leaflet-overlay-pane path').length")


def test_full_page_offline_legend_hover_and_link(live_server, browser):
    w = Watch(browser, "127.0.0.1")
    try:
        page = w.page
        page.goto(f"{live_server}/maps/georgia-1990?group=black&view=share&scheme=quantiles&k=5")
        w.ready()
        assert w.foreign == [], f"requests to other hosts: {w.foreign}"
        assert all(urlparse(u).hostname == "127.0.0.1" for u in w.requests if u.startswith("http"))
        assert w.errors == [], w.errors
        # One SVG path per county (prefer_canvas is off for the page to keep paths hoverable).
        assert _drawn(page) == N_GEORGIA
        assert _visible_paths(page) >= N_GEORGIA

        # The visible legend is the share legend, with the five quantile classes whose counts sum to the areas.
        legend = page.locator('.segmap-legend:not([hidden])')
        assert legend.get_attribute("data-view") == "share"
        items = legend.locator("li")
        labels = items.locator(".lab").all_inner_texts()
        # Five quantile classes, plus one for areas whose small counts are hidden by disclosure control.
        assert len([t for t in labels if not t.startswith("Hidden")]) == 5
        counts = [int(t) for t in items.locator(".n").all_inner_texts()]
        assert sum(counts) == N_GEORGIA
        # Each class count equals the number of drawn areas with that class's colour.
        colours = page.evaluate("""() => { var c = {}; window.segmap.areas.eachLayer(function (l) {
            var f = l.options.fillColor; c[f] = (c[f] || 0) + 1; }); return c; }""")
        swatches = legend.locator(".swatch")
        for i in range(items.count()):
            rgb = swatches.nth(i).evaluate("e => e.style.background")
            hexes = [h for h in colours if _rgb(h) == rgb]
            assert hexes and colours[hexes[0]] == counts[i]

        # Hover an area: its tooltip shows name, counts, share and class.
        page.evaluate("() => { window.segmap.map.setZoom(window.segmap.map.getZoom()); }")
        # A point inside some county that no control or legend covers.
        x, y, name = page.evaluate("""() => { for (const l of window.segmap.areas.getLayers()) {
            const pt = window.segmap.map.latLngToContainerPoint(l.getCenter()), r = l.getElement().ownerSVGElement
              .closest('.folium-map').getBoundingClientRect(), X = r.left + pt.x, Y = r.top + pt.y;
            if (document.elementFromPoint(X, Y) === l.getElement()) return [X, Y, l.feature.properties.name]; } }""")
        page.mouse.move(x, y)
        tip = page.locator(".leaflet-tooltip")
        tip.wait_for(timeout=5000)
        text = tip.inner_text()
        assert name in text and "Share" in text and "Counts" in text and "Class" in text and "%" in text

        # Switch to LISA in the layer control: legend follows, URL holds the view and position.
        page.get_by_role("radio", name="LISA clusters").check()
        assert page.locator('.segmap-legend:not([hidden])').get_attribute("data-view") == "lisa"
        assert "view=lisa" in page.url and "at=" in page.url
        lisa_colours = page.evaluate("""() => { var c = {}; window.segmap.areas.eachLayer(function (l) {
            var f = l.options.fillColor; c[f] = (c[f] || 0) + 1; }); return c; }""")
        assert "#ff0000" in lisa_colours and "#0000ff" in lisa_colours  # black share has HH and LL clusters
        page.screenshot(path=str(_shot("page-lisa.png")))

        # Picking an area in the side list highlights it on the map.
        first = page.locator('.segmap-list[data-view="lisa"] li').first
        first.click()
        ident = first.get_attribute("data-id")
        assert page.evaluate(f"window.segmap.byId[{ident!r}].options.weight") == 3

        # The copied link reproduces the view.
        url = page.url
        page2 = w.context.new_page()
        page2.goto(url)
        page2.wait_for_selector("html[data-segmap-ready]")
        assert page2.locator('.segmap-legend:not([hidden])').get_attribute("data-view") == "lisa"
        page2.close()
        assert w.foreign == [] and w.errors == [], (w.foreign, w.errors)
    finally:
        w.close()


def _rgb(hexcol: str) -> str:
    h = hexcol.lstrip("#")
    return "rgb({}, {}, {})".format(*(int(h[i : i + 2], 16) for i in (0, 2, 4)))


def _shot(name: str) -> Path:
    SHOTS.mkdir(parents=True, exist_ok=True)
    return SHOTS / name


def test_embed_frames_anywhere(live_server, browser):
    r = httpx.get(f"{live_server}/maps/georgia-1990/embed?group=black&view=hotspots", timeout=60)
    assert r.status_code == 200
    assert "frame-ancestors *" in r.headers["content-security-policy"]
    assert "x-frame-options" not in r.headers
    assert 'id="segmap-summary"' in r.text and "significant" in r.text  # text alternative travels with the embed
    assert 'class="segmap-bar"' not in r.text and 'class="segmap-side"' not in r.text
    w = Watch(browser, "127.0.0.1")
    try:
        w.page.goto(f"{live_server}/maps/georgia-1990/embed?group=black&view=hotspots")
        page = w.ready()
        assert _drawn(page) == N_GEORGIA
        assert page.locator('.segmap-legend:not([hidden])').get_attribute("data-view") == "hotspots"
        page.screenshot(path=str(_shot("embed-hotspots.png")))
        assert w.foreign == [] and w.errors == [], (w.foreign, w.errors)
    finally:
        w.close()


def test_downloaded_html_works_from_file(live_server, browser, tmp_path):
    r = httpx.get(f"{live_server}/maps/georgia-1990/download?group=black&view=lisa", timeout=60)
    assert r.status_code == 200 and "attachment" in r.headers["content-disposition"]
    assert "/maps/static/" not in r.text  # everything inlined
    f = tmp_path / "map.html"
    f.write_text(r.text, encoding="utf-8")
    w = Watch(browser, None)  # file:// only: any http(s) request is foreign
    try:
        w.page.goto(f.as_uri())
        page = w.ready()
        assert w.foreign == [], w.foreign
        assert w.errors == [], w.errors
        assert _drawn(page) == N_GEORGIA
        served = Watch(browser, "127.0.0.1")
        try:
            served.page.goto(f"{live_server}/maps/georgia-1990?group=black&view=lisa")
            sp = served.ready()
            colour_js = "() => { var o = {}; window.segmap.areas.eachLayer(l => o[l.feature.properties.id] = l.options.fillColor); return o; }"
            assert page.evaluate(colour_js) == sp.evaluate(colour_js)  # the same map
        finally:
            served.close()
        page.screenshot(path=str(_shot("download-lisa.png")))
    finally:
        w.close()


def test_downloaded_large_city_carries_its_tiles_and_works_from_file(live_server, browser, tmp_path):
    """tiles=on stands in for a city too large to embed as GeoJSON: the file carries the app's tiles."""
    r = httpx.get(f"{live_server}/maps/georgia-1990/download?group=black&view=lisa&tiles=on", timeout=120)
    assert r.status_code == 200 and "segmap-embedded" in r.text and '"coordinates"' not in r.text
    f = tmp_path / "map.html"
    f.write_text(r.text, encoding="utf-8")
    w = Watch(browser, None)  # file:// only: any http(s) request is foreign
    try:
        page = w.open_tiles(f.as_uri())
        assert w.foreign == [] and w.errors == [], (w.foreign, w.errors)
        # Every county is drawn, in the server's LISA classes.
        drawn = page.evaluate("""() => { var out = {}; Object.values(window.segmap.layers.vector._vectorTiles).forEach(t =>
            Object.values(t._features || {}).forEach(f => out[f.feature.properties.id] = window.segmap.classOf(f.feature.properties)));
            return out; }""")
        import csv

        rows = list(
            csv.DictReader(
                io.StringIO(httpx.get(f"{live_server}/maps/georgia-1990/data?group=black&view=lisa", timeout=60).text)
            )
        )
        assert len(drawn) == N_GEORGIA and drawn == {row["id"]: int(row["class"]) for row in rows}
        page.screenshot(path=str(_shot("download-tiles-lisa.png")))
    finally:
        w.close()


def test_png_is_valid_sized_and_not_blank(live_server):
    from PIL import Image, ImageStat

    r = httpx.get(
        f"{live_server}/v1/datasets/georgia-1990/map.png?group=black&view=lisa&width=900&height=600&dpi=100", timeout=60
    )
    assert r.status_code == 200 and r.headers["content-type"] == "image/png"
    img = Image.open(io.BytesIO(r.content))
    img.load()
    assert img.size == (900, 600)
    assert "significant" in img.info.get("Description", "") and "significant" in r.headers["x-alt-text"]
    stat = ImageStat.Stat(img.convert("L"))
    assert stat.stddev[0] > 10  # not a blank canvas
    rgb = img.convert("RGB")
    assert (255, 0, 0) in {c for _, c in rgb.getcolors(1 << 20)}  # High-High red is drawn
    _shot("map.png").write_bytes(r.content)


def test_vector_tile_page_draws_tiles_and_hovers(live_server, browser):
    """Large-city mode (forced here with tiles=on): areas come from the app's MVT tiles, not embedded GeoJSON."""
    try:
        import app.routers.tiles  # noqa: F401
    except ImportError as exc:
        pytest.skip(f"vector tiles router unavailable: {exc}")
    url = f"{live_server}/maps/georgia-1990?group=black&view=share&tiles=on"
    body = httpx.get(url, timeout=60).text
    assert "/maps/static/leaflet.vectorgrid-1.3.0/Leaflet.VectorGrid.bundled.min.js" in body
    assert '"coordinates"' not in body  # no geometry in the page
    w = Watch(browser, "127.0.0.1")
    try:
        page = w.open_tiles(url)
        tiles = [u for u in w.requests if urlparse(u).path.endswith(".mvt")]
        assert tiles and all(urlparse(u).hostname == "127.0.0.1" for u in tiles)
        assert w.foreign == [] and w.errors == [], (w.foreign, w.errors)
        assert page.locator('.segmap-legend:not([hidden])').get_attribute("data-view") == "share"
        # Classes drawn from tile properties equal the server's classes behind the legend.
        drawn = page.evaluate("""() => { var out = {}, tiles = window.segmap.layers.vector._vectorTiles;
            Object.keys(tiles).forEach(k => Object.values(tiles[k]._features || {}).forEach(f =>
                out[f.feature.properties.id] = window.segmap.classOf(f.feature.properties)));
            return out; }""")
        import csv

        rows = list(
            csv.DictReader(
                io.StringIO(httpx.get(f"{live_server}/maps/georgia-1990/data?group=black&view=share", timeout=60).text)
            )
        )
        server = {r["id"]: int(r["class"]) for r in rows}
        assert len(drawn) == N_GEORGIA and drawn == server
        # Hover the middle of the state: a popup shows the area's share and class.
        box = page.locator(".folium-map").bounding_box()
        page.mouse.move(box["x"] + box["width"] * 0.45, box["y"] + box["height"] * 0.5)
        page.mouse.move(box["x"] + box["width"] * 0.46, box["y"] + box["height"] * 0.5)
        page.locator(".leaflet-popup-content").wait_for(timeout=5000)
        assert "Share" in page.locator(".leaflet-popup-content").inner_text()
        # Picking an area in the list outlines it on the tiles too.
        first = page.locator('.segmap-list[data-view="share"] li').first
        first.click()
        assert "selected" in first.get_attribute("class")
        ident = first.get_attribute("data-id")
        weight = page.evaluate(f"""() => {{ const tiles = window.segmap.layers.vector._vectorTiles; let w = null;
            Object.values(tiles).forEach(t => {{ const f = (t._features || {{}})[{ident!r}];
                if (f) w = f.feature.options.weight; }}); return w; }}""")
        assert weight == 3
        page.screenshot(path=str(_shot("vector-share.png")))
    finally:
        w.close()


def test_zoomed_out_tiles_draw_merged_cells_without_errors(live_server, browser):
    """At zoom 3 most of Georgia's counties are under 2x2 pixels: the tiles carry merged cells, drawn and hoverable."""
    url = f"{live_server}/maps/georgia-1990?group=black&view=share&tiles=on&at=32.7,-83.4,3"
    w = Watch(browser, "127.0.0.1")
    try:
        page = w.open_tiles(url)
        assert w.foreign == [] and w.errors == [], (w.foreign, w.errors)
        drawn = page.evaluate("document.querySelectorAll('.leaflet-tile path').length")
        assert 0 < drawn < N_GEORGIA  # fewer shapes than counties: small ones share pixel cells
        box = page.locator(".folium-map").bounding_box()
        texts = []
        for dx in range(-12, 13, 4):  # Georgia is ~40 px wide here: hover around its middle
            for dy in range(-12, 13, 4):
                page.mouse.move(box["x"] + box["width"] / 2 + dx, box["y"] + box["height"] / 2 + dy)
                texts += page.locator(".leaflet-popup-content").all_inner_texts()
        assert any("areas under one pixel cell" in t for t in texts), texts[:3]
    finally:
        w.close()
