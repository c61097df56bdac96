"""Series over HTTP: list series, and describe one (its datasets in time order, with their geographies)."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request

from .. import series
from ..deps import get_registry
from ..registry import Registry

router = APIRouter(prefix="/v1/series", tags=["series"])


def _base(request: Request) -> str:
    return str(request.base_url).rstrip("/")


@router.get("", summary="List series (datasets of one place at several dates)")
def list_series(request: Request, registry: Registry = Depends(get_registry)):
    return series.list_series(registry, _base(request))


@router.get("/{series_id}", summary="A series' datasets in time order, with their geographies")
def get_series(request: Request, series_id: str, registry: Registry = Depends(get_registry)):
    return series.describe_series(registry, series_id, _base(request))
