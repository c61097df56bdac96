"""Accessible by test: axe-core (vendored, tests/vendor/axe-core) in Chromium on every view in two languages with no
serious or critical violation, every control and the area list reached with Tab, class colours apart under simulated
deuteranopia and protanopia, optional pattern fills. Screenshots of each view in both languages are saved as test
artefacts (maps_browser_support.ARTIFACTS)."""

from __future__ import annotations

import itertools

import pytest
from colour_vision import distance
from maps_browser_support import AXE, Watch, browser, city, shot, show_view  # noqa: F401  (module-scoped fixtures)

from maps.data import HOTSPOTS, LISA, LQ_COLOURS, SEQUENTIAL, SUPPRESSED

VIEWS = ("share", "lq", "lisa", "hotspots")
VISION = (None, "deuteranopia", "protanopia")
CATEGORICAL_MIN = 10.0  # CIEDE2000 between any two classes of LISA, Gi* and LQ legends (and the hidden grey)
SEQUENTIAL_MIN = 5.0  # between any two classes of an ordered palette: neighbours differ mostly in lightness


def _drawn(table: dict) -> list[str]:
    return [c for key, (_n, c) in table.items() if key not in ("no_neighbours", "no_population")]


PALETTES = {
    "lisa": (_drawn(LISA), CATEGORICAL_MIN),
    "hotspots": (_drawn(HOTSPOTS), CATEGORICAL_MIN),
    "lq": (LQ_COLOURS, CATEGORICAL_MIN),
    **{f"sequential-{k}": (colours, SEQUENTIAL_MIN) for k, colours in SEQUENTIAL.items()},
}


@pytest.mark.parametrize("name", list(PALETTES))
@pytest.mark.parametrize("vision", VISION)
def test_class_colours_stay_apart_under_colour_vision_deficiency(name, vision):
    colours, least = PALETTES[name]
    pairs = [(distance(a, b, vision), a, b) for a, b in itertools.combinations(colours, 2)]
    worst = min(pairs)
    assert worst[0] >= least, f"{name} under {vision or 'normal vision'}: {worst[1]} vs {worst[2]} ΔE00 {worst[0]:.1f}"
    # Hidden areas (disclosure control) must not pass for any class either.
    hidden = min(distance(SUPPRESSED[1], c, vision) for c in colours)
    assert hidden >= CATEGORICAL_MIN, f"hidden grey too close to {name} under {vision}: {hidden:.1f}"


def test_the_colour_difference_is_ciede2000():
    from colour_vision import ciede2000

    # Sharma, Wu & Dalal (2005), test data pairs 1, 7 and 17.
    assert ciede2000((50, 2.6772, -79.7751), (50, 0, -82.7485)) == pytest.approx(2.0425, abs=1e-4)
    assert ciede2000((50, 0, 0), (50, -1, 2)) == pytest.approx(2.3669, abs=1e-4)
    assert ciede2000((50, 2.5, 0), (73, 25, -18)) == pytest.approx(27.1492, abs=1e-4)


# -- In Chromium ----------------------------------------------------------------------------------------------------


def _painted(page) -> None:
    """Let Chromium paint the restyled areas before a screenshot (software raster is slow on a loaded machine)."""
    page.evaluate("() => new Promise(r => requestAnimationFrame(() => requestAnimationFrame(() => setTimeout(r, 50))))")
    page.wait_for_timeout(200)


def _axe(page) -> list[dict]:
    page.add_script_tag(path=str(AXE))
    result = page.evaluate("() => axe.run(document, {resultTypes: ['violations']})")
    return [
        {"id": v["id"], "impact": v["impact"], "nodes": [n["target"] for n in v["nodes"]][:3]}
        for v in result["violations"]
        if v["impact"] in ("serious", "critical")
    ]


@pytest.mark.browser
@pytest.mark.server
@pytest.mark.parametrize("lang", ["en", "de"])
def test_every_view_passes_axe_and_is_photographed(browser, live_server, city, lang):  # noqa: F811
    w = Watch(browser, width=1400, height=900)
    try:
        # English comes from the browser's Accept-Language (the same page as the other modules': rendered once).
        page = w.open(
            f"{live_server}/maps/{city['id']}?group={city['group']}&view=share" + ("&lang=de" * (lang == "de"))
        )
        assert page.evaluate("() => document.documentElement.lang") == lang
        found = {}
        for view in VIEWS:
            show_view(page, view)
            _painted(page)
            shot(page, f"{city['id']}-{view}-{lang}.png")
            if lang == "en" or view == "lisa":  # the markup is the same in every language: one German run
                found[view] = _axe(page)
        # Optional pattern fills: each class of the view gets its own mark, drawn from one <pattern> each.
        page.locator(".segmap-pattern input").check()
        _painted(page)
        shot(page, f"{city['id']}-hotspots-patterns-{lang}.png")
        fills = page.evaluate("""() => { const out = {}; window.segmap.areas.getLayers().forEach(l => {
            const k = window.segmap.cfg.palettes.hotspots[l.feature.properties.k_hotspots][1]; out[k] = l.options.fillColor; });
            return out; }""")
        marked = [fills[c] for _n, c in (HOTSPOTS["hot_spot"], HOTSPOTS["cold_spot"]) if c in fills]
        assert marked and all(f.startswith("url(#seg-p-") for f in marked) and len(set(marked)) == len(marked)
        assert all(page.locator(f"pattern#{f[5:-1]}").count() == 1 for f in marked)
        assert all(not v for v in found.values()), found
        w.clean()
    finally:
        w.close()


@pytest.mark.browser
@pytest.mark.server
@pytest.mark.parametrize("variant", ["/embed?view=lisa", "?view=lisa&tiles=on"])
def test_embed_and_vector_tile_pages_pass_axe(browser, live_server, city, variant):  # noqa: F811
    w = Watch(browser)
    try:
        page = w.open(f"{live_server}/maps/{city['id']}{variant}&group={city['group']}")
        assert _axe(page) == []
        w.clean()
    finally:
        w.close()


KEY = "e => e.id || e.dataset.id || e.dataset.bin || e.name || e.href || e.textContent.trim().slice(0, 30)"
TABBABLE = f"""() => [...document.querySelectorAll('a[href], button, input, select, [tabindex="0"]')]
    .filter(e => !e.disabled && e.getClientRects().length && !e.closest('[hidden]') && getComputedStyle(e).visibility !== 'hidden')
    .map({KEY})"""


@pytest.mark.browser
@pytest.mark.server
def test_every_control_and_the_area_list_are_reached_with_tab(browser, live_server, city):  # noqa: F811
    w = Watch(browser)
    try:
        page = w.open(f"{live_server}/maps/{city['id']}?group={city['group']}&view=share")
        show_view(page, "lisa")
        wanted = page.evaluate(TABBABLE)
        page.evaluate(f"""() => {{ window.reached = []; document.addEventListener('focusin', e => {{
            const x = e.target; window.reached.push(({KEY})(x)); }}); }}""")
        # Once round the page: the areas on the map are tab stops too (Leaflet's interactive paths).
        paths = page.evaluate("() => document.querySelectorAll('path.leaflet-interactive').length")
        for _ in range(len(wanted) + paths + 20):
            page.keyboard.press("Tab")
        reached = set(page.evaluate("() => window.reached"))
        missing = [x for x in wanted if x not in reached]  # a radio group (layer control) is one stop: one name
        assert not missing, missing[:10]
        names = {"group", "view", "scheme", "k", "lang", "segmap-q", "pattern"}
        assert names <= reached, names - reached
        listed = page.locator('.segmap-list[data-view="lisa"] li').evaluate_all("els => els.map(e => e.dataset.id)")
        assert set(listed) <= reached  # the whole area list
        # The list works from the keyboard: Enter on an area selects it on the map.
        page.locator(f'.segmap-list[data-view="lisa"] li[data-id="{listed[2]}"]').focus()
        page.keyboard.press("Enter")
        assert page.evaluate("() => window.segmap.page.selected()") == listed[2]
        # And so does the histogram: Enter on a bar brushes its range.
        page.locator("#segmap-hist rect[data-bin]").first.focus()
        page.keyboard.press("Enter")
        assert page.evaluate("() => window.segmap.page.brushed") is not None
        w.clean()
    finally:
        w.close()
