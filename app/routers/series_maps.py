"""The series map page and the per-date areas it draws (mounted with the maps, before /maps/{dataset_id})."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import HTMLResponse

from .. import series
from .. import series_page as series_page_module
from ..deps import get_registry, get_settings
from ..http import cached, etag_for
from ..registry import Registry
from ..settings import Settings

router = APIRouter(tags=["maps"])
members = series.members


@router.get("/maps/series/{series_id}", response_class=HTMLResponse, summary="Map page of a series")
def series_page(
    series_id: str,
    found: list[series.Member] = Depends(members),
    registry: Registry = Depends(get_registry),
    settings: Settings = Depends(get_settings),
):
    html = series_page_module.page(registry, series_id, found)
    return HTMLResponse(html, headers=series_page_module.HEADERS)


@router.get("/maps/series/{series_id}/areas", summary="One date's areas with a group's share, as GeoJSON")
async def series_areas(
    request: Request,
    series_id: str,
    date: str = Query(..., max_length=40, description="a date of the series"),
    group: str | None = Query(None, description="group column (default: the first)"),
    found: list[series.Member] = Depends(members),
):
    member = series.pick(found, date, "date")
    group = group or member.info["groups"][0]
    series.check_groups([member], [group], None)
    return await cached(
        request,
        etag_for("series-areas", member.source.key(), group),
        lambda: series_page_module.areas_geojson(member, group),
        source=member.source,
        media_type="application/geo+json",
    )
