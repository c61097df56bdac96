"""MapLibre GL style JSON per view: valid by the MapLibre style spec's own validator (vendored, run with node), the
same colour per area as the Leaflet page (the style's expression evaluated by the spec's own expression engine
over the app's tiles, against the colour column of /maps/{id}/data), and drawn by maplibre-gl in headless
Chromium with software WebGL."""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
from pathlib import Path

import httpx
import mapbox_vector_tile
import numpy as np
import pandas as pd
import pytest

pytestmark = pytest.mark.server

VENDOR = Path(__file__).parent / "vendor"
NODE = shutil.which("node")
needs_node = pytest.mark.skipif(NODE is None, reason="node is not installed: the MapLibre style validator needs it")
VIEWS = ("share", "lq", "lisa", "hotspots")
CHROMIUM = "/usr/bin/chromium"
# Software WebGL for maplibre-gl in a headless browser without a GPU.
GL_FLAGS = ["--no-sandbox", "--use-gl=angle", "--use-angle=swiftshader", "--enable-unsafe-swiftshader",
            "--ignore-gpu-blocklist"]  # fmt: skip
EVALUATE = """
const spec = require(process.argv[process.argv.length - 1]);
const {expression, features} = JSON.parse(require("fs").readFileSync(0, "utf8"));
const parsed = spec.expression.createExpression(expression, {type: "color"});
if (parsed.result !== "success") { console.log(JSON.stringify({error: parsed.value.map(e => e.message)})); process.exit(0); }
const colour = v => (typeof v === "string" ? spec.Color.parse(v) : v);
const out = features.map(p => { const c = colour(parsed.value.evaluate({zoom: 7}, {properties: p, type: "Polygon"})); return [c.r, c.g, c.b, c.a]; });
console.log(JSON.stringify(out));
"""


def _style(base: str, **params) -> dict:
    r = httpx.get(f"{base}/v1/datasets/georgia-1990/style.json", params={"group": "black", **params}, timeout=120)
    assert r.status_code == 200, r.text
    return r.json()


def _node(script: list[str], payload: dict) -> list:
    out = subprocess.run([NODE, *script], input=json.dumps(payload), capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


@needs_node
@pytest.mark.parametrize("view", VIEWS)
def test_style_is_valid_maplibre(live_server, view):
    style = _style(live_server, view=view)
    assert _node([str(VENDOR / "validate_style.cjs")], style) == []
    legend = style["metadata"]["segmap:legend"]
    assert legend and all(row["colour"].startswith("#") for row in legend)
    tilejson = httpx.get(style["sources"]["segmap"]["url"]).json()
    assert tilejson["tiles"] and any(l["id"] == style["layers"][1]["source-layer"] for l in tilejson["vector_layers"])
    # The validator can fail: a broken style is reported
    style["layers"][1]["paint"]["fill-color"] = ["match", ["get", "label"], "x"]
    style["layers"][1]["source"] = "nope"
    assert len(_node([str(VENDOR / "validate_style.cjs")], style)) >= 2


def _tile_features(base: str, url: str) -> list[dict]:
    """Every feature's properties in the z7 tiles over Georgia (counties are whole there, not merged)."""
    props = {}
    for x in range(33, 36):
        for y in range(50, 53):
            r = httpx.get(url.replace("{z}/{x}/{y}", f"7/{x}/{y}"), timeout=120)
            assert r.status_code in (200, 204), r.text
            if r.status_code == 200 and r.content:
                for f in mapbox_vector_tile.decode(r.content)["areas"]["features"]:
                    props[f["properties"]["id"]] = f["properties"]
    return list(props.values())


@needs_node
@pytest.mark.parametrize("view", VIEWS)
def test_style_colours_each_area_as_the_leaflet_page(live_server, view):
    style = _style(live_server, view=view)
    tiles_url = httpx.get(style["sources"]["segmap"]["url"]).json()["tiles"][0]
    features = _tile_features(live_server, tiles_url)
    assert len(features) == 159 and not any("areas" in p for p in features)
    colours = _node(
        ["-e", EVALUATE, str(VENDOR / "maplibre-gl-style-spec" / "index.cjs")],
        {"expression": style["layers"][1]["paint"]["fill-color"], "features": features},
    )
    data = httpx.get(f"{live_server}/maps/georgia-1990/data", params={"view": view, "group": "black"}, timeout=120)
    page = pd.read_csv(io.StringIO(data.text), dtype={"id": str}).set_index("id")["colour"]
    for p, got in zip(features, colours):
        want = tuple(int(page[p["id"]][i : i + 2], 16) / 255 for i in (1, 3, 5))
        assert got[3] == 1 and np.allclose(got[:3], want, atol=1 / 255), (view, p["id"], got, page[p["id"]])


@pytest.mark.browser
@pytest.mark.skipif(not os.path.exists(CHROMIUM), reason="Debian chromium not installed at /usr/bin/chromium")
@pytest.mark.parametrize("view", ["lisa", "share"])
def test_maplibre_page_draws_the_classes_colours(live_server, view, tmp_path):
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright for Python is not installed")
    from PIL import Image

    style = _style(live_server, view=view)
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=GL_FLAGS)
        page = browser.new_page(viewport={"width": 900, "height": 900})
        foreign, errors = [], []
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.on(
            "request", lambda r: None if r.url.startswith((live_server, "data:", "blob:")) else foreign.append(r.url)
        )
        page.goto(f"{live_server}/maps/georgia-1990/maplibre?view={view}&group=black")
        page.wait_for_selector("html[data-segmap-ready]", timeout=60000)
        shot = tmp_path / f"maplibre-{view}.png"
        page.locator("#map canvas").screenshot(path=str(shot))
        legend = page.inner_text("#legend")
        browser.close()
    assert not errors and not foreign, (errors, foreign)
    pixels = np.asarray(Image.open(shot).convert("RGB"), dtype=float).reshape(-1, 3)
    for row in style["metadata"]["segmap:legend"]:
        if row["areas"] < 3:  # one small county may be only a few pixels
            continue
        colour = np.array([int(row["colour"][i : i + 2], 16) for i in (1, 3, 5)], dtype=float)
        shown = 0.85 * colour + 0.15 * 255  # fill-opacity over the white background
        near = (np.abs(pixels - shown) <= 8).all(axis=1).sum()
        assert near >= 50, (view, row, near)
        assert row["label"] in legend
