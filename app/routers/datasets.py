"""The dataset registry over HTTP: list, describe, upload, delete."""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter, Depends, File, Form, Request, Response, UploadFile
from fastapi.responses import JSONResponse

from .. import catalog
from ..cache import DiskCache
from ..deps import get_cache, get_heavy, get_info, get_registry, get_settings, require_key
from ..http import HeavyWork, cached, etag_for, json_bytes
from ..problems import not_found
from ..registry import Registry
from ..settings import Settings

router = APIRouter(prefix="/v1/datasets", tags=["datasets"])


def _base(request: Request) -> str:
    return str(request.base_url).rstrip("/")


@router.get("", summary="List datasets")
def list_datasets(
    request: Request, registry: Registry = Depends(get_registry), settings: Settings = Depends(get_settings)
):
    return {"datasets": [catalog.describe(d, settings, _base(request)) for d in registry.list()]}


@router.get("/{dataset_id}", summary="Describe one dataset")
async def get_dataset_info(
    request: Request, info: dict = Depends(get_info), settings: Settings = Depends(get_settings)
):
    return await cached(
        request,
        etag_for("dataset", info["version"], info["id"]),
        lambda: json_bytes(catalog.describe(info, settings, _base(request))),
        max_age=60,
    )


def _split(values: list[str] | None) -> list[str]:
    return [p.strip() for v in values or [] for p in v.split(",") if p.strip()]


def upload_form(
    boundaries: UploadFile = File(..., description="GeoPackage, GeoJSON, zipped Shapefile, GeoParquet or FlatGeobuf"),
    counts: UploadFile | None = File(None, description="CSV or Parquet count table joined on `key`"),
    groups: list[str] = Form(..., description="group columns (repeat the field or separate with commas)"),
    total: str | None = Form(None, description="total population column (default: sum of the groups)"),
    key: str | None = Form(None, description="join key of the count table (and the area id)"),
    boundary_key: str | None = Form(None, description="join key in the boundaries when named differently"),
    name_col: str | None = Form(None),
    region_col: str | None = Form(None),
    title: str | None = Form(None),
    year: int | None = Form(None, ge=1000, le=3000),
    series: str | None = Form(None, description="series id: the datasets of one place at several dates"),
    date: str | None = Form(None, description="date of the counts, YYYY or YYYY-MM-DD (default: `year`)"),
    source: str | None = Form(None),
    id: str | None = Form(None, description="dataset id (default: from the title)"),
    drop_unmatched: bool = Form(False),
    disclosure_threshold: int | None = Form(
        None,
        ge=0,
        le=1000,
        description="counts below it are hidden in this "
        "dataset's public outputs (default: the service's "
        "SEGMAP_DISCLOSURE_THRESHOLD; 0 disables)",
    ),
    disclosure_method: Literal["suppress", "cell_key"] | None = Form(
        None,
        description="suppress: areas with small counts are withheld; cell_key: every count perturbed by its cell "
        "key (default: the service's SEGMAP_DISCLOSURE_METHOD)",
    ),
    tolerance: float = Form(
        0,
        ge=0,
        le=1_000_000,
        description="survey estimates: groups may exceed the total by up to "
        "this many people per area (alone or added up); those areas are clipped to the total and "
        "listed in `repairs` (default 0: refuse)",
    ),
) -> catalog.Upload:
    disclosure = {
        k: v for k, v in (("threshold", disclosure_threshold), ("method", disclosure_method)) if v is not None
    } or None
    return catalog.Upload(
        boundaries,
        counts,
        _split(groups),
        total,
        key,
        boundary_key,
        name_col,
        region_col,
        title,
        year,
        source,
        id,
        drop_unmatched,
        disclosure,
        tolerance,
        series or None,
        date or None,
    )


@router.post(
    "",
    status_code=201,
    summary="Upload a dataset (boundaries + optional count table)",
    dependencies=[Depends(require_key)],
)
async def upload_dataset(
    request: Request,
    upload: catalog.Upload = Depends(upload_form),
    registry: Registry = Depends(get_registry),
    settings: Settings = Depends(get_settings),
    heavy: HeavyWork = Depends(get_heavy),
):
    info, repairs = await catalog.add(upload, registry, settings, heavy)
    body = catalog.describe(info, settings, _base(request))
    body["repairs"] = [p.to_dict() for p in repairs]  # geometry fixed with make_valid, counts clipped: reported
    return JSONResponse(body, status_code=201, headers={"Location": body["links"]["self"]})


@router.delete("/{dataset_id}", status_code=204, summary="Delete a dataset", dependencies=[Depends(require_key)])
def delete_dataset(dataset_id: str, registry: Registry = Depends(get_registry), cache: DiskCache = Depends(get_cache)):
    if not registry.delete(dataset_id):
        raise not_found("dataset", dataset_id, "List the available ones with GET /v1/datasets.")
    cache.drop(dataset_id)
    return Response(status_code=204)
