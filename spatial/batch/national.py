"""One national file (GeoParquet or Parquet, one file or a Hive-partitioned folder) split into one job per
place × date.

The driver reads the file once, sorts it by place and date and writes each piece as its own GeoParquet file
under ``parts/`` of the output folder; every job then reads its piece through the ordinary loaders (format by
extension, signature, page-header limits), like any upload. Workers must see the output folder.
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as pds
import pyarrow.parquet as pq

from ..errors import problem
from ..io import checks
from .manifest import Job, ManifestError


def _strings(column: pa.ChunkedArray) -> list[str]:
    """Place or date values as text (a timestamp at midnight as its date)."""
    if pa.types.is_dictionary(column.type):
        column = column.cast(column.type.value_type)
    return [("" if v is None else str(v).removesuffix(" 00:00:00")) for v in pc.cast(column, pa.string()).to_pylist()]


def part_name(place: str, date: str) -> str:
    """A file name for one piece: readable, and unique by a hash of the exact place and date."""
    slug = re.sub(r"[^A-Za-z0-9_-]+", "-", f"{place}_{date}").strip("-")[:60] or "place"
    digest = hashlib.sha256((place + "\x00" + date).encode()).hexdigest()[:10]
    return f"{slug}-{digest}.parquet"


def _open(path: Path) -> pds.Dataset:
    if path.is_dir():
        return pds.dataset(path, format="parquet", partitioning="hive")
    if not path.is_file():
        raise ManifestError(problem("not_found", f"National file not found: {path}"))
    checks.expect("parquet", checks.head_of(path), path.name)
    return pds.dataset(path, format="parquet")


def _geo_metadata(path: Path, dataset: pds.Dataset) -> dict:
    """The GeoParquet 'geo' key of the file (or of the folder's first file), carried to every piece."""
    meta = dataset.schema.metadata or {}
    if b"geo" not in meta and path.is_dir():
        first = next(iter(dataset.files), None)
        meta = (pq.read_schema(first).metadata or {}) if first else {}
    if b"geo" not in meta:
        raise ManifestError(
            problem("no_geometry", f"{path.name} has no GeoParquet 'geo' metadata: write it with geopandas to_parquet")
        )
    return {b"geo": meta[b"geo"]}


def split(
    path: str | Path,
    out_dir: str | Path,
    *,
    groups,
    total: str | None = None,
    key: str | None = None,
    place_col: str = "place",
    date_col: str = "date",
    skip: set | None = None,
) -> list[Job]:
    """Jobs of every place × date of ``path``; pieces written to ``out_dir/parts`` (except those in ``skip``)."""
    path = Path(path)
    dataset = _open(path)
    names = dataset.schema.names
    if place_col not in names:
        raise ManifestError(
            problem("bad_manifest", f"{path.name} has no column {place_col!r} (its columns: {names[:20]})")
        )
    geo = _geo_metadata(path, dataset)
    table = dataset.to_table()
    if table[place_col].null_count:
        raise ManifestError(problem("bad_manifest", f"{table[place_col].null_count} rows of {path.name} have no place"))
    places = _strings(table[place_col])
    dates = _strings(table[date_col]) if date_col in names else [""] * table.num_rows
    order = pc.sort_indices(pa.table({"p": places, "d": dates}), sort_keys=[("p", "ascending"), ("d", "ascending")])
    table = table.take(order)
    order = order.to_pylist()
    places, dates = [places[i] for i in order], [dates[i] for i in order]
    parts_dir = Path(out_dir) / "parts"
    parts_dir.mkdir(parents=True, exist_ok=True)
    jobs, start, n = [], 0, table.num_rows
    for i in range(1, n + 1):
        if i < n and places[i] == places[start] and dates[i] == dates[start]:
            continue
        place, date = places[start], dates[start]
        target = parts_dir / part_name(place, date)
        if not skip or (place, date) not in skip:
            tmp = target.with_suffix(".tmp")
            pq.write_table(table.slice(start, i - start).replace_schema_metadata(geo), tmp)
            tmp.replace(target)
        jobs.append(Job(place=place, date=date, boundaries=str(target), groups=tuple(groups), total=total, key=key))
        start = i
    return jobs
