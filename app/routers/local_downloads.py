"""Downloads of a local result as GeoPackage, GeoParquet, FlatGeobuf or CSV (disclosure applied); mounted with
the statistics."""

from __future__ import annotations

import inspect
from typing import get_type_hints

from fastapi import APIRouter, Depends, Path, Request

from .. import downloads
from ..downloads import FILES, Format
from ..http import attachment, cached, etag_for
from ..params import LocalQuery

router = APIRouter(prefix="/v1/datasets", tags=["downloads"])


def local_download_query(**params) -> LocalQuery:
    """The parameters of GET …/local (checked by the same class), with the statistic in the path."""
    return LocalQuery(**params, format="csv")


def _download_signature() -> inspect.Signature:
    """LocalQuery's own parameters (one list, so a new one reaches downloads too), but the statistic is a path
    segment and the file format is the path's extension."""
    sig, types = inspect.signature(LocalQuery.__init__), get_type_hints(LocalQuery.__init__)  # resolved in params
    params = [p.replace(annotation=types[p.name]) for p in sig.parameters.values() if p.name not in ("self", "format")]
    statistic = Path(..., description="lisa, gi_star, lq, entropy or bivariate_lisa")
    params = [p.replace(default=statistic) if p.name == "statistic" else p for p in params]
    return sig.replace(parameters=params, return_annotation=LocalQuery)


local_download_query.__signature__ = _download_signature()


@router.get(
    "/{dataset_id}/local/{statistic}/download.{fmt}",
    summary="A local statistic per area (as GET …/local) as GeoPackage, GeoParquet, FlatGeobuf or CSV",
    responses=FILES,
)
async def local_download(request: Request, fmt: Format, q: LocalQuery = Depends(local_download_query)):
    etag = etag_for("download", "local", fmt, q.src.key(), sorted(request.query_params.multi_items()), q.options)
    name = f"{q.src.id}-{q.options['statistic']}-{q.options['group']}"
    return await cached(
        request,
        etag,
        lambda: downloads.download("local", fmt, name, q),
        source=q.src,
        media_type=downloads.media_type(fmt),
        headers=attachment(f"{name}.{fmt}"),
    )
