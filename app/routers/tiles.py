"""Vector tiles and TileJSON of a dataset, optionally carrying a local statistic per area.

Tiles have two addresses: ``tiles/{version}/{z}/{x}/{y}.mvt`` (what TileJSON lists: immutable, cached for a
year; a replaced version answers 404 naming the current one) and ``tiles/{z}/{x}/{y}.mvt`` (always the current
version, cached for an hour, for pages and clients that do not read TileJSON)."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Path, Request
from fastapi.responses import JSONResponse, Response

from .. import tileservice
from ..deps import Source, get_settings, get_source, get_tiles
from ..http import cached, etag_for
from ..params import tile_address, tile_layer
from ..problems import ProblemError
from ..settings import Settings
from ..tileservice import IMMUTABLE, MVT, Layer, TileService, tile_version

router = APIRouter(prefix="/v1/datasets", tags=["tiles"])


async def _tile(request: Request, zxy: tuple, layer: Layer, src: Source, tiles: TileService, max_age: int) -> Response:
    etag = etag_for("tile", src.key(), *zxy, (layer.group, layer.statistic, layer.permutations, layer.seed))
    return await cached(request, etag, lambda: tiles.tile(src, *zxy, layer, key=etag), media_type=MVT, max_age=max_age)


@router.get(
    "/{dataset_id}/tiles/{z}/{x}/{y}.mvt",
    summary="Mapbox vector tile (Web Mercator) of the current version",
    response_class=Response,
    responses={200: {"content": {MVT: {}}}},
)
async def tile(
    request: Request,
    zxy: tuple = Depends(tile_address),
    layer: Layer = Depends(tile_layer),
    src: Source = Depends(get_source),
    tiles: TileService = Depends(get_tiles),
):
    return await _tile(request, zxy, layer, src, tiles, max_age=3600)


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
    layer: Layer = Depends(tile_layer),
    src: Source = Depends(get_source),
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
    response = await _tile(request, zxy, layer, src, tiles, max_age=3600)
    response.headers["Cache-Control"] = IMMUTABLE
    return response


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
