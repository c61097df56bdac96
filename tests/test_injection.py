"""Hostile names (dataset titles, sources, area names, group columns) never run as script on the map pages, in
real headless Chromium, and never become spreadsheet formulas in CSV outputs (HTTP and CLI)."""

from __future__ import annotations

import csv
import io
import json
import os
import tempfile
from pathlib import Path

import geopandas as gpd
import httpx
import numpy as np
import pytest
import shapely

from server import LiveServer
from spatial.dataset import Metadata, validate

# Each payload marks window.__xss, sets the title and opens a dialog if it ever runs.
SCRIPT = "</script><script>window.__xss=1;document.title='XSS';alert(1)</script>"
IMG = '<img src=x onerror="window.__xss=2;document.title=\'XSS\';alert(2)">'
ATTR = '"><svg onload="window.__xss=3;alert(3)">'
JS = "'-alert(4)-'\u2028\u2029<!--<script>"
HOSTILE = SCRIPT + IMG + ATTR + JS
# Group columns only the library can create (uploads refuse such names): the pattern bypassed.
GROUP_SCRIPT = "</script><script>window.__xss=5;document.title='XSS';alert(5)</script>"
GROUP_IMG = '<img src=x onerror="window.__xss=6;alert(6)">'
FORMULA = "=1+2"
N = 16  # a 4 × 4 grid of areas


def _grid(names: list[str]) -> gpd.GeoDataFrame:
    rng = np.random.default_rng(7)
    total = rng.integers(1000, 2000, N)
    return gpd.GeoDataFrame(
        {
            "area_key": [f"a{i:02d}" for i in range(N)],
            "area_name": names,
            "total_population": total,
            "g1": (total * rng.uniform(0.05, 0.6, N)).round(),
            "g2": (total * rng.uniform(0.05, 0.3, N)).round(),
            "informal": np.where(np.arange(N) % 3 == 0, 50, 0),
            "geometry": [
                shapely.box(
                    -84 + 0.05 * (i % 4), 33 + 0.05 * (i // 4), -84 + 0.05 * (i % 4 + 1), 33 + 0.05 * (i // 4 + 1)
                )
                for i in range(N)
            ],
        },
        crs=4326,
    )


def hostile_text_dataset():
    """Every free-text field hostile: title, source, licence, description and every area's name."""
    g = _grid([f"Area {i} {HOSTILE}" for i in range(N)]).rename(columns={"g1": "migrants"})
    meta = Metadata(name=f"City {HOSTILE}", source=f"Office {HOSTILE}", year=2020, licence=HOSTILE, description=HOSTILE)
    return validate(
        g, id_col="area_key", groups=["migrants", "informal"], total="total_population", name_col="area_name", meta=meta
    )


def hostile_group_dataset():
    g = _grid([f"Area {i}" for i in range(N)]).rename(columns={"g1": GROUP_SCRIPT, "g2": GROUP_IMG})
    return validate(
        g,
        id_col="area_key",
        groups=[GROUP_SCRIPT, GROUP_IMG],
        total="total_population",
        name_col="area_name",
        meta=Metadata(name="Hostile groups"),
    )


def formula_dataset():
    g = _grid([f"=HYPERLINK(\"http://x.example/{i}\")" if i % 2 else f"@SUM(A{i})" for i in range(N)])
    g = g.rename(columns={"g1": FORMULA, "g2": "+cmd"})
    return validate(
        g,
        id_col="area_key",
        groups=[FORMULA, "+cmd"],
        total="total_population",
        name_col="area_name",
        meta=Metadata(name="-formula title"),
    )


@pytest.fixture(scope="module")
def server():
    from app.registry import Registry

    tmp = tempfile.TemporaryDirectory(prefix="segmap-injection-")
    registry = Registry(Path(tmp.name))
    registry.put("hostile-text", hostile_text_dataset())
    registry.put("hostile-group", hostile_group_dataset())
    registry.put("formula", formula_dataset())
    with LiveServer(data_dir=Path(tmp.name), env={"SEGMAP_REGISTER_BUNDLED": "false"}) as url:
        yield url
    tmp.cleanup()


# -- escaping helpers -------------------------------------------------------------------------------------------------


def test_json_for_script_cannot_close_the_script_or_break_the_string():
    from maps.views import json_for_script

    value = {"a": HOSTILE, HOSTILE: [GROUP_SCRIPT, "&amp;"]}
    text = json_for_script(value)
    for bad in ("<", ">", "&", "\u2028", "\u2029"):
        assert bad not in text, bad
    assert json.loads(text) == value  # still the same data for the script


# -- Chromium ----------------------------------------------------------------------------------------------------------

CHROMIUM = "/usr/bin/chromium"


@pytest.fixture(scope="module")
def browser():
    playwright_api = pytest.importorskip("playwright.sync_api", reason="playwright for Python is not installed")
    if not os.path.exists(CHROMIUM):
        pytest.skip("Debian chromium not installed at /usr/bin/chromium")
    with playwright_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=["--no-sandbox"])
        yield b
        b.close()


# Show every tooltip and popup the page can show, with the real properties of every area: hostile area names are
# rendered through the same code as a hover would use (GeoJSON layers, the informal overlay switched on as a reader
# would, vector-tile popups).
HOVER_ALL = """() => new Promise(done => {
  const s = window.segmap, map = s.map;
  document.querySelectorAll(".leaflet-control-layers-overlays input[type=checkbox]").forEach(i => { if (!i.checked) i.click(); });
  map.eachLayer(l => { if (l.feature && l.getBounds) l.fire('mouseover', {latlng: l.getBounds().getCenter()}, true); });
  const vector = s.layers && s.layers.vector;
  if (vector) Object.values(vector._vectorTiles).forEach(t => Object.values(t._features || {}).forEach(f =>
    vector.fire('mouseover', {layer: f.feature, latlng: map.getCenter()})));
  setTimeout(done, 800);  // time for <img onerror> to fire
})"""


def _check_page(browser, url: str, tiles: bool, file_only: bool = False):
    from urllib.parse import urlparse

    context = browser.new_context(viewport={"width": 1280, "height": 800})
    dialogs: list[str] = []
    try:
        page = context.new_page()

        def route(r):
            u = urlparse(r.request.url)
            local = u.scheme in ("data", "blob", "about", "file") if file_only else u.hostname == "127.0.0.1"
            r.continue_() if local or u.scheme in ("data", "blob", "about") else r.abort()

        context.route("**/*", route)
        page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
        page.goto(url)
        page.wait_for_selector("html[data-segmap-ready]", timeout=20000)
        if tiles:
            page.wait_for_function("() => document.querySelectorAll('.leaflet-tile path').length > 0", timeout=20000)
        page.evaluate(HOVER_ALL)
        state = page.evaluate("() => [window.__xss === undefined ? null : window.__xss, document.title]")
        shown = page.locator(".leaflet-tooltip, .leaflet-popup-content").count()
        return state, dialogs, shown
    finally:
        context.close()


PAGES = [("page", ""), ("embed", "/embed"), ("download", "/download")]


@pytest.mark.browser
@pytest.mark.server
@pytest.mark.parametrize("tiles", ["on", "off"])
@pytest.mark.parametrize("mode,suffix", PAGES, ids=[m for m, _ in PAGES])
@pytest.mark.parametrize(
    "dataset,title",
    [
        ("hostile-text", f"City {HOSTILE} — Share of group: migrants"),
        ("hostile-group", f"Hostile groups — Share of group: {GROUP_SCRIPT}"),
    ],
    ids=["text", "group"],
)
def test_hostile_names_do_not_run_in_chromium(server, browser, tmp_path, dataset, title, mode, suffix, tiles):
    url = f"{server}/maps/{dataset}{suffix}?tiles={tiles}"
    file_only = mode == "download"
    if file_only:  # the offline file, opened from disk with no network at all
        r = httpx.get(url, timeout=120)
        assert r.status_code == 200, r.text
        f = tmp_path / "map.html"
        f.write_text(r.text, encoding="utf-8")
        url = f.as_uri()
    (xss, shown_title), dialogs, shown = _check_page(browser, url, tiles == "on", file_only)
    assert xss is None and dialogs == [], (xss, dialogs)
    assert shown_title == title  # the hostile text, as text: no payload changed it
    assert shown > 0  # the hover code did run: names were rendered, as text


@pytest.mark.browser
@pytest.mark.server
def test_hostile_text_is_shown_as_text(server, browser):
    """Escaped, not dropped: the page shows the hostile strings literally."""
    context = browser.new_context()
    try:
        page = context.new_page()
        page.goto(f"{server}/maps/hostile-text?tiles=off")
        page.wait_for_selector("html[data-segmap-ready]", timeout=20000)
        h1 = page.locator(".segmap-bar h1").inner_text()
        assert SCRIPT in h1 and IMG in h1 and ATTR in h1
        assert SCRIPT in page.locator(".segmap-list li").first.inner_text()
        page.evaluate(HOVER_ALL)
        assert IMG in page.locator(".leaflet-tooltip").first.inner_text()
    finally:
        context.close()


@pytest.mark.server
@pytest.mark.parametrize("fmt", ["png", "svg"])
def test_static_maps_take_hostile_text_as_text(server, fmt):
    r = httpx.get(f"{server}/v1/datasets/hostile-text/map.{fmt}", timeout=120)
    assert r.status_code == 200, r.text
    if fmt == "svg":
        import xml.etree.ElementTree as ET

        root = ET.fromstring(r.content)  # well-formed: every hostile string escaped
        assert not [e for e in root.iter() if e.tag.rsplit("}", 1)[-1].lower() in ("script", "foreignobject")]
        assert not any(k.lower().startswith("on") for e in root.iter() for k in e.attrib)


def test_static_maps_do_not_read_dollars_as_mathtext():
    from dataclasses import replace

    from maps.data import view_data
    from maps.static import render

    ds = hostile_text_dataset()
    ds.meta = replace(ds.meta, name="Rent $\\frac{a}{ and $5", source="Office $\\undefined$")
    vd = view_data(ds, "migrants", "share")
    for fmt in ("png", "svg"):
        data, _ = render(ds, vd, fmt)  # mathtext raised a parse error: a 500 on map.png
        assert data


# -- uploads: declared column names restricted ----------------------------------------------------------------------


@pytest.mark.server
def test_upload_refuses_unsafe_column_names_listing_each(server):
    g = _grid([f"Area {i}" for i in range(N)]).rename(columns={"g1": FORMULA, "g2": "foreign born"})
    body = g.to_json().encode()
    r = httpx.post(
        f"{server}/v1/datasets",
        timeout=60,
        files={"boundaries": ("x.geojson", body, "application/geo+json")},
        data={
            "groups": f"{FORMULA},foreign born",
            "total": "total_population",
            "key": "area_key",
            "name_col": "area_name",
            "title": "unsafe names",
        },
    )
    assert r.status_code == 422, r.text
    detail = r.json()["detail"]
    assert r.json()["problems"][0]["code"] == "unsafe_column_name"
    assert "group '=1+2'" in detail and "group 'foreign born'" in detail and "letters, digits or '_'" in detail
    assert "unsafe-names" not in [d["id"] for d in httpx.get(f"{server}/v1/datasets").json()["datasets"]]
    # The same file with safe declared names is accepted (undeclared columns are not published, so not checked).
    ok = g.rename(columns={FORMULA: "g1", "foreign born": "g2"}).to_json().encode()
    r = httpx.post(
        f"{server}/v1/datasets",
        timeout=60,
        files={"boundaries": ("x.geojson", ok, "application/geo+json")},
        data={"groups": "g1,g2", "total": "total_population", "key": "area_key", "title": "safe names"},
    )
    assert r.status_code == 201, r.text


def test_safe_column_pattern():
    from spatial.dataset import check_column_names
    from spatial.errors import ValidationError

    check_column_names(group=["foreign_born", "_x", "A" * 63, "TOT_POP"], total="total", key=None)
    for bad in ("=1+2", "2000_POP", "a b", "área", "a" * 64, "", "x<y", "a-b", "a\n"):
        with pytest.raises(ValidationError, match="unsafe|letters"):
            check_column_names(group=[bad])


# -- CSV: formulas neutralised in headers and cells -------------------------------------------------------------------


def _rows(text: str) -> list[list[str]]:
    return list(csv.reader(io.StringIO(text)))


def test_csv_safe_neutralises_header_and_text_cells():
    import pandas as pd

    from spatial.export import csv_safe

    frame = pd.DataFrame(
        {
            "=1+2": ["=A1", "ok"],
            "@x": ["+1", "-2"],
            "-y": ["\tcmd", "\rcmd"],
            "id": ["-5", "1.5"],
            "n": [1.0, -3.0],
            "cat": pd.Categorical(["=c", "d"]),
        }
    )
    out = csv_safe(frame)
    assert list(out.columns) == ["'=1+2", "'@x", "'-y", "id", "n", "cat"]
    assert out["'=1+2"].tolist() == ["'=A1", "ok"]
    assert out["'@x"].tolist() == ["'+1", "-2"]  # a plain negative number stays a number
    assert out["'-y"].tolist() == ["'\tcmd", "'\rcmd"]
    assert out["id"].tolist() == ["-5", "1.5"] and out["n"].tolist() == [1.0, -3.0]
    assert out["cat"].astype(str).tolist() == ["'=c", "d"]
    assert list(frame.columns)[0] == "=1+2"  # the input is left alone
    from spatial.export import csv_cell

    assert csv_cell("=1+2") == "'=1+2" and csv_cell("-0.5") == "-0.5" and csv_cell(3) == 3


@pytest.mark.server
def test_local_csv_header_and_names_are_not_formulas(server):
    r = httpx.get(
        f"{server}/v1/datasets/formula/local", params={"group": FORMULA, "format": "csv", "permutations": 0}, timeout=60
    )
    assert r.status_code == 200, r.text
    rows = _rows(r.text)
    assert "'" + FORMULA in rows[0] and FORMULA not in rows[0]
    assert not any(cell.startswith(("=", "+", "@")) for row in rows for cell in row)
    assert not any(cell.startswith("-") and not _number(cell) for row in rows for cell in row)


@pytest.mark.server
def test_map_data_csv_names_are_not_formulas(server):
    r = httpx.get(f"{server}/maps/formula/data", params={"group": FORMULA, "format": "csv"}, timeout=60)
    assert r.status_code == 200, r.text
    rows = _rows(r.text)
    names = [row[rows[0].index("name")] for row in rows[1:]]
    assert names and all(n.startswith("'=HYPERLINK") or n.startswith("'@SUM") for n in names), names
    assert not any(cell.startswith(("=", "+", "@")) for row in rows for cell in row)


def _number(text: str) -> bool:
    try:
        float(text)
        return True
    except ValueError:
        return False


def _files(tmp_path: Path) -> tuple[Path, Path]:
    g = formula_dataset().areas
    boundaries = tmp_path / "areas.gpkg"
    g[["id", "area_name", "geometry"]].rename(columns={"id": "area_key"}).to_file(boundaries, driver="GPKG")
    counts = tmp_path / "counts.csv"
    g.drop(columns=["geometry", "area_name"]).rename(columns={"id": "area_key"}).to_csv(counts, index=False)
    return boundaries, counts


def test_cli_local_csv_header_is_not_a_formula(tmp_path):
    from app.cli import main

    boundaries, counts = _files(tmp_path)
    out = tmp_path / "local.csv"
    assert (
        main(
            [
                "local",
                str(boundaries),
                "--counts",
                str(counts),
                "--key",
                "area_key",
                "--group",
                FORMULA,
                "--total",
                "total_population",
                "--name-col",
                "area_name",
                "--permutations",
                "0",
                "-o",
                str(out),
            ]
        )
        == 0
    )
    rows = _rows(out.read_text())
    assert "'" + FORMULA in rows[0] and FORMULA not in rows[0]
    assert not any(cell.startswith(("=", "+", "@")) for row in rows for cell in row)


def test_cli_indices_csv_groups_are_not_formulas(tmp_path, capsys):
    from app.cli import main

    boundaries, counts = _files(tmp_path)
    assert (
        main(
            [
                "indices",
                str(boundaries),
                "--counts",
                str(counts),
                "--key",
                "area_key",
                "--group",
                FORMULA,
                "--group",
                "+cmd",
                "--total",
                "total_population",
                "--format",
                "csv",
            ]
        )
        == 0
    )
    rows = _rows(capsys.readouterr().out)
    assert rows[1][rows[0].index("groups")].startswith("'")
    assert not any(cell.startswith(("=", "+", "@")) for row in rows for cell in row)
