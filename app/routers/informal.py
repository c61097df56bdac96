"""Informal settlements over HTTP: a settlements upload becomes a new derived dataset."""

from __future__ import annotations

from fastapi import APIRouter, Depends, File, Form, Request, UploadFile
from fastapi.responses import JSONResponse

from spatial.dataset import AreaDataset

from .. import catalog
from ..deps import get_dataset, get_heavy, get_registry, get_settings, require_key
from ..http import HeavyWork
from ..registry import Registry
from ..settings import Settings

router = APIRouter(prefix="/v1/datasets", tags=["informal settlements"])


@router.post(
    "/{dataset_id}/informal",
    status_code=201,
    dependencies=[Depends(require_key)],
    summary="Overlay informal settlements on a dataset's areas → a new dataset with an `informal` group",
)
async def informal(
    request: Request,
    dataset_id: str,
    settlements: UploadFile = File(
        ..., description="settlement polygons or points (GeoJSON, GeoPackage, zipped Shapefile …)"
    ),
    population: str | None = Form(None, description="population column of the settlements"),
    sliver_m2: float = Form(1.0, ge=0, le=1e6),
    title: str | None = Form(None),
    id: str | None = Form(None, description="id of the new dataset (default: <dataset>-informal)"),
    ds: AreaDataset = Depends(get_dataset),
    registry: Registry = Depends(get_registry),
    settings: Settings = Depends(get_settings),
    heavy: HeavyWork = Depends(get_heavy),
):
    info, res = await catalog.add_informal(
        ds,
        dataset_id,
        settlements,
        population=population,
        sliver_m2=sliver_m2,
        title=title,
        new_id=id,
        registry=registry,
        settings=settings,
        heavy=heavy,
    )
    body = catalog.describe(info, settings, str(request.base_url).rstrip("/"))
    body["summary"] = res.summary
    body["notes"] = [n.to_dict() for n in res.notes]
    return JSONResponse(body, status_code=201, headers={"Location": body["links"]["self"]})
