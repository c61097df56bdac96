"""The registry as the API shows it: public descriptions of datasets, and how new ones enter (uploads and
informal-settlement overlays, read and stored on the heavy pool with the service's limits)."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass

from fastapi import UploadFile

from spatial.cancel import checkpoint
from spatial.dataset import AreaDataset, Metadata, check_column_names
from spatial.errors import ValidationError, problem

from . import linked
from .deps import method_for, threshold_for
from .http import HeavyWork
from .registry import ID_PATTERN, Registry
from .settings import Settings

PUBLIC_FIELDS = (
    "id",
    "title",
    "source",
    "year",
    "crs",
    "bounds",
    "n_areas",
    "total",
    "groups",
    "name_col",
    "region_col",
    "licence",
    "description",
    "derived_from",
    "version",
    "series",
    "date",
)


def describe(info: dict, settings: Settings, base_url: str) -> dict:
    """What anyone may read about a dataset, with links to its outputs."""
    out = {k: info.get(k) for k in PUBLIC_FIELDS}
    out["disclosure_threshold"] = threshold_for(info, settings, owner=False)
    out["disclosure_method"] = method_for(info, settings)
    here = f"{base_url}/v1/datasets/{info['id']}"
    out["links"] = {
        "self": here,
        "indices": f"{here}/indices",
        "local": f"{here}/local",
        "tilejson": f"{here}/tilejson.json",
        "map": f"{base_url}/maps/{info['id']}",
    }
    if info.get("series"):
        out["links"]["series"] = f"{base_url}/v1/series/{info['series']}"
    return out


def safe_filename(name: str | None, what: str) -> str:
    """The client's file name is only a format hint: keep its base name, never use it as a path."""
    base = os.path.basename((name or "").replace("\\", "/")).strip()
    if not base or base.startswith(".") and base.count(".") == 1:
        raise ValidationError(
            problem(
                "bad_filename",
                f"The {what} upload needs a file name with an extension such as .gpkg, .geojson, .zip or .csv",
            )
        )
    return re.sub(r"[^\w.\-]", "_", base)[:200]


def check_new_id(registry: Registry, new_id: str | None, hint: str) -> None:
    if new_id is None:
        return
    if not ID_PATTERN.match(new_id):
        raise ValidationError(
            problem("bad_id", f"Dataset id {new_id!r} must be 1–63 lower-case letters, digits, '-' or '_'")
        )
    if registry.info(new_id) is not None:
        raise ValidationError(problem("exists", f"Dataset {new_id!r} exists; {hint}"), code="exists")


def check_series(registry: Registry, up: Upload) -> None:
    """Refuse a series upload whose date another dataset of the series has, before reading any file."""
    from .series_fields import check_series_fields, series_date_taken

    series, date = check_series_fields(up.series, up.date, up.year)
    other = registry.date_taken(series, date) if series else None
    if other:
        raise ValidationError(series_date_taken(series, date, other))
    up.date = date


@dataclass
class Upload:
    """The fields of POST /v1/datasets (see routers.datasets)."""

    boundaries: UploadFile
    counts: UploadFile | None
    groups: list[str]
    total: str | None = None
    key: str | None = None
    boundary_key: str | None = None
    name_col: str | None = None
    region_col: str | None = None
    title: str | None = None
    year: int | None = None
    source: str | None = None
    id: str | None = None
    drop_unmatched: bool = False
    disclosure: dict | None = None
    tolerance: float = 0
    series: str | None = None
    date: str | None = None


def _limits(settings: Settings) -> dict:
    # limits hold while reading, before anything is decoded or repaired
    return {"max_vertices": settings.max_vertices, "max_uncompressed_bytes": int(settings.max_uncompressed_mb * 2**20)}


async def add(up: Upload, registry: Registry, settings: Settings, heavy: HeavyWork) -> tuple[dict, list]:
    """Read, check and store an upload: its catalogue row and the geometry repairs made."""
    bname = safe_filename(up.boundaries.filename, "boundaries")
    cname = safe_filename(up.counts.filename, "counts") if up.counts is not None and up.counts.filename else None
    if not up.groups:
        raise ValidationError(problem("missing_groups", "Name at least one group column in `groups`"))
    # Declared columns are published (pages, tiles, tables): refuse names that could carry markup or formulas.
    check_column_names(
        group=up.groups,
        total=up.total,
        key=up.key,
        boundary_key=up.boundary_key,
        name_col=up.name_col,
        region_col=up.region_col,
    )
    check_new_id(registry, up.id, "choose another id or DELETE it first")
    check_series(registry, up)
    bbytes = await up.boundaries.read()
    cbytes = await up.counts.read() if cname else None
    if not bbytes:
        raise ValidationError(problem("empty_upload", "The boundaries file is empty"))
    meta = Metadata(name=up.title or os.path.splitext(bname)[0], source=up.source, year=up.year)

    def build():
        from spatial.io import load_dataset

        ds = load_dataset(
            bbytes,
            groups=up.groups,
            total=up.total,
            counts=cbytes,
            key=up.key,
            boundary_key=up.boundary_key,
            name_col=up.name_col,
            region_col=up.region_col,
            drop_unmatched=up.drop_unmatched,
            tolerance=up.tolerance,
            boundaries_filename=bname,
            counts_filename=cname,
            meta=meta,
            **_limits(settings),
        )
        new_id = up.id or registry.new_id(meta.name)
        checkpoint()  # a timed-out or abandoned upload is not stored after its client got a 503
        owner = "api_key" if settings.api_key else None
        with linked.audited(registry, settings, ds, up.disclosure, up.date, up.year) as disclosure:  # same date
            return registry.put(
                new_id, ds, owner_key=owner, disclosure=disclosure, series=up.series, date=up.date
            ), ds.repairs

    return await heavy.run(build)


async def add_informal(
    ds: AreaDataset,
    dataset_id: str,
    settlements: UploadFile,
    *,
    population: str | None,
    sliver_m2: float,
    title: str | None,
    new_id: str | None,
    registry: Registry,
    settings: Settings,
    heavy: HeavyWork,
):
    """Overlay uploaded settlements on a dataset's areas and store the result as a new dataset with an
    ``informal`` group: its catalogue row and the overlay result (summary, notes)."""
    name = safe_filename(settlements.filename, "settlements")
    data = await settlements.read()
    new_id = new_id or f"{dataset_id}-informal"
    check_new_id(registry, new_id, "pass another `id` or DELETE it first")

    def build():
        from spatial.informal import load_settlements, overlay
        from spatial.io import read_boundaries

        layer = read_boundaries(data, name, **_limits(settings))
        res = overlay(ds, load_settlements(layer, population=population), population=population, sliver_m2=sliver_m2)
        res.dataset.meta = Metadata(
            name=title or f"{ds.meta.name} + informal settlements",
            source=ds.meta.source,
            year=ds.meta.year,
            description=f"settlements from {name}",
        )
        checkpoint()  # a timed-out or abandoned upload is not stored after its client got a 503
        src = registry.info(dataset_id) or {}  # the same people as its source: audited with the source's date
        with linked.audited(registry, settings, res.dataset, None, src.get("date"), src.get("year")) as disclosure:
            return registry.put(new_id, res.dataset, derived_from=dataset_id, disclosure=disclosure), res

    return await heavy.run(build)
