"""Local statistics over HTTP: the same fields as `segmap local`, as GeoJSON or CSV."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request

from .. import statistics
from ..http import attachment, cached, etag_for
from ..params import LocalQuery

router = APIRouter(prefix="/v1/datasets", tags=["statistics"])


@router.get("/{dataset_id}/local", summary="Local statistics per area (LISA, Gi*, LQ …)")
async def local(request: Request, q: LocalQuery = Depends()):
    etag = etag_for("local", q.src.key(), sorted(request.query_params.multi_items()))
    if q.format == "csv":
        name = f"{q.src.id}-{q.options['statistic']}.csv"
        media, headers = "text/csv; charset=utf-8", attachment(name)
    else:
        media, headers = "application/geo+json", {}
    return await cached(
        request, etag, lambda: statistics.local_body(q), source=q.src, media_type=media, headers=headers
    )
