"""Browser assets of the map pages, served by the app under one prefix or inlined into the offline file.

Vendored libraries (pinned, with licences, in ``maps/vendor/``) carry their version in their path; our own
script and style (``maps/web/``) carry a hash of their content in their URL, so a page never meets a stale copy.
"""

from __future__ import annotations

import base64
import hashlib
import re
from functools import cache
from pathlib import Path

VENDOR = Path(__file__).parent / "vendor"
WEB = Path(__file__).parent / "web"
OWN = "segmap"  # URL folder of the files in maps/web/
LEAFLET = "leaflet-1.9.4"
VECTORGRID = "leaflet.vectorgrid-1.3.0"
JS = {
    "leaflet": f"{LEAFLET}/leaflet.js",
    "vectorgrid": f"{VECTORGRID}/Leaflet.VectorGrid.bundled.min.js",
    "linked": f"{OWN}/linked.js",
    "segmap": f"{OWN}/segmap.js",
}
CSS = {"leaflet_css": f"{LEAFLET}/leaflet.css", "segmap_css": f"{OWN}/segmap.css"}
# Served besides the scripts and styles: Leaflet's layer-control icons and the licences.
OTHER = (
    f"{LEAFLET}/images/layers.png",
    f"{LEAFLET}/images/layers-2x.png",
    f"{LEAFLET}/LICENSE",
    f"{VECTORGRID}/LICENSE",
    *(f"maplibre-gl/{f}" for f in ("maplibre-gl.mjs", "maplibre-gl-worker.mjs", "maplibre-gl.css", "LICENSE.txt")),
    *(f"pmtiles/{f}" for f in ("pmtiles.js", "LICENSE")),
    *(f"{OWN}/{f}" for f in ("series.js", "series.css")),  # the series page (app/series_page.py)
)


def file_for(rel: str) -> Path | None:
    """The file served at ``<prefix>/<rel>``, or None: only the listed files, no path tricks."""
    if rel not in {*JS.values(), *CSS.values(), *OTHER}:
        return None
    own = rel.removeprefix(f"{OWN}/")
    return WEB / own if own != rel else VENDOR / rel


def _render_version() -> str:
    root = Path(__file__).parent
    digest = hashlib.sha256()
    for path in sorted([*root.glob("*.py"), *(root / "templates").iterdir(), *WEB.iterdir()]):
        digest.update(path.name.encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()[:12]


# Changes with the code, templates or assets that draw a page: part of a page's ETag, so a page kept in the
# persistent cache never outlives the script it was written for.
RENDER_VERSION = _render_version()


@cache
def _digest(rel: str) -> str:
    return hashlib.sha256(file_for(rel).read_bytes()).hexdigest()[:12]


def url(base: str, rel: str) -> str:
    return f"{base}/{rel}" + (f"?v={_digest(rel)}" if rel.startswith(f"{OWN}/") else "")


def js_assets(base: str, vector_tiles: bool) -> list[tuple[str, str]]:
    names = ["leaflet", *(["vectorgrid"] if vector_tiles else []), "linked", "segmap"]
    return [(n, url(base, JS[n])) for n in names]


def css_assets(base: str) -> list[tuple[str, str]]:
    return [(n, url(base, rel)) for n, rel in CSS.items()]


@cache
def _inline(rel: str) -> str:
    """The file's text as it goes inside a <script> or <style> element of the offline file."""
    path = file_for(rel)
    text = path.read_text(encoding="utf-8")
    if rel.endswith(".js"):
        return re.sub(r"</(script)", r"<\\/\1", text, flags=re.IGNORECASE)  # the text cannot end its element

    def image(m):  # url(images/x.png) → a data URI, so the CSS needs no other file
        png = path.parent / m.group(1)
        if not png.exists():
            return m.group(0)
        return f"url(data:image/png;base64,{base64.b64encode(png.read_bytes()).decode()})"

    return re.sub(r"url\(([^)\"':]+\.png)\)", image, text)


def inline_assets(html: str, base: str) -> str:
    """Replace every <script src>/<link href> of ours at ``base`` with the file's content (the offline file)."""
    for rel in JS.values():
        tag = re.compile(r'<script src="' + re.escape(url(base, rel)) + r'"></script>')
        html = tag.sub(lambda _m, r=rel: "<script>" + _inline(r) + "</script>", html)
    for rel in CSS.values():
        tag = re.compile(r'<link rel="stylesheet" href="' + re.escape(url(base, rel)) + r'"\s*/?>')
        html = tag.sub(lambda _m, r=rel: "<style>" + _inline(r) + "</style>", html)
    return html
