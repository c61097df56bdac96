"""OGC API – Features (Part 1: Core, GeoJSON) over the registry, so QGIS and GDAL open datasets directly."""

from __future__ import annotations

import json

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response

from ..deps import get_features, get_registry
from ..features import LOCAL, SEP, CollectionId, Features
from ..params import ItemsQuery
from ..problems import not_found
from ..registry import Registry

router = APIRouter(prefix="/ogc", tags=["OGC API – Features"])
CONFORMANCE = [
    "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/core",
    "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/geojson",
    "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/oas30",
]
GEOJSON = "application/geo+json"


def _base(request: Request) -> str:
    return str(request.base_url).rstrip("/") + "/ogc"


@router.get("", summary="Landing page")
def landing(request: Request):
    b = _base(request)
    return {
        "title": "segmap",
        "description": "Areas with census counts and segregation statistics",
        "links": [
            {"href": b, "rel": "self", "type": "application/json", "title": "this document"},
            {
                "href": str(request.base_url) + "openapi.json",
                "rel": "service-desc",
                "type": "application/vnd.oai.openapi+json;version=3.0",
            },
            {"href": f"{b}/conformance", "rel": "conformance", "type": "application/json"},
            {"href": f"{b}/collections", "rel": "data", "type": "application/json"},
        ],
    }


@router.get("/conformance", summary="Conformance classes")
def conformance():
    return {"conformsTo": CONFORMANCE}


def _collection(info: dict, request: Request, statistic: str | None = None, group: str | None = None) -> dict:
    b = _base(request)
    cid, title, description = info["id"], info["title"], info.get("description") or ""
    if statistic:
        cid = SEP.join((info["id"], statistic, group))
        title = f"{info['title']}: {statistic} of {group}'s share"
        description = (
            "Local statistic per area: value, p-value, q-value and label after FDR control at alpha 0.05, "
            "999 conditional permutations, seed 0, queen weights (as GET /v1/datasets/{id}/local)."
        )
    return {
        "id": cid,
        "title": title,
        "description": description,
        "extent": {"spatial": {"bbox": [info["bounds"]], "crs": "http://www.opengis.net/def/crs/OGC/1.3/CRS84"}},
        "itemType": "feature",
        "crs": ["http://www.opengis.net/def/crs/OGC/1.3/CRS84"],
        "links": [
            {"href": f"{b}/collections/{cid}", "rel": "self", "type": "application/json"},
            {"href": f"{b}/collections/{cid}/items", "rel": "items", "type": GEOJSON},
        ],
    }


@router.get("/collections", summary="Collections: one per dataset")
def collections(request: Request, registry: Registry = Depends(get_registry)):
    listed = []
    for info in registry.list():
        listed.append(_collection(info, request))
        listed += [_collection(info, request, statistic, group) for group in info["groups"] for statistic in LOCAL]
    return {
        "collections": listed,
        "links": [{"href": f"{_base(request)}/collections", "rel": "self", "type": "application/json"}],
    }


@router.get("/collections/{collection_id}", summary="One collection")
def collection(collection_id: str, request: Request, registry: Registry = Depends(get_registry)):
    parsed = CollectionId.parse(collection_id)
    info = registry.info(parsed.dataset) if parsed else None
    if info is None or (parsed.group is not None and parsed.group not in info["groups"]):
        raise not_found("collection", collection_id, "See /ogc/collections.")
    return _collection(info, request, parsed.statistic, parsed.group)


@router.get("/collections/{collection_id}/items", summary="Features, paged, with optional bbox (CRS84)")
async def items(request: Request, q: ItemsQuery = Depends(), features: Features = Depends(get_features)):
    page = await features.page(q.src, q.collection, q.bbox, q.limit, q.offset)
    b = f"{_base(request)}/collections/{q.collection_id}/items"
    extra = f"&bbox={q.bbox_text}" if q.bbox_text else ""

    def link(rel: str, offset: int) -> dict:
        return {"href": f"{b}?limit={q.limit}&offset={offset}{extra}", "rel": rel, "type": GEOJSON}

    links = [link("self", q.offset)]
    if q.offset + q.limit < page.matched:
        links.append(link("next", q.offset + q.limit))
    if q.offset > 0:
        links.append(link("prev", max(0, q.offset - q.limit)))
    body = {
        "type": "FeatureCollection",
        "features": page.features,
        "numberMatched": page.matched,
        "numberReturned": len(page.features),
        "links": links,
    }
    return Response(json.dumps(body), media_type=GEOJSON)
