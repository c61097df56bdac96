"""Vector tiles and TileJSON of a dataset, optionally carrying a local statistic per area.

Tiles have two addresses: ``tiles/{version}/{z}/{x}/{y}.mvt`` (what TileJSON lists: immutable, cached for a
year; a replaced version answers 404 naming the current one) and ``tiles/{z}/{x}/{y}.mvt`` (always the current
version, cached for an hour, for pages and clients that do not read TileJSON)."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.responses import FileResponse, JSONResponse, Response

from .. import tileservice
from ..deps import Source, get_settings, get_source, get_tiles
from ..http import attachment
from ..params import tile_address, tile_layer
from ..problems import ProblemError
from ..settings import Settings
from ..tiles import MAX_ZOOM
from ..tileservice import MVT, Layer, TileService, tile_response, tile_version
from ..tilesource import Pending, tile_source
from ..tilesource import tile_layer as lazy_layer

router = APIRouter(prefix="/v1/datasets", tags=["tiles"])


@router.get(
    "/{dataset_id}/tiles/{z}/{x}/{y}.mvt",
    summary="Mapbox vector tile (Web Mercator) of the current version",
    response_class=Response,
    responses={200: {"content": {MVT: {}}}},
)
async def tile(
    request: Request,
    zxy: tuple = Depends(tile_address),
    layer: Layer = Depends(lazy_layer),
    src: Source | Pending = Depends(tile_source),  # a large version this worker still reads: Pending
    tiles: TileService = Depends(get_tiles),
):
    return await tile_response(request, tiles, src, zxy, layer, max_age=3600)


@router.get(
    "/{dataset_id}/tiles/{version}/{z}/{x}/{y}.mvt",
    summary="Mapbox vector tile of one dataset version (immutable; the URL TileJSON lists)",
    response_class=Response,
    responses={200: {"content": {MVT: {}}}},
)
async def versioned_tile(
    request: Request,
    version: str = Path(..., max_length=64, description="the version token in the TileJSON's tile URL"),
    zxy: tuple = Depends(tile_address),
    layer: Layer = Depends(lazy_layer),
    src: Source | Pending = Depends(tile_source),
    tiles: TileService = Depends(get_tiles),
    settings: Settings = Depends(get_settings),
):
    current = tile_version(src, settings)
    if version != current:
        raise ProblemError(
            404,
            "Replaced tile version",
            f"Dataset {src.id!r} was replaced: its tiles are now at version {current!r}, not {version!r}. "
            f"Read the current tile URLs from /v1/datasets/{src.id}/tilejson.json.",
            code="replaced_version",
            current_version=current,
        )
    return await tile_response(request, tiles, src, zxy, layer, max_age=None)


@router.get("/{dataset_id}/tilejson.json", summary="TileJSON 3.0.0 describing the dataset's vector tiles")
def tilejson(
    request: Request,
    group: str | None = None,
    statistic: str | None = None,
    src: Source = Depends(get_source),
    settings: Settings = Depends(get_settings),
):
    base = str(request.base_url).rstrip("/")
    body = tileservice.tilejson(src, base, group, statistic, tile_version(src, settings))
    # Short-lived: it names the current version, which changes when the dataset is replaced.
    return JSONResponse(body, headers={"Cache-Control": "public, max-age=60"})


PMTILES = "application/vnd.pmtiles"


@router.get(
    "/{dataset_id}/export.pmtiles",
    summary="PMTiles archive of the dataset's vector tiles (HTTP Range requests supported)",
    response_class=Response,
    responses={200: {"content": {PMTILES: {}}}, 206: {"description": "the requested byte range"}, 416: {}},
)
async def export_pmtiles(
    request: Request,
    minzoom: int | None = Query(None, ge=0, le=MAX_ZOOM, description="default 0"),
    maxzoom: int | None = Query(None, ge=0, le=MAX_ZOOM, description="default: 4 past the zoom that fits, at most 14"),
    layer: Layer = Depends(tile_layer),
    src: Source = Depends(get_source),
    tiles: TileService = Depends(get_tiles),
    settings: Settings = Depends(get_settings),
):
    version = tile_version(src, settings)
    path = await tiles.archive(src, layer, (minzoom, maxzoom), version, settings.data_dir / "exports")
    size = path.stat().st_size
    headers = {"Cache-Control": "public, max-age=60", **attachment(f"{src.id}.pmtiles", "inline")}
    start = _range_start(request.headers.get("range"))
    if start is not None and start >= size:
        raise ProblemError(
            416,
            "Range not satisfiable",
            f"The archive has {size} bytes (0-{size - 1}); the requested range starts at byte {start}.",
            code="range_not_satisfiable",
            headers={"Content-Range": f"bytes */{size}"},
        )
    return FileResponse(path, media_type=PMTILES, headers=headers)


def _range_start(header: str | None) -> int | None:
    """The first byte a ``bytes=START-…`` range asks for (Starlette serves ranges; this makes its 416 a problem)."""
    if not header or not header.startswith("bytes="):
        return None
    first = header[6:].split(",")[0].strip().split("-")[0].strip()
    return int(first) if first.isdigit() else None
