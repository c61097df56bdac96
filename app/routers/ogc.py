"""OGC API – Features (Part 1: Core, GeoJSON) over the registry, so QGIS and GDAL open datasets directly."""
from __future__ import annotations

import json
from collections import OrderedDict

import geopandas as gpd
import shapely
from fastapi import APIRouter, Depends, Header, Query, Request
from fastapi.responses import JSONResponse, Response

from spatial.disclosure import PublicData, protect_frame
from spatial.errors import ValidationError, problem

from ..deps import get_registry, get_settings, has_key, load_source
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


LOCAL = ("lisa", "gi_star")  # local results published as collections: "{dataset}~{statistic}~{group}"
SEP = "~"


def _parse(collection_id: str) -> tuple[str, str | None, str | None]:
    parts = collection_id.split(SEP)
    if len(parts) == 3 and parts[1] in LOCAL:
        return parts[0], parts[1], parts[2]
    if len(parts) == 1:
        return collection_id, None, None
    raise not_found("collection", collection_id, "See /ogc/collections.")


def _collection(info: dict, request: Request, statistic: str | None = None, group: str | None = None) -> dict:
    b = _base(request)
    cid, title, description = info["id"], info["title"], info.get("description") or ""
    if statistic:
        cid = SEP.join((info["id"], statistic, group))
        title = f"{info['title']}: {statistic} of {group}'s share"
        description = ("Local statistic per area: value, p-value, q-value and label after FDR control at alpha 0.05, "
                       "999 conditional permutations, seed 0, queen weights (as GET /v1/datasets/{id}/local).")
    return {"id": cid, "title": title, "description": description,
            "extent": {"spatial": {"bbox": [info["bounds"]], "crs": "http://www.opengis.net/def/crs/OGC/1.3/CRS84"}},
            "itemType": "feature", "crs": ["http://www.opengis.net/def/crs/OGC/1.3/CRS84"],
            "links": [{"href": f"{b}/collections/{cid}", "rel": "self", "type": "application/json"},
                      {"href": f"{b}/collections/{cid}/items", "rel": "items", "type": GEOJSON}]}


@router.get("/collections", summary="Collections: one per dataset")
def collections(request: Request, registry=Depends(get_registry)):
    b = _base(request)
    listed = []
    for info in registry.list():
        listed.append(_collection(info, request))
        listed += [_collection(info, request, statistic, group) for group in info["groups"] for statistic in LOCAL]
    return {"collections": listed,
            "links": [{"href": f"{b}/collections", "rel": "self", "type": "application/json"}]}


@router.get("/collections/{collection_id}", summary="One collection")
def collection(collection_id: str, request: Request, registry=Depends(get_registry)):
    dataset_id, statistic, group = _parse(collection_id)
    info = registry.info(dataset_id)
    if info is None or (group is not None and group not in info["groups"]):
        raise not_found("collection", collection_id, "See /ogc/collections.")
    return _collection(info, request, statistic, group)


_frames: OrderedDict = OrderedDict()  # (collection, version, owner) -> public features in CRS84, for paging


def _features(data: PublicData, statistic: str | None, group: str | None) -> gpd.GeoDataFrame:
    """Every area of the protected table in CRS84, with one local statistic when asked for."""
    if statistic is None:
        frame = data.areas.to_crs(4326)
    else:
        from spatial.export import local_frame
        from spatial.local import local_statistic
        res = local_statistic(data.dataset, group, statistic, permutations=999, seed=0)
        frame = protect_frame(local_frame(data.dataset, res), data)
        frame["label"] = frame["label"].astype(str)
    return frame


@router.get("/collections/{collection_id}/items", summary="Features, paged, with optional bbox (CRS84)")
async def items(collection_id: str, request: Request,
                bbox: str | None = Query(None, description="minLon,minLat,maxLon,maxLat"),
                limit: int = Query(100, ge=1, le=10000), offset: int = Query(0, ge=0),
                registry=Depends(get_registry), settings=Depends(get_settings), x_api_key: str | None = Header(None)):
    dataset_id, statistic, group = _parse(collection_id)
    src = load_source(registry, settings, dataset_id, has_key(settings, x_api_key))
    if src is None or (group is not None and group not in src.data.groups):
        raise not_found("collection", collection_id, "See /ogc/collections.")
    key = src.key(statistic, group)
    frame = _frames.get(key)
    if frame is None:  # computed once (off the event loop), then pages are slices of it
        frame = await request.app.state.heavy.run(_features, src.data, statistic, group, key=key)
        _frames[key] = frame
        while len(_frames) > 8:
            _frames.popitem(last=False)
    if bbox:
        try:
            box = [float(v) for v in bbox.split(",")]
            assert len(box) == 4 and box[0] <= box[2] and box[1] <= box[3]
        except (ValueError, AssertionError):
            raise ValidationError(problem("bad_parameter", "bbox must be minLon,minLat,maxLon,maxLat with min ≤ max"))
        frame = frame[frame.intersects(shapely.box(*box))]
    matched = len(frame)
    page = frame.iloc[offset:offset + limit]
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
