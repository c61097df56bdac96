"""The series map page (``/maps/series/{id}``) and the per-date areas it draws, from protected tables."""

from __future__ import annotations

import json

import numpy as np
import shapely
from markupsafe import Markup

from maps import assets
from maps.templating import json_for_script, render_html
from spatial.dataset import ID
from spatial.indices import names

from .registry import Registry
from .series import Member, describe_series

STATIC = "/maps/static"
# Our own script and Leaflet, from this server only; Leaflet sets inline styles; the page is not to be framed.
HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data: blob:; style-src 'self' 'unsafe-inline'; "
    "script-src 'self'; frame-ancestors 'self'",
    "X-Frame-Options": "SAMEORIGIN",
}
TREND_PERMUTATIONS = 99  # the chart's interval band: enough for a 95% interval, seconds per date
WEB_SIMPLIFY_M = 10.0  # drawn areas only; every number comes from the full geometry


def page(registry: Registry, series_id: str, members: list[Member]) -> str:
    body = describe_series(registry, series_id, "")
    last = members[-1]
    bounds = [float(v) for v in last.source.dataset.areas.to_crs(4326).total_bounds]
    groups = list(dict.fromkeys(g for m in members for g in m.info["groups"]))
    config = {
        "series": series_id,
        "base": "",
        "dates": [m.date for m in members],
        "datasets": [m.info["id"] for m in members],
        "geographies": [m.geography for m in members],
        "bounds": bounds,
        "permutations": TREND_PERMUTATIONS,
    }
    return render_html(
        "series.html",
        title=f"Series {series_id}: {last.info['title'] or series_id}",
        n_datasets=len(members),
        first=members[0].date,
        last=last.date,
        n_geographies=len(body["geographies"]),
        dates=config["dates"],
        groups=groups,
        indices=names(kind="two_group", spatial=False),
        attribution=f"{last.info['source'] or ''} {last.info['licence'] or ''}".strip(),
        config=Markup(json_for_script(config)),  # JSON made safe for a <script> element: not HTML-escaped
        leaflet_css=assets.url(STATIC, assets.CSS["leaflet_css"]),
        leaflet_js=assets.url(STATIC, assets.JS["leaflet"]),
        series_css=assets.url(STATIC, f"{assets.OWN}/series.css"),
        series_js=assets.url(STATIC, f"{assets.OWN}/series.js"),
    )


def areas_geojson(member: Member, group: str) -> bytes:
    """One date's areas (WGS 84, lightly simplified for drawing) with the group's count, the total and the share."""
    ds = member.source.dataset
    metric = ds.metric
    geom = shapely.coverage_simplify(metric.geometry.values, WEB_SIMPLIFY_M)
    frame = metric[[ID]].set_geometry(geom, crs=metric.crs).to_crs(4326)
    x, t = ds.counts(group)
    share = np.divide(x, t, out=np.full_like(t, np.nan), where=t > 0)
    frame["name"] = ds.areas[ds.name_col].astype(str).to_numpy() if ds.name_col else None
    frame["count"], frame["total"] = x, t
    frame["share"] = np.where(np.isfinite(share), share, None)
    frame["geometry"] = shapely.set_precision(frame.geometry.values, 1e-6)
    doc = json.loads(frame.to_json(na="null", drop_id=True))
    doc["segmap"] = {"date": member.date, "dataset": member.info["id"], "group": group}
    return json.dumps(doc, separators=(",", ":")).encode()
