"""Vector tiles and TileJSON of a dataset, optionally carrying a local statistic per area."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse, Response

from .. import tileservice
from ..deps import Source, get_source, get_tiles
from ..http import cached, etag_for
from ..params import tile_address, tile_layer
from ..tileservice import MVT, Layer, TileService

router = APIRouter(prefix="/v1/datasets", tags=["tiles"])


@router.get(
    "/{dataset_id}/tiles/{z}/{x}/{y}.mvt",
    summary="Mapbox vector tile (Web Mercator)",
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
    etag = etag_for("tile", src.key(), *zxy, (layer.group, layer.statistic, layer.permutations, layer.seed))
    return await cached(request, etag, lambda: tiles.tile(src, *zxy, layer, key=etag), media_type=MVT, max_age=3600)


@router.get("/{dataset_id}/tilejson.json", summary="TileJSON 3.0.0 describing the dataset's vector tiles")
def tilejson(
    request: Request, group: str | None = None, statistic: str | None = None, src: Source = Depends(get_source)
):
    return JSONResponse(tileservice.tilejson(src, str(request.base_url).rstrip("/"), group, statistic))
