"""Downloads of a local result as GeoPackage, GeoParquet, FlatGeobuf or CSV (disclosure applied); mounted with
the statistics."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Path, Query, Request

from .. import downloads
from ..deps import Source, get_settings, get_source
from ..downloads import FILES, Format
from ..http import attachment, cached, etag_for
from ..params import LocalQuery, local_permutations
from ..settings import Settings

router = APIRouter(prefix="/v1/datasets", tags=["downloads"])


def local_download_query(
    statistic: str = Path(..., description="lisa, gi_star, lq, entropy or bivariate_lisa"),
    group: str | None = Query(None, description="group column (default: the dataset's first group)"),
    weights: str = Query("queen", description="queen, rook, knn, distance or kernel"),
    k: int | None = Query(None, ge=1, le=100),
    distance: float | None = Query(None, gt=0),
    permutations: int | None = Depends(local_permutations),
    seed: int = Query(0, ge=0, le=2**32 - 1),
    alpha: float = Query(0.05, gt=0, lt=1),
    correction: str = Query("fdr", description="fdr, bonferroni or none"),
    other: str | None = None,
    smoothing: str | None = Query(None, description="eb: empirical Bayes"),
    src: Source = Depends(get_source),
    settings: Settings = Depends(get_settings),
) -> LocalQuery:
    """The parameters of GET …/local (checked by the same class), with the statistic in the path."""
    return LocalQuery(
        group, statistic, None, weights, k, distance, permutations, seed, alpha, correction, other, smoothing,
        "csv", src, settings,
    )  # fmt: skip


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
