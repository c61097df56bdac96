"""The dataset registry over HTTP: list, describe, upload, delete."""
from __future__ import annotations

import os
import re
from typing import Literal

from fastapi import APIRouter, Depends, File, Form, Request, Response, UploadFile

from spatial.cancel import checkpoint
from spatial.dataset import Metadata, check_column_names
from spatial.errors import ValidationError, problem

from ..deps import get_registry, get_settings, method_for, require_key, threshold_for
from ..http import cached, etag_for
from ..problems import not_found
from ..registry import ID_PATTERN, Registry
from ..settings import Settings

router = APIRouter(prefix="/v1/datasets", tags=["datasets"])
PUBLIC_FIELDS = ("id", "title", "source", "year", "crs", "bounds", "n_areas", "total", "groups", "name_col",
                 "region_col", "licence", "description", "derived_from", "version")


def public(info: dict, request: Request) -> dict:
    out = {k: info.get(k) for k in PUBLIC_FIELDS}
    settings = request.app.state.settings
    out["disclosure_threshold"] = threshold_for(info, settings, owner=False)
    out["disclosure_method"] = method_for(info, settings)
    base = str(request.base_url).rstrip("/")
    i = info["id"]
    out["links"] = {"self": f"{base}/v1/datasets/{i}", "indices": f"{base}/v1/datasets/{i}/indices",
                    "local": f"{base}/v1/datasets/{i}/local", "tilejson": f"{base}/v1/datasets/{i}/tilejson.json",
                    "map": f"{base}/maps/{i}"}
    return out


def safe_filename(name: str | None, what: str) -> str:
    """The client's file name is only a format hint: keep its base name, never use it as a path."""
    base = os.path.basename((name or "").replace("\\", "/")).strip()
    if not base or base.startswith(".") and base.count(".") == 1:
        raise ValidationError(problem("bad_filename", f"The {what} upload needs a file name with an extension such as .gpkg, .geojson, .zip or .csv"))
    return re.sub(r"[^\w.\-]", "_", base)[:200]


@router.get("", summary="List datasets")
def list_datasets(request: Request, registry: Registry = Depends(get_registry)):
    return {"datasets": [public(d, request) for d in registry.list()]}


@router.get("/{dataset_id}", summary="Describe one dataset")
def get_dataset_info(dataset_id: str, request: Request, registry: Registry = Depends(get_registry)):
    info = registry.info(dataset_id)
    if info is None:
        raise not_found("dataset", dataset_id, "List the available ones with GET /v1/datasets.")
    return cached(request, etag_for("dataset", info["version"], dataset_id), lambda: _json(public(info, request)), 60)


def _json(data):
    from fastapi.responses import JSONResponse
    return JSONResponse(data)


def _split(values: list[str] | None) -> list[str]:
    out = []
    for v in values or []:
        out += [p.strip() for p in v.split(",") if p.strip()]
    return out


@router.post("", status_code=201, summary="Upload a dataset (boundaries + optional count table)",
             dependencies=[Depends(require_key)])
async def upload_dataset(
    request: Request,
    boundaries: UploadFile = File(..., description="GeoPackage, GeoJSON, zipped Shapefile, GeoParquet or FlatGeobuf"),
    counts: UploadFile | None = File(None, description="CSV or Parquet count table joined on `key`"),
    groups: list[str] = Form(..., description="group columns (repeat the field or separate with commas)"),
    total: str | None = Form(None, description="total population column (default: sum of the groups)"),
    key: str | None = Form(None, description="join key of the count table (and the area id)"),
    boundary_key: str | None = Form(None, description="join key in the boundaries when named differently"),
    name_col: str | None = Form(None), region_col: str | None = Form(None),
    title: str | None = Form(None), year: int | None = Form(None, ge=1000, le=3000), source: str | None = Form(None),
    id: str | None = Form(None, description="dataset id (default: from the title)"),
    drop_unmatched: bool = Form(False),
    disclosure_threshold: int | None = Form(None, ge=0, le=1000, description="counts below it are hidden in this dataset's "
                                            "public outputs (default: the service's SEGMAP_DISCLOSURE_THRESHOLD; 0 disables)"),
    disclosure_method: Literal["suppress", "cell_key"] | None = Form(
        None, description="suppress: areas with small counts are withheld; cell_key: every count perturbed by its cell "
                          "key (default: the service's SEGMAP_DISCLOSURE_METHOD)"),
    tolerance: float = Form(0, ge=0, le=1_000_000, description="survey estimates: groups may exceed the total by up to "
                            "this many people per area (alone or added up); those areas are clipped to the total and "
                            "listed in `repairs` (default 0: refuse)"),
    registry: Registry = Depends(get_registry), settings: Settings = Depends(get_settings),
):
    bname = safe_filename(boundaries.filename, "boundaries")
    cname = safe_filename(counts.filename, "counts") if counts is not None and counts.filename else None
    group_list = _split(groups)
    if not group_list:
        raise ValidationError(problem("missing_groups", "Name at least one group column in `groups`"))
    # Declared columns are published (pages, tiles, tables): refuse names that could carry markup or formulas.
    check_column_names(group=group_list, total=total, key=key, boundary_key=boundary_key, name_col=name_col,
                       region_col=region_col)
    if id is not None and not ID_PATTERN.match(id):
        raise ValidationError(problem("bad_id", f"Dataset id {id!r} must be 1–63 lower-case letters, digits, '-' or '_'"))
    if id is not None and registry.info(id) is not None:
        raise ValidationError(problem("exists", f"Dataset {id!r} exists; choose another id or DELETE it first"), code="exists")
    bbytes = await boundaries.read()
    cbytes = await counts.read() if cname else None
    if not bbytes:
        raise ValidationError(problem("empty_upload", "The boundaries file is empty"))
    meta = Metadata(name=title or os.path.splitext(bname)[0], source=source, year=year)

    def build():
        from spatial.io import load_dataset
        ds = load_dataset(bbytes, groups=group_list, total=total, counts=cbytes, key=key, boundary_key=boundary_key,
                          name_col=name_col, region_col=region_col, drop_unmatched=drop_unmatched,
                          boundaries_filename=bname, counts_filename=cname, meta=meta,
                          # limits hold while reading, before anything is decoded or repaired
                          max_vertices=settings.max_vertices,
                          max_uncompressed_bytes=int(settings.max_uncompressed_mb * 2**20), tolerance=tolerance)
        new_id = id or registry.new_id(meta.name)
        disclosure = {k: v for k, v in (("threshold", disclosure_threshold), ("method", disclosure_method))
                      if v is not None} or None
        checkpoint()  # a timed-out or abandoned upload is not stored after its client got a 503
        return registry.put(new_id, ds, owner_key="api_key" if settings.api_key else None, disclosure=disclosure), ds.repairs

    info, repairs = await request.app.state.heavy.run(build)
    body = public(info, request)
    body["repairs"] = [p.to_dict() for p in repairs]  # geometry fixed with make_valid, counts clipped: reported
    return Response(content=_json(body).body, status_code=201, media_type="application/json",
                    headers={"Location": body["links"]["self"]})


@router.delete("/{dataset_id}", status_code=204, summary="Delete a dataset", dependencies=[Depends(require_key)])
def delete_dataset(dataset_id: str, request: Request, registry: Registry = Depends(get_registry)):
    if not registry.delete(dataset_id):
        raise not_found("dataset", dataset_id, "List the available ones with GET /v1/datasets.")
    request.app.state.cache.drop(dataset_id)
    return Response(status_code=204)
