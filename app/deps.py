"""Request dependencies: the service's parts (made in ``main.create_app``'s lifespan), the dataset named in
the path as this caller may see it (read once per request), and the API key."""

from __future__ import annotations

import hmac
from dataclasses import dataclass
from typing import TYPE_CHECKING

from fastapi import Depends, Header, Path, Request

from spatial.dataset import AreaDataset
from spatial.disclosure import PublicData

from . import overlap_guard
from .cache import DiskCache
from .http import HeavyWork
from .problems import ProblemError, not_found
from .registry import Registry
from .settings import Settings

if TYPE_CHECKING:
    from .features import Features
    from .tileservice import TileService


def get_settings(request: Request) -> Settings:
    return request.app.state.settings


def get_registry(request: Request) -> Registry:
    return request.app.state.registry


def get_heavy(request: Request) -> HeavyWork:
    return request.app.state.heavy


def get_cache(request: Request) -> DiskCache:
    return request.app.state.cache


def get_tiles(request: Request) -> TileService:
    return request.app.state.tiles


def get_features(request: Request) -> Features:
    return request.app.state.features


def get_info(
    dataset_id: str = Path(..., description="dataset id, as listed by GET /v1/datasets"),
    registry: Registry = Depends(get_registry),
) -> dict:
    """The dataset's catalogue row (a sync dependency: the read runs off the event loop)."""
    info = registry.info(dataset_id)
    if info is None:
        raise not_found("dataset", dataset_id, "List the available ones with GET /v1/datasets.")
    return info


def get_dataset(
    dataset_id: str = Path(..., description="dataset id, as listed by GET /v1/datasets"),
    registry: Registry = Depends(get_registry),
) -> AreaDataset:
    """The true dataset: only for writes that need it (the caller holds the key)."""
    ds = registry.load(dataset_id)
    if ds is None:
        raise not_found("dataset", dataset_id, "List the available ones with GET /v1/datasets.")
    return ds


@dataclass
class Source:
    """One dataset version as this caller may see it; every read handler works from this alone."""

    id: str
    info: dict
    owner: bool
    threshold: int
    data: PublicData

    @property
    def version(self) -> str:
        return self.info["version"]

    @property
    def dataset(self) -> AreaDataset:
        """The published areas with their protected counts: what every statistic runs on."""
        return self.data.dataset

    def key(self, *parts) -> tuple:
        """What a cached output of this source depends on (datasets with equal content may differ in disclosure)."""
        return (self.id, self.version, self.threshold, self.data.method, *parts)


def load_source(
    registry: Registry, settings: Settings, dataset_id: str, owner: bool, info: dict | None = None
) -> Source | None:
    """The catalogue row and the protected table of one version, read together (``info``: a row already read)."""
    snap = registry.snapshot(dataset_id, info)
    if snap is None:
        return None
    info, ds = snap
    if not owner:  # a dataset stored before overlapping areas were refused is checked once, then withheld if so
        overlap_guard.refuse_stored(registry, info, ds)
    threshold = threshold_for(info, settings, owner)
    method = method_for(info, settings)
    return Source(dataset_id, info, owner, threshold, registry.public(dataset_id, info, ds, threshold, method))


def get_source(
    dataset_id: str = Path(..., description="dataset id, as listed by GET /v1/datasets"),
    registry: Registry = Depends(get_registry),
    settings: Settings = Depends(get_settings),
    x_api_key: str | None = Header(None),
) -> Source:
    source = load_source(registry, settings, dataset_id, has_key(settings, x_api_key))
    if source is None:
        raise not_found("dataset", dataset_id, "List the available ones with GET /v1/datasets.")
    return source


def has_key(settings: Settings, key: str | None) -> bool:
    return bool(settings.api_key) and key is not None and hmac.compare_digest(key.encode(), settings.api_key.encode())


def is_owner(settings: Settings = Depends(get_settings), x_api_key: str | None = Header(None)) -> bool:
    """True when the caller may see raw (unprotected) counts."""
    return has_key(settings, x_api_key)


def require_key(settings: Settings = Depends(get_settings), x_api_key: str | None = Header(None)) -> None:
    if settings.api_key and not has_key(settings, x_api_key):
        raise ProblemError(
            401,
            "API key required",
            "This write needs a valid X-API-Key header.",
            code="unauthorised",
            headers={"WWW-Authenticate": "X-API-Key"},
        )


def threshold_for(info: dict | None, settings: Settings, owner: bool) -> int:
    """Counts below this are hidden from this caller: none for the owner, else the dataset's own
    threshold (set at upload) or the service's default."""
    if owner:
        return 0
    return int(((info or {}).get("disclosure") or {}).get("threshold", settings.disclosure_threshold))


def method_for(info: dict | None, settings: Settings) -> str:
    return str(((info or {}).get("disclosure") or {}).get("method", settings.disclosure_method))
