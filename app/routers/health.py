"""Liveness, and a quiet answer to browsers' favicon requests."""

from fastapi import APIRouter, Depends, Response

from ..deps import get_registry
from ..registry import Registry

router = APIRouter(tags=["service"])


@router.get("/health", summary="Liveness and registry check")
async def health(registry: Registry = Depends(get_registry)):  # a tiny read: no thread hop
    return {"status": "ok", "datasets": len(registry.list())}


@router.get("/favicon.ico", include_in_schema=False)
async def favicon():  # browsers ask for it on every page; answer without an error in their console
    return Response(status_code=204, headers={"Cache-Control": "public, max-age=86400"})
