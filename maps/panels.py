"""What a map page shows around the map, as context for ``maps/templates/panels.html``: legends, the text
summary, the top bar (group, view and class pickers) and the side panel (links, indices, notes, areas)."""

from __future__ import annotations

from urllib.parse import urlencode

from spatial.dataset import ID
from spatial.disclosure import PublicData

from .data import CLUSTER_VIEWS, SCHEMES, SHARE_VIEWS, VIEW_TITLES, ViewData, summary_text
from .templating import render_html

INFORMAL_OVERLAY = "Informal settlements"
LIST_LIMIT = 500  # areas listed per view in the side panel


def render(dataset: PublicData, opts, info: dict, indices: tuple[list[dict], str | None] | None) -> str:
    """The panels' HTML. ``indices`` is (rows, note) for the full page's side panel."""
    views = info["views"]
    context = {
        "legends": [_legend(v) for v in views.values()],
        "overlay": _overlay(dataset, opts, info),
        "attribution": _attribution(dataset.meta),
        "summary": summary_text(views[opts.view]),
        "bar": None,
        "side": None,
    }
    if opts.mode == "page":
        context["bar"] = _bar(dataset, opts, info)
        context["side"] = _side(opts, info, *indices)
    return render_html("panels.html", **context)


def _legend(vd: ViewData) -> dict:
    if vd.view in CLUSTER_VIEWS:
        m = vd.meta
        sub = f" (α = {m['alpha']}, {m['correction']} correction, {m['permutations']} permutations)"
    else:
        sub = f" ({vd.scheme.replace('_', ' ')}, {vd.k} classes)" if vd.scheme else ""
    return {"view": vd.view, "title": VIEW_TITLES[vd.view] + sub, "rows": vd.legend}


def _overlay(dataset: PublicData, opts, info: dict) -> dict | None:
    """The legend line of the informal-settlement outlines (drawn over the embedded areas only)."""
    if "informal" not in dataset.groups or info["vector"]:
        return None
    areas = int((dataset.column("informal") > 0).sum())
    return {"name": INFORMAL_OVERLAY.lower(), "areas": areas, "shown": opts.view == "informal"}


def _attribution(meta) -> str:
    text = f"Source: {meta.source or meta.name}"
    if meta.year:
        text += f", {meta.year}"
    if meta.licence:
        text += f"; licence: {meta.licence}"
    return text


def _picker_views(dataset: PublicData, shown: dict) -> list[str]:
    """The views the picker offers: those on the page, and informal settlements whenever the data have them."""
    has_informal = "informal" in dataset.groups
    return [v for v in VIEW_TITLES if v in shown or (v == "informal" and has_informal)]


def _bar(dataset: PublicData, opts, info: dict) -> dict:
    views = _picker_views(dataset, info["views"])
    selects = [
        ("Group", "group", [(g, g) for g in dataset.groups], info["group"]),
        ("View", "view", [(v, VIEW_TITLES[v]) for v in views], opts.view),
        ("Classes", "scheme", [(s, s.replace("_", " ")) for s in SCHEMES], opts.scheme),
        ("k", "k", [(str(i), str(i)) for i in range(3, 8)], str(opts.k)),
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
    q = {"group": group, "view": opts.view, "scheme": opts.scheme, "k": opts.k}
    page = f"/maps/{opts.dataset_id}"
    return [
        ("Data (CSV)", f"{page}/data?{urlencode({**q, 'format': 'csv'})}"),
        ("Data (GeoJSON)", f"{page}/data?{urlencode({**q, 'format': 'geojson'})}"),
        ("Offline HTML", f"{page}/download?{urlencode(q)}"),
        ("PNG", f"/v1/datasets/{opts.dataset_id}/map.png?{urlencode(q)}"),
    ]


def _indices(rows: list[dict], note: str | None, views: dict) -> dict:
    local = next((v for v in views.values() if v.view in CLUSTER_VIEWS), None)
    corrections = "not computed"
    if local:
        m = local.meta
        corrections = f"{m['correction']} correction at α = {m['alpha']}, {m['permutations']} permutations"
    return {
        "rows": rows,
        "note": note,
        "corrections": corrections,
        "null": next((r["null"] for r in rows if r.get("null")), None),
        "permutations": max((r["permutations"] for r in rows), default=0),
    }


def _area_list(vd: ViewData) -> dict:
    """The areas of one view, highest first (hidden values last)."""
    key = "share" if vd.view in SHARE_VIEWS else "value"
    top = vd.frame.sort_values(key, ascending=False, na_position="last").head(LIST_LIMIT)
    rows = [
        {"id": str(i), "name": str(name), "value": value, "label": str(label)}
        for i, name, value, label in zip(top[ID], top["name"], top[key], top["label"])
    ]
    return {"view": vd.view, "rows": rows, "total": len(vd.frame), "pct": key == "share"}


def _side(opts, info: dict, rows: list[dict], note: str | None) -> dict:
    views = info["views"]
    return {
        "view": opts.view,
        "summaries": [(v.view, summary_text(v)) for v in views.values()],
        "links": _links(opts, info["group"]),
        "indices": _indices(rows, note, views),
        "notes": [*info["notes"], *views[opts.view].notes],
        "lists": [_area_list(v) for v in views.values()],
    }
