"""OGC API – Features (Part 1: Core, GeoJSON; Part 3: queryables and CQL2 filters, with sortby and properties)
over the registry, so QGIS and GDAL open datasets directly and filter them on the server."""

from __future__ import annotations

import json
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import Response

from .. import cql
from ..deps import get_features, get_registry
from ..features import LOCAL, SEP, CollectionId, Features, Selection
from ..params import ItemsQuery
from ..problems import not_found
from ..registry import Registry

router = APIRouter(prefix="/ogc", tags=["OGC API – Features"])
CONFORMANCE = [
    "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/core",
    "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/geojson",
    "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/oas30",
    # OGC API – Tiles (app/routers/ogc_tiles.py): vector tiles of every collection in WebMercatorQuad.
    *(
        f"http://www.opengis.net/spec/ogcapi-tiles-1/1.0/conf/{c}"
        for c in ("core", "tileset", "tilesets-list", "geodata-tilesets", "mvt")
    ),
    "http://www.opengis.net/spec/tms/2.0/conf/tilematrixset",
    "http://www.opengis.net/spec/tms/2.0/conf/json-tilematrixset",
    # Part 3 (filtering) with CQL2: what QGIS and GDAL look for before they send a layer's filter to the server.
    "http://www.opengis.net/spec/ogcapi-features-3/1.0/conf/queryables",
    "http://www.opengis.net/spec/ogcapi-features-3/1.0/conf/filter",
    "http://www.opengis.net/spec/ogcapi-features-3/1.0/conf/features-filter",
    "http://www.opengis.net/spec/cql2/1.0/conf/cql2-text",
    "http://www.opengis.net/spec/cql2/1.0/conf/cql2-json",
    "http://www.opengis.net/spec/cql2/1.0/conf/basic-cql2",
    "http://www.opengis.net/spec/cql2/1.0/conf/advanced-comparison-operators",
    "http://www.opengis.net/spec/cql2/1.0/conf/basic-spatial-functions",
    "http://www.opengis.net/spec/cql2/1.0/conf/spatial-functions",
    "http://www.opengis.net/spec/cql2/1.0/conf/property-property",
    "http://www.opengis.net/spec/cql2/1.0/conf/arithmetic",
]
GEOJSON = "application/geo+json"
CRS84 = "http://www.opengis.net/def/crs/OGC/1.3/CRS84"
SCHEMA_JSON = "application/schema+json"
QUERYABLES_REL = "http://www.opengis.net/def/rel/ogc/1.0/queryables"
BAD_REQUEST = {
    400: {
        "description": "A filter, sortby or properties that cannot be used: the syntax error's position, or the "
        "collection's queryables",
        "content": {"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}},
    }
}


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
            "conditional permutations enough for that correction, seed 0, queen weights (as GET /v1/datasets/{id}/local)."
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
            {
                "href": f"{b}/collections/{cid}/tiles",
                "rel": "http://www.opengis.net/def/rel/ogc/1.0/tilesets-vector",
                "type": "application/json",
            },
            {"href": f"{b}/collections/{cid}/queryables", "rel": QUERYABLES_REL, "type": SCHEMA_JSON},
            # GDAL 3.6 and older drafts look for rel "queryables" with a JSON document.
            {"href": f"{b}/collections/{cid}/queryables?f=json", "rel": "queryables", "type": "application/json"},
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


def selection(
    filter: str | None = Query(
        None,
        description="CQL2 filter over the queryables, e.g. black_share > 0.3 AND label = 'high_high'; rows whose "
        "value is withheld (null) never match a comparison",
    ),
    filter_lang: str | None = Query(None, alias="filter-lang", description="cql2-text (default) or cql2-json"),
    filter_crs: str | None = Query(None, alias="filter-crs", description="only CRS84 (the default)"),
    sortby: str | None = Query(None, description="queryables to sort by, e.g. -black_share,id (- descending)"),
    properties: str | None = Query(None, description="only these properties in each feature, e.g. id,label"),
) -> Selection:
    if filter_crs not in (None, CRS84):
        raise cql.bad_filter(f"filter-crs: only {CRS84} is supported; got {filter_crs!r}", "bad_filter_crs")
    tree = cql.parse(filter, filter_lang) if filter is not None and filter.strip() else None
    return Selection(tree, sortby, properties)


def _links(request: Request, q: ItemsQuery, matched: int) -> list[dict]:
    """self / next / prev with every other parameter of the request kept (filter, sortby, bbox …)."""
    b = f"{_base(request)}/collections/{q.collection_id}/items"
    others = [(k, v) for k, v in request.query_params.multi_items() if k not in ("limit", "offset")]

    def link(rel: str, offset: int) -> dict:
        return {
            "href": f"{b}?{urlencode([*others, ('limit', q.limit), ('offset', offset)])}",
            "rel": rel,
            "type": GEOJSON,
        }

    links = [link("self", q.offset)]
    if q.offset + q.limit < matched:
        links.append(link("next", q.offset + q.limit))
    if q.offset > 0:
        links.append(link("prev", max(0, q.offset - q.limit)))
    return links


@router.get(
    "/collections/{collection_id}/items",
    summary="Features, paged, with optional bbox (CRS84), CQL2 filter, sortby and properties",
    responses=BAD_REQUEST,
)
async def items(
    request: Request,
    q: ItemsQuery = Depends(),
    sel: Selection = Depends(selection),
    features: Features = Depends(get_features),
):
    page = await features.page(q.src, q.collection, q.bbox, q.limit, q.offset, sel)
    body = {
        "type": "FeatureCollection",
        "features": page.features,
        "numberMatched": page.matched,
        "numberReturned": len(page.features),
        "links": _links(request, q, page.matched),
    }
    return Response(json.dumps(body), media_type=GEOJSON)


@router.get(
    "/collections/{collection_id}/queryables",
    summary="The properties a filter, sortby or properties may name, as JSON Schema",
    response_class=Response,
    responses={200: {"content": {SCHEMA_JSON: {}, "application/json": {}}}},
)
async def queryables(
    request: Request,
    q: ItemsQuery = Depends(),
    f: str | None = Query(None, description="json: the same document as application/json (for GDAL 3.6)"),
    features: Features = Depends(get_features),
):
    known = await features.queryables(q.src, q.collection)
    url = f"{_base(request)}/collections/{q.collection_id}/queryables"
    media = "application/json" if f == "json" else SCHEMA_JSON
    return Response(json.dumps(queryables_schema(known, url, q.collection_id)), media_type=media)


def queryables_schema(known: dict[str, str], url: str, title: str) -> dict:
    """JSON Schema of the queryables (OGC API – Features Part 3), plus the draft list GDAL 3.6 reads."""
    props = {}
    for name, kind in known.items():
        if kind == "geometry":
            props[name] = {"title": "area outline", "format": "geometry-any", "x-ogc-role": "primary-geometry"}
        else:
            props[name] = {"title": name, "type": kind}
            if name == "id":
                props[name]["x-ogc-role"] = "id"
    return {
        "$schema": "https://json-schema.org/draft/2019-09/schema",
        "$id": url,
        "type": "object",
        "title": title,
        "properties": props,
        "additionalProperties": False,
        "queryables": [{"id": n, "type": k} for n, k in known.items() if k != "geometry"],
    }
