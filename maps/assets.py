"""Vendored browser assets (pinned, with licences in maps/vendor/): served by the app, or inlined."""
from __future__ import annotations

import base64
import re
from functools import lru_cache
from pathlib import Path

VENDOR = Path(__file__).parent / "vendor"
LEAFLET = "leaflet-1.9.4"
VECTORGRID = "leaflet.vectorgrid-1.3.0"
JS = {"leaflet": f"{LEAFLET}/leaflet.js", "vectorgrid": f"{VECTORGRID}/Leaflet.VectorGrid.bundled.min.js"}
CSS = {"leaflet_css": f"{LEAFLET}/leaflet.css"}


def js_assets(base: str, vector_tiles: bool) -> list[tuple[str, str]]:
    names = ["leaflet"] + (["vectorgrid"] if vector_tiles else [])
    return [(n, f"{base}/{JS[n]}") for n in names]


def css_assets(base: str) -> list[tuple[str, str]]:
    return [(n, f"{base}/{p}") for n, p in CSS.items()]


@lru_cache(maxsize=None)
def _text(rel: str) -> str:
    text = (VENDOR / rel).read_text(encoding="utf-8")
    if rel.endswith(".css"):
        # url(images/x.png) → data URIs, so the CSS needs no other file.
        folder = (VENDOR / rel).parent

        def inline(m):
            path = folder / m.group(1)
            return f"url(data:image/png;base64,{base64.b64encode(path.read_bytes()).decode()})" if path.exists() else m.group(0)
        text = re.sub(r"url\(([^)\"':]+\.png)\)", inline, text)
    return text


def inline_assets(html: str, base: str) -> str:
    """Replace every <script src>/<link href> pointing at ``base`` with the file's content."""
    for rel in JS.values():
        tag = re.compile(r'<script src="' + re.escape(f"{base}/{rel}") + r'"></script>')
        html = tag.sub(lambda _m, r=rel: "<script>" + _text(r).replace("</script", "<\\/script") + "</script>", html)
    for rel in CSS.values():
        tag = re.compile(r'<link rel="stylesheet" href="' + re.escape(f"{base}/{rel}") + r'"\s*/?>')
        html = tag.sub(lambda _m, r=rel: "<style>" + _text(r) + "</style>", html)
    return html
