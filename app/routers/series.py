"""Series over HTTP: the datasets of one place at several dates, the trend of every index, and change."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Query, Request

from spatial.errors import ValidationError, problem

from .. import series
from ..deps import get_registry, get_settings, is_owner
from ..http import cached, etag_for
from ..params import SEED, simulations
from ..registry import Registry
from ..settings import Settings

router = APIRouter(prefix="/v1/series", tags=["series"])
stats_router = APIRouter(prefix="/v1/series", tags=["series"])  # mounted with the statistics (settings.statistics)


def _base(request: Request) -> str:
    return str(request.base_url).rstrip("/")


def members(
    series_id: str,
    registry: Registry = Depends(get_registry),
    settings: Settings = Depends(get_settings),
    owner: bool = Depends(is_owner),
) -> list[series.Member]:
    """Every date of the series, each as this caller may see it (its protected table)."""
    return series.load_members(registry, settings, series_id, owner)


def _etag(what: str, request: Request, found: list[series.Member]) -> str:
    return etag_for(what, [m.source.key() for m in found], sorted(request.query_params.multi_items()))


@router.get("", summary="List series (datasets of one place at several dates)")
def list_series(request: Request, registry: Registry = Depends(get_registry)):
    return series.list_series(registry, _base(request))


@router.get("/{series_id}", summary="A series' datasets in time order, with their geographies")
def get_series(request: Request, series_id: str, registry: Registry = Depends(get_registry)):
    return series.describe_series(registry, series_id, _base(request))


def trend_query(
    group: list[str] | None = Query(None, description="group column(s) (default: the first); multigroup uses all"),
    total: str | None = Query(None, description="total column (default: each dataset's)"),
    index: list[str] | None = Query(None, description="index names (default: all aspatial)"),
    permutations: int = Depends(simulations),
    seed: int = Query(0, ge=0, le=2**32 - 1, description=SEED),
    baseline: str | None = Query(None, description="date the changes are measured from (default: the first; none)"),
    null: str | None = Query(None, description="random_allocation or permutation"),
    format: str = Query("json", description="json or csv"),
) -> series.TrendQuery:
    if format not in ("json", "csv"):
        raise ValidationError(problem("bad_parameter", "format must be json or csv"))
    return series.TrendQuery(group, total, index, permutations, seed, baseline, null, format)


@stats_router.get("/{series_id}/indices", summary="Every index at every date, and its change, as one tidy table")
async def trend(
    request: Request,
    series_id: str,
    q: series.TrendQuery = Depends(trend_query),
    found: list[series.Member] = Depends(members),
):
    series.trend_table_checks(found, q)  # 4xx before any computation is queued
    media = "text/csv; charset=utf-8" if q.format == "csv" else "application/json"
    return await cached(
        request,
        _etag("series-trend", request, found),
        lambda: series.trend_body(series_id, found, q),
        source=found[-1].source,
        media_type=media,
    )
