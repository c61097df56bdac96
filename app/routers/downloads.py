"""Downloads of a dataset as GeoPackage, GeoParquet, FlatGeobuf or CSV (disclosure applied)."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request

from .. import downloads
from ..deps import Source, get_source
from ..downloads import FILES, Format
from ..http import attachment, cached, etag_for

router = APIRouter(prefix="/v1/datasets", tags=["downloads"])


@router.get(
    "/{dataset_id}/download.{fmt}",
    summary="The dataset as published (counts, shares; null where withheld): GeoPackage, GeoParquet, FlatGeobuf, CSV",
    responses=FILES,
)
async def dataset_download(request: Request, fmt: Format, src: Source = Depends(get_source)):
    etag = etag_for("download", "dataset", fmt, src.key())
    return await cached(
        request,
        etag,
        lambda: downloads.download("dataset", fmt, src.id, src),
        source=src,
        media_type=downloads.media_type(fmt),
        headers=attachment(f"{src.id}.{fmt}"),
    )
