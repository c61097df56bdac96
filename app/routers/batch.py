"""Batch results over HTTP: upload a `segmap batch` result table, then read its comparison report."""

from __future__ import annotations

from fastapi import APIRouter, Depends, File, Path, Request, UploadFile
from fastapi.responses import HTMLResponse, JSONResponse

from .. import batch
from ..deps import get_heavy, get_settings, require_key
from ..http import HeavyWork, cached
from ..settings import Settings

router = APIRouter(prefix="/v1/batch-results", tags=["batch results"])


@router.post(
    "",
    status_code=201,
    dependencies=[Depends(require_key)],
    summary="Upload a batch result table (results.parquet of `segmap batch`) → its report's id",
)
async def upload(
    request: Request,
    table: UploadFile = File(..., description="results.parquet written by segmap batch"),
    settings: Settings = Depends(get_settings),
    heavy: HeavyWork = Depends(get_heavy),
):
    data = await table.read()
    table_id, rows, jobs = await heavy.run(batch.save, data, table.filename or "", settings.data_dir)
    link = f"{str(request.base_url).rstrip('/')}/v1/batch-results/{table_id}"
    body = {"id": table_id, "rows": rows, "jobs": jobs, "links": {"report": link}}
    return JSONResponse(body, status_code=201, headers={"Location": link})


@router.get(
    "/{result_id}",
    response_class=HTMLResponse,
    summary="The comparison report of an uploaded batch result (one offline HTML page)",
)
async def report(
    request: Request,
    result_id: str = Path(..., description="id returned by POST /v1/batch-results", max_length=64),
    settings: Settings = Depends(get_settings),
    heavy: HeavyWork = Depends(get_heavy),
):
    from maps.assets import RENDER_VERSION

    # The id is a hash of the table: the page changes only with the code that draws it.
    async def make():
        return await heavy.run(batch.report, result_id, settings.data_dir)

    batch.report_exists(result_id, settings.data_dir)
    etag = f'"{result_id}-{RENDER_VERSION}"'
    return await cached(request, etag, make, media_type="text/html; charset=utf-8", max_age=3600)
