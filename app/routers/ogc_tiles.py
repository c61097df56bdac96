"""OGC API – Tiles (Part 1: core, tileset, tilesets list, geodata tilesets, MVT) over every collection of
``/ogc/collections`` (datasets and local results), in the WebMercatorQuad tile matrix set (from morecantile).

The tiles are the service's vector tiles (``/v1/datasets/{id}/tiles``), from the same protected table; a local
result's collection carries its statistic as the OGC API – Features collection does (999 permutations, seed 0).
"""

from __future__ import annotations

from functools import cache

import morecantile
from fastapi import APIRouter, Depends, Path, Request
from fastapi.responses import JSONResponse, Response

from .. import tileservice
from ..archive import tile_ranges
from ..deps import Source, get_registry, get_settings, get_tiles, is_owner, load_source
from ..features import CollectionId
from ..problems import not_found
from ..registry import Registry
from ..settings import Settings
from ..tiles import valid_tile
from ..tileservice import MVT, Layer, TileService, tile_response, tile_version

router = APIRouter(prefix="/ogc", tags=["OGC API – Tiles"])
TMS_ID = "WebMercatorQuad"
TMS_URI = "http://www.opengis.net/def/tilematrixset/OGC/1.0/WebMercatorQuad"
TILING_SCHEME = "http://www.opengis.net/def/rel/ogc/1.0/tiling-scheme"
MAX_ZOOM = 16  # as the TileJSON: deeper tiles exist, but a client listing levels needs an end
JSON = "application/json"
CRS_3857 = "http://www.opengis.net/def/crs/EPSG/0/3857"
TYPES = {"String": "string", "Number": "number"}


@cache
def _tms() -> dict:
    """The OGC TMS 2.0 document (GDAL reads it from 3.7, which is also when its OGCAPI driver reads vector tiles)."""
    return morecantile.tms.get(TMS_ID).model_dump(mode="json", exclude_none=True, by_alias=True)


def _base(request: Request) -> str:
    return str(request.base_url).rstrip("/") + "/ogc"


class TileCollection:
    """The collection named in the path as this caller may see it, and the tile layer it stands for."""

    def __init__(
        self,
        collection_id: str = Path(..., description="a collection of /ogc/collections"),
        registry: Registry = Depends(get_registry),
        settings: Settings = Depends(get_settings),
        owner: bool = Depends(is_owner),
    ):
        parsed = CollectionId.parse(collection_id)
        src = load_source(registry, settings, parsed.dataset, owner) if parsed else None
        if src is None or (parsed.group is not None and parsed.group not in src.data.groups):
            raise not_found("collection", collection_id, "See /ogc/collections.")
        self.id, self.src = collection_id, src
        self.layer = Layer(parsed.group, parsed.statistic, 999 if parsed.statistic else None, 0)
        self.version = tile_version(src, settings)


def _require_tms(tms: str) -> None:
    if tms != TMS_ID:
        raise not_found("tile matrix set", tms, f"This service tiles in {TMS_ID} only (see /ogc/tileMatrixSets).")


def _limits(src: Source) -> list[dict]:
    """Per tile matrix, the rows and columns the dataset's bounds touch."""
    w, s, e, n = src.info["bounds"]
    grid = morecantile.tms.get(TMS_ID)
    (x0, y0), (x1, y1) = grid.xy(max(w, -180), max(s, -85.0511)), grid.xy(min(e, 180), min(n, 85.0511))
    out = []
    for z in range(MAX_ZOOM + 1):
        cols, rows = tile_ranges((x0, y0, x1, y1), z)
        out.append(
            {
                "tileMatrix": str(z),
                "minTileRow": rows[0],
                "maxTileRow": rows[-1],
                "minTileCol": cols[0],
                "maxTileCol": cols[-1],
            }
        )
    return out


def _tileset_summary(c: TileCollection, request: Request) -> dict:
    here = f"{_base(request)}/collections/{c.id}/tiles/{TMS_ID}"
    return {
        "title": f"{c.src.info['title']} ({TMS_ID})",
        "dataType": "vector",
        "crs": CRS_3857,
        "tileMatrixSetURI": TMS_URI,
        "links": [
            {"rel": "self", "type": JSON, "href": here, "title": "tileset metadata"},
            {"rel": TILING_SCHEME, "type": JSON, "href": f"{_base(request)}/tileMatrixSets/{TMS_ID}"},
        ],
    }


@router.get("/collections/{collection_id}/tiles", summary="Tilesets of a collection (vector, WebMercatorQuad)")
def tilesets(request: Request, c: TileCollection = Depends()):
    here = f"{_base(request)}/collections/{c.id}/tiles"
    return {"tilesets": [_tileset_summary(c, request)], "links": [{"rel": "self", "type": JSON, "href": here}]}


@router.get(
    "/collections/{collection_id}/tiles/{tms}", summary="Tileset metadata (OGC Two Dimensional Tile Matrix Set)"
)
def tileset(request: Request, tms: str, c: TileCollection = Depends()):
    _require_tms(tms)
    body = _tileset_summary(c, request)
    here = f"{_base(request)}/collections/{c.id}/tiles/{TMS_ID}"
    body["links"].append(
        {"rel": "item", "type": MVT, "templated": True, "href": here + "/{tileMatrix}/{tileRow}/{tileCol}"}
    )
    body["links"].append(
        {
            "rel": "http://www.opengis.net/def/rel/ogc/1.0/geodata",
            "type": JSON,
            "href": _base(request) + f"/collections/{c.id}",
        }
    )
    tj = tileservice.tilejson(c.src, "", c.layer.group, c.layer.statistic, c.version)
    fields = {name: {"type": TYPES.get(kind, "string")} for name, kind in tj["vector_layers"][0]["fields"].items()}
    body.update(
        description=tj["description"],
        tileMatrixSetLimits=_limits(c.src),
        layers=[
            {
                "id": tileservice.LAYER,
                "dataType": "vector",
                "geometryDimension": 2,
                "minTileMatrix": "0",
                "maxTileMatrix": str(MAX_ZOOM),
                "propertiesSchema": {"type": "object", "properties": fields},
            }
        ],
    )
    return body


@router.get(
    "/collections/{collection_id}/tiles/{tms}/{tileMatrix}/{tileRow}/{tileCol}",
    summary="One vector tile of a collection",
    response_class=Response,
    responses={200: {"content": {MVT: {}}}},
)
async def tile(
    request: Request,
    tms: str,
    tileMatrix: int = Path(..., ge=0, le=MAX_ZOOM),  # noqa: N803 - the OGC template's names
    tileRow: int = Path(..., ge=0),  # noqa: N803
    tileCol: int = Path(..., ge=0),  # noqa: N803
    c: TileCollection = Depends(),
    tiles: TileService = Depends(get_tiles),
):
    _require_tms(tms)
    z, x, y = tileMatrix, tileCol, tileRow
    if not valid_tile(z, x, y):
        raise not_found("tile", f"{z}/{y}/{x}", f"At tile matrix {z}, rows and columns run from 0 to {2**z - 1}.")
    return await tile_response(request, tiles, c.src, (z, x, y), c.layer, max_age=3600)


@router.get("/tileMatrixSets", summary="Tile matrix sets")
def tile_matrix_sets(request: Request):
    href = f"{_base(request)}/tileMatrixSets/{TMS_ID}"
    return {
        "tileMatrixSets": [
            {
                "id": TMS_ID,
                "title": _tms().get("title", TMS_ID),
                "uri": TMS_URI,
                "links": [{"rel": "self", "type": JSON, "href": href}],
            }
        ]
    }


@router.get("/tileMatrixSets/{tms}", summary="A tile matrix set definition (OGC TMS 2.0 JSON)")
def tile_matrix_set(tms: str):
    _require_tms(tms)
    return JSONResponse(_tms())
