"""City-wide indices over HTTP: the same names and fields as `segmap indices --format json`."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request

from .. import statistics
from ..http import cached, etag_for
from ..params import IndicesQuery

router = APIRouter(prefix="/v1/datasets", tags=["statistics"])


@router.get("/{dataset_id}/indices", summary="City-wide segregation indices with inference")
async def indices(request: Request, q: IndicesQuery = Depends()):
    etag = etag_for("indices", q.src.key(), q.other and q.other.key(), sorted(request.query_params.multi_items()))
    return await cached(request, etag, lambda: statistics.indices_json(q), source=q.src)
