"""Linked views, GeoDa-style: the server's binned histogram and sampled Moran scatter plot against independent
computations (numpy, esda, libpysal), each area's neighbours and panel, the search, the page's size at 100,000
areas, and in Chromium: brushing lights areas on the map and in the list, the scatter plot and the map select each
other, the panel opens, the search zooms."""

from __future__ import annotations

import csv
import io

import httpx
import numpy as np
import pytest
from maps_browser_support import Watch, browser, city, shot  # noqa: F401  (module-scoped fixtures)

from maps.data import view_data
from maps.linked import area_info, histogram, neighbours, scatter, search
from spatial.disclosure import protect
from spatial.io import load_dataset


@pytest.fixture(scope="module")
def georgia(georgia_paths):
    p = georgia_paths
    return load_dataset(
        p["boundaries"], counts=p["counts"], key=p["key"], total=p["total"], groups=["foreign_born", "black"]
    )


@pytest.fixture(scope="module")
def lisa(georgia):
    return view_data(georgia, "black", "lisa", permutations=99)


def test_histogram_counts_every_shown_value_once(georgia):
    vd = view_data(georgia, "black", "share")
    h = histogram(vd, bins=10)
    share = georgia.column("black") / georgia.column("total_population")
    edges = np.linspace(share.min(), share.max(), 11)
    by_hand = [
        int(((share >= lo) & ((share < hi) | (i == 9 and hi == share.max()))).sum())
        for i, (lo, hi) in enumerate(zip(edges, edges[1:]))
    ]
    assert h["counts"] == by_hand and sum(h["counts"]) == 159 and h["pct"]
    lq = histogram(view_data(georgia, "black", "lq"))
    assert lq["field"] == "value" and not lq["pct"]


def test_histogram_counts_hidden_areas_apart(georgia):
    data = protect(georgia, 10)
    h = histogram(view_data(data, "foreign_born", "share"))
    assert h["hidden"] == int(data.withheld.sum()) > 0 and sum(h["counts"]) + h["hidden"] == 159


def test_moran_scatter_is_esda_standardised_share_against_its_lag(georgia, lisa):
    from esda.moran import Moran
    from libpysal.weights import Queen

    w = Queen.from_dataframe(georgia.metric, use_index=False)
    w.transform = "r"
    y = georgia.column("black") / georgia.column("total_population")
    z = (y - y.mean()) / y.std()
    lag = w.sparse @ z
    s = scatter(lisa, limit=10_000)
    assert s["n"] == s["shown"] == 159
    np.testing.assert_allclose(s["x"], np.round(z, 3), atol=1.5e-3)
    np.testing.assert_allclose(s["y"], np.round(lag, 3), atol=1.5e-3)
    assert s["slope"] == pytest.approx(Moran(y, w, permutations=0).I, abs=1e-4)  # the slope is Moran's I
    quad = np.select([(z > 0) & (lag > 0), (z <= 0) & (lag > 0), (z <= 0) & (lag <= 0)], [0, 1, 2], 3)
    assert s["q"] == quad.tolist()
    labels = lisa.frame["label_key"].to_numpy()
    assert [int(v == 2) for v in s["s"]] == [int(k in ("high_high", "low_low", "high_low", "low_high")) for k in labels]


def test_moran_scatter_samples_on_the_server(georgia, lisa):
    s = scatter(lisa, seed=3, limit=40)
    assert s["shown"] == len(s["ids"]) == 40 and s["n"] == 159
    assert scatter(lisa, seed=3, limit=40)["ids"] == s["ids"]  # seeded: the same page twice
    assert scatter(view_data(georgia, "black", "share")) is None  # only a LISA view has one


def test_neighbours_are_libpysal_queen(georgia):
    from libpysal.weights import Queen

    w = Queen.from_dataframe(georgia.metric, use_index=False)
    indptr, indices = neighbours(protect(georgia, 0))
    for i in range(georgia.n):
        assert sorted(indices[indptr[i] : indptr[i + 1]]) == sorted(w.neighbors[i])


def test_area_panel_has_counts_share_lq_label_both_p_values_and_neighbours(georgia, lisa):
    data = protect(georgia, 0)
    views = {"lisa": lisa, "lq": view_data(data, "black", "lq")}
    row = lisa.frame.iloc[int(np.nanargmin(lisa.frame["p_value"]))]
    info = area_info(data, views, row["id"])
    assert info["count"] == row["count"] and info["share"] == pytest.approx(row["share"], abs=1e-5)
    total_share = georgia.column("black").sum() / georgia.column("total_population").sum()
    assert info["views"]["lq"]["value"] == pytest.approx(row["share"] / total_share, abs=1e-4)
    assert info["views"]["lisa"]["p"] == pytest.approx(row["p_value"], abs=1e-5)
    assert (
        info["views"]["lisa"]["q"] == pytest.approx(row["q_value"], abs=1e-5)
        and info["views"]["lisa"]["q"] >= row["p_value"]
    )
    assert info["views"]["lisa"]["label"] == row["label"]
    assert len(info["neighbours"]) >= 1 and area_info(data, views, "nope") is None


def test_search_by_name_or_id_exact_first(georgia):
    data = protect(georgia, 0)
    hits = search(data, "13121")
    assert hits[0]["id"] == "13121" and len(hits[0]["bounds"]) == 2
    assert {h["id"] for h in search(data, "1312")} >= {"13121", "13125", "13127"}
    assert search(data, "") == [] and search(data, "no such place") == []
    assert search(data, "%'\"<>" * 40) == []  # hostile input is text


def test_page_of_a_100k_area_city_stays_small():
    """A 100,000-area grid: the vector-tile page carries a binned histogram and a sampled scatter plot only."""
    import geopandas as gpd
    import shapely

    from maps.views import PageOptions, render_page
    from spatial.dataset import Metadata, validate

    n, side = 100_000, 317
    x, y = np.meshgrid(np.arange(side), np.arange(side))
    x, y = x.ravel()[:n] * 100.0 + 500_000, y.ravel()[:n] * 100.0 + 5_800_000
    rng = np.random.default_rng(0)
    total = rng.integers(50, 500, n)
    frame = gpd.GeoDataFrame(
        {"id": [f"a{i}" for i in range(n)], "total": total, "g": rng.binomial(total, 0.2)},
        geometry=shapely.box(x, y, x + 100, y + 100),
        crs=32633,
    )
    ds = validate(frame, id_col="id", groups=["g"], total="total", meta=Metadata(name="grid"))
    opts = PageOptions(dataset_id="grid", group="g", view="lisa", index_permutations=0, permutations=99)
    page, info = render_page(ds, opts)
    assert info["vector"] and '"coordinates"' not in page
    assert len(page.encode()) < 400_000, len(page)  # the list of 500 areas, 2,000 scatter points, 20 bins


# -- In Chromium ----------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def linked_page(browser, live_server, city):  # noqa: F811
    w = Watch(browser)
    page = w.open(f"{live_server}/maps/{city['id']}?group={city['group']}&view=share")
    yield w, page
    w.close()


def _csv(live_server, city, view):  # noqa: F811
    url = f"{live_server}/maps/{city['id']}/data?group={city['group']}&view={view}"
    return list(csv.DictReader(io.StringIO(httpx.get(url, timeout=300).text)))


@pytest.mark.browser
def test_brushing_the_histogram_lights_areas_on_map_and_list(linked_page, live_server, city):  # noqa: F811
    w, page = linked_page
    bars = page.locator("#segmap-hist rect[data-bin]")
    n = bars.count()
    a, b = bars.nth(2).bounding_box(), bars.nth(n // 2).bounding_box()
    page.mouse.move(a["x"] + 2, a["y"] + a["height"] - 1)
    page.mouse.down()
    page.mouse.move(b["x"] + 2, b["y"] + b["height"] - 1, steps=4)
    page.mouse.up()
    lo, hi = page.evaluate("window.segmap.page.brushed")
    edges = page.evaluate("window.segmap.cfg.hist.share.edges")
    assert lo == edges[2] and hi == edges[n // 2 + 1]
    rows = _csv(live_server, city, "share")
    inside = {r["id"] for r in rows if r["share"] and lo <= float(r["share"]) <= hi}
    lit = set(
        page.evaluate("""() => Object.keys(window.segmap.byId).filter(id =>
        window.segmap.byId[id].options.fillOpacity > 0.5)""")
    )
    assert lit == inside and 0 < len(lit) < len(rows)
    listed = set(
        page.locator('.segmap-list[data-view="share"] li.brushed').evaluate_all("els => els.map(e => e.dataset.id)")
    )
    shown = set(page.locator('.segmap-list[data-view="share"] li').evaluate_all("els => els.map(e => e.dataset.id)"))
    assert listed == inside & shown
    assert str(len(inside)) in page.locator(".segmap-brushed").inner_text()
    page.locator(".segmap-brushed button").click()
    assert page.evaluate("window.segmap.page.brushed") is None
    w.clean()


@pytest.mark.browser
def test_scatter_and_map_select_each_other_and_the_panel_opens(linked_page):
    w, page = linked_page
    # A point no other point covers, clicked where it is drawn.
    ident, x, y = (
        page.evaluate("""() => { for (const c of document.querySelectorAll('#segmap-scatter circle[data-id]')) {
        const r = c.getBoundingClientRect(), x = r.left + r.width / 2, y = r.top + r.height / 2;
        if (document.elementFromPoint(x, y) === c) return [c.dataset.id, x, y]; } }""")
    )
    page.mouse.click(x, y)
    assert page.evaluate("window.segmap.page.selected()") == ident
    assert page.evaluate(f"window.segmap.byId[{ident!r}].options.weight") == 3
    panel = page.locator("#segmap-area")
    panel.wait_for(state="visible")
    name = page.evaluate(f"window.segmap.byId[{ident!r}].feature.properties.name")
    text = panel.inner_text()
    assert name in text and "Neighbours" in text and "p before correction" in text and "p after correction" in text
    nb = page.evaluate(f"""() => {{ const c = window.segmap.cfg, ls = window.segmap.areas.getLayers(),
        i = ls.findIndex(l => l.feature.properties.id === {ident!r}); return c.nb[1].slice(c.nb[0][i], c.nb[0][i + 1]).map(k =>
        window.segmap.areas.getLayers()[k].feature.properties.name); }}""")
    assert nb and all(n in text for n in nb)
    assert "Location quotient" in text and "LISA clusters" in text
    # The map's selection is shown in the plot: select another area on the map (a click on its shape).
    other = page.locator("#segmap-scatter circle[data-id]").nth(20).get_attribute("data-id")
    page.evaluate(f"() => {{ window.segmap.byId[{other!r}].fire('click'); }}")  # returns nothing: a layer is huge
    ring, target = page.evaluate(f"""() => {{ const s = '#segmap-scatter circle', r = document.querySelector(s +
        '[visibility=visible]'), t = document.querySelector(s + '[data-id="{other}"]');
        return [[r.getAttribute('cx'), r.getAttribute('cy')], [t.getAttribute('cx'), t.getAttribute('cy')]]; }}""")
    assert ring == target
    assert "area=" + other in page.url
    w.clean()


@pytest.mark.browser
def test_search_by_name_zooms_to_the_area(linked_page):
    w, page = linked_page
    ident, name = page.evaluate("""() => { const ps = window.segmap.areas.getLayers().map(l => l.feature.properties),
        p = ps.slice(7).find(p => ps.filter(q => q.name === p.name).length === 1); return [p.id, p.name]; }""")
    page.evaluate("() => { window.segmap.map.setView([0, 0], 2); }")
    box = page.locator("#segmap-q")
    box.fill(name)
    box.press("Enter")
    page.wait_for_function(f"() => window.segmap.page.selected() === {ident!r}", timeout=10_000)
    inside = page.evaluate(f"""() => window.segmap.map.getBounds().pad(0.01)
        .contains(window.segmap.byId[{ident!r}].getBounds())""")
    assert inside and page.evaluate("window.segmap.map.getZoom()") > 2
    first = "() => (document.querySelector('#segmap-hits button') || {}).textContent || ''"
    assert name in page.evaluate(first)
    box.fill(ident)  # by id: the list follows as one types
    page.wait_for_function(f"() => ({first})().includes({ident!r})", timeout=10_000)
    w.clean()


@pytest.mark.browser
def test_vector_tile_page_links_through_the_server(browser, live_server, city):  # noqa: F811
    """Large-city mode (forced with tiles=on): panel and search are asked from the server, not carried in the page."""
    w = Watch(browser)
    try:
        page = w.open(f"{live_server}/maps/{city['id']}?group={city['group']}&view=lisa&tiles=on")
        page.wait_for_function("() => document.querySelectorAll('.leaflet-tile path').length > 0", timeout=60_000)
        rows = _csv(live_server, city, "lisa")
        name = next(r["name"] for r in rows if r["name"])
        page.locator("#segmap-q").fill(name)
        page.locator("#segmap-q").press("Enter")
        page.locator("#segmap-area").wait_for(state="visible", timeout=60_000)
        assert name in page.locator("#segmap-area").inner_text()
        assert page.locator("#segmap-scatter circle[data-id]").count() > 0  # the sampled plot travels in the page
        w.clean()
    finally:
        w.close()
