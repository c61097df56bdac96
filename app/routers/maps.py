"""Map pages (full, embeddable, downloadable), the data behind them, PNG/SVG images and vendored assets."""
from __future__ import annotations

import json
import re
from typing import Literal
from urllib.parse import quote

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import FileResponse, HTMLResponse, Response

from maps import assets
from maps.data import SCHEMES, VIEW_STATISTIC, VIEWS, view_data
from spatial.errors import ValidationError, problem

from ..deps import Source, get_settings, get_source
from ..http import cached_body, etag_for, not_modified
from ..problems import ProblemError
from ..settings import Settings

router = APIRouter(tags=["maps"])
_MEDIA = {"js": "text/javascript; charset=utf-8", "css": "text/css; charset=utf-8", "png": "image/png"}

# Our pages run only our own (inline + same-origin) scripts; the embed may be framed by any site.
_CSP = ("default-src 'self'; img-src 'self' data: blob: {tiles}; style-src 'self' 'unsafe-inline'; "
        "script-src 'self' 'unsafe-inline'; worker-src 'self' blob:; frame-ancestors {frame}")


def _headers(settings: Settings, frame: str) -> dict:
    tiles = ""
    if settings.basemap_url:
        m = re.match(r"https?://[^/{}]+", settings.basemap_url)
        tiles = m.group(0) if m else ""
    headers = {"Content-Security-Policy": _CSP.format(tiles=tiles, frame=frame), "Cache-Control": "public, max-age=300"}
    if frame == "'self'":
        headers["X-Frame-Options"] = "SAMEORIGIN"
    return headers


def _at(at: str | None):
    if not at:
        return None
    try:
        lat, lon, zoom = (float(v) for v in at.split(","))
    except ValueError:
        raise ValidationError(problem("bad_parameter", "at must be 'lat,lon,zoom', e.g. at=32.7,-83.4,7")) from None
    if not (-90 <= lat <= 90 and -180 <= lon <= 180 and 0 <= zoom <= 22):
        raise ValidationError(problem("bad_parameter", "at is out of range: lat −90…90, lon −180…180, zoom 0…22"))
    return lat, lon, zoom


class MapParams:
    """Query parameters shared by every map endpoint."""

    def __init__(self, group: str | None = Query(None, description="group column (default: the first)"),
                 view: str = Query("share", description="share, lq, lisa, hotspots or informal"),
                 scheme: str = Query("quantiles", description="quantiles, natural_breaks or equal_interval"),
                 k: int = Query(5, ge=3, le=7, description="number of classes"),
                 permutations: int | None = Query(None, ge=0, le=9999, description="default: enough for the correction"),
                 seed: int = Query(0, ge=0, le=2**32 - 1),
                 at: str | None = Query(None, description="map position: lat,lon,zoom"),
                 tiles: str = Query("auto", description="auto (vector tiles above 3,000 areas), on or off")):
        if tiles not in ("auto", "on", "off"):
            raise ValidationError(problem("bad_parameter", "tiles must be auto, on or off"))
        self.tiles = None if tiles == "auto" else tiles == "on"
        if view not in VIEWS:
            raise ValidationError(problem("bad_parameter", f"Unknown view {view!r}; choose from {list(VIEWS)}"))
        if scheme not in SCHEMES:
            raise ValidationError(problem("bad_parameter", f"Unknown classification {scheme!r}; choose from {list(SCHEMES)}"))
        self.group, self.view, self.scheme, self.k = group, view, scheme, k
        self.permutations, self.seed, self.at = permutations, seed, _at(at)


def _page(src: Source, p: MapParams, settings: Settings, mode: str) -> str:
    from maps.views import PageOptions, render_page
    data = src.data
    group = p.group or data.groups[0]
    vector, embedded, zooms = p.tiles, None, None
    if mode == "download":
        vector = False
        if p.tiles or (p.tiles is None and data.n > settings.max_download_areas):
            # Too many areas to embed as GeoJSON: carry the app's own tiles for a few zooms instead.
            from ..tiles import offline_tiles
            from .tiles import area_properties, tile_index
            attributes = area_properties(data, group, VIEW_STATISTIC.get(p.view), p.permutations, p.seed,
                                         settings.max_permutations)
            embedded, zooms = offline_tiles(tile_index(src.id, src.version, data.areas), attributes)
            vector = True
    opts = PageOptions(dataset_id=src.id, group=group, view=p.view, scheme=p.scheme, k=p.k,
                       at=p.at, mode=mode, permutations=p.permutations, seed=p.seed,
                       max_permutations=settings.max_permutations,
                       basemap_url=None if mode == "download" else settings.basemap_url,
                       basemap_attribution=settings.basemap_attribution, disclosure_threshold=src.threshold,
                       vector_tiles=vector, embedded_tiles=embedded, embedded_zooms=zooms)
    page, _ = render_page(data, opts)
    return page


async def _cached_html(request: Request, src: Source, p: MapParams, settings: Settings, mode: str,
                       headers: dict) -> Response:
    """A map page by ETag: 304 when the client has it, else from the cache shared by workers, else rendered once."""
    etag = etag_for("map", mode, src.key(), sorted(request.query_params.multi_items()), settings.basemap_url,
                    assets.RENDER_VERSION)
    headers = {**headers, "ETag": etag, "Cache-Control": "public, max-age=300"}
    if not_modified(request, etag):
        return Response(status_code=304, headers=headers)
    body = await cached_body(request, etag, src.id, src.version, lambda: _page(src, p, settings, mode).encode())
    return HTMLResponse(body, headers=headers)


@router.get("/maps/static/{path:path}", include_in_schema=False)
async def static(path: str):
    file = assets.file_for(path)  # only the listed files: no path tricks
    if file is None:
        raise ProblemError(404, "Not found", f"No map asset {path!r}.", code="not_found")
    return FileResponse(file, media_type=_MEDIA.get(path.rsplit(".", 1)[-1], "text/plain; charset=utf-8"),
                        headers={"Cache-Control": "public, max-age=86400, immutable"})


@router.get("/maps/{dataset_id}", response_class=HTMLResponse, summary="Interactive map page with group and view picker")
async def page(request: Request, dataset_id: str, p: MapParams = Depends(), src: Source = Depends(get_source),
               settings: Settings = Depends(get_settings)):
    return await _cached_html(request, src, p, settings, "page", _headers(settings, "'self'"))


@router.get("/maps/{dataset_id}/embed", response_class=HTMLResponse, summary="The map alone, for an iframe on any site")
async def embed(request: Request, dataset_id: str, p: MapParams = Depends(), src: Source = Depends(get_source),
                settings: Settings = Depends(get_settings)):
    return await _cached_html(request, src, p, settings, "embed", _headers(settings, "*"))


@router.get("/maps/{dataset_id}/download", response_class=HTMLResponse, summary="One self-contained HTML file (works offline)")
async def download(request: Request, dataset_id: str, p: MapParams = Depends(), src: Source = Depends(get_source),
                   settings: Settings = Depends(get_settings)):
    if p.tiles is False and src.data.n > settings.max_download_areas:
        # Embedded GeoJSON of every area: ~40 MB and 30 s to build at 100,000 areas, and browsers hang on it.
        raise ValidationError(problem(
            "too_many_areas", f"{src.data.n:,} areas are too many to embed as GeoJSON in one offline HTML file (limit "
            f"{settings.max_download_areas:,}, SEGMAP_MAX_DOWNLOAD_AREAS): leave out tiles=off to embed vector tiles "
            "instead, or use the PNG or SVG for a report, or /maps/{id}/data for the numbers."))
    name = quote(f"{dataset_id}-{p.group or src.data.groups[0]}-{p.view}.html")
    return await _cached_html(request, src, p, settings, "download",
                              {**_headers(settings, "'self'"), "Content-Disposition": f"attachment; filename*=UTF-8''{name}"})


@router.get("/maps/{dataset_id}/data", summary="The numbers behind a map view, as CSV or GeoJSON")
async def data(request: Request, dataset_id: str, p: MapParams = Depends(), format: str = Query("csv", description="csv or geojson"),
               src: Source = Depends(get_source), settings: Settings = Depends(get_settings)):
    if format not in ("csv", "geojson"):
        raise ValidationError(problem("bad_parameter", "format must be csv or geojson"))

    def make():
        vd = view_data(src.data, p.group, p.view, scheme=p.scheme, k=p.k, permutations=p.permutations, seed=p.seed,
                       max_permutations=settings.max_permutations)
        name = f"{dataset_id}-{vd.group}-{p.view}"
        if format == "csv":
            from spatial.export import csv_safe
            return Response(csv_safe(vd.frame).to_csv(index=False), media_type="text/csv; charset=utf-8",
                            headers={"Content-Disposition": f"attachment; filename*=UTF-8''{quote(name)}.csv"})
        from maps.views import geojson
        body = geojson(src.data, vd)
        body["segmap"] = {"view": vd.view, "group": vd.group, "legend": vd.legend, **vd.meta, "notes": vd.notes}
        return Response(json.dumps(body), media_type="application/geo+json",
                        headers={"Content-Disposition": f"attachment; filename*=UTF-8''{quote(name)}.geojson"})

    return await request.app.state.heavy.run(make, key=("data", src.key(), str(request.url)))


async def _image(request, src: Source, p, fmt, width, height, dpi):
    from maps.static import render

    def make():
        vd = view_data(src.data, p.group, p.view, scheme=p.scheme, k=p.k, permutations=p.permutations, seed=p.seed,
                       max_permutations=request.app.state.settings.max_permutations)
        return render(src.data, vd, fmt, width=width, height=height, dpi=dpi)

    body, alt = await request.app.state.heavy.run(make, key=("image", src.key(), str(request.url)))
    media = "image/png" if fmt == "png" else "image/svg+xml"
    # HTTP headers are Latin-1: the alt text travels ASCII-folded in a header and in full inside the file.
    header_alt = re.sub(r"[\x00-\x1f\x7f]+", " ", alt).encode("ascii", "replace").decode()[:2000]  # no CR/LF: h11 drops the connection
    return Response(body, media_type=media, headers={"X-Alt-Text": header_alt, "Cache-Control": "public, max-age=300"})


@router.get("/v1/datasets/{dataset_id}/map.{fmt}", summary="Static PNG or SVG map (title, legend, attribution, scale bar)",
            response_class=Response, responses={200: {"content": {"image/png": {}, "image/svg+xml": {}}}})
async def map_image(request: Request, dataset_id: str, fmt: Literal["png", "svg"], p: MapParams = Depends(),
                    width: int = Query(1200, ge=100, le=6000), height: int = Query(900, ge=100, le=6000),
                    dpi: int | None = Query(None, ge=10, le=300, description="Default 150 for PNG, 100 for SVG"),
                    src: Source = Depends(get_source), settings: Settings = Depends(get_settings)):
    return await _image(request, src, p, fmt, width, height, dpi or (150 if fmt == "png" else 100))
