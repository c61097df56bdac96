"""Map pages (full, embeddable, downloadable), the data behind them, PNG/SVG images and vendored assets."""

from __future__ import annotations

import re
from typing import Literal

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import FileResponse, HTMLResponse, Response

from maps import assets
from spatial.errors import ValidationError, problem

from .. import pages
from ..deps import Source, get_heavy, get_info, get_settings, get_source, get_tiles
from ..http import HeavyWork, attachment, cached, etag_for
from ..pages import MapParams
from ..problems import ProblemError
from ..settings import Settings
from ..tileservice import TileService

router = APIRouter(tags=["maps"])
CLIENT_STATE = ("area", "pattern", "at")  # held in the URL for the page's script; the server's page is the same
_MEDIA = {
    "js": "text/javascript; charset=utf-8",
    "mjs": "text/javascript; charset=utf-8",
    "css": "text/css; charset=utf-8",
    "png": "image/png",
}

# Our pages run only our own (inline + same-origin) scripts; the embed may be framed by any site.
_CSP = (
    "default-src 'self'; img-src 'self' data: blob: {tiles}; style-src 'self' 'unsafe-inline'; "
    "script-src 'self' 'unsafe-inline'; worker-src 'self' blob:; frame-ancestors {frame}"
)


def _headers(settings: Settings, frame: str) -> dict:
    tiles = ""
    if settings.basemap_url:
        m = re.match(r"https?://[^/{}]+", settings.basemap_url)
        tiles = m.group(0) if m else ""
    headers = {"Content-Security-Policy": _CSP.format(tiles=tiles, frame=frame)}
    if frame == "'self'":
        headers["X-Frame-Options"] = "SAMEORIGIN"
    return headers


class Page:
    """What every HTML map route depends on."""

    def __init__(
        self,
        request: Request,
        p: MapParams = Depends(),
        src: Source = Depends(get_source),
        settings: Settings = Depends(get_settings),
        tiles: TileService = Depends(get_tiles),
    ):
        self.request, self.p, self.src, self.settings, self.tiles = request, p, src, settings, tiles

    async def respond(self, mode: str, headers: dict) -> Response:
        """A map page by ETag: 304 when the client has it, else from the cache shared by workers, else rendered once."""
        etag = etag_for(
            "map",
            mode,
            self.src.key(),
            sorted((k, v) for k, v in self.request.query_params.multi_items() if k not in CLIENT_STATE),
            self.p.lang,  # negotiated from lang= or Accept-Language
            self.settings.basemap_url,
            self.settings.max_offline_areas,
            self.settings.canvas_areas,  # the page says whether its tiles are drawn on canvas
            assets.RENDER_VERSION,
        )
        return await cached(
            self.request,
            etag,
            lambda: pages.render(self.src, self.p, self.settings, mode, self.tiles),
            source=self.src,
            media_type="text/html",
            headers={**headers, "Vary": "Accept-Language", "Content-Language": self.p.lang},
        )


@router.get("/maps/static/{path:path}", include_in_schema=False)
async def static(path: str):
    file = assets.file_for(path)  # only the listed files: no path tricks
    if file is None:
        raise ProblemError(404, "Not found", f"No map asset {path!r}.", code="not_found")
    return FileResponse(
        file,
        media_type=_MEDIA.get(path.rsplit(".", 1)[-1], "text/plain; charset=utf-8"),
        headers={"Cache-Control": "public, max-age=86400, immutable"},
    )


@router.get(
    "/maps/{dataset_id}", response_class=HTMLResponse, summary="Interactive map page with group and view picker"
)
async def page(page: Page = Depends()):
    return await page.respond("page", _headers(page.settings, "'self'"))


@router.get("/maps/{dataset_id}/embed", response_class=HTMLResponse, summary="The map alone, for an iframe on any site")
async def embed(page: Page = Depends()):
    return await page.respond("embed", _headers(page.settings, "*"))


def offline_allowed(
    dataset_id: str,
    p: MapParams = Depends(),
    info: dict = Depends(get_info),
    settings: Settings = Depends(get_settings),
) -> None:
    """The size limits of an offline file, from the catalogue row: refused before the dataset is loaded."""
    pages.check_download(dataset_id, info, p, settings)


@router.get(
    "/maps/{dataset_id}/download",
    response_class=HTMLResponse,
    summary="One self-contained HTML file (works offline)",
    dependencies=[Depends(offline_allowed)],  # route dependencies run before Page's (which loads the dataset)
)
async def download(page: Page = Depends()):
    name = f"{page.src.id}-{page.p.group or page.src.data.groups[0]}-{page.p.view}.html"
    return await page.respond("download", {**_headers(page.settings, "'self'"), **attachment(name)})


@router.get("/maps/{dataset_id}/data", summary="The numbers behind a map view, as CSV or GeoJSON")
async def data(
    request: Request,
    p: MapParams = Depends(),
    format: str = Query("csv", description="csv or geojson"),
    src: Source = Depends(get_source),
    settings: Settings = Depends(get_settings),
    heavy: HeavyWork = Depends(get_heavy),
):
    if format not in ("csv", "geojson"):
        raise ValidationError(problem("bad_parameter", "format must be csv or geojson"))
    body, media, name = await heavy.run(
        pages.view_file, src, p, format, settings.max_permutations, key=("data", src.key(), str(request.url))
    )
    return Response(body, media_type=media, headers=attachment(name))


@router.get("/maps/{dataset_id}/area", summary="One area's panel: counts, share, LQ, label, p-values, neighbours")
async def area(
    request: Request,
    area: str = Query(..., max_length=200, description="area id"),
    p: MapParams = Depends(),
    src: Source = Depends(get_source),
    settings: Settings = Depends(get_settings),
    heavy: HeavyWork = Depends(get_heavy),
):
    body = await heavy.run(
        pages.area, src, p, area, settings.max_permutations, key=("area", src.key(), str(request.url), p.lang)
    )
    return Response(body, media_type="application/json", headers={"Vary": "Accept-Language"})


@router.get("/maps/{dataset_id}/search", summary="Areas whose name or id contains q, with bounds to zoom to")
async def search(
    q: str = Query(..., min_length=1, max_length=100, description="part of a name or id"),
    src: Source = Depends(get_source),
):
    return Response(pages.search(src, q), media_type="application/json")


@router.get(
    "/v1/datasets/{dataset_id}/map.{fmt}",
    summary="Static PNG or SVG map (title, legend, attribution, scale bar)",
    response_class=Response,
    responses={200: {"content": {"image/png": {}, "image/svg+xml": {}}}},
)
async def map_image(
    request: Request,
    fmt: Literal["png", "svg"],
    p: MapParams = Depends(),
    width: int = Query(1200, ge=100, le=6000),
    height: int = Query(900, ge=100, le=6000),
    dpi: int | None = Query(None, ge=10, le=300, description="Default 150 for PNG, 100 for SVG"),
    src: Source = Depends(get_source),
    settings: Settings = Depends(get_settings),
    heavy: HeavyWork = Depends(get_heavy),
):
    body, alt = await heavy.run(
        pages.image,
        src,
        p,
        fmt,
        width,
        height,
        dpi or (150 if fmt == "png" else 100),
        settings.max_permutations,
        key=("image", src.key(), str(request.url), p.lang),
    )
    return Response(
        body,
        media_type="image/png" if fmt == "png" else "image/svg+xml",
        headers={"X-Alt-Text": alt, "Cache-Control": "public, max-age=300", "Vary": "Accept-Language"},
    )
