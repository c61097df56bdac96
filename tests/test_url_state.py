"""State in the URL: view, group, classes, zoom, centre, selected area, patterns and language. A page opened from
its own URL, after the reader changed things, is the same page (Chromium)."""

from __future__ import annotations

from urllib.parse import parse_qs, urlparse

import pytest
from maps_browser_support import Watch, browser, city, show_view  # noqa: F401  (module-scoped fixtures)

pytestmark = [pytest.mark.browser, pytest.mark.server]

STATE = """() => { const s = window.segmap, c = s.map.getCenter(), v = n => document.querySelector(`select[name=${n}]`).value,
    legend = document.querySelector('.segmap-legend:not([hidden])'), panel = document.querySelector('#segmap-area');
    return {view: s.page.view(), legend: legend.dataset.view, lat: +c.lat.toFixed(4), lng: +c.lng.toFixed(4),
        zoom: s.map.getZoom(), selected: s.page.selected(), patterns: s.page.patterns,
        checked: document.querySelector('.segmap-pattern input').checked, lang: document.documentElement.lang,
        group: v('group'), scheme: v('scheme'), k: v('k'), language: v('lang'),
        panel: panel.hidden ? null : panel.querySelector('h3').textContent,
        radio: document.querySelector('.leaflet-control-layers-base input:checked').nextSibling.textContent.trim(),
        share_classes: document.querySelectorAll('.segmap-legend[data-view=share] li:not([data-key])').length,
        fills: [...new Set(s.areas.getLayers().map(l => String(l.options.fillColor).slice(0, 11)))].sort()}; }"""


def _areas(page) -> list[str]:
    return page.evaluate("() => window.segmap.areas.getLayers().map(l => l.feature.properties.id)")


def test_the_url_restores_the_page_exactly(browser, live_server, city):  # noqa: F811
    w = Watch(browser)
    try:
        # 1. A URL written by hand opens as it says.
        page = w.open(f"{live_server}/maps/{city['id']}?group={city['group']}&view=share")
        (s, west), (n, east) = page.evaluate("window.segmap.cfg.bounds")
        lat, lng = round((s + n) / 2, 4), round((west + east) / 2, 4)
        ids = _areas(page)
        first = ids[3]
        url = (
            f"{live_server}/maps/{city['id']}?group={city['group']}&view=lisa&scheme=natural_breaks&k=6&lang=de"
            f"&at={lat},{lng},12&area={first}&pattern=1"
        )
        page = w.open(url)
        state = page.evaluate(STATE)
        assert state["view"] == state["legend"] == "lisa" and state["radio"] == "LISA-Cluster"
        assert (state["lat"], state["lng"], state["zoom"]) == (lat, lng, 12)
        assert state["selected"] == first and state["panel"] and state["patterns"] and state["checked"]
        assert state["lang"] == state["language"] == "de"
        assert (state["group"], state["scheme"], state["k"]) == (city["group"], "natural_breaks", "6")
        assert state["share_classes"] in (6, 7)  # six classes (and a row for hidden areas, if any)
        assert any(f.startswith("url(#seg-") for f in state["fills"])  # pattern or hatch fills drawn

        # 2. The reader changes view, area, position and patterns: the address follows.
        show_view(page, "hotspots")
        second = ids[10]
        item = page.locator(f'.segmap-list[data-view="hotspots"] li[data-id="{second}"]')
        item.focus()
        page.keyboard.press("Enter")
        page.wait_for_function(f"() => location.search.includes('area={second}')")
        page.wait_for_timeout(800)  # the list zooms to the area (a 250 ms animation): let it end before moving on
        page.evaluate(f"() => {{ window.segmap.map.setView([{lat + 0.01}, {lng - 0.02}], 11); }}")
        page.locator(".segmap-pattern input").uncheck()
        page.wait_for_function("() => !location.search.includes('pattern=')")
        q = parse_qs(urlparse(page.url).query)
        assert q["view"] == ["hotspots"] and q["area"] == [second] and q["lang"] == ["de"]
        assert q["at"][0].endswith(",11") and "pattern" not in q
        before = page.evaluate(STATE)

        # 3. The same URL in a new tab is the same page.
        again = w.context.new_page()
        again.goto(page.url, timeout=300_000)
        again.wait_for_selector("html[data-segmap-ready]", timeout=300_000)
        after = again.evaluate(STATE)
        assert after == before, {k: (before[k], after[k]) for k in before if before[k] != after[k]}
        assert after["view"] == "hotspots" and after["selected"] == second and not after["patterns"]
        again.close()
        w.clean()
    finally:
        w.close()


def test_vector_tile_page_restores_position_area_and_patterns(browser, live_server, city):  # noqa: F811
    w = Watch(browser)
    try:
        url = f"{live_server}/maps/{city['id']}?group={city['group']}&view=lisa&tiles=on&pattern=1"
        page = w.open(url)
        page.wait_for_function("() => document.querySelectorAll('.leaflet-tile path').length > 0", timeout=60_000)
        ident = page.evaluate("""() => { const t = window.segmap.layers.vector._vectorTiles;
            for (const k in t) for (const id in (t[k]._features || {})) return id; }""")
        page.evaluate(f"() => {{ window.segmap.select({ident!r}); }}")
        page.wait_for_function(f"() => location.search.includes('area={ident}')")
        z, c = page.evaluate("() => [window.segmap.map.getZoom(), window.segmap.map.getCenter()]")
        again = w.context.new_page()
        again.goto(page.url, timeout=300_000)
        again.wait_for_selector("html[data-segmap-ready]", timeout=300_000)
        z2, c2 = again.evaluate("() => [window.segmap.map.getZoom(), window.segmap.map.getCenter()]")
        assert z2 == z and abs(c2["lat"] - c["lat"]) < 1e-4 and abs(c2["lng"] - c["lng"]) < 1e-4
        assert again.evaluate("() => [window.segmap.page.selected(), window.segmap.page.patterns]") == [ident, True]
        again.close()
        w.clean()
    finally:
        w.close()
