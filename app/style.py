"""MapLibre GL style JSON of one map view, and a MapLibre page that draws it.

The classes, colours and legend are the Leaflet page's: the view is classified by :func:`maps.data.view_data`
(through :func:`app.pages._view`, the lookup the pages and images use) and turned into the vector-tile page's
class table by :func:`maps.views._tile_classes`; here they only become MapLibre expressions over the same tile
properties, mirroring ``maps/web/segmap.js``'s ``classifier``. The tiles are the app's, through TileJSON (its
URLs are versioned), with the statistic the view draws at the tiles' default permutations and seed.
"""

from __future__ import annotations

import html
from urllib.parse import urlencode

from maps.data import LQ_BREAKS, SUPPRESSED, VIEW_STATISTIC
from maps.i18n import tr_for
from maps.templating import json_for_script
from maps.views import _tile_classes

from .deps import Source
from .pages import MapParams, _view

LAYER = "areas"  # the tiles' layer (app.tileservice.LAYER)
FILL_OPACITY = 0.85  # as the Leaflet page's vector tiles
OUTLINE = "#555555"


def _r6(expr) -> list:
    """Rounded to 1e-6, as segmap.js compares shares with bins (tile values are not exact)."""
    return ["/", ["round", ["*", expr, 1e6]], 1e6]


def fill_colour(classes: dict) -> list:
    """A MapLibre expression giving each tile feature its class colour, or the hidden colour (segmap.js)."""
    hidden, colours = classes["hidden_colour"], classes["colours"]
    share = ["get", classes["share_field"]]
    if classes["kind"] == "labels":
        return ["match", ["get", "label"], *[x for pair in zip(classes["label_keys"], colours) for x in pair], hidden]
    if classes["kind"] == "lq":
        steps = [x for pair in zip(classes["breaks"], colours[1:]) for x in pair]
        hide = ["any", ["==", share, None], ["==", ["get", "label"], "no_population"]]
        return ["case", hide, hidden, ["step", ["to-number", ["get", "value"]], colours[0], *steps]]
    bins = classes["bins"]
    cases = []
    for b, colour in zip(bins[:-1], colours):
        cases += [["<=", _r6(["to-number", share]), round(b, 6)], colour]
    return ["case", ["==", share, None], hidden, *cases, colours[len(bins) - 1]]


def style(src: Source, p: MapParams, base_url: str, max_permutations: int) -> dict:
    """The style of view ``p.view`` of ``p.group``: one vector source (TileJSON), a fill and an outline layer, the
    legend in ``metadata``."""
    vd = _view(src, p, max_permutations)
    classes = {
        **_tile_classes(vd, tr_for(None)),
        "share_field": f"{vd.group}_share",
        "bins": vd.meta.get("bins", []),
        "breaks": LQ_BREAKS,
        "hidden_colour": SUPPRESSED[1],
    }
    query = {"group": vd.group, **({"statistic": VIEW_STATISTIC[p.view]} if p.view in VIEW_STATISTIC else {})}
    bounds = src.info["bounds"]
    return {
        "version": 8,
        "name": f"{src.info['title']} — {vd.title}",
        "metadata": {
            "segmap:view": vd.view,
            "segmap:group": vd.group,
            "segmap:legend": [{"label": label, "colour": colour, "areas": n} for label, colour, n in vd.legend],
            "segmap:notes": vd.notes,
            "segmap:bounds": bounds,
        },
        "center": [(bounds[0] + bounds[2]) / 2, (bounds[1] + bounds[3]) / 2],
        "zoom": 6,
        "sources": {
            "segmap": {
                "type": "vector",
                "url": f"{base_url}/v1/datasets/{src.id}/tilejson.json?{urlencode(query)}",
                "attribution": html.escape(src.info.get("source") or ""),
            }
        },
        "layers": [
            {"id": "background", "type": "background", "paint": {"background-color": "#ffffff"}},
            {
                "id": "areas-fill",
                "type": "fill",
                "source": "segmap",
                "source-layer": LAYER,
                "paint": {"fill-color": fill_colour(classes), "fill-opacity": FILL_OPACITY},
            },
            {
                "id": "areas-outline",
                "type": "line",
                "source": "segmap",
                "source-layer": LAYER,
                "filter": ["!", ["has", "areas"]],  # merged cells have no outline (as on the Leaflet page)
                "paint": {"line-color": OUTLINE, "line-width": 0.4},
            },
        ],
    }


PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{title}</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<link rel="stylesheet" href="/maps/static/maplibre-gl/maplibre-gl.css">
<style>html,body,#map{{margin:0;height:100%}} #legend{{position:absolute;bottom:24px;left:8px;background:#fff;
padding:6px 8px;font:12px sans-serif;box-shadow:0 0 4px #888}} #legend i{{display:inline-block;width:14px;
height:14px;margin-right:6px;vertical-align:middle;border:1px solid #999}}</style></head>
<body><div id="map" role="img" aria-label="{title}"></div><div id="legend"></div>
<script type="module">
import * as maplibregl from "/maps/static/maplibre-gl/maplibre-gl.mjs";
const styleUrl = {style_url};
const style = await (await fetch(styleUrl)).json();
const legend = document.getElementById("legend");
for (const row of style.metadata["segmap:legend"]) {{
  const line = document.createElement("div"), swatch = document.createElement("i");
  swatch.style.background = row.colour;
  line.append(swatch, row.label + " (" + row.areas + ")");
  legend.append(line);
}}
const [w, s, e, n] = style.metadata["segmap:bounds"];
const map = new maplibregl.Map({{container: "map", style, bounds: [[w, s], [e, n]], attributionControl: {{}}}});
map.once("idle", () => document.documentElement.dataset.segmapReady = "1");
window.segmapMap = map;
</script></body></html>
"""
CSP = (
    "default-src 'self'; img-src 'self' data: blob:; style-src 'self' 'unsafe-inline'; "
    "script-src 'self' 'unsafe-inline'; worker-src 'self' blob:; frame-ancestors 'self'"
)


def page(src: Source, style_query: str) -> str:
    """A MapLibre GL page of the style at ``style.json?{style_query}`` (vendored maplibre-gl, no other host)."""
    url = f"/v1/datasets/{src.id}/style.json" + (f"?{style_query}" if style_query else "")
    return PAGE.format(title=html.escape(src.info["title"]), style_url=json_for_script(url))
