"""The jobs of a batch run: from a manifest (CSV or YAML, one job per row) or one national Parquet file.

A malformed manifest is refused as a whole before anything runs, with every problem on its line; a row
whose *file* is missing, hostile or wrong is not a manifest problem: that job fails on its own, recorded in
the result table, and the run goes on.
"""

from __future__ import annotations

import csv
import io
import re
from dataclasses import dataclass, field
from pathlib import Path

from ..dataset import SAFE_COLUMN
from ..errors import ValidationError, problem

REQUIRED = ("place", "boundaries", "groups")
OPTIONAL = ("date", "counts", "key", "total", "boundary_key", "name_col", "memory", "tolerance")
MAX_TEXT = 200  # place and date are free text shown in reports: bounded, no control characters
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgt]?i?b?)?\s*$", re.IGNORECASE)


class ManifestError(ValidationError):
    """A manifest that cannot be run: each problem names its line."""


@dataclass(frozen=True)
class Job:
    """One place at one date. Paths are absolute (or fsspec URLs): workers must see them."""

    place: str
    date: str
    boundaries: str
    groups: tuple[str, ...]
    counts: str | None = None
    key: str | None = None
    total: str | None = None
    boundary_key: str | None = None
    name_col: str | None = None
    memory: int | None = None  # bytes this job needs, when the manifest says (a Dask resource)
    tolerance: float = 0
    line: int = 0
    extra: dict = field(default_factory=dict, compare=False, hash=False)

    @property
    def key_id(self) -> tuple[str, str]:
        return (self.place, self.date)


def parse_size(text: str) -> int:
    """'8GB', '512 MiB', '2e9' → bytes (powers of 1024 for every unit)."""
    m = _SIZE.match(str(text))
    if not m:
        raise ValueError(f"memory {text!r} is not a size such as 4GB or 512MB")
    unit = (m.group(2) or "").lower().rstrip("b").rstrip("i")
    return int(float(m.group(1)) * 1024 ** " kmgt".index(unit or " "))


def _resolve(raw: str, base: Path) -> str:
    """A path relative to the manifest's folder; URLs and /vsi strings are kept as written (the job judges them)."""
    raw = raw.strip()
    if _URL.match(raw) or raw.lower().lstrip("/").startswith("vsi"):
        return raw
    path = Path(raw).expanduser()
    return str(path if path.is_absolute() else (base / path).resolve())


def _groups(value) -> list[str]:
    if isinstance(value, (list, tuple)):
        return [str(v).strip() for v in value if str(v).strip()]
    return [g for g in re.split(r"[;|\s]+", str(value or "").strip()) if g]


def _text(row: dict, name: str) -> str | None:
    value = row.get(name)
    if value is None:
        return None
    value = str(value).strip()
    return value or None


def _job(row: dict, line: int, base: Path, errors: list[str]) -> Job | None:
    """One row as a job, or None with its problems appended to ``errors``."""
    bad = []
    place, date = _text(row, "place"), _text(row, "date") or ""
    for name, value in (("place", place), ("date", date)):
        if value and (len(value) > MAX_TEXT or _CONTROL.search(value)):
            bad.append(f"{name} must be at most {MAX_TEXT} characters without control characters")
    if not place:
        bad.append("place is empty")
    if not _text(row, "boundaries"):
        bad.append("boundaries is empty: give the path of the boundary file")
    groups = _groups(row.get("groups"))
    if not groups:
        bad.append("groups is empty: name at least one group column (several separated by ';')")
    counts, key = _text(row, "counts"), _text(row, "key")
    if counts and not key:
        bad.append("counts needs key: the column that joins it to the boundaries")
    columns = [
        *groups,
        *(c for c in (key, _text(row, "total"), _text(row, "boundary_key"), _text(row, "name_col")) if c),
    ]
    bad += [
        f"column name {c!r} must be letters, digits or '_', not starting with a digit"
        for c in columns
        if not SAFE_COLUMN.fullmatch(c)
    ]
    memory = tolerance = None
    try:
        memory = parse_size(row["memory"]) if _text(row, "memory") else None
        tolerance = float(_text(row, "tolerance") or 0)
        if not tolerance >= 0:
            raise ValueError("tolerance must be a number of people ≥ 0")
    except ValueError as exc:
        bad.append(str(exc))
    if bad:
        errors += [f"line {line}: {b}" for b in bad]
        return None
    return Job(
        place=place,
        date=date,
        boundaries=_resolve(_text(row, "boundaries"), base),
        groups=tuple(dict.fromkeys(groups)),
        counts=_resolve(counts, base) if counts else None,
        key=key,
        total=_text(row, "total"),
        boundary_key=_text(row, "boundary_key"),
        name_col=_text(row, "name_col"),
        memory=memory,
        tolerance=tolerance or 0,
        line=line,
    )


def _csv_rows(text: str) -> tuple[list[tuple[int, dict]], list[str], int]:
    reader = csv.reader(io.StringIO(text))
    header, rows = None, []
    for fields in reader:
        if not any(f.strip() for f in fields) or fields[0].lstrip().startswith("#"):
            continue
        if header is None:
            header = [f.strip().lower() for f in fields]
            header_line = reader.line_num
            continue
        if len(fields) != len(header):
            rows.append((reader.line_num, {"__width__": len(fields)}))
            continue
        rows.append((reader.line_num, dict(zip(header, fields))))
    return rows, header or [], header_line if header else 1


def _yaml_rows(text: str) -> tuple[list[tuple[int, dict]], list[str], int]:
    import yaml

    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}: " if mark else ""
        raise ManifestError(
            problem("bad_manifest", f"{where}not valid YAML ({getattr(exc, 'problem', exc)})")
        ) from None
    if isinstance(data, dict) and "jobs" in data:
        node = next(v for k, v in node.value if k.value == "jobs")
        data = data["jobs"]
    if not isinstance(data, list) or not all(isinstance(r, dict) for r in data):
        raise ManifestError(
            problem("bad_manifest", "line 1: a YAML manifest is a list of jobs (mappings), or jobs: [...]")
        )
    rows = [
        (n.start_mark.line + 1, {str(k).strip().lower(): v for k, v in r.items()}) for n, r in zip(node.value, data)
    ]
    header = sorted({k for _, r in rows for k in r})
    return rows, header, 1


def read_manifest(path: str | Path) -> list[Job]:
    """Every job of a CSV or YAML manifest, or a :class:`ManifestError` listing each problem by line."""
    path = Path(path)
    if not path.is_file():
        raise ManifestError(problem("not_found", f"Manifest not found: {path}"))
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError:
        raise ManifestError(problem("bad_encoding", f"The manifest {path.name} is not UTF-8 text")) from None
    yaml_file = path.suffix.lower() in (".yaml", ".yml")
    rows, header, header_line = (_yaml_rows if yaml_file else _csv_rows)(text)
    errors = []
    unknown = [c for c in header if c not in (*REQUIRED, *OPTIONAL)]
    missing = [c for c in REQUIRED if c not in header]
    if unknown or missing:
        what = ([f"unknown columns {unknown}"] if unknown else []) + ([f"missing columns {missing}"] if missing else [])
        errors.append(f"line {header_line}: {'; '.join(what)}; columns are {[*REQUIRED, *OPTIONAL]}")
    jobs, seen = [], {}
    for line, row in rows:
        if "__width__" in row:
            errors.append(f"line {line}: {row['__width__']} fields where the header has {len(header)}")
            continue
        job = None if missing or unknown else _job(row, line, path.parent.resolve(), errors)
        if job is None:
            continue
        if job.key_id in seen:
            errors.append(
                f"line {line}: place {job.place!r} at date {job.date!r} is already on line {seen[job.key_id]}"
            )
        seen.setdefault(job.key_id, line)
        jobs.append(job)
    if not rows and not errors:
        errors.append(f"line {header_line}: the manifest has no jobs")
    if errors:
        raise ManifestError([problem("bad_manifest", e) for e in errors])
    return jobs


def split_national(*args, **kwargs) -> list[Job]:
    """One job per place × date of a national Parquet file (see :mod:`.national`)."""
    from .national import split

    return split(*args, **kwargs)
