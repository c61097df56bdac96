from fastapi import APIRouter, Depends

from ..deps import get_registry

router = APIRouter(tags=["service"])


@router.get("/health", summary="Liveness and registry check")
async def health(registry=Depends(get_registry)):  # a tiny read: no thread hop
    return {"status": "ok", "datasets": len(registry.list())}
