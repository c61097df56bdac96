"""Informal settlements over HTTP: a settlements upload becomes a new derived dataset."""
from __future__ import annotations

from fastapi import APIRouter, Depends, File, Form, Request, UploadFile
from fastapi.responses import JSONResponse

from spatial.cancel import checkpoint
from spatial.dataset import AreaDataset, Metadata
from spatial.errors import ValidationError, problem

from ..deps import get_dataset, get_registry, get_settings, require_key
from ..registry import ID_PATTERN
from ..settings import Settings
from .datasets import public, safe_filename

router = APIRouter(prefix="/v1/datasets", tags=["informal settlements"])


@router.post("/{dataset_id}/informal", status_code=201, dependencies=[Depends(require_key)],
             summary="Overlay informal settlements on a dataset's areas → a new dataset with an `informal` group")
async def informal(
    request: Request, dataset_id: str,
    settlements: UploadFile = File(..., description="settlement polygons or points (GeoJSON, GeoPackage, zipped Shapefile …)"),
    population: str | None = Form(None, description="population column of the settlements"),
    sliver_m2: float = Form(1.0, ge=0, le=1e6), title: str | None = Form(None),
    id: str | None = Form(None, description="id of the new dataset (default: <dataset>-informal)"),
    ds: AreaDataset = Depends(get_dataset), registry=Depends(get_registry), settings: Settings = Depends(get_settings),
):
    name = safe_filename(settlements.filename, "settlements")
    data = await settlements.read()
    new_id = id or f"{dataset_id}-informal"
    if not ID_PATTERN.match(new_id):
        raise ValidationError(problem("bad_id", f"Dataset id {new_id!r} must be 1–63 lower-case letters, digits, '-' or '_'"))
    if registry.info(new_id) is not None:
        raise ValidationError(problem("exists", f"Dataset {new_id!r} exists; pass another `id` or DELETE it first"), code="exists")

    def build():
        from spatial.informal import load_settlements, overlay
        from spatial.io import read_boundaries
        layer = read_boundaries(data, name, max_vertices=settings.max_vertices,
                                max_uncompressed_bytes=int(settings.max_uncompressed_mb * 2**20))
        sett = load_settlements(layer, population=population)
        res = overlay(ds, sett, population=population, sliver_m2=sliver_m2)
        res.dataset.meta = Metadata(name=title or f"{ds.meta.name} + informal settlements", source=ds.meta.source,
                                    year=ds.meta.year, description=f"settlements from {name}")
        checkpoint()  # a timed-out or abandoned upload is not stored after its client got a 503
        return registry.put(new_id, res.dataset, derived_from=dataset_id), res

    info, res = await request.app.state.heavy.run(build)
    body = public(info, request)
    body["summary"] = res.summary
    body["notes"] = [n.to_dict() for n in res.notes]
    return JSONResponse(body, status_code=201, headers={"Location": body["links"]["self"]})
