"""Large cities draw their vector tiles on canvas (issue 20: 222,878 SVG shapes of a zoom-9 view of 1,000,000 areas
took Chromium ~50 s). Above SEGMAP_CANVAS_AREAS the page says so in its config; in Chromium Georgia's 159 counties
stand in for a million (the session server's page, its config switched to canvas on the way in). The page must keep
its hover popup, selection, hatching and pattern fills, with no console error and no axe violation."""

from __future__ import annotations

import pytest
from maps_browser_support import AXE, Watch, browser  # noqa: F401  (module-scoped fixture)

N_GEORGIA = 159
CANVAS_ON = '"canvas": true'


# The same page under both settings: the page cache (ETag) must tell them apart.
@pytest.mark.parametrize("limit, canvas", [(100_000, False), (100, True)])
def test_the_page_draws_on_canvas_above_the_setting(app_client, monkeypatch, limit, canvas):
    monkeypatch.setattr(app_client.app.state.settings, "canvas_areas", limit)
    params = {"group": "black", "view": "share", "tiles": "on", "k": 3}
    html = app_client.get("/maps/georgia-1990", params=params).text
    assert (CANVAS_ON in html) is canvas and ('"canvas": false' in html) is not canvas


def test_the_default_keeps_svg_shapes_below_a_hundred_thousand_areas():
    from app.settings import Settings
    from maps.views import CANVAS_AREAS, PageOptions

    assert Settings().canvas_areas == CANVAS_AREAS == PageOptions("d", "g").canvas_areas == 100_000


def _open(browser, url, scale: float = 1):  # noqa: F811
    """The page with its config switched to canvas (as the server writes it above SEGMAP_CANVAS_AREAS)."""
    w = Watch(browser, scale=scale)

    def canvas(route):
        r = route.fetch()
        route.fulfill(response=r, body=r.text().replace('"canvas": false', CANVAS_ON))

    w.context.route("**/maps/georgia-1990?*", canvas)
    page = w.open(url)
    page.wait_for_function("() => window.segmap.page.shapes() > 0 && !window.segmap.layers.vector.isLoading()")
    return w, page


# Every feature of the loaded tiles: its id, fill (a CanvasPattern reads as 'pattern') and class.
FEATURES = """() => { const out = [], tiles = window.segmap.layers.vector._vectorTiles;
    Object.values(tiles).forEach(t => Object.values(t._features || {}).forEach(f => out.push({
        id: f.feature.properties.id, label: f.feature.properties.label,
        fill: f.feature.options.fillColor instanceof CanvasPattern ? 'pattern' : f.feature.options.fillColor})));
    return out; }"""

# Distinct colours painted on the tiles' canvases (alpha > 0), read back from the canvases themselves.
PAINTED = """() => { const seen = new Set();
    document.querySelectorAll('.leaflet-tile-container canvas').forEach(c => {
        const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
        for (let i = 0; i < d.length; i += 4) if (d[i + 3]) seen.add(d[i] + ',' + d[i + 1] + ',' + d[i + 2]);
    }); return seen.size; }"""


@pytest.mark.browser
@pytest.mark.server
def test_over_the_threshold_tiles_are_canvases_that_hover_select_and_pass_axe(live_server, browser):  # noqa: F811
    w, page = _open(browser, f"{live_server}/maps/georgia-1990?group=black&view=share&tiles=on")
    try:
        assert page.evaluate("() => window.segmap.cfg.canvas") is True
        assert page.locator(".leaflet-tile-container canvas").count() > 0
        assert page.locator(".leaflet-tile path").count() == 0  # no SVG element per shape
        assert len({f["id"] for f in page.evaluate(FEATURES)}) == N_GEORGIA
        assert page.evaluate(PAINTED) >= 5  # five share classes (and outlines) painted, not a blank canvas
        box = page.locator(".folium-map").bounding_box()
        page.mouse.move(box["x"] + box["width"] * 0.45, box["y"] + box["height"] * 0.5)
        page.mouse.move(box["x"] + box["width"] * 0.46, box["y"] + box["height"] * 0.5)
        page.locator(".leaflet-popup-content").wait_for(timeout=5000)
        assert "Share" in page.locator(".leaflet-popup-content").inner_text()
        page.mouse.click(box["x"] + box["width"] * 0.46, box["y"] + box["height"] * 0.5)
        picked = page.evaluate("() => window.segmap.page.selected()")
        assert picked is not None
        weights = page.evaluate(f"""() => Object.values(window.segmap.layers.vector._vectorTiles)
            .map(t => (t._features || {{}})[{picked!r}]).filter(f => f).map(f => f.feature.options.weight)""")
        assert weights and set(weights) == {3}  # the clicked area outlined on the canvas
        page.add_script_tag(path=str(AXE))
        found = page.evaluate("() => axe.run(document, {resultTypes: ['violations']})")["violations"]
        assert [v["id"] for v in found if v["impact"] in ("serious", "critical")] == []
        w.clean()
    finally:
        w.close()


# Canvas pixels of every tile, kept in the page; then how many differ from the kept ones (a channel by more than 8).
SNAP = """() => { window.__snap = [...document.querySelectorAll('.leaflet-tile-container canvas')].map(c =>
    c.getContext('2d').getImageData(0, 0, c.width, c.height).data); return window.__snap.length; }"""
CHANGED = """() => [...document.querySelectorAll('.leaflet-tile-container canvas')].map(c =>
    c.getContext('2d').getImageData(0, 0, c.width, c.height).data).reduce((n, d, k) => {
      const e = window.__snap[k];
      for (let i = 0; i < d.length; i += 4) n += [0, 1, 2, 3].some(j => Math.abs(d[i + j] - e[i + j]) > 8);
      return n; }, 0)"""
IDS = """() => Object.values(window.segmap.layers.vector._vectorTiles)
    .flatMap(t => Object.keys(t._features || {})).slice(0, 40)"""


@pytest.mark.browser
@pytest.mark.server
@pytest.mark.parametrize("scale", [2, 1.5])
def test_canvas_tiles_are_sharp_on_a_high_dpi_screen(live_server, browser, scale):  # noqa: F811
    """Each 256 px tile's canvas holds 512 × 512 device pixels (the ratio rounded up: at 1.5 Leaflet's redraw box,
    cleared in whole CSS pixels, fell between device pixels and selecting an area and back left 645 stray
    pixels), shown at 256 CSS px; shapes fill the whole backing store (not its top-left quarter); hover works."""
    w, page = _open(browser, f"{live_server}/maps/georgia-1990?group=black&view=share&tiles=on", scale=scale)
    try:
        sizes = page.evaluate("""() => [...document.querySelectorAll('.leaflet-tile-container canvas')]
            .map(c => [c.width, c.height, c.getBoundingClientRect().width])""")
        assert sizes and all(s == [512, 512, 256] for s in sizes)
        # painted device pixels in the bottom-right quarter of tiles: none if the context were not scaled
        painted = page.evaluate("""() => [...document.querySelectorAll('.leaflet-tile-container canvas')]
            .map(c => c.getContext('2d').getImageData(256, 256, 256, 256).data)
            .reduce((n, d) => { for (let i = 3; i < d.length; i += 4) n += d[i] > 0; return n; }, 0)""")
        assert painted > 10_000
        ids = page.evaluate(IDS)
        page.evaluate(f"() => window.segmap.page.select({ids[25]!r})")
        page.wait_for_timeout(400)
        page.evaluate(SNAP)
        for picked in (ids[5], ids[25]):  # away and back: the same pixels again
            page.evaluate(f"() => window.segmap.page.select({picked!r})")
            page.wait_for_timeout(400)
        assert page.evaluate(CHANGED) == 0
        box = page.locator(".folium-map").bounding_box()
        page.mouse.move(box["x"] + box["width"] * 0.45, box["y"] + box["height"] * 0.5)
        page.mouse.move(box["x"] + box["width"] * 0.46, box["y"] + box["height"] * 0.5)
        page.locator(".leaflet-popup-content").wait_for(timeout=5000)
        w.clean()
    finally:
        w.close()


@pytest.mark.browser
@pytest.mark.server
def test_canvas_tiles_hatch_and_pattern_with_canvas_patterns(live_server, browser):  # noqa: F811
    """url(#…) fills mean nothing to a canvas (it would keep the previous shape's colour): hatching of areas
    significant before the correction only and the optional class marks are CanvasPatterns there."""
    url = f"{live_server}/maps/georgia-1990?group=black&view=lisa&tiles=on&permutations=999&pattern=1"
    w, page = _open(browser, url)
    try:
        feats = page.evaluate(FEATURES)
        assert feats and not [f for f in feats if str(f["fill"]).startswith("url(")]
        marked = [f for f in feats if f["label"] in ("high_high", "low_low", "high_low", "low_high")]
        assert marked and all(f["fill"] == "pattern" for f in marked)  # patterns on: every cluster class marked
        w.clean()
    finally:
        w.close()


@pytest.mark.browser
@pytest.mark.server
def test_a_tile_page_asks_only_for_the_tiles_of_its_position(live_server, browser):  # noqa: F811
    """The layer is added once the map is at its at= position, not animating there from folium's opening zoom
    (zoom 7): at 1,000,000 areas each of those tiles cost the server and the browser a zoom of merged cells."""
    w = Watch(browser)
    asked = []
    w.page.on("request", lambda r: asked.append(r.url.split("/tiles/")[1]) if "/tiles/" in r.url else None)
    try:
        page = w.open(f"{live_server}/maps/georgia-1990?group=black&view=share&tiles=on&at=32.7,-83.4,11")
        page.wait_for_function("() => window.segmap.page.shapes() > 0 && !window.segmap.layers.vector.isLoading()")
        assert asked and {u.split("/")[0] for u in asked} == {"11"}, asked
        w.clean()
    finally:
        w.close()


@pytest.mark.browser
@pytest.mark.server
def test_provisional_tiles_are_asked_again_ever_less_often(live_server, browser):  # noqa: F811
    """Tiles the server marks provisional (no-store) are asked again after 2 s, 4 s, 8 s …, not every 2 s: each
    redraw asks for every tile in view (at 1,000,000 Voronoi areas, 720 MB over a 6-minute index build)."""
    w = Watch(browser)
    asked = []

    def provisional(route):
        asked.append(route.request.url)
        try:
            r = route.fetch()
            route.fulfill(response=r, headers={**r.headers, "cache-control": "no-store"})
        except Exception:  # noqa: BLE001 - the page closed while a tile was on its way
            pass

    w.context.route("**/tiles/**", provisional)
    try:
        page = w.open(f"{live_server}/maps/georgia-1990?group=black&view=share&tiles=on&at=32.7,-83.4,9")
        page.wait_for_timeout(9000)  # asked at 0, 2, 6 s (and 14 s); every 2 s would be 0, 2, 4, 6, 8 s
        most = max(asked.count(u) for u in set(asked))
        assert 2 <= most <= 3, most
    finally:
        w.close()
