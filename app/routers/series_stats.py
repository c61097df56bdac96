"""Series statistics over HTTP (mounted with the statistics): the trend of every index, decomposition of a change,
local change per area with LISA transitions, and harmonisation — thin calls into app.series / app.series_change."""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter, Depends, Query, Request

from spatial.errors import ValidationError, problem

from .. import series, series_change
from ..deps import get_registry, get_settings, is_owner, load_source
from ..http import cached, json_bytes
from ..params import SEED, local_permutations, simulations
from ..problems import not_found
from ..registry import Registry
from ..settings import Settings

router = APIRouter(prefix="/v1/series", tags=["series"])
members = series.members
_etag = series.request_etag


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


@router.get("/{series_id}/indices", summary="Every index at every date, and its change, as one tidy table")
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


def change_query(
    start: str | None = Query(None, alias="from", description="first date (default: the series' first)"),
    end: str | None = Query(None, alias="to", description="second date (default: the series' last)"),
    group: list[str] | None = Query(None, description="group column(s) (default: the first)"),
    total: str | None = Query(None, description="total column (default: each dataset's)"),
    harmonize: Literal["none", "area", "population"] = Query(
        "none", description="when the areas differ: carry `from`'s counts onto `to`'s areas by area or population"
    ),
    weights: str | None = Query(None, description="dataset id of a finer layer with counts (harmonize=population)"),
) -> series_change.ChangeQuery:
    return series_change.ChangeQuery(start, end, group, total, harmonize, weights)


def _weights(q, registry: Registry, settings: Settings, owner: bool) -> series.Member | None:
    if not q.weights:
        return None
    src = load_source(registry, settings, q.weights, owner)
    if src is None:
        raise not_found("dataset", q.weights, "weights must name a registered dataset (GET /v1/datasets).")
    return series.Member(src.info.get("date") or "", src.info, src)


@router.get("/{series_id}/decomposition", summary="Decompose a change in M, H (Shapley) or D (spatial/attribute)")
async def decomposition(
    request: Request,
    series_id: str,
    index: Literal["M", "H", "D"] = Query("M", description="M or H (Elbers 2021) or D (Rey, Cortes & Knaap 2021)"),
    boot: int = Query(0, ge=0, le=999, description="bootstrap draws for the intervals of M and H's parts"),
    seed: int = Query(0, ge=0, le=2**32 - 1, description=SEED),
    q: series_change.ChangeQuery = Depends(change_query),
    found: list[series.Member] = Depends(members),
    registry: Registry = Depends(get_registry),
    settings: Settings = Depends(get_settings),
    owner: bool = Depends(is_owner),
):
    weights = _weights(q, registry, settings, owner)
    extra = [weights.source.key()] if weights else []

    def make() -> bytes:
        p = series_change.pair(found, q, weights)
        return json_bytes({"series": series_id, **series_change.decomposition(p, index, boot, seed)})

    return await cached(request, _etag("series-decomposition", request, found, extra), make, source=found[-1].source)


@router.get("/{series_id}/change", summary="Local change per area between two dates, and LISA transitions")
async def change(
    request: Request,
    series_id: str,
    alpha: float = Query(0.05, gt=0, lt=1),
    correction: Literal["fdr", "bonferroni", "none"] = Query("fdr"),
    permutations: int | None = Depends(local_permutations),  # LISA's at each date, capped by the server's limit
    seed: int = Query(0, ge=0, le=2**32 - 1, description=SEED),
    format: Literal["json", "geojson", "csv"] = Query("json"),
    q: series_change.ChangeQuery = Depends(change_query),
    found: list[series.Member] = Depends(members),
    registry: Registry = Depends(get_registry),
    settings: Settings = Depends(get_settings),
    owner: bool = Depends(is_owner),
):
    weights = _weights(q, registry, settings, owner)
    extra = [weights.source.key()] if weights else []

    def make() -> bytes:
        p = series_change.pair(found, q, weights)
        frame, summary = series_change.local(p, alpha, correction, permutations, seed, settings.max_permutations)
        return series_change.body(series_id, frame, summary, format)

    media = {"json": "application/json", "geojson": "application/geo+json", "csv": "text/csv; charset=utf-8"}[format]
    etag = _etag("series-change", request, found, extra)
    return await cached(request, etag, make, source=found[-1].source, media_type=media)


@router.get("/{series_id}/harmonize", summary="Carry one date's counts onto another date's areas")
async def harmonize(
    request: Request,
    series_id: str,
    format: Literal["json", "csv"] = Query("json"),
    q: series_change.ChangeQuery = Depends(change_query),
    found: list[series.Member] = Depends(members),
    registry: Registry = Depends(get_registry),
    settings: Settings = Depends(get_settings),
    owner: bool = Depends(is_owner),
):
    if q.harmonize == "none":
        q.harmonize = "area"
    weights = _weights(q, registry, settings, owner)
    extra = [weights.source.key()] if weights else []

    def make() -> bytes:
        return series_change.harmonized_body(series_id, series_change.pair(found, q, weights), format)

    media = "text/csv; charset=utf-8" if format == "csv" else "application/json"
    etag = _etag("series-harmonize", request, found, extra)
    return await cached(request, etag, make, source=found[-1].source, media_type=media)
