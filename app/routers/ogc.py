"""OGC API – Features (Part 1: Core, GeoJSON) over the registry, so QGIS and GDAL open datasets directly."""
from __future__ import annotations

import json

import shapely
from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import JSONResponse, Response

from spatial.disclosure import protect_frame
from spatial.errors import ValidationError, problem

from ..deps import get_registry, get_settings, is_owner
from ..problems import not_found

router = APIRouter(prefix="/ogc", tags=["OGC API – Features"])
CONFORMANCE = ["http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/core",
               "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/geojson",
               "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/oas30"]
GEOJSON = "application/geo+json"


def _base(request: Request) -> str:
    return str(request.base_url).rstrip("/") + "/ogc"


@router.get("", summary="Landing page")
def landing(request: Request):
    b = _base(request)
    return {"title": "segmap", "description": "Areas with census counts and segregation statistics",
            "links": [{"href": b, "rel": "self", "type": "application/json", "title": "this document"},
                      {"href": str(request.base_url) + "openapi.json", "rel": "service-desc", "type": "application/vnd.oai.openapi+json;version=3.0"},
                      {"href": f"{b}/conformance", "rel": "conformance", "type": "application/json"},
                      {"href": f"{b}/collections", "rel": "data", "type": "application/json"}]}


@router.get("/conformance", summary="Conformance classes")
def conformance():
    return {"conformsTo": CONFORMANCE}


def _collection(info: dict, request: Request) -> dict:
    b = _base(request)
    return {"id": info["id"], "title": info["title"], "description": info.get("description") or "",
            "extent": {"spatial": {"bbox": [info["bounds"]], "crs": "http://www.opengis.net/def/crs/OGC/1.3/CRS84"}},
            "itemType": "feature", "crs": ["http://www.opengis.net/def/crs/OGC/1.3/CRS84"],
            "links": [{"href": f"{b}/collections/{info['id']}", "rel": "self", "type": "application/json"},
                      {"href": f"{b}/collections/{info['id']}/items", "rel": "items", "type": GEOJSON}]}


@router.get("/collections", summary="Collections: one per dataset")
def collections(request: Request, registry=Depends(get_registry)):
    b = _base(request)
    return {"collections": [_collection(i, request) for i in registry.list()],
            "links": [{"href": f"{b}/collections", "rel": "self", "type": "application/json"}]}


@router.get("/collections/{collection_id}", summary="One collection")
def collection(collection_id: str, request: Request, registry=Depends(get_registry)):
    info = registry.info(collection_id)
    if info is None:
        raise not_found("collection", collection_id, "See /ogc/collections.")
    return _collection(info, request)


@router.get("/collections/{collection_id}/items", summary="Features, paged, with optional bbox (CRS84)")
def items(collection_id: str, request: Request,
          bbox: str | None = Query(None, description="minLon,minLat,maxLon,maxLat"),
          limit: int = Query(100, ge=1, le=10000), offset: int = Query(0, ge=0),
          registry=Depends(get_registry), settings=Depends(get_settings), owner: bool = Depends(is_owner)):
    ds = registry.load(collection_id)
    if ds is None:
        raise not_found("collection", collection_id, "See /ogc/collections.")
    frame = ds.areas.to_crs(4326)
    if bbox:
        try:
            box = [float(v) for v in bbox.split(",")]
            assert len(box) == 4 and box[0] <= box[2] and box[1] <= box[3]
        except (ValueError, AssertionError):
            raise ValidationError(problem("bad_parameter", "bbox must be minLon,minLat,maxLon,maxLat with min ≤ max"))
        frame = frame[frame.intersects(shapely.box(*box))]
    matched = len(frame)
    page = frame.iloc[offset:offset + limit]
    if not owner:
        page, _ = protect_frame(page, list(ds.count_columns), settings.disclosure_threshold, total=ds.total)
    body = json.loads(page.to_json(drop_id=True, na="null"))
    for feature, fid in zip(body["features"], page["id"]):
        feature["id"] = str(fid)
    b = f"{_base(request)}/collections/{collection_id}/items"
    extra = f"&bbox={bbox}" if bbox else ""
    links = [{"href": f"{b}?limit={limit}&offset={offset}{extra}", "rel": "self", "type": GEOJSON}]
    if offset + limit < matched:
        links.append({"href": f"{b}?limit={limit}&offset={offset + limit}{extra}", "rel": "next", "type": GEOJSON})
    if offset > 0:
        links.append({"href": f"{b}?limit={limit}&offset={max(0, offset - limit)}{extra}", "rel": "prev", "type": GEOJSON})
    body.update(numberMatched=matched, numberReturned=len(page), links=links)
    return Response(json.dumps(body), media_type=GEOJSON)
