"""What a map page shows around the map, as context for ``maps/templates/panels.html``: legends (with the hatched
areas that pass only before the correction), the text summary, the top bar (pickers, language, search), the side
panel (links, linked views, area details, indices, notes, areas) and the script's strings, in the page's language."""

from __future__ import annotations

from urllib.parse import urlencode

from spatial.dataset import ID
from spatial.disclosure import PublicData

from . import text
from .data import CLUSTER_VIEWS, SCHEMES, SHARE_VIEWS, VIEW_TITLES, ViewData
from .i18n import LANGUAGES, Tr, _
from .linked import histogram_field
from .templating import render_html

INFORMAL_OVERLAY = _("Informal settlements")
LIST_LIMIT = 500  # areas listed per view in the side panel
NULLS = {"random_allocation": _("random allocation"), "permutation": _("permutation of areas")}
LANGUAGE_NAMES = {"en": "English", "de": "Deutsch", "es": "Español", "pt": "Português", "fr": "Français"}
INDEX_NAMES = {
    "dissimilarity": _("Dissimilarity"),
    "isolation": _("Isolation"),
    "exposure": _("Exposure"),
    "gini": _("Gini"),
    "entropy": _("Entropy (Theil's H)"),
}


def render(dataset: PublicData, opts, info: dict, indices: tuple[list[dict], str | None] | None) -> str:
    """The panels' HTML. ``indices`` is (rows, note) for the full page's side panel."""
    views, tr = info["views"], opts.tr
    context = {
        "_": tr,
        "legends": [_legend(v, tr) for v in views.values()],
        "overlay": _overlay(dataset, opts, info),
        "attribution": _attribution(dataset.meta, tr),
        "summary": text.summary_text(views[opts.view], tr),
        "bar": None,
        "side": None,
    }
    if opts.mode == "page":
        context["bar"] = _bar(dataset, opts, info)
        context["side"] = _side(opts, info, *indices)
    return render_html("panels.html", **context)


def _legend(vd: ViewData, tr: Tr) -> dict:
    shown = text.label_map(vd, tr)
    hatched = [
        {**row, "label": tr(row["label"]), "n": row["count"]} for row in vd.meta.get("uncorrected", []) if row["count"]
    ]
    return {
        "view": vd.view,
        "title": text.view_title(vd.view, tr),
        "subtitle": text.legend_subtitle(vd, tr),
        "rows": [(shown.get(label, tr(label)), colour, n) for label, colour, n in vd.legend],
        "class_keys": _keys(vd) if vd.view in CLUSTER_VIEWS else [],
        "hatched": hatched,
        "difference": text.difference_sentence(vd, tr),
        "none_pass": text.none_pass_sentence(vd, tr),
        "clusters": vd.view in CLUSTER_VIEWS,
    }


def _keys(vd: ViewData) -> list[str]:
    """The technical label key of each legend row (for pattern fills), in legend order."""
    from .data import HOTSPOTS, LISA, SUPPRESSED

    table = LISA if vd.view == "lisa" else HOTSPOTS
    by_name = {name: key for key, (name, _c) in table.items()}
    return [by_name.get(label, "suppressed" if label == SUPPRESSED[0] else "") for label, _c, _n in vd.legend]


def _overlay(dataset: PublicData, opts, info: dict) -> dict | None:
    """The legend line of the informal-settlement outlines (drawn over the embedded areas only)."""
    if "informal" not in dataset.groups or info["vector"]:
        return None
    areas = int((dataset.column("informal") > 0).sum())
    return {"name": opts.tr(INFORMAL_OVERLAY), "areas": areas, "shown": opts.view == "informal"}


def _attribution(meta, tr: Tr) -> str:
    out = tr("Source: {source}", source=meta.source or meta.name)
    if meta.year:
        out += f", {meta.year}"
    if meta.licence:
        out += "; " + tr("licence: {licence}", licence=meta.licence)
    return out


def _picker_views(dataset: PublicData, shown: dict) -> list[str]:
    """The views the picker offers: those on the page, and informal settlements whenever the data have them."""
    has_informal = "informal" in dataset.groups
    return [v for v in VIEW_TITLES if v in shown or (v == "informal" and has_informal)]


def _bar(dataset: PublicData, opts, info: dict) -> dict:
    tr = opts.tr
    views = _picker_views(dataset, info["views"])
    selects = [
        (tr("Group"), "group", [(g, g) for g in dataset.groups], info["group"]),
        (tr("View"), "view", [(v, text.view_title(v, tr)) for v in views], opts.view),
        (tr("Classes"), "scheme", [(s, tr(text.SCHEME_NAMES[s])) for s in SCHEMES], opts.scheme),
        (tr("Number of classes"), "k", [(str(i), str(i)) for i in range(3, 8)], str(opts.k)),
        (tr("Language"), "lang", list(LANGUAGE_NAMES.items()), opts.lang),
    ]
    at = ",".join(f"{x:g}" for x in opts.at) if opts.at else ""
    return {
        "dataset_id": opts.dataset_id,
        "title": dataset.meta.name,
        "at": at,
        "selects": [
            {"label": label, "name": name, "choices": choices, "current": current}
            for label, name, choices, current in selects
        ],
    }


def _links(opts, group: str) -> list[tuple[str, str]]:
    tr = opts.tr
    q = {"group": group, "view": opts.view, "scheme": opts.scheme, "k": opts.k, "lang": opts.lang}
    page = f"/maps/{opts.dataset_id}"
    return [
        (tr("Data (CSV)"), f"{page}/data?{urlencode({**q, 'format': 'csv'})}"),
        (tr("Data (GeoJSON)"), f"{page}/data?{urlencode({**q, 'format': 'geojson'})}"),
        ("PMTiles", opts.pmtiles_url) if opts.pmtiles_url else (tr("Offline HTML"), f"{page}/download?{urlencode(q)}"),
        ("PNG", f"/v1/datasets/{opts.dataset_id}/map.png?{urlencode(q)}"),
        ("SVG", f"/v1/datasets/{opts.dataset_id}/map.svg?{urlencode(q)}"),
    ]


def _indices(rows: list[dict], note: str | None, views: dict, tr: Tr) -> dict:
    local = next((v for v in views.values() if v.view in CLUSTER_VIEWS), None)
    corrections = tr("not computed")
    if local:
        corrections = text.legend_subtitle(local, tr)
    return {
        "rows": [{**r, "label": tr(INDEX_NAMES.get(r["name"], r["name"]))} for r in rows],
        "note": note,
        "corrections": corrections,
        "null": tr(NULLS.get(null, null)) if (null := next((r["null"] for r in rows if r.get("null")), None)) else None,
        "permutations": max((r["permutations"] for r in rows), default=0),
    }


def _area_list(vd: ViewData, tr: Tr) -> dict:
    """The areas of one view, highest first (hidden values last), with the value the histogram brushes."""
    key = "share" if vd.view in SHARE_VIEWS else "value"
    field = histogram_field(vd.view)
    top = vd.frame.sort_values(key, ascending=False, na_position="last").head(LIST_LIMIT)
    shown = text.label_map(vd, tr)
    fmt = tr.pct if key == "share" else tr.num
    rows = [
        {"id": str(i), "name": str(name), "value": fmt(value), "raw": raw, "label": shown.get(str(lab), tr(str(lab)))}
        for i, name, value, raw, lab in zip(top[ID], top["name"], top[key], top[field], top["label"])
    ]
    return {"view": vd.view, "rows": rows, "total": len(vd.frame), "title": text.view_title(vd.view, tr)}


def _side(opts, info: dict, rows: list[dict], note: str | None) -> dict:
    views, tr = info["views"], opts.tr
    return {
        "view": opts.view,
        "summaries": [(v.view, text.summary_text(v, tr)) for v in views.values()],
        "links": _links(opts, info["group"]),
        "indices": _indices(rows, note, views, tr),
        "notes": [*info["notes"], *views[opts.view].notes] if opts.lang == "en" else info["notes"],
        "lists": [_area_list(v, tr) for v in views.values()],
        "languages": LANGUAGES,
    }


def js_strings(tr: Tr) -> dict:
    """The script's words in the page's language (it formats numbers with the page's locale itself)."""
    words = {
        "counts": _("Counts"),
        "share": _("Share"),
        "value": _("Value"),
        "p": _("p before correction"),
        "q": _("p after correction"),
        "class": _("Class"),
        "hidden": _("hidden"),
        "of": _("of"),
        "merged": _("{n} areas under one pixel cell (zoom in to see each)"),
        "neighbours": _("Neighbours"),
        "lq": _("Location quotient"),
        "hatched": _("p ≤ α before correction only"),
        "no_match": _("No area matches."),
        "matches": _("{n} areas match."),
        "brushed": _("{n} areas in the brushed range"),
        "clear": _("Clear"),
        "sample": _("{shown} of {n} areas shown (a sample)"),
        "x_axis": _("Share (standardised)"),
        "y_axis": _("Spatial lag"),
        "slope": _("Moran's I = {i}"),
        "histogram": _("Histogram of the mapped values: drag to brush a range"),
        "scatter": _("Moran scatter plot: share against its spatial lag; click a point to select its area"),
        "close": _("Close"),
        "selected": _("Selected area"),
        "none": _("none"),
    }
    return {k: tr(v) for k, v in words.items()}
