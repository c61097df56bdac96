"""Overlapping areas (spatial/overlaps.py) on the way into and out of the registry.

* Into it: :meth:`Registry.put <app.registry.Registry.put>` refuses a dataset whose areas overlap each other (free
  for a dataset :func:`spatial.dataset.validate` checked) and records its version as checked.
* Out of it: a dataset stored before the check existed is checked the first time it is read for a caller without
  the key (:func:`app.deps.load_source`, which every public output goes through), once per version: the result
  is kept in the catalogue's settings table for every worker. One that fails is withheld from public outputs
  with a 422 naming the overlapping areas and what its owner should do; the owner still reads and deletes it.
"""

from __future__ import annotations

import json

from spatial.errors import Problem, ValidationError
from spatial.lru import LRU
from spatial.overlaps import check_dataset, is_checked, refusal_of

OK = "ok"
_MISSING = object()
_seen = LRU(4096)  # (catalogue, id, version) → refusal or None: the settings table read once per process


def _key(dataset_id: str, version: str) -> str:
    return f"overlaps:{dataset_id}:{version}"


def before_put(ds) -> None:
    """Refuse a dataset whose areas overlap (ValidationError → 422), before anything is written."""
    check_dataset(ds)


def passed(registry, dataset_id: str, version: str) -> None:
    """Record that this version passed (put checked it): its first public read does not check it again."""
    _record(registry, dataset_id, version, None)


def refuse_stored(registry, info: dict, ds) -> None:
    """For a caller without the key: a 422 if this stored version's areas overlap each other."""
    refusal = stored_refusal(registry, info, ds)
    if refusal is not None:
        raise ValidationError(refusal)


def known_clean(registry, info: dict) -> bool:
    """Whether this version is known not to overlap, without reading it (a 422 if known to): large versions' tiles
    are served from the disk cache before the version is read, so only once this is known (app.tilesource)."""
    refusal = _recorded(registry, info["id"], info["version"])
    if isinstance(refusal, Problem):
        raise ValidationError(refusal)
    return refusal is None


def _recorded(registry, dataset_id: str, version: str):
    """The recorded refusal, None when it passed, ``_MISSING`` when never checked."""
    memo = (str(registry.root), dataset_id, version)
    seen = _seen.get(memo, _MISSING)
    if seen is not _MISSING:
        return seen
    value = registry.setting(_key(dataset_id, version))
    if value is None:
        return _MISSING
    seen = _refusal(value)
    _seen.put(memo, seen)
    return seen


def _refusal(value: str) -> Problem | None:
    return None if value == OK else Problem(**json.loads(value))


def stored_refusal(registry, info: dict, ds) -> Problem | None:
    """The refusal of one stored version (None when its areas do not overlap), measured once per version."""
    refusal = _recorded(registry, info["id"], info["version"])
    if refusal is _MISSING:  # stored before the check existed (or a put's record not yet written): measured once
        refusal = _record(registry, info["id"], info["version"], None if is_checked(ds) else _legacy_refusal(info, ds))
    return refusal


def _legacy_refusal(info: dict, ds) -> Problem | None:
    why = (
        f"Dataset {info['id']!r} was stored before overlapping areas were refused, and is withheld from public "
        "outputs until its owner deletes it or uploads it again as one dataset per level: "
    )
    return refusal_of(ds.areas.geometry.values, ds.ids, why)


def _record(registry, dataset_id: str, version: str, refusal: Problem | None) -> Problem | None:
    """Keep a version's result for every worker; the kept one (the first result stays: every worker measures the
    same shapes)."""
    value = OK if refusal is None else json.dumps(refusal.__dict__, default=str)
    kept = _refusal(registry.set_once(_key(dataset_id, version), value))
    _seen.put((str(registry.root), dataset_id, version), kept)
    return kept
