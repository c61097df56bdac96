"""The series map page in real headless Chromium (Debian's /usr/bin/chromium), network limited to 127.0.0.1:
date sliders, two dates side by side, the change map, LISA transitions and the trend chart, with screenshots."""

from __future__ import annotations

import os
from pathlib import Path
from urllib.parse import urlparse

import pytest

pytestmark = [pytest.mark.browser, pytest.mark.server]

CHROMIUM = "/usr/bin/chromium"
playwright_api = pytest.importorskip("playwright.sync_api", reason="playwright for Python is not installed")
if not os.path.exists(CHROMIUM):
    pytest.skip("Debian chromium not installed at /usr/bin/chromium", allow_module_level=True)

SHOTS = Path(os.environ.get("SEGMAP_SHOTS", "/tmp/segmap-shots"))
SERIES = "berlin-forecast-areas"  # 60 areas until 2020, 58 from 2021


@pytest.fixture(scope="module")
def page(live_server):
    with playwright_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=["--no-sandbox"])
        context = browser.new_context(viewport={"width": 1400, "height": 820})
        pg = context.new_page()
        pg.foreign, pg.errors = [], []

        def route(r):
            url = urlparse(r.request.url)
            if url.scheme in ("data", "blob", "about") or url.hostname == "127.0.0.1":
                r.continue_()
            else:
                pg.foreign.append(r.request.url)
                r.abort()

        context.route("**/*", route)
        pg.on("console", lambda m: pg.errors.append(m.text) if m.type == "error" else None)
        pg.on("pageerror", lambda e: pg.errors.append(str(e)))
        pg.goto(f"{live_server}/maps/series/{SERIES}")
        yield pg
        browser.close()


def ready(page, view: str):
    page.wait_for_function(f"() => document.body.dataset.ready === '{view}'", timeout=120_000)


def paths(page, map_id: str) -> int:
    return page.evaluate(f"document.querySelectorAll('#{map_id} .leaflet-overlay-pane path').length")


def shot(page, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    png = page.screenshot(path=str(SHOTS / f"series-{name}.png"), full_page=True)
    assert len(png) > 10_000  # something was drawn


def slide(page, which: str, index: int) -> None:
    page.evaluate(
        "([id, v]) => { const s = document.getElementById(id); s.value = v; s.dispatchEvent(new Event('input')); }",
        [f"sx-{which}", index],
    )


def test_two_dates_side_by_side_and_trend_band(page):
    ready(page, "side")
    assert page.foreign == [] and page.errors == []
    assert paths(page, "sx-map-a") == 60 and paths(page, "sx-map-b") == 58  # 2015 and 2024 geographies
    assert page.inner_text("#sx-from-label") == "2015-12-31" and page.inner_text("#sx-to-label") == "2024-12-31"
    # The trend chart: ten dates, an interval band, the two chosen dates highlighted.
    assert page.locator("#sx-trend circle").count() == 10
    assert page.locator("#sx-trend polygon.band").count() == 1
    assert page.locator("#sx-trend circle.picked").count() == 2
    # Both maps share one class scheme: the same colour means the same share at both dates.
    colours = page.evaluate(
        "() => [...document.querySelectorAll('.sx-legend .ramp span')].map(s => s.style.background)"
    )
    assert len(colours) == 7
    shot(page, "side")
    slide(page, "from", 4)  # the slider moves the left map to 2019
    ready(page, "side")
    assert page.inner_text("#sx-from-label") == "2019-12-31" and paths(page, "sx-map-a") == 60


def test_change_map_is_diverging_and_marks_significance(page):
    slide(page, "from", 0)
    slide(page, "to", 5)
    page.select_option("#sx-view", "change")
    ready(page, "change")
    assert paths(page, "sx-map-c") == 60
    styles = page.evaluate(
        """() => [...document.querySelectorAll('#sx-map-c .leaflet-overlay-pane path')].map(p =>
            [p.getAttribute('fill'), p.getAttribute('stroke-width')])"""
    )
    bold = [s for s in styles if s[1] == "2"]
    assert bold, "significant changes are outlined"
    # Foreign nationals rose almost everywhere between 2015 and 2020: the reds (above zero) dominate.
    reds, blues = {"#fddbc7", "#ef8a62", "#b2182b"}, {"#2166ac", "#67a9cf", "#d1e5f0"}
    assert sum(f in reds for f, _ in styles) > 30 and sum(f in blues for f, _ in styles) <= 2
    legend = page.inner_text("#sx-legend")
    assert "percentage points" in legend and "−" in legend and "+" in legend
    shot(page, "change")


def test_change_across_the_reform_is_harmonised_and_said(page):
    slide(page, "from", 5)  # 2020 (60 areas) → 2021 (58 areas)
    slide(page, "to", 6)
    ready(page, "change")
    assert paths(page, "sx-map-c") == 58
    assert "carried onto 2021-12-31" in page.inner_text("#sx-note")


def test_transitions_view_shows_the_table(page):
    slide(page, "from", 0)
    slide(page, "to", 5)
    page.select_option("#sx-view", "transitions")
    ready(page, "transitions")
    table = page.locator("#sx-transitions table")
    assert table.count() == 1
    cells = [int(t) for t in table.locator("td").all_inner_texts()]
    assert sum(cells) == 60  # every area has one transition
    assert page.errors == [] and page.foreign == []
    shot(page, "transitions")
