"""Vector tiles and TileJSON of a dataset, optionally carrying a local statistic per area."""
from __future__ import annotations

import gc
import math
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import urlencode

import numpy as np
from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.responses import JSONResponse, Response

from spatial.dataset import ID
from spatial.disclosure import WITHHELD, PublicData
from spatial.errors import ValidationError, problem
from spatial.local import ALIASES

from ..deps import Source, get_settings, get_source
from ..http import etag_for, not_modified
from ..problems import ProblemError
from ..settings import Settings
from ..tiles import AGGREGATE_PX, LAYER, MAX_ZOOM, TileAttributes, TileCache, TileIndex, valid_tile

router = APIRouter(prefix="/v1/datasets", tags=["tiles"])
MVT = "application/vnd.mapbox-vector-tile"
# Encoding is CPU-bound: one thread per worker keeps it off FastAPI's 40-thread pool.
_encoder = ThreadPoolExecutor(max_workers=1, thread_name_prefix="segmap-tiles")
_indexes: dict[tuple[str, str], TileIndex] = {}
_properties = TileCache(8)  # per-area columns of a query: ~10 MB each at 100,000 areas


def tile_index(dataset_id: str, version: str, areas) -> TileIndex:
    """The geometry index of one dataset version: geometry is public, so owner and public share it."""
    key = (dataset_id, version)
    if key not in _indexes:
        for old in [k for k in _indexes if k[0] == dataset_id]:
            del _indexes[old]  # a replaced dataset's index is dropped
        _indexes[key] = TileIndex(areas)
        # Once built, a million long-lived geometries need no cyclic GC (they hold no cycles; refcounting
        # still frees them): freezing them stops 50-100 ms gen-2 pauses in the middle of tiles.
        _indexes[key].warm(on_done=gc.freeze)
    return _indexes[key]


def area_properties(data: PublicData, group: str | None, statistic: str | None, permutations: int | None,
                    seed: int, max_permutations: int = 9999) -> TileAttributes:
    """id, name, total, group counts and shares (+ statistic value, p-value, label) per area, all from the
    protected table: withheld areas carry nulls and the label ``suppressed``."""
    ds = data.dataset
    frame = data.areas[[ID] + ([ds.name_col] if ds.name_col else []) + list(ds.count_columns)].copy()
    for g in ds.groups:
        frame[f"{g}_share"] = data.share(g)
    g = group or ds.groups[0]
    if statistic:
        from spatial.local import local_statistic
        res = local_statistic(ds, g, statistic, permutations=permutations, seed=seed, max_permutations=max_permutations)
        frame["value"] = data.expand(res.values)
        if res.p_value is not None:
            frame["p_value"] = data.expand(res.p_value)
        frame["label"] = np.where(data.withheld, WITHHELD, data.expand(res.labels.astype(str)).astype(object))
    columns = {}
    for name in frame.columns:
        values = frame[name].to_numpy()
        if values.dtype.kind in "fiub":
            columns[name] = np.round(values.astype(float), 6)
        else:
            columns[name] = np.array([None if v is None or (isinstance(v, float) and math.isnan(v)) else str(v)
                                      for v in values], dtype=object)
    ratios = {f"{g_}_share": (g_, ds.total) for g_ in ds.groups}
    if statistic and ALIASES.get(statistic, statistic) == "lq" and ds.areas[g].sum() > 0:  # merged: share ÷ city share
        ratios["value"] = (g, ds.total, float(ds.areas[ds.total].sum() / ds.areas[g].sum()))
    return TileAttributes(columns, sums=tuple(ds.count_columns), ratios=ratios,
                          modes=("label",) if "label" in columns else ())


@router.get("/{dataset_id}/tiles/{z}/{x}/{y}.mvt", summary="Mapbox vector tile (Web Mercator)",
            response_class=Response, responses={200: {"content": {MVT: {}}}})
async def tile(
    request: Request, dataset_id: str, z: int = Path(..., ge=0, le=MAX_ZOOM), x: int = Path(..., ge=0), y: int = Path(..., ge=0),
    group: str | None = Query(None, description="group whose local statistic to add"),
    statistic: str | None = Query(None, description="lisa, gi_star, lq … (adds value, p_value, label)"),
    permutations: int | None = Query(None, ge=0, description="default: enough for the correction over these areas, "
                                                            "at most the server's limit"),
    seed: int = Query(0, ge=0, le=2**32 - 1), src: Source = Depends(get_source), settings: Settings = Depends(get_settings),
):
    if not valid_tile(z, x, y):
        raise ProblemError(404, "Tile outside the grid", f"At zoom {z}, x and y run from 0 to {2**z - 1}; got x={x}, y={y}.",
                           code="tile_outside_grid")
    if permutations is not None and permutations > settings.max_permutations:
        raise ValidationError(problem("bad_parameter", f"permutations is limited to {settings.max_permutations}"))
    if group is not None and group not in src.data.groups:
        raise ValidationError(problem("unknown_column", f"No group {group!r}; groups are {list(src.data.groups)}"))
    version = src.version
    query = (group, statistic, permutations, seed)
    etag = etag_for("tile", src.key(), z, x, y, query)
    headers = {"ETag": etag, "Cache-Control": "public, max-age=3600"}
    if not_modified(request, etag):
        return Response(status_code=304, headers=headers)
    disk_key = f"tile:{etag}"
    body = request.app.state.cache.get(disk_key)  # another worker may have encoded it
    if body is None:
        def encode():
            props_key = (src.key(), query)
            props = _properties.get(props_key)
            if props is None:
                props = area_properties(src.data, group, statistic, permutations, seed, settings.max_permutations)
                _properties.put(props_key, props)
            data = tile_index(dataset_id, version, src.data.areas).tile(z, x, y, props)
            request.app.state.cache.put(disk_key, dataset_id, version, data)  # off the event loop
            return data
        # Cancellable (timeout, client gone) like other heavy work; up to 64 distinct tiles queue per worker.
        body = await request.app.state.heavy.run_in(_encoder, 64, encode, key=disk_key)
    return Response(body, media_type=MVT, headers=headers)


@router.get("/{dataset_id}/tilejson.json", summary="TileJSON 3.0.0 describing the dataset's vector tiles")
def tilejson(request: Request, dataset_id: str, group: str | None = None, statistic: str | None = None,
             src: Source = Depends(get_source)):
    info, ds = src.info, src.data
    if group is not None:
        src.dataset.require_declared(group, "group")
    base = str(request.base_url).rstrip("/")
    query = urlencode([(k, v) for k, v in (("group", group), ("statistic", statistic)) if v])
    fields = {ID: "String", ds.total: "Number"}
    if ds.name_col:
        fields[ds.name_col] = "String"
    for g in ds.groups:
        fields[g] = "Number"
        fields[f"{g}_share"] = "Number"
    if statistic:
        fields.update(value="Number", p_value="Number", label="String")
    fields["areas"] = "Number"
    w, s, e, n = info["bounds"]
    return JSONResponse({
        "tilejson": "3.0.0", "name": info["title"], "version": "1.0.0", "scheme": "xyz",
        "tiles": [f"{base}/v1/datasets/{dataset_id}/tiles/{{z}}/{{x}}/{{y}}.mvt" + (f"?{query}" if query else "")],
        "bounds": [w, s, e, n], "center": [(w + e) / 2, (s + n) / 2, 8], "minzoom": 0, "maxzoom": 16,
        "attribution": info.get("source") or "",
        "description": f"Areas smaller than {AGGREGATE_PX}x{AGGREGATE_PX} screen pixels at a zoom are merged into squares of "
                       "that size: counts summed, shares recomputed, label the most common; `areas` says how many merged.",
        "vector_layers": [{"id": LAYER, "fields": fields, "minzoom": 0, "maxzoom": 16}],
    })
