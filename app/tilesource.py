"""The dataset version a tile request names, without making the request wait for this worker to read it.

A worker's first request for a large version used to read its GeoParquet and protect its table before the tile
(about 1 s at 100,000 areas in each worker, for every version: issue 18). The tile routes ask for their source
here instead. A large version (``LAZY_AREAS`` areas or more) that this worker has not read yet is
:class:`Pending`: it is read in the background (then the shared index and the default layer's attributes are
made ready), and meanwhile its tiles come from the disk cache when another worker has encoded them (the same
key: dataset, version, threshold, method), or are answered provisional and empty, for the client to fetch again.
A statistic layer needs the table itself: its tile reads it at once, as before.

Both dependencies are coroutines: what they do for a pending version (a catalogue row already read, a dict
look-up) is quicker than the two GIL hand-offs of a thread-pool call, which wait for the background read.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import partial

from fastapi import Depends, Header, Path, Query, Request
from starlette.concurrency import run_in_threadpool

from spatial.errors import ValidationError, problem

from . import overlap_guard
from .deps import Source, get_registry, get_settings, has_key, load_source, method_for, threshold_for
from .params import local_permutations
from .problems import not_found
from .registry import Registry
from .settings import Settings
from .tilephases import mark
from .tileservice import Layer

LAZY_AREAS = 50_000


@dataclass(frozen=True)
class Pending:
    """A version this worker is still reading: what a tile's cache key and version token need, and how to read it."""

    id: str
    info: dict
    threshold: int
    method: str | None
    load: Callable[[], Source | None]

    @property
    def version(self) -> str:
        return self.info["version"]

    def key(self, *parts) -> tuple:
        """Equal to the :meth:`Source.key` of the source it will be (no method below a threshold of 2)."""
        return (self.id, self.version, self.threshold, self.method if self.threshold > 1 else None, *parts)


async def tile_source(
    request: Request,
    dataset_id: str = Path(..., description="dataset id, as listed by GET /v1/datasets"),
    registry: Registry = Depends(get_registry),
    settings: Settings = Depends(get_settings),
    x_api_key: str | None = Header(None),
) -> Source | Pending:
    mark("source", path=request.url.path)
    row = registry.info(dataset_id)
    if row is None:
        raise not_found("dataset", dataset_id, "List the available ones with GET /v1/datasets.")
    owner = has_key(settings, x_api_key)
    load = partial(load_source, registry, settings, dataset_id, owner, row)
    threshold, method = threshold_for(row, settings, owner), method_for(row, settings)
    pending = Pending(dataset_id, row, threshold, method, load)
    lazy = (row.get("n_areas") or 0) >= LAZY_AREAS and (owner or overlap_guard.known_clean(registry, row))
    if lazy and request.app.state.tiles.read_later(pending):  # else read now: a stored version is checked first
        mark("source_pending")
        return pending
    src = await run_in_threadpool(load)  # a small version read now (or found in memory), off the event loop
    if src is None:
        raise not_found("dataset", dataset_id, "List the available ones with GET /v1/datasets.")
    return src


async def tile_layer(
    group: str | None = Query(None, description="group whose local statistic to add"),
    statistic: str | None = Query(None, description="lisa, gi_star, lq … (adds value, p_value, label)"),
    permutations: int | None = Depends(local_permutations),
    seed: int = Query(0, ge=0, le=2**32 - 1),
    src: Source | Pending = Depends(tile_source),
) -> Layer:
    """As :func:`app.params.tile_layer`, checked against the catalogue's groups while the source is pending."""
    groups = list(src.data.groups) if isinstance(src, Source) else list(src.info["groups"])
    if group is not None and group not in groups:
        raise ValidationError(problem("unknown_column", f"No group {group!r}; groups are {groups}"))
    return Layer(group, statistic, permutations, seed)
