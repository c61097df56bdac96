"""Folium/Leaflet map pages: one base layer per view with its own legend, hover values, an indices panel,
a linked list of areas, URL-held state and no CDN.

This module decides what a page holds. Its markup is in ``maps/templates/`` (``panels.py`` fills it), its
script and style in ``maps/web/``, served by the app with the vendored Leaflet (``assets.py``) and inlined into
the offline file. Every number on a page comes from the protected table (``spatial.disclosure``).
"""

from __future__ import annotations

import base64
import html
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import urlencode

import folium
import numpy as np
import shapely
from pyproj import Transformer

from spatial.cancel import checkpoint
from spatial.dataset import AreaDataset
from spatial.disclosure import PublicData, as_public
from spatial.errors import ValidationError
from spatial.indices.compute import compute_indices

from . import assets, linked, panels, text
from .data import (
    CLUSTER_VIEWS,
    HOTSPOTS,
    LISA,
    LQ_BREAKS,
    SUPPRESSED,
    VIEW_STATISTIC,
    ViewData,
    check,
    view_data,
)
from .geo import geojson, page_geojson
from .i18n import Tr, tr_for
from .templating import RenderOnce, Text, Wiring, json_for_script, render_html

__all__ = ["PageOptions", "build_map", "geojson", "json_for_script", "render_page"]

STATIC_PREFIX = "/maps/static"  # where app/routers/maps.py serves the assets
VECTOR_TILE_THRESHOLD = 3000  # above this many areas the page draws the app's vector tiles
# Above this many areas the tiles are drawn on one canvas per tile, not as an SVG element per shape: Chromium took
# ~50 s to draw the 222,878 SVG shapes of a zoom-9 view of 1,000,000 areas (benchmarks/results/scale_page.md).
CANVAS_AREAS = 100_000
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
    lang: str = "en"  # page language (maps/i18n.py)
    pmtiles_url: str | None = None  # a city too large for an offline file: the page links this archive instead
    view_data: Callable | None = None  # maps.data.view_data, or the app's cached one (the area panel reuses views)
    canvas_areas: int = CANVAS_AREAS  # tiles drawn on canvas above this many areas (SEGMAP_CANVAS_AREAS)

    @property
    def tr(self) -> Tr:
        return tr_for(self.lang)


class _GeoJson(folium.GeoJson, RenderOnce):
    """folium's GeoJSON layer, rendered once: area names are data, never template code."""


def _indices(dataset: AreaDataset, group: str, permutations: int, seed: int, tr: Tr) -> tuple[list[dict], str | None]:
    """City-wide indices for the side panel, or a note when the data leave them undefined."""
    try:
        res = compute_indices(dataset, group=group, indices=list(INDICES), permutations=permutations, seed=seed)
    except ValidationError as exc:  # e.g. a group with no members: the map stands without the indices
        return [], tr("City-wide indices could not be computed: {reason}", reason=exc.problems[0].message)
    rows = [
        {
            "name": name,
            "value": r.value,
            "ci_low": r.ci_low,
            "ci_high": r.ci_high,
            "p_value": r.p_value,
            "null": r.null,
            "permutations": r.permutations,
        }
        for name, r in res.items()
    ]
    return rows, None


def _views_for(dataset: PublicData, opts: PageOptions, vector: bool) -> tuple[str, ...]:
    """Every view on an embedded-areas page (the chosen one first shown); only the chosen one over tiles."""
    if vector:
        return (opts.view,)
    views = ("share", "lq", "lisa", "hotspots") + (("informal",) if "informal" in dataset.groups else ())
    return views if opts.view in views else (*views, opts.view)


def _compute_views(dataset: PublicData, group: str, views, opts: PageOptions) -> tuple[dict[str, ViewData], list]:
    kw = {
        "scheme": opts.scheme,
        "k": opts.k,
        "permutations": opts.permutations,
        "seed": opts.seed,
        "disclosure_threshold": opts.disclosure_threshold,
        "max_permutations": opts.max_permutations,
    }
    data: dict[str, ViewData] = {}
    notes: list[str] = []
    for v in views:
        checkpoint()
        try:
            data[v] = (opts.view_data or view_data)(dataset, group, v, **kw)
        except ValidationError as exc:  # e.g. too few populated areas for local statistics: say so, show the rest
            if v == opts.view:
                raise
            notes.append(
                opts.tr("{view} not shown: {reason}", view=text.view_title(v, opts.tr), reason=exc.problems[0].message)
            )
    return data, notes


def _bounds(dataset: PublicData) -> list[list[float]]:
    """The areas' lon/lat box from the vertices of their convex hull: reprojecting every vertex took ~20 s at
    1,000,000 areas; a box's extremes are vertices, on the hull in any projection that keeps the area's lines
    nearly straight (UTM, national grids)."""
    areas = dataset.areas
    if areas.crs is None or areas.crs.equals("EPSG:4326") or not len(areas):
        west, south, east, north = (float(b) for b in areas.total_bounds)
        return [[south, west], [north, east]]
    xy = shapely.get_coordinates(areas.geometry.values)
    try:
        from scipy.spatial import ConvexHull

        xy = xy[ConvexHull(xy).vertices]
    except Exception:  # noqa: BLE001 - degenerate (collinear, too few points): every vertex
        pass
    lon, lat = Transformer.from_crs(areas.crs, 4326, always_xy=True).transform(xy[:, 0], xy[:, 1])
    return [[float(lat.min()), float(lon.min())], [float(lat.max()), float(lon.max())]]


def _base_map(opts: PageOptions, bounds, vector: bool) -> folium.Map:
    centre = [(bounds[0][0] + bounds[1][0]) / 2, (bounds[0][1] + bounds[1][1]) / 2]
    fmap = folium.Map(location=centre, zoom_start=7, tiles=None, control_scale=True, prefer_canvas=False)
    fmap.default_js = assets.js_assets(STATIC_PREFIX, vector)
    fmap.default_css = assets.css_assets(STATIC_PREFIX)
    if opts.basemap_url:
        folium.TileLayer(
            opts.basemap_url, attr=opts.basemap_attribution or "base map", name="Base map", overlay=True, control=True
        ).add_to(fmap)
    return fmap


def _informal_overlay(dataset: PublicData, opts: PageOptions) -> folium.FeatureGroup | None:
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
    tr = opts.tr
    group = folium.FeatureGroup(name=tr(panels.INFORMAL_OVERLAY), overlay=True, show=opts.view == "informal")
    tooltip = folium.GeoJsonTooltip(
        ["name", "count", "share"], aliases=[tr("Area"), tr("People in informal settlements"), tr("Share of area")]
    )
    _GeoJson(
        gj,
        style_function=lambda f: {"fill": False, "color": "#111", "weight": 2.5, "dashArray": "6 4"},
        tooltip=tooltip,
    ).add_to(group)
    return group


def _add_areas(fmap: folium.Map, dataset: PublicData, opts: PageOptions, data: dict[str, ViewData], bounds) -> None:
    """The areas embedded as GeoJSON, each view a base layer of the layer control, and the overlay."""
    gj, palettes = page_geojson(dataset, data)
    attribution = html.escape(f"Data: {dataset.meta.source or dataset.meta.name}")
    areas = _GeoJson(
        gj,
        name="Areas",
        control=False,
        attr=attribution,
        style_function=lambda feat: {"fillColor": SUPPRESSED[1], "weight": 0.5},
    )
    areas.add_to(fmap)
    # Switching views restyles the same areas: one copy of the geometry whatever the number of views.
    for v in data:
        folium.FeatureGroup(name=text.view_title(v, opts.tr), overlay=False, show=v == opts.view).add_to(fmap)
    overlay = _informal_overlay(dataset, opts)
    if overlay is not None:
        overlay.add_to(fmap)
    if len(data) > 1:
        folium.LayerControl(collapsed=False, position="topright").add_to(fmap)
    tr = opts.tr
    for v, vd in data.items():  # the palettes' labels as the page shows them
        shown = text.label_map(vd, tr)
        palettes[v] = [[shown.get(label, tr(label)), colour] for label, colour in palettes[v]]
    config = {
        **_common(dataset, opts, data),
        "mode": opts.mode,
        "bounds": bounds,
        "names": {text.view_title(v, tr): v for v in data},
        "palettes": palettes,
        "nb": linked.neighbours(dataset),
        "per_area": linked.per_area(data),
    }
    fmap.add_child(Wiring(fmap, config, layer=areas))


def _share_mean(vd: ViewData | None) -> float | None:
    """The mean share of the areas LISA tested: above it an area's standardised share is positive (tiles' hatching)."""
    if vd is None or "z" not in vd.frame:
        return None
    f = vd.frame[np.isfinite(vd.frame["z"].to_numpy(dtype=float))]
    return float(f["share"].mean()) if len(f) else None


def _common(dataset: PublicData, opts: PageOptions, data: dict[str, ViewData]) -> dict:
    """What both kinds of page tell the script: state, language, the linked views' binned and sampled data."""
    tr = opts.tr
    lisa = data.get("lisa")
    return {
        "view": opts.view,
        "at": list(opts.at) if opts.at else None,
        "dataset": opts.dataset_id,
        "lang": opts.lang,
        "live": opts.mode != "download",
        "t": panels.js_strings(tr),
        "statistic": {v: tr(s) for v, s in text.STATISTICS.items()},
        "view_titles": {v: text.view_title(v, tr) for v in data},
        "hist": {v: linked.histogram(vd) for v, vd in data.items()},
        "scatter": linked.scatter(lisa, opts.seed),
        "hatch": {
            v: [{**row, "label_shown": tr(row["label"])} for row in vd.meta.get("uncorrected", [])]
            for v, vd in data.items()
            if v in CLUSTER_VIEWS
        },
        "group": next(iter(data.values())).group,
        "share_mean": _share_mean(lisa),
        "alpha": next((vd.meta["alpha"] for vd in data.values() if "alpha" in vd.meta), 0.05),
        "overlay_name": tr(panels.INFORMAL_OVERLAY),
    }


def _tile_classes(vd: ViewData, tr: Tr) -> dict:
    """How the page classes an area from its tile properties: by label (clusters), LQ breaks or share bins."""
    view, shown_as = vd.view, text.label_map(vd, tr)
    if view in CLUSTER_VIEWS:
        table = LISA if view == "lisa" else HOTSPOTS
        return {
            "kind": "labels",
            "label_keys": list(table),
            "colours": [c for _, c in table.values()],
            "labels": [tr(name) for name, _ in table.values()],
        }
    shown = [(label, colour) for label, colour, _ in vd.legend if label != SUPPRESSED[0]]
    return {
        "kind": "lq" if view == "lq" else "share",
        "label_keys": [],
        "colours": [c for _, c in shown],
        "labels": [shown_as.get(label, label) for label, _ in shown],
    }


def _tiles_config(dataset: PublicData, opts: PageOptions, vd: ViewData, bounds) -> dict:
    statistic = VIEW_STATISTIC.get(opts.view)
    query = {"group": vd.group}
    if statistic:
        query.update(statistic=statistic, seed=opts.seed)
        if opts.permutations is not None:
            query["permutations"] = opts.permutations
    cfg = {
        "url": f"/v1/datasets/{opts.dataset_id}/tiles/{{z}}/{{x}}/{{y}}.mvt?{urlencode(query)}",
        "bounds": bounds,
        "share_field": f"{vd.group}_share",
        "name_field": dataset.name_col or "id",
        "bins": vd.meta.get("bins", []),
        "breaks": LQ_BREAKS,
        **_tile_classes(vd, opts.tr),
        "hidden_colour": SUPPRESSED[1],
        "hidden_label": opts.tr(SUPPRESSED[0]),
        "canvas": dataset.n > opts.canvas_areas,
        **_common(dataset, opts, {opts.view: vd}),
    }
    if opts.embedded_tiles is not None:  # the offline file answers the tile requests itself
        cfg.update(
            url="segmap-embedded/{z}/{x}/{y}.mvt",
            zooms=list(opts.embedded_zooms),
            embedded={k: base64.b64encode(v).decode() for k, v in opts.embedded_tiles.items()},
        )
    return cfg


def build_map(
    dataset: AreaDataset | PublicData, opts: PageOptions, views: tuple[str, ...] | None = None
) -> tuple[folium.Map, dict]:
    """A folium Map for ``opts`` and facts about it (view data, counts) for the caller and tests."""
    dataset = as_public(dataset, opts.disclosure_threshold)  # every number on the page comes from the protected table
    group = check(dataset, opts.group, opts.view, opts.scheme, opts.k)
    vector = opts.vector_tiles if opts.vector_tiles is not None else dataset.n > VECTOR_TILE_THRESHOLD
    if views is None:
        views = _views_for(dataset, opts, vector)
    data, notes = _compute_views(dataset, group, views, opts)
    bounds = _bounds(dataset)
    fmap = _base_map(opts, bounds, vector)
    if vector:
        fmap.add_child(Wiring(fmap, _tiles_config(dataset, opts, data[opts.view], bounds)))
    else:
        _add_areas(fmap, dataset, opts, data, bounds)
    return fmap, {"views": data, "notes": notes, "vector": vector, "group": group, "bounds": bounds}


def render_page(dataset: AreaDataset | PublicData, opts: PageOptions) -> tuple[str, dict]:
    """The HTML of a full page, an embeddable map, or a self-contained download."""
    dataset = as_public(dataset, opts.disclosure_threshold)
    fmap, info = build_map(dataset, opts)
    indices = None
    if opts.mode == "page":
        # Bootstrap CIs over a large city would hold the page up: values only there (the indices API has CIs).
        perms = opts.index_permutations if dataset.n <= VECTOR_TILE_THRESHOLD else 0
        indices = _indices(dataset.dataset, info["group"], perms, opts.seed, opts.tr)
    root = fmap.get_root()
    title = f"{dataset.meta.name} — {text.title(info['views'][opts.view], opts.tr)}"
    root.header.add_child(Text(render_html("head.html", title=title, full_page=opts.mode == "page")))
    root.html.add_child(Text(panels.render(dataset, opts, info, indices)))
    page = root.render().replace(
        "<html>", f'<html lang="{opts.tr.lang}">', 1
    )  # screen readers speak the page's language
    if opts.mode == "download":
        page = assets.inline_assets(page, STATIC_PREFIX)
    return page, info
