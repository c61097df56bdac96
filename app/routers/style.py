"""MapLibre GL style JSON per map view (the Leaflet page's classes and colours) and a MapLibre page drawing it."""

from __future__ import annotations

from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import HTMLResponse

from .. import style
from ..deps import Source, get_settings, get_source
from ..http import cached, etag_for, json_bytes
from ..pages import MapParams
from ..settings import Settings

router = APIRouter(tags=["maps"])


def style_params(
    group: str | None = Query(None, description="group column (default: the first)"),
    view: str = Query("share", description="share, lq, lisa, hotspots or informal"),
    scheme: str = Query("quantiles", description="quantiles, natural_breaks or equal_interval (share views)"),
    k: int = Query(5, ge=3, le=7, description="number of classes (share views)"),
) -> MapParams:
    """The view of a map page; statistics at the tiles' defaults (automatic permutations, seed 0), which the
    style's tiles (TileJSON) carry."""
    return MapParams(
        group=group, view=view, scheme=scheme, k=k, permutations=None, seed=0, at=None, tiles="on", lang=None,
        accept_language=None,
    )  # fmt: skip


@router.get("/v1/datasets/{dataset_id}/style.json", summary="MapLibre GL style of a map view (classes and legend)")
async def style_json(
    request: Request,
    p: MapParams = Depends(style_params),
    src: Source = Depends(get_source),
    settings: Settings = Depends(get_settings),
):
    base = str(request.base_url).rstrip("/")
    etag = etag_for("style", src.key(), sorted(request.query_params.multi_items()), base)
    return await cached(
        request,
        etag,
        lambda: json_bytes(style.style(src, p, base, settings.max_permutations)),
        source=src,
        max_age=60,
    )


@router.get("/maps/{dataset_id}/maplibre", response_class=HTMLResponse, summary="MapLibre GL page of a style.json")
def maplibre_page(p: MapParams = Depends(style_params), src: Source = Depends(get_source)):
    query = urlencode({k: v for k, v in {"view": p.view, "group": p.group, "scheme": p.scheme, "k": p.k}.items() if v})
    body = style.page(src, query)
    return HTMLResponse(body, headers={"Content-Security-Policy": style.CSP, "X-Frame-Options": "SAMEORIGIN"})
