"""Map views without a browser: classification, colours, GeoJSON size, offline HTML, HTTP endpoints, CLI."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import httpx
import numpy as np
import pytest
import shapely

from conftest import run_segmap
from spatial.dataset import Metadata
from spatial.io import load_dataset

maps_data = pytest.importorskip("maps.data")
views = pytest.importorskip("maps.views")

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def georgia(georgia_paths):
    return load_dataset(
        georgia_paths["boundaries"],
        counts=georgia_paths["counts"],
        key=georgia_paths["key"],
        total=georgia_paths["total"],
        groups=["foreign_born", "black", "rural"],
        meta=Metadata(name="Georgia", source="US Census 1990"),
    )


@pytest.mark.parametrize("scheme", ["quantiles", "natural_breaks", "equal_interval"])
def test_share_classes_contain_their_areas(georgia, scheme):
    vd = maps_data.view_data(georgia, "black", "share", scheme=scheme, k=5)
    f = vd.frame
    bins = vd.meta["bins"]
    assert len(bins) == 5 and bins == sorted(bins)
    # Independent check: every area's share lies within its class's (lower, upper] bounds.
    lows = [-np.inf, *bins[:-1]]
    for share, cls in zip(f["share"], f["class"]):
        assert lows[cls] < share <= bins[cls] + 1e-12 or (cls == 0 and share <= bins[0])
    assert sum(n for _, _, n in vd.legend) == georgia.n
    assert [c for _, c, _ in vd.legend] == maps_data.SEQUENTIAL[5]
    if scheme == "equal_interval":
        widths = np.diff([f["share"].min(), *bins])
        assert np.allclose(widths, widths[0])


def test_lisa_colours_are_geoda_and_counts_match_local_statistic(georgia):
    from spatial.local import local_statistic

    vd = maps_data.view_data(georgia, "black", "lisa", permutations=999, seed=1)
    res = local_statistic(georgia, "black", "lisa", permutations=999, seed=1)
    geoda = {
        "high_high": "#ff0000",
        "low_low": "#0000ff",
        "high_low": "#f4ada8",
        "low_high": "#a7adf9",
        "not_significant": "#eeeeee",
        "no_neighbours": "#ffffff",
    }
    assert list(vd.frame["colour"]) == [geoda[label] for label in res.labels]
    counts = {name: n for name, _, n in vd.legend}
    assert counts["High-High"] == int((res.labels == "high_high").sum()) > 0
    assert counts["Low-Low"] == int((res.labels == "low_low").sum()) > 0
    assert "significant" in maps_data.summary_text(vd)


def test_lq_classes_follow_fixed_breaks(georgia):
    vd = maps_data.view_data(georgia, "foreign_born", "lq")
    f = vd.frame
    city = georgia.column("foreign_born").sum() / georgia.column(georgia.total).sum()
    assert np.allclose(f["value"], f["share"] / city)
    assert ((f["value"] >= 2) == (f["class"] == 4)).all()


def test_disclosure_hides_small_counts_and_their_shares(georgia):
    vd = maps_data.view_data(georgia, "foreign_born", "share", disclosure_threshold=10)
    f = vd.frame
    small = (georgia.column("foreign_born") > 0) & (georgia.column("foreign_born") < 10)
    assert small.any()
    assert f.loc[small, "count"].isna().all() and f.loc[small, "share"].isna().all()
    assert (f.loc[small, "label"] == "Hidden (small counts)").all()


def test_bad_parameters_are_named(georgia):
    from spatial.errors import ValidationError

    for kwargs, word in [
        ({"group": "nope"}, "nope"),
        ({"view": "pie"}, "pie"),
        ({"scheme": "jenks"}, "jenks"),
        ({"k": 12}, "classes"),
        ({"view": "informal"}, "informal"),
    ]:
        with pytest.raises(ValidationError, match=word):
            maps_data.view_data(georgia, **{"group": "black", **kwargs})


def test_embedded_geojson_is_rounded_and_small(georgia):
    vd = maps_data.view_data(georgia, "black", "share")
    gj = views.geojson(georgia, vd)
    text = json.dumps(gj["features"][0]["geometry"])
    decimals = max(len(m) for m in re.findall(r"\.(\d+)", text))
    assert decimals <= 4  # Georgia spans ~5°: 3–4 decimals (~100 m) is what the fitted zoom shows
    assert len(json.dumps(gj)) < 400_000
    # Simplified outlines still cover the state: area within 1 % of the original.
    ours = shapely.union_all([shapely.geometry.shape(f["geometry"]) for f in gj["features"]]).area
    assert ours == pytest.approx(georgia.areas.to_crs(4326).union_all().area, rel=0.01)


def test_download_is_self_contained(georgia):
    html, info = views.render_page(
        georgia, views.PageOptions("ga", "black", view="lisa", mode="download", permutations=99)
    )
    assert not re.search(r'<(script|link)[^>]+(src|href)=', html)  # nothing fetched: all inlined
    assert "L.Map" in html or "L.map" in html  # Leaflet itself is inside
    # The only absolute URL in an attribute is Leaflet's own attribution hyperlink (a link, never fetched).
    assert set(re.findall(r"""(?:src|href)=\\?["']?((?:https?:)?//[^"'\\ >]+)""", html)) <= {"https://leafletjs.com"}
    assert html.count('"type": "Feature"') == georgia.n


def test_vector_tile_mode_keeps_page_small():
    """A synthetic 20,000-cell city: the page carries classes, not geometry, and stays well under 1 MB."""
    import geopandas as gpd
    from shapely.geometry import box

    n = 20_000
    side = int(np.sqrt(n))
    cells = [box(x * 100, y * 100, x * 100 + 100, y * 100 + 100) for x in range(side) for y in range(side)]
    rng = np.random.default_rng(0)
    total = rng.integers(50, 500, len(cells))
    gdf = gpd.GeoDataFrame(
        {"id": [f"c{i}" for i in range(len(cells))], "total": total, "migrants": rng.binomial(total, 0.2)},
        geometry=cells,
        crs=3857,
    )
    ds = load_dataset(gdf, groups=["migrants"], total="total", key="id")
    html, info = views.render_page(ds, views.PageOptions("big", "migrants", view="share", mode="embed"))
    assert info["vector"] is True
    assert '"coordinates"' not in html and "vectorgrid" in html.lower()
    assert len(html.encode()) < 1_000_000


@pytest.mark.server
def test_endpoints(live_server):
    base = live_server
    page = httpx.get(f"{base}/maps/georgia-1990?group=black&view=lisa", timeout=60)
    assert page.status_code == 200
    assert (
        page.headers["x-frame-options"] == "SAMEORIGIN"
        and "frame-ancestors 'self'" in page.headers["content-security-policy"]
    )
    assert "https://" not in re.sub(r"https://leafletjs\.com", "", page.text.split("<body")[0])
    srcs = re.findall(r'<script src="([^"]+)"', page.text)
    # Leaflet, then our own scripts (their URLs carry a hash of their content: a page never meets a stale copy).
    assert srcs[0] == "/maps/static/leaflet-1.9.4/leaflet.js" and len(srcs) == 3
    assert re.fullmatch(r"/maps/static/segmap/linked\.js\?v=[0-9a-f]{12}", srcs[1])
    assert re.fullmatch(r"/maps/static/segmap/segmap\.js\?v=[0-9a-f]{12}", srcs[2])
    styles = re.findall(r'<link rel="stylesheet" href="([^"]+)"', page.text)
    assert styles[0] == "/maps/static/leaflet-1.9.4/leaflet.css" and len(styles) == 2
    assert re.fullmatch(r"/maps/static/segmap/segmap\.css\?v=[0-9a-f]{12}", styles[1])
    for path in (
        *srcs,
        *styles,
        "/maps/static/leaflet-1.9.4/LICENSE",
        "/maps/static/leaflet.vectorgrid-1.3.0/LICENSE",
        "/maps/static/leaflet-1.9.4/images/layers.png",
    ):
        assert httpx.get(base + path).status_code == 200, path
    for bad in (
        "/maps/static/../../app/settings.py",
        "/maps/static/leaflet-1.9.4/package.json",
        "/maps/static/%2e%2e/GUIDE.md",
    ):
        assert httpx.get(base + bad).status_code == 404, bad

    csv = httpx.get(f"{base}/maps/georgia-1990/data?group=black&view=lisa&format=csv", timeout=60)
    assert csv.status_code == 200 and csv.text.splitlines()[0].startswith(
        "id,name,total,count,share,value,p_value,label"
    )
    assert len(csv.text.strip().splitlines()) == 160
    gj = httpx.get(f"{base}/maps/georgia-1990/data?group=black&view=hotspots&format=geojson", timeout=60).json()
    assert len(gj["features"]) == 159 and gj["segmap"]["correction"] == "fdr"

    svg = httpx.get(f"{base}/v1/datasets/georgia-1990/map.svg?group=black&view=share", timeout=60)
    assert svg.status_code == 200 and svg.headers["content-type"].startswith("image/svg+xml")
    assert "<title id=\"segmap-title\">" in svg.text and "<desc id=\"segmap-desc\">Map of share" in svg.text
    assert "Source: US Census 1990" in svg.text and "km" in svg.text

    for url, status in [
        ("/maps/georgia-1990?view=pie", 422),
        ("/maps/georgia-1990?group=nope", 422),
        ("/maps/nope", 404),
        ("/v1/datasets/georgia-1990/map.png?dpi=600", 422),
        ("/maps/georgia-1990?at=1,2", 422),
        ("/maps/georgia-1990?view=informal", 422),
    ]:
        r = httpx.get(base + url, timeout=60)
        assert r.status_code == status, (url, r.status_code, r.text[:200])
        assert r.json()["detail"]


def test_cli_writes_html_png_svg(tmp_path, georgia_paths):
    from PIL import Image

    common = [
        "map",
        str(georgia_paths["boundaries"]),
        "--counts",
        str(georgia_paths["counts"]),
        "--key",
        "area_key",
        "--total",
        "total_population",
        "--group",
        "black",
    ]
    png = tmp_path / "m.png"
    r = run_segmap(*common, "--view", "hotspots", "-o", str(png), "--width", "640", "--height", "480", "--dpi", "80")
    assert r.returncode == 0, r.stderr
    assert Image.open(png).size == (640, 480) and "alt text: Map of Gi* hot and cold spots" in r.stderr
    html = tmp_path / "m.html"
    r = run_segmap(*common, "-o", str(html), "--permutations", "99")
    assert r.returncode == 0, r.stderr
    assert "<script src=" not in html.read_text()
    mask = os.umask(0)
    os.umask(mask)
    for made in (png, html):  # the umask's permissions, not the temporary file's owner-only 0600: maps are shared
        assert made.stat().st_mode & 0o777 == 0o666 & ~mask
    r = run_segmap(*common, "-o", str(tmp_path / "m.jpg"))
    assert r.returncode == 2 and ".html, .png or .svg" in r.stderr and not (tmp_path / "m.jpg").exists()


def test_informal_overlay_outlines_areas_with_settlements(georgia_paths):
    import geopandas as gpd
    import pandas as pd

    gdf = gpd.read_file(georgia_paths["boundaries"])
    counts = pd.read_csv(georgia_paths["counts"])
    counts["informal"] = np.where(np.arange(len(counts)) % 10 == 0, (counts["total_population"] * 0.05).round(), 0)
    ds = load_dataset(gdf, counts=counts, key="area_key", total="total_population", groups=["black", "informal"])
    html, info = views.render_page(
        ds, views.PageOptions("ga", "black", view="informal", permutations=0, index_permutations=0)
    )
    assert "informal" in info["views"]
    assert "Informal settlements" in html and "dashed outline" in html
    with_informal = int((counts["informal"] > 0).sum())
    assert html.count('"dashArray": "6 4"') >= 1
    assert html.count('"People in informal settlements"') == 1
    # The overlay layer holds exactly the areas with people in informal settlements.
    geo = re.findall(r'_add\((\{"bbox".*?|\{"features".*?)\);\n', html)
    sizes = sorted(len(json.loads(g)["features"]) for g in geo)
    assert sizes == [with_informal, ds.n]


def test_vendored_assets_match_their_recorded_checksums():
    import hashlib
    from pathlib import Path

    vendor = Path(__file__).resolve().parents[1] / "maps" / "vendor"
    lines = (vendor / "SHA256SUMS").read_text().split("\n")
    entries = [line.split(maxsplit=1) for line in lines if line.strip()]
    assert any("leaflet.js" in name for _, name in entries)
    for digest, name in entries:
        assert hashlib.sha256((vendor / name.strip()).read_bytes()).hexdigest() == digest, name
