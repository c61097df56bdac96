"""Map pages built from templates: names are never template code, data enter scripts only as JSON, our script
and style are served by URL and inlined into the offline file, and a failing part of a page is a bug, not a
missing feature. No browser here (tests/test_maps_browser.py and tests/test_injection.py drive Chromium)."""

from __future__ import annotations

import ast
import hashlib
import re
from pathlib import Path

import geopandas as gpd
import numpy as np
import pytest
import shapely
from fastapi.testclient import TestClient

from spatial.dataset import Metadata, validate
from spatial.errors import ValidationError, problem

views = pytest.importorskip("maps.views")

ROOT = Path(__file__).resolve().parents[1]
# Jinja code: if any of it is ever evaluated, "ssti-ran" or "block-ran" appears and "{# kept #}" disappears.
PAYLOAD = '{{ "ssti" ~ "-ran" }} {% set z = "blo" ~ "ck-ran" %}{{ z }} {# kept #}'
EVALUATED = ("ssti-ran", "block-ran")
N = 16


def _jinja_dataset(text: str = PAYLOAD):
    """Title, source, licence, area names and a group column all hold ``text`` (Jinja code by default)."""
    rng = np.random.default_rng(3)
    total = rng.integers(1000, 2000, N)
    g = gpd.GeoDataFrame(
        {
            "key": [f"a{i:02d}" for i in range(N)],
            "name": [f"Area {i} {text}" for i in range(N)],
            "total": total,
            "migrants": (total * rng.uniform(0.05, 0.6, N)).round(),
            text: (total * rng.uniform(0.05, 0.3, N)).round(),
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
    meta = Metadata(name=f"City {text}", source=f"Office {text}", year=2020, licence=text)
    return validate(g, id_col="key", groups=["migrants", text, "informal"], total="total", name_col="name", meta=meta)


def _assert_inert(page: str):
    for marker in EVALUATED:
        assert marker not in page, marker
    assert "{# kept #}" in page


@pytest.fixture(scope="module")
def jinja_dataset():
    return _jinja_dataset()


@pytest.fixture(scope="module")
def plain_dataset():
    return _jinja_dataset("plain")


@pytest.mark.parametrize("group", ["migrants", PAYLOAD], ids=["plain-group", "jinja-group"])
@pytest.mark.parametrize(
    "mode,tiles", [("page", False), ("embed", False), ("download", False), ("page", True), ("download", True)]
)
def test_names_are_never_template_code(jinja_dataset, mode, tiles, group):
    """branca parses each rendered folium element as a Jinja template again: names must not reach that parse."""
    embedded = {"embedded_tiles": {"0/0/0": b""}, "embedded_zooms": (0, 1)} if tiles and mode == "download" else {}
    opts = views.PageOptions(
        "jinja", group, view="lisa", mode=mode, permutations=19, index_permutations=0, vector_tiles=tiles, **embedded
    )
    page, _ = views.render_page(jinja_dataset, opts)
    _assert_inert(page)
    assert page.count("{# kept #}") >= (N if not tiles else 3)  # the names are there, as text


def test_names_are_never_template_code_over_http(tmp_path):
    from app.main import create_app
    from app.registry import Registry
    from app.settings import Settings

    Registry(tmp_path).put("jinja", _jinja_dataset())
    with TestClient(create_app(Settings(data_dir=tmp_path, register_bundled=False))) as client:
        for path in (
            "/maps/jinja?tiles=off",
            "/maps/jinja/embed?view=hotspots",
            "/maps/jinja/download?view=lq",
            "/maps/jinja?tiles=on&view=share",
        ):
            r = client.get(path, params={"permutations": 19})
            assert r.status_code == 200, (path, r.text[:300])
            _assert_inert(r.text)


def test_script_templates_take_only_json_or_names():
    from maps.templating import SCRIPTS, json_for_script

    call = SCRIPTS.from_string("f({{ v }});")
    assert call.render(v="geo_json_0a1b") == "f(geo_json_0a1b);"
    assert call.render(v=json_for_script({"a": "</script>"})) == 'f({"a": "\\u003c/script\\u003e"});'
    for raw in ("alert(1)", '"</script>"', "a b", 1, None, json_for_script("x") + ";alert(1)"):
        with pytest.raises(TypeError, match="json_for_script"):
            call.render(v=raw)


def _digest(name: str) -> str:
    return hashlib.sha256((ROOT / "maps" / "web" / name).read_bytes()).hexdigest()[:12]


def test_live_pages_link_our_assets_and_the_offline_file_carries_them(jinja_dataset, tmp_path):
    opts = {"permutations": 0, "index_permutations": 0, "vector_tiles": False}
    page, _ = views.render_page(jinja_dataset, views.PageOptions("jinja", "migrants", mode="page", **opts))
    js = f"/maps/static/segmap/segmap.js?v={_digest('segmap.js')}"
    css = f"/maps/static/segmap/segmap.css?v={_digest('segmap.css')}"
    assert f'<script src="{js}"></script>' in page and f'<link rel="stylesheet" href="{css}"/>' in page
    assert "window.segmapPage =" not in page and ".segmap-legends {" not in page  # referenced, not inlined
    offline, _ = views.render_page(jinja_dataset, views.PageOptions("jinja", "migrants", mode="download", **opts))
    assert "/maps/static/" not in offline
    assert "window.segmapPage =" in offline and ".segmap-legends {" in offline

    from app.main import create_app
    from app.settings import Settings

    with TestClient(create_app(Settings(data_dir=tmp_path, register_bundled=False))) as client:
        for url, name, media in ((js, "segmap.js", "text/javascript"), (css, "segmap.css", "text/css")):
            r = client.get(url)
            assert r.status_code == 200 and r.headers["content-type"].startswith(media)
            assert r.content == (ROOT / "maps" / "web" / name).read_bytes()
        for bad in (
            "/maps/static/segmap/../views.py",
            "/maps/static/segmap/templating.py",
            "/maps/static/segmap/",
            "/maps/static/web/segmap.js",
            "/maps/static/segmap/%2e%2e/views.py",
        ):
            assert client.get(bad).status_code == 404, bad


def test_index_failures_are_bugs_unless_the_data_leave_an_index_undefined(monkeypatch, plain_dataset):
    import spatial.indices.compute

    opts = views.PageOptions("plain", "migrants", view="share", permutations=0, index_permutations=0)

    def fails(error):
        def compute(*args, **kwargs):
            raise error

        monkeypatch.setattr(spatial.indices.compute, "compute_indices", compute)
        monkeypatch.setattr(views, "compute_indices", compute, raising=False)

    fails(ValidationError(problem("degenerate_group", "Group x has no members")))
    page, _ = views.render_page(plain_dataset, opts)
    assert "City-wide indices could not be computed: Group x has no members" in page
    fails(RuntimeError("a bug"))
    with pytest.raises(RuntimeError, match="a bug"):
        views.render_page(plain_dataset, opts)


def test_view_failures_are_bugs_unless_the_data_leave_a_view_undefined(monkeypatch, plain_dataset):
    real = views.view_data
    opts = views.PageOptions("plain", "migrants", view="share", permutations=0, index_permutations=0)

    def lisa_fails(error):
        def view_data(dataset, group, view, **kw):
            if view == "lisa":
                raise error
            return real(dataset, group, view, **kw)

        monkeypatch.setattr(views, "view_data", view_data)

    lisa_fails(ValidationError(problem("one_area", "Only one area has any population")))
    page, info = views.render_page(plain_dataset, opts)
    assert "lisa" not in info["views"] and {"share", "lq", "hotspots"} <= set(info["views"])
    assert info["notes"] == ["LISA clusters not shown: Only one area has any population"]
    assert "<li>LISA clusters not shown: Only one area has any population</li>" in page
    lisa_fails(KeyError("a bug"))
    with pytest.raises(KeyError, match="a bug"):
        views.render_page(plain_dataset, opts)


def test_view_picker_offers_informal_whenever_the_data_have_it(plain_dataset):
    def offered(**kw):
        page, _ = views.render_page(
            plain_dataset, views.PageOptions("plain", "migrants", permutations=0, index_permutations=0, **kw)
        )
        picker = re.search(r'<select name="view"[^>]*>(.*?)</select>', page, re.S).group(1)
        return re.findall(r'<option value="(\w+)"', picker)

    assert offered() == ["share", "lq", "lisa", "hotspots", "informal"]
    # Over vector tiles only the chosen view is on the page, and the informal one is still offered.
    assert offered(vector_tiles=True, view="lq") == ["lq", "informal"]


def test_maps_modules_and_functions_stay_short():
    """Issue 13: no function over about 60 lines, no module over about 400 lines in maps/."""
    for path in sorted((ROOT / "maps").glob("*.py")):
        source = path.read_text()
        assert len(source.splitlines()) <= 400, path.name
        for node in ast.walk(ast.parse(source)):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                assert node.end_lineno - node.lineno + 1 <= 60, f"{path.name}: {node.name}"


def test_a_new_release_of_the_page_code_is_a_new_page(monkeypatch, tmp_path):
    """Pages outlive the process in the shared disk cache, keyed by ETag: the ETag must change with the code,
    templates and assets that drew the page, or a cached page would load a script written for another."""
    import maps.assets
    from app.main import create_app
    from app.registry import Registry
    from app.settings import Settings

    Registry(tmp_path).put("plain", _jinja_dataset("plain"))
    with TestClient(create_app(Settings(data_dir=tmp_path, register_bundled=False))) as client:
        url = "/maps/plain/embed?permutations=0"
        first = client.get(url)
        assert first.status_code == 200 and client.get(url).headers["etag"] == first.headers["etag"]
        assert client.get(url, headers={"If-None-Match": first.headers["etag"]}).status_code == 304
        monkeypatch.setattr(maps.assets, "RENDER_VERSION", "next-release")
        again = client.get(url, headers={"If-None-Match": first.headers["etag"]})
        assert again.status_code == 200 and again.headers["etag"] != first.headers["etag"]


@pytest.fixture(scope="module")
def georgia_lisa(georgia_paths):
    from maps.data import view_data
    from spatial.io import load_dataset

    p = georgia_paths
    ds = load_dataset(p["boundaries"], counts=p["counts"], key=p["key"], total=p["total"], groups=["foreign_born"])
    return ds, view_data(ds, "foreign_born", "lisa")


def test_an_empty_lisa_view_says_why_and_shows_the_uncorrected_areas_apart(georgia_lisa):
    """Georgia's foreign-born: 17 counties have p ≤ 0.05 before FDR, none after. The page must read that clearly."""
    from maps.i18n import Tr
    from maps.text import summary_text

    ds, vd = georgia_lisa
    f = vd.frame
    sig = vd.meta["summary"]["significance"]
    assert sig["significant"] == 0 and sig["significant_uncorrected"] == 17
    # Hatched rows: the areas with p ≤ alpha that do not pass, by the class they would have (counted here by hand).
    raw = f[(f["p_value"] <= 0.05) & (f["label"] == "Not significant")]
    quad = np.where(
        raw["z"] > 0, np.where(raw["lag"] > 0, "high_high", "high_low"), np.where(raw["lag"] > 0, "low_high", "low_low")
    )
    hatched = {row["key"]: row["count"] for row in vd.meta["uncorrected"]}
    assert hatched == {k: int((quad == k).sum()) for k in ("high_high", "low_low", "high_low", "low_high")}
    assert sum(hatched.values()) == 17
    text = summary_text(vd)
    assert "0 areas are significant at alpha 0.05 after FDR (Benjamini–Hochberg) correction" in text
    assert (
        "No area passes: with 159 areas tested, the FDR (Benjamini–Hochberg) correction at α = 0.05 needs p ≤ 0.00031"
        in text
    )
    assert "6,999 permutations" in text and "the smallest p here is 0.00057" in text
    assert "Hatched, p ≤ 0.05 before correction only: 6 High-High, 8 Low-Low, 3 Low-High." in text
    de = summary_text(vd, Tr("de"))
    assert "Kein Gebiet besteht: bei 159 getesteten Gebieten" in de and "6.999 Permutationen" in de


def test_legend_shows_solid_and_hatched_apart_with_one_sentence(georgia_lisa):
    from maps.i18n import Tr
    from maps.panels import _legend

    _ds, vd = georgia_lisa
    item = _legend(vd, Tr())
    assert [r["key"] for r in item["hatched"]] == ["high_high", "low_low", "low_high"]
    assert item["difference"].startswith(
        "Solid colours pass the FDR (Benjamini–Hochberg) correction for testing 159 areas"
    )
    assert item["none_pass"].startswith("No area passes")
    few = _legend(vd, Tr("fr"))
    assert few["hatched"][0]["label"] == "Haut-Haut" and "p ≤ 0,05" in few["difference"]


def test_no_correction_says_so(georgia_paths):
    from maps.data import view_data
    from maps.text import difference_sentence, none_pass_sentence, summary_text
    from spatial.io import load_dataset

    p = georgia_paths
    ds = load_dataset(p["boundaries"], counts=p["counts"], key=p["key"], total=p["total"], groups=["foreign_born"])
    vd = view_data(ds, "foreign_born", "lisa", correction="none", permutations=999)
    assert vd.meta["uncorrected"] and all(row["count"] == 0 for row in vd.meta["uncorrected"])  # nothing hatched
    assert none_pass_sentence(vd) is None and "No correction for testing 159 areas" in difference_sentence(vd)
    assert "with no correction" in summary_text(vd)
