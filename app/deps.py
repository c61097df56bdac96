"""Shared request dependencies: settings, registry, the dataset named in the path, API key."""
from __future__ import annotations

import hmac

from fastapi import Depends, Header, Path, Request

from spatial.dataset import AreaDataset

from .problems import ProblemError, not_found
from .registry import Registry
from .settings import Settings


def get_settings(request: Request) -> Settings:
    return request.app.state.settings


def get_registry(request: Request) -> Registry:
    return request.app.state.registry


def get_dataset(dataset_id: str = Path(..., description="dataset id, as listed by GET /v1/datasets"),
                registry: Registry = Depends(get_registry)) -> AreaDataset:
    ds = registry.load(dataset_id)
    if ds is None:
        raise not_found("dataset", dataset_id, "List the available ones with GET /v1/datasets.")
    return ds


def has_key(settings: Settings, key: str | None) -> bool:
    return bool(settings.api_key) and key is not None and hmac.compare_digest(key.encode(), settings.api_key.encode())


def is_owner(settings: Settings = Depends(get_settings), x_api_key: str | None = Header(None)) -> bool:
    """True when the caller may see raw (unprotected) counts."""
    return has_key(settings, x_api_key)


def require_key(settings: Settings = Depends(get_settings), x_api_key: str | None = Header(None)) -> None:
    if settings.api_key and not has_key(settings, x_api_key):
        raise ProblemError(401, "API key required", "This write needs a valid X-API-Key header.", code="unauthorised",
                           headers={"WWW-Authenticate": "X-API-Key"})


def threshold_for(info: dict | None, settings: Settings, owner: bool) -> int:
    """Counts below this are hidden from this caller: none for the owner, else the dataset's own
    threshold (set at upload) or the service's default."""
    if owner:
        return 0
    return int(((info or {}).get("disclosure") or {}).get("threshold", settings.disclosure_threshold))
