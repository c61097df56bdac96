"""Folium/Leaflet map pages: one base layer per view with its own legend, hover values, an indices
panel, a linked list of areas, URL-held state and no CDN (assets from ``maps/vendor``).
"""
from __future__ import annotations

import html
import json
import math
from dataclasses import dataclass

import folium
import numpy as np
import shapely
from branca.element import Element, MacroElement
from jinja2 import Template

from spatial.cancel import checkpoint
from spatial.dataset import ID, AreaDataset
from spatial.disclosure import as_public

from . import assets
from .data import SCHEMES, VIEW_TITLES, ViewData, summary_text, view_data

STATIC_PREFIX = "/maps/static"  # where app/routers/maps.py serves maps/vendor
VECTOR_TILE_THRESHOLD = 3000  # above this many areas the page draws the app's vector tiles
TILE_LAYER = "areas"  # layer name inside the app's MVT tiles
INDICES = ("dissimilarity", "isolation", "exposure", "gini", "entropy")


@dataclass
class PageOptions:
    dataset_id: str
    group: str
    view: str = "share"
    scheme: str = "quantiles"
    k: int = 5
    at: tuple[float, float, float] | None = None  # lat, lon, zoom
    mode: str = "page"  # page | embed | download
    basemap_url: str | None = None
    basemap_attribution: str = ""
    permutations: int | None = None  # None: enough for the correction, at most max_permutations
    max_permutations: int = 9999
    seed: int = 0
    disclosure_threshold: int = 0
    vector_tiles: bool | None = None  # None: decide by the number of areas
    index_permutations: int = 199
    # Offline pages of large cities: tiles carried in the page ({"z/x/y": MVT bytes}) and their zoom range.
    embedded_tiles: dict | None = None
    embedded_zooms: tuple[int, int] | None = None


# JSON inside <script>: "</script>", "<!--" and "&" must not reach the HTML parser, nor U+2028/9 an old JS parser.
_SCRIPT_ESCAPES = (("&", "\\u0026"), ("<", "\\u003c"), (">", "\\u003e"), ("\u2028", "\\u2028"), ("\u2029", "\\u2029"))


def json_for_script(value) -> str:
    """``value`` as JSON that is safe to place inside a ``<script>`` element (the only way data enters our scripts)."""
    text = json.dumps(value)
    for raw, escaped in _SCRIPT_ESCAPES:
        text = text.replace(raw, escaped)
    return text


def _digits(bounds) -> int:
    """Decimal places for lon/lat that keep ~1/4000 of the extent: what the fitted zoom needs."""
    extent = max(bounds[2] - bounds[0], bounds[3] - bounds[1], 1e-6)
    return int(min(6, max(3, math.ceil(-math.log10(extent / 4000)))))


def _geometries(dataset: AreaDataset, digits: int | None = None):
    wgs = dataset.areas.to_crs(4326)
    digits = digits if digits is not None else _digits(wgs.total_bounds)
    geoms = wgs.geometry.to_numpy()
    try:  # shared edges stay shared: no gaps or slivers between neighbours after simplifying
        geoms = shapely.coverage_simplify(geoms, 10.0 ** -digits)
    except Exception:
        geoms = shapely.simplify(geoms, 10.0 ** -digits, preserve_topology=True)
    return shapely.transform(geoms, lambda c: np.round(c, digits))


def _clean(rec: dict) -> dict:
    return {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in rec.items()}


def geojson(dataset: AreaDataset, vd: ViewData, digits: int | None = None) -> dict:
    """Areas in WGS84 with rounded coordinates and one view's numbers as properties (the data link)."""
    f = vd.frame
    cols = [c for c in (ID, "name", "total", "count", "share", "value", "p_value", "label", "colour") if c in f]
    feats = [{"type": "Feature", "properties": _clean(rec), "geometry": shapely.geometry.mapping(g)}
             for g, rec in zip(_geometries(dataset, digits), f[cols].to_dict("records"))]
    return {"type": "FeatureCollection", "features": feats}


def _round(v, digits=4):
    return None if v is None or not math.isfinite(v) else round(float(v), digits)


def page_geojson(dataset: AreaDataset, data: dict[str, ViewData], digits: int | None = None) -> tuple[dict, dict]:
    """One geometry per area for every view, kept small: per view a class code (``k_<view>``) into a
    palette of (label, colour), the value (``v_<view>``) and p-value (``p_<view>``) to 4 decimals.
    Returns (GeoJSON, palettes by view). Full precision stays in the data link."""
    import pandas as pd
    first = next(iter(data.values())).frame
    codes, palettes = {}, {}
    for v, vd in data.items():
        pairs = vd.frame["label"].astype(str) + "\x00" + vd.frame["colour"].astype(str)
        code, uniques = pd.factorize(pairs)
        codes[v] = code
        palettes[v] = [u.split("\x00") for u in uniques]
    feats = []
    for n, g in enumerate(_geometries(dataset, digits)):
        props = {ID: str(first[ID].iat[n]), "name": str(first["name"].iat[n]), "total": _round(first["total"].iat[n], 1),
                 "count": _round(first["count"].iat[n], 1), "share": _round(first["share"].iat[n], 5)}
        for v, vd in data.items():
            props[f"k_{v}"] = int(codes[v][n])
            if v not in ("share", "informal"):
                props[f"v_{v}"] = _round(vd.frame["value"].iat[n])
                props[f"p_{v}"] = _round(vd.frame["p_value"].iat[n])
        feats.append({"type": "Feature", "properties": props, "geometry": shapely.geometry.mapping(g)})
    return {"type": "FeatureCollection", "features": feats}, palettes


def _indices(dataset: AreaDataset, group: str, permutations: int, seed: int) -> tuple[list[dict], str | None]:
    try:
        from spatial.indices.compute import compute_indices
    except ImportError:
        return [], "City-wide indices are not available in this build."
    try:
        res = compute_indices(dataset, group=group, indices=list(INDICES), permutations=permutations, seed=seed)
    except Exception as exc:  # a missing index must not take the map down
        return [], f"City-wide indices could not be computed: {exc}"
    out = []
    for name, r in res.items():
        out.append({"name": name, "value": r.value, "ci_low": r.ci_low, "ci_high": r.ci_high, "p_value": r.p_value,
                    "null": r.null, "permutations": r.permutations})
    return out, None


def _fmt(v, pct=False):
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "–"
    return f"{v:.1%}" if pct else f"{v:.3f}"


_SCRIPT = Template("""
{% macro script(this, kwargs) %}
(function () {
  var cfg = {{ this.config }};
  var map = {{ this.map_name }};
  var areas = {{ this.areas }};
  var byId = {}, view = cfg.view;
  window.segmap = {map: map, areas: areas, cfg: cfg, byId: byId};
  var esc = function (s) { return String(s == null ? "–" : s).replace(/[&<>"]/g, function (c) {
    return {"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;"}[c]; }); };
  var num = function (v, pct) { if (v === null || v === undefined) return "hidden";
    return pct ? (100 * v).toFixed(1) + " %" : (Math.abs(v) >= 1000 ? Math.round(v).toLocaleString("en") : (+v).toFixed(3)); };
  function tip(p) {
    var rows = [["Counts", num(p.count) + " of " + num(p.total)], ["Share", num(p.share, true)]];
    if (view !== "share" && view !== "informal") rows.push([cfg.statistic[view] || "Value", num(p["v_" + view])]);
    var pv = p["p_" + view];
    if (pv !== null && pv !== undefined) rows.push(["p-value", (+pv).toPrecision(2)]);
    rows.push(["Class", cfg.palettes[view][p["k_" + view]][0]]);
    return "<b>" + esc(p.name) + "</b><table>" + rows.map(function (r) {
      return "<tr><th>" + esc(r[0]) + "</th><td>" + esc(r[1]) + "</td></tr>"; }).join("") + "</table>";
  }
  function style(l) { var p = l.feature.properties;
    return {fillColor: cfg.palettes[view][p["k_" + view]][1], fillOpacity: 0.85,
            color: l === selected ? "#000" : "#555", weight: l === selected ? 3 : 0.5}; }
  areas.eachLayer(function (l) {
    var p = l.feature.properties; byId[p.id] = l;
    l.bindTooltip(function () { return tip(p); }, {sticky: true});
    l.on("click", function () { select(p.id, false); });
    l.on("mouseover", function () { if (l !== selected) l.setStyle({weight: 2, color: "#000"}); });
    l.on("mouseout", function () { l.setStyle(style(l)); });
  });
  function restyle() { areas.eachLayer(function (l) { l.setStyle(style(l)); }); }
  function current() { return view; }
  function showLegend(view) {
    document.querySelectorAll(".segmap-legend").forEach(function (el) {
      el.hidden = el.getAttribute("data-view") !== view; });
    document.querySelectorAll(".segmap-list, .segmap-alt").forEach(function (el) {
      el.hidden = el.getAttribute("data-view") !== view; });
  }
  function select(id, zoom) {
    var l = byId[id], prev = selected;
    selected = l || null;
    if (prev) prev.setStyle(style(prev));
    document.querySelectorAll(".segmap-list li.selected").forEach(function (li) { li.classList.remove("selected"); });
    var li = document.querySelector('.segmap-list[data-view="' + current() + '"] li[data-id="' + CSS.escape(id) + '"]');
    if (li) { li.classList.add("selected"); if (!zoom) li.scrollIntoView({block: "nearest"}); }
    if (!l) return;
    l.setStyle(style(l)); l.bringToFront();
    if (zoom) { map.fitBounds(l.getBounds(), {maxZoom: map.getZoom() + 1}); l.openTooltip(l.getBounds().getCenter()); }
  }
  window.segmap.select = select;
  document.querySelectorAll(".segmap-list li").forEach(function (li) {
    var go = function () { select(li.getAttribute("data-id"), true); };
    li.addEventListener("click", go);
    li.addEventListener("keydown", function (e) { if (e.key === "Enter" || e.key === " ") { e.preventDefault(); go(); } });
  });
  function syncUrl() {
    if (cfg.mode === "download" || !window.history || !history.replaceState) return;
    var u = new URL(window.location.href), c = map.getCenter();
    u.searchParams.set("view", current());
    u.searchParams.set("at", c.lat.toFixed(5) + "," + c.lng.toFixed(5) + "," + map.getZoom());
    history.replaceState(null, "", u.toString());
    document.querySelectorAll("a.segmap-data").forEach(function (a) {
      var d = new URL(a.href, window.location.href); d.searchParams.set("view", current()); a.href = d.toString(); });
    document.querySelectorAll("select[name=view]").forEach(function (s) { s.value = current(); });
    document.querySelectorAll("input[name=at]").forEach(function (i) { i.value = u.searchParams.get("at"); });
  }
  map.on("baselayerchange", function (e) { view = cfg.names[e.name] || view; restyle(); showLegend(view); syncUrl(); });
  map.on("moveend", syncUrl);
  map.on("overlayadd overlayremove", function (e) {
    var el = document.querySelector(".segmap-overlay-legend");
    if (el && e.name === "Informal settlements") el.hidden = e.type === "overlayremove"; });
  var selected = null;
  restyle(); showLegend(view);
  if (cfg.at) { map.setView([cfg.at[0], cfg.at[1]], cfg.at[2]); } else { map.fitBounds(cfg.bounds); }
  document.documentElement.setAttribute("data-segmap-ready", "1");
})();
{% endmacro %}
""")


class _Wiring(MacroElement):
    def __init__(self, fmap, areas, config: dict):
        super().__init__()
        self._template = _SCRIPT
        self.map_name = fmap.get_name()
        self.areas = areas.get_name()
        self.config = json_for_script(config)


_VT_SCRIPT = Template("""
{% macro script(this, kwargs) %}
(function () {
  // Classes are computed here from the tile's own properties: the page carries no per-area data.
  var map = {{ this.map_name }}, cfg = {{ this.config }};
  var r6 = function (v) { return Math.round(v * 1e6) / 1e6; };
  if (cfg.embedded) {  // an offline file: VectorGrid's tile fetches are answered from the page itself
    var realFetch = window.fetch;
    window.fetch = function (url, options) {
      var m = /^segmap-embedded\/(\d+\/\d+\/\d+)\.mvt$/.exec(String(url));
      if (!m) return realFetch.apply(this, arguments);
      var b64 = cfg.embedded[m[1]] || "", bytes = new Uint8Array(b64.length ? atob(b64).length : 0);
      if (b64) { var raw = atob(b64); for (var i = 0; i < raw.length; i++) bytes[i] = raw.charCodeAt(i); }
      return Promise.resolve(new Response(bytes, {status: 200}));
    };
    map.setMinZoom(cfg.zooms[0]);
  }
  function classOf(p) {
    var share = p[cfg.share_field];
    if (cfg.kind === "labels") { return cfg.label_keys.indexOf(p.label); }
    if (share === undefined || share === null) return -1;  // hidden by disclosure control
    if (cfg.kind === "lq") { if (p.label === "no_population") return -1;
      var k = 0; cfg.breaks.forEach(function (b) { if (p.value >= b) k++; }); return k; }
    for (var i = 0; i < cfg.bins.length; i++) { if (r6(share) <= r6(cfg.bins[i])) return i; }
    return cfg.bins.length - 1;
  }
  var esc = function (s) { return String(s).replace(/[&<>"]/g, function (c) {
    return {"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;"}[c]; }); };
  var layer = L.vectorGrid.protobuf(cfg.url, {
    rendererFactory: L.svg.tile, interactive: true, maxNativeZoom: cfg.zooms ? cfg.zooms[1] : 14,
    getFeatureId: function (f) { return f.properties.id; },
    vectorTileLayerStyles: new Proxy({}, {get: function () { return function (p) {
      var i = classOf(p), c = i < 0 ? cfg.hidden_colour : cfg.colours[i];
      return {fill: true, fillColor: c, fillOpacity: 0.85, color: "#555", weight: p.areas ? 0 : 0.4}; }; }})  // merged cells: no outline
  }).addTo(map);
  var styleOf = function (p, picked) { var i = classOf(p);
    return {fill: true, fillColor: i < 0 ? cfg.hidden_colour : cfg.colours[i], fillOpacity: 0.85,
            color: picked ? "#000" : "#555", weight: picked ? 3 : 0.4}; };
  var picked = null;
  function propsOf(id) {  // from any loaded tile that holds the area
    var tiles = layer._vectorTiles;
    for (var k in tiles) { var f = (tiles[k]._features || {})[id]; if (f) return f.feature.properties; }
    return null;
  }
  function pick(id) {
    var before = picked && propsOf(picked), now = propsOf(id);
    if (before) layer.setFeatureStyle(picked, styleOf(before, false));
    picked = id;
    if (now) layer.setFeatureStyle(id, styleOf(now, true));
    document.querySelectorAll(".segmap-list li.selected").forEach(function (li) { li.classList.remove("selected"); });
    var li = document.querySelector('.segmap-list li[data-id="' + CSS.escape(id) + '"]');
    if (li) { li.classList.add("selected"); li.scrollIntoView({block: "nearest"}); }
  }
  document.querySelectorAll(".segmap-list li").forEach(function (li) {
    var go = function () { pick(li.getAttribute("data-id")); };
    li.addEventListener("click", go);
    li.addEventListener("keydown", function (e) { if (e.key === "Enter" || e.key === " ") { e.preventDefault(); go(); } });
  });
  layer.on("click", function (e) { if (e.layer.properties.id !== undefined) pick(e.layer.properties.id); });
  layer.on("mouseover click", function (e) {
    var p = e.layer.properties, i = classOf(p), share = p[cfg.share_field];
    var rows = ["Share: " + (share === undefined ? "hidden" : (100 * share).toFixed(1) + " %")];
    if (cfg.kind !== "share" && p.value !== undefined) rows.push(cfg.statistic + ": " + (+p.value).toFixed(3));
    if (p.p_value !== undefined) rows.push("p-value: " + (+p.p_value).toPrecision(2));
    rows.push("Class: " + (i < 0 ? cfg.hidden_label : cfg.labels[i]));
    L.popup({closeButton: false, autoPan: false}).setLatLng(e.latlng)
      .setContent("<b>" + esc(p.areas ? p.areas + " areas under one pixel cell (zoom in to see each)"
                                 : (p[cfg.name_field] || p.id)) + "</b><br>" + rows.map(esc).join("<br>")).openOn(map);
  });
  document.querySelectorAll(".segmap-legend, .segmap-list, .segmap-alt").forEach(function (el) {
    el.hidden = el.getAttribute("data-view") !== cfg.view; });
  if (cfg.at) { map.setView([cfg.at[0], cfg.at[1]], cfg.at[2]); } else { map.fitBounds(cfg.bounds); }
  window.segmap = {map: map, layers: {vector: layer}, cfg: cfg, classOf: classOf, select: pick};
  document.documentElement.setAttribute("data-segmap-ready", "1");
})();
{% endmacro %}
""")


class _VectorTiles(MacroElement):
    def __init__(self, fmap, config: dict):
        super().__init__()
        self._template = _VT_SCRIPT
        self.map_name = fmap.get_name()
        self.config = json_for_script(config)


CSS = """
html, body { margin: 0; height: 100%; font: 14px/1.35 system-ui, sans-serif; }
.folium-map { position: absolute !important; top: var(--top, 0) !important; left: 0 !important; right: var(--right, 0) !important; bottom: 0 !important; width: auto !important; height: auto !important; }
.segmap-bar { position: absolute; top: 0; left: 0; right: 0; height: 44px; display: flex; gap: .8em; align-items: center; padding: 0 .6em; background: #f7f7f7; border-bottom: 1px solid #ccc; box-sizing: border-box; }
.segmap-bar h1 { font-size: 15px; margin: 0 .5em 0 0; white-space: nowrap; overflow: hidden; text-overflow: ellipsis; }
.segmap-side { position: absolute; top: var(--top, 0); right: 0; width: 330px; bottom: 0; overflow-y: auto; padding: .6em; box-sizing: border-box; border-left: 1px solid #ccc; background: #fff; }
.segmap-side h2 { font-size: 14px; margin: .8em 0 .3em; }
.segmap-side table { border-collapse: collapse; width: 100%; font-size: 12px; }
.segmap-side td, .segmap-side th { border-bottom: 1px solid #eee; padding: 2px 4px; text-align: left; }
.segmap-list ol { padding-left: 2.2em; margin: 0; font-size: 12px; }
.segmap-list li { cursor: pointer; padding: 1px 2px; }
.segmap-list li:hover, .segmap-list li:focus, .segmap-list li.selected { background: #ffe08a; outline: none; }
.segmap-legends { position: absolute; z-index: 800; bottom: 56px; left: 10px; background: rgba(255,255,255,.92); padding: 6px 8px; border-radius: 4px; box-shadow: 0 1px 4px rgba(0,0,0,.35); font-size: 12px; max-width: 260px; }
.segmap-legend h3 { font-size: 12px; margin: 0 0 4px; }
.segmap-legend ul { list-style: none; margin: 0; padding: 0; }
.segmap-legend li { display: flex; align-items: center; gap: 6px; margin: 2px 0; }
.segmap-legend .swatch { display: inline-block; width: 22px; height: 14px; border: 1px solid #555; font: 9px/14px monospace; text-align: center; color: #000; text-shadow: 0 0 2px #fff; }
.segmap-legend .n { color: #555; margin-left: auto; padding-left: .6em; }
.leaflet-tooltip table th { text-align: left; padding-right: 6px; font-weight: 600; }
.sr-only { position: absolute; width: 1px; height: 1px; overflow: hidden; clip: rect(0 0 0 0); white-space: nowrap; }
"""


def _legend_html(vd: ViewData) -> str:
    items = "".join(
        f'<li data-class="{i}"><span class="swatch" style="background:{c}" aria-hidden="true">{i + 1}</span>'
        f'<span class="lab">{html.escape(lab)}</span><span class="n">{n}</span></li>'
        for i, (lab, c, n) in enumerate(vd.legend))
    sub = f" ({vd.scheme.replace('_', ' ')}, {vd.k} classes)" if vd.scheme else ""
    if vd.view in ("lisa", "hotspots"):
        sub = f" (α = {vd.meta['alpha']}, {vd.meta['correction']} correction, {vd.meta['permutations']} permutations)"
    return (f'<div class="segmap-legend" data-view="{vd.view}" hidden><h3>{html.escape(VIEW_TITLES[vd.view])}'
            f'{html.escape(sub)}</h3><ul>{items}</ul></div>')


def _list_html(vd: ViewData, limit: int = 500) -> str:
    f = vd.frame
    key = "share" if vd.view in ("share", "informal") else "value"
    order = f.sort_values(key, ascending=False, na_position="last").head(limit)
    fmt = (lambda v: _fmt(v, True)) if key == "share" else _fmt
    items = "".join(f'<li tabindex="0" data-id="{html.escape(str(r[ID]))}">{html.escape(str(r["name"]))} — '
                    f'{fmt(r[key])} <small>({html.escape(str(r["label"]))})</small></li>'
                    for _, r in order.iterrows())
    more = f"<p>First {limit} of {len(f)} areas.</p>" if len(f) > limit else ""
    return f'<div class="segmap-list" data-view="{vd.view}" hidden><ol>{items}</ol>{more}</div>'


def _indices_html(rows: list[dict], note: str | None, corrections: str) -> str:
    if note:
        body = f"<p>{html.escape(note)}</p>"
    else:
        trs = "".join(f"<tr><td>{html.escape(r['name'])}</td><td>{_fmt(r['value'])}</td>"
                      f"<td>{_fmt(r['ci_low'])} – {_fmt(r['ci_high'])}</td><td>{_fmt(r['p_value'])}</td></tr>" for r in rows)
        null = next((r["null"] for r in rows if r.get("null")), None)
        perms = max((r["permutations"] for r in rows), default=0)
        how = (f"p-values against {html.escape(str(null))}, {perms} permutations; CIs by bootstrap." if perms else
               "Values only on the page for a city this large: the indices API gives their p-values and intervals "
               "(<code>/v1/datasets/{id}/indices?permutations=999</code>).")
        body = (f'<table class="segmap-indices"><tr><th>Index</th><th>Value</th><th>95 % CI</th><th>p</th></tr>{trs}</table>'
                f"<p><small>{how}</small></p>")
    return f"<h2>City-wide indices</h2>{body}<p><small>Local clusters: {html.escape(corrections)}.</small></p>"


INFORMAL_OVERLAY = "Informal settlements"


def _informal_overlay(dataset: AreaDataset, opts: PageOptions):
    """Areas with people in informal settlements, as a dashed outline on top of any view (None if no such data)."""
    if "informal" not in dataset.groups:
        return None
    mask = dataset.column("informal") > 0
    if not mask.any():
        return None
    vd = view_data(dataset, "informal", "share", disclosure_threshold=opts.disclosure_threshold)
    vd.frame = vd.frame.loc[mask].reset_index(drop=True)
    gj = geojson(dataset.subset(mask), vd)
    for feature in gj["features"]:  # folium's GeoJsonTooltip writes properties as HTML: names go in escaped
        feature["properties"]["name"] = html.escape(str(feature["properties"].get("name", "")))
    group = folium.FeatureGroup(name=INFORMAL_OVERLAY, overlay=True, show=opts.view == "informal")
    folium.GeoJson(gj, style_function=lambda f: {"fill": False, "color": "#111", "weight": 2.5, "dashArray": "6 4"},
                   tooltip=folium.GeoJsonTooltip(["name", "count", "share"],
                                                 aliases=["Area", "People in informal settlements", "Share of area"])
                   ).add_to(group)
    return group


def build_map(dataset: AreaDataset, opts: PageOptions, views: tuple[str, ...] | None = None) -> tuple[folium.Map, dict]:
    """A folium Map for ``opts`` and facts about it (view data, counts) for the caller and tests."""
    from .data import check
    dataset = as_public(dataset, opts.disclosure_threshold)  # every number on the page comes from the protected table
    group = check(dataset, opts.group, opts.view, opts.scheme, opts.k)
    vector = opts.vector_tiles if opts.vector_tiles is not None else dataset.n > VECTOR_TILE_THRESHOLD
    if views is None:
        views = (opts.view,) if vector else ("share", "lq", "lisa", "hotspots") + (("informal",) if "informal" in dataset.groups else ())
        if opts.view not in views:
            views = (*views, opts.view)
    kw = dict(scheme=opts.scheme, k=opts.k, permutations=opts.permutations, seed=opts.seed,
              disclosure_threshold=opts.disclosure_threshold, max_permutations=opts.max_permutations)
    data: dict[str, ViewData] = {}
    notes: list[str] = []
    for v in views:
        checkpoint()
        try:
            data[v] = view_data(dataset, group, v, **kw)
        except Exception as exc:  # e.g. no informal data, local statistics unavailable: drop the view, say so
            if v == opts.view:
                raise
            notes.append(f"{VIEW_TITLES[v]} not shown: {getattr(exc, 'problems', [exc])[0]}")
    wgs_bounds = dataset.areas.to_crs(4326).total_bounds
    bounds = [[float(wgs_bounds[1]), float(wgs_bounds[0])], [float(wgs_bounds[3]), float(wgs_bounds[2])]]
    centre = [(bounds[0][0] + bounds[1][0]) / 2, (bounds[0][1] + bounds[1][1]) / 2]
    fmap = folium.Map(location=centre, zoom_start=7, tiles=None, control_scale=True, prefer_canvas=False)
    fmap.default_js = assets.js_assets(STATIC_PREFIX, vector)
    fmap.default_css = assets.css_assets(STATIC_PREFIX)
    if opts.basemap_url:
        folium.TileLayer(opts.basemap_url, attr=opts.basemap_attribution or "base map", name="Base map",
                         overlay=True, control=True).add_to(fmap)
    attribution = html.escape(f"Data: {dataset.meta.source or dataset.meta.name}")
    layers = {}
    if vector:
        vd = data[opts.view]
        from urllib.parse import urlencode
        from .data import HOTSPOTS, LISA, LQ_BREAKS, SUPPRESSED, VIEW_STATISTIC
        statistic = VIEW_STATISTIC.get(opts.view)
        query = {"group": vd.group, **({"statistic": statistic, "seed": opts.seed} if statistic else {}),
                 **({"permutations": opts.permutations} if statistic and opts.permutations is not None else {})}
        real = [(lab, c) for lab, c, _ in vd.legend if lab != SUPPRESSED[0]]
        cfg = {"url": f"/v1/datasets/{opts.dataset_id}/tiles/{{z}}/{{x}}/{{y}}.mvt?{urlencode(query)}", "bounds": bounds,
               "view": opts.view, "at": list(opts.at) if opts.at else None,
               "kind": {"share": "share", "informal": "share", "lq": "lq"}.get(opts.view, "labels"),
               "share_field": f"{vd.group}_share", "name_field": dataset.name_col or "id",
               "bins": vd.meta.get("bins", []), "breaks": LQ_BREAKS,
               "label_keys": list(LISA if opts.view == "lisa" else HOTSPOTS) if opts.view in ("lisa", "hotspots") else [],
               "colours": ([c for _, c in (LISA if opts.view == "lisa" else HOTSPOTS).values()]
                           if opts.view in ("lisa", "hotspots") else [c for _, c in real]),
               "labels": ([name for name, _ in (LISA if opts.view == "lisa" else HOTSPOTS).values()]
                          if opts.view in ("lisa", "hotspots") else [lab for lab, _ in real]),
               "hidden_colour": SUPPRESSED[1], "hidden_label": SUPPRESSED[0],
               "statistic": {"lq": "Location quotient", "lisa": "Local Moran's I", "hotspots": "Gi* z"}.get(opts.view, "")}
        if opts.embedded_tiles is not None:
            import base64
            cfg.update(url="segmap-embedded/{z}/{x}/{y}.mvt", zooms=list(opts.embedded_zooms),
                       embedded={k: base64.b64encode(v).decode() for k, v in opts.embedded_tiles.items()})
        fmap.add_child(_VectorTiles(fmap, cfg))
    else:
        gj, palettes = page_geojson(dataset, data)
        areas = folium.GeoJson(gj, name="Areas", control=False, attr=attribution,
                               style_function=lambda feat: {"fillColor": "#bdbdbd", "weight": 0.5})
        areas.add_to(fmap)
        # Views are base layers of the layer control: switching one restyles the same areas (one copy of geometry).
        for v in data:
            fg = folium.FeatureGroup(name=VIEW_TITLES[v], overlay=False, show=v == opts.view)
            fg.add_to(fmap)
            layers[v] = fg
        overlay = _informal_overlay(dataset, opts)
        if overlay is not None:
            overlay.add_to(fmap)
        if len(layers) > 1:
            folium.LayerControl(collapsed=False, position="topright").add_to(fmap)
        config = {"view": opts.view, "mode": opts.mode, "bounds": bounds, "at": list(opts.at) if opts.at else None,
                  "names": {VIEW_TITLES[v]: v for v in layers}, "palettes": palettes,
                  "statistic": {"lq": "Location quotient", "lisa": "Local Moran's I", "hotspots": "Gi* z"}}
        fmap.add_child(_Wiring(fmap, areas, config))
    return fmap, {"views": data, "notes": notes, "vector": vector, "group": group, "bounds": bounds}


def render_page(dataset: AreaDataset, opts: PageOptions, *, groups_links: bool = True) -> tuple[str, dict]:
    """The HTML of a full page, an embeddable map, or a self-contained download."""
    dataset = as_public(dataset, opts.disclosure_threshold)
    fmap, info = build_map(dataset, opts)
    vd = info["views"][opts.view]
    root = fmap.get_root()
    title = f"{dataset.meta.name} — {vd.title}"
    root.header.add_child(Element(f"<title>{html.escape(title)}</title><style>{CSS}</style>"))
    alt = summary_text(vd)
    legends = "".join(_legend_html(v) for v in info["views"].values())
    attribution = html.escape(f"Source: {dataset.meta.source or dataset.meta.name}"
                              + (f", {dataset.meta.year}" if dataset.meta.year else "")
                              + (f"; licence: {dataset.meta.licence}" if dataset.meta.licence else ""))
    q = {"group": info["group"], "view": opts.view, "scheme": opts.scheme, "k": opts.k}
    from urllib.parse import urlencode
    data_url = f"/maps/{opts.dataset_id}/data?{urlencode({**q, 'format': 'csv'})}"
    geo_url = f"/maps/{opts.dataset_id}/data?{urlencode({**q, 'format': 'geojson'})}"
    if "informal" in dataset.groups and not info["vector"]:
        n_inf = int((dataset.column("informal") > 0).sum())
        legends += (f'<div class="segmap-overlay-legend"{"" if opts.view == "informal" else " hidden"}>'
                    f'<svg width="22" height="10" aria-hidden="true"><line x1="0" y1="5" x2="22" y2="5" stroke="#111" '
                    f'stroke-width="2.5" stroke-dasharray="6 4"/></svg> dashed outline: {INFORMAL_OVERLAY.lower()} '
                    f'({n_inf} areas)</div>')
    parts = [f'<div class="segmap-legends" role="region" aria-label="Legend">{legends}'
             f'<div><small>{attribution}</small></div></div>',
             f'<p class="sr-only" id="segmap-summary">{html.escape(alt)}</p>']
    if opts.mode == "page":
        opt = lambda values, cur, label=lambda x: x: "".join(  # noqa: E731
            f'<option value="{html.escape(v)}"{" selected" if v == cur else ""}>{html.escape(label(v))}</option>' for v in values)
        at = ",".join(f"{x:g}" for x in opts.at) if opts.at else ""
        parts.append(
            f'<form class="segmap-bar" method="get" action="/maps/{html.escape(opts.dataset_id)}">'
            f'<h1>{html.escape(dataset.meta.name)}</h1>'
            f'<label>Group <select name="group" onchange="this.form.submit()">{opt(dataset.groups, info["group"])}</select></label>'
            f'<label>View <select name="view" onchange="this.form.submit()">{opt([v for v in VIEW_TITLES if v in info["views"] or v == "informal" and "informal" in dataset.groups], opts.view, VIEW_TITLES.get)}</select></label>'
            f'<label>Classes <select name="scheme" onchange="this.form.submit()">{opt(list(SCHEMES), opts.scheme, lambda s: s.replace("_", " "))}</select></label>'
            f'<label>k <select name="k" onchange="this.form.submit()">{opt([str(i) for i in range(3, 8)], str(opts.k))}</select></label>'
            f'<input type="hidden" name="at" value="{html.escape(at)}"><noscript><button>Show</button></noscript></form>')
        # Bootstrap CIs over a large city would hold the page up: values only there (the indices API has CIs).
        perms = opts.index_permutations if dataset.n <= VECTOR_TILE_THRESHOLD else 0
        rows, note = _indices(dataset.dataset, info["group"], perms, opts.seed)
        local = next((v for v in info["views"].values() if v.view in ("lisa", "hotspots")), None)
        corr = (f"{local.meta['correction']} correction at α = {local.meta['alpha']}, {local.meta['permutations']} permutations"
                if local else "not computed")
        notes = "".join(f"<li>{html.escape(n)}</li>" for n in [*info["notes"], *vd.notes])
        parts.append(
            f'<aside class="segmap-side" aria-label="Details">'
            f'<h2>Summary</h2>' + "".join(f'<p class="segmap-alt" data-view="{v.view}"{"" if v.view == opts.view else " hidden"}>'
                                          f'{html.escape(summary_text(v))}</p>' for v in info["views"].values()) +
            f'<p><a class="segmap-data" href="{html.escape(data_url)}">Data (CSV)</a> · '
            f'<a class="segmap-data" href="{html.escape(geo_url)}">Data (GeoJSON)</a> · '
            f'<a class="segmap-data" href="/maps/{html.escape(opts.dataset_id)}/download?{html.escape(urlencode(q))}">Offline HTML</a> · '
            f'<a class="segmap-data" href="/v1/datasets/{html.escape(opts.dataset_id)}/map.png?{html.escape(urlencode(q))}">PNG</a></p>'
            f'{_indices_html(rows, note, corr)}'
            + (f"<ul>{notes}</ul>" if notes else "")
            + "<h2>Areas</h2>" + "".join(_list_html(v) for v in info["views"].values()) + "</aside>")
        root.header.add_child(Element("<style>:root{--top:44px;--right:330px}</style>"))
    root.html.add_child(Element("".join(parts)))
    page = root.render()
    if opts.mode == "download":
        page = assets.inline_assets(page, STATIC_PREFIX)
    return page, info
