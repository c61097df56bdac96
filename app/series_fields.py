"""The series fields of a dataset (series id, date) and its geography's fingerprint, checked and stored by the
registry (:mod:`app.registry`)."""

from __future__ import annotations

import datetime
import hashlib
import re

import numpy as np

from spatial.dataset import AreaDataset
from spatial.errors import ValidationError, problem

ID_PATTERN = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")  # a dataset or series id


DATE_PATTERN = re.compile(r"^\d{4}(-\d{2}-\d{2})?$")


def check_series_fields(series: str | None, date: str | None, year: int | None) -> tuple[str | None, str | None]:
    """A series id and its date (``YYYY`` or ``YYYY-MM-DD``; the year when no date is given), checked: a date
    is checked (and published) with or without a series."""
    if series is not None and not ID_PATTERN.match(series):
        raise ValidationError(
            problem("bad_series", f"Series id {series!r} must be 1–63 lower-case letters, digits, '-' or '_'")
        )
    if date is None and year is not None and series is not None:
        date = f"{int(year):04d}"
    if date is None:
        if series is None:
            return None, None
        raise ValidationError(problem("missing_date", f"A dataset of series {series!r} needs a `date` or a `year`"))
    try:
        ok = bool(DATE_PATTERN.match(date)) and (len(date) == 4 or bool(datetime.date.fromisoformat(date)))
    except ValueError:
        ok = False
    if not ok:
        raise ValidationError(problem("bad_date", f"Date {date!r} must be a year (2020) or a day (2020-12-31)"))
    if year is not None and int(date[:4]) != int(year):
        raise ValidationError(
            problem("bad_date", f"Date {date} and year {year} disagree: give one, or make them agree")
        )
    return series, date


def geography_fingerprint(ds: AreaDataset, wkb=None) -> str:
    """Equal for datasets with the same area ids and shapes in the same CRS: a series shows where geography changed.
    ``wkb``: the areas' 2D WKB when the caller has it already (the registry, writing the file)."""
    import shapely

    order = np.argsort(ds.ids, kind="stable")
    h = hashlib.sha256(str(ds.areas.crs.to_epsg() if ds.areas.crs else None).encode())
    h.update("\x1f".join(map(str, ds.ids[order])).encode())
    for one in shapely.to_wkb(ds.areas.geometry.values[order]) if wkb is None else wkb[order]:
        h.update(one)
    return h.hexdigest()[:16]


def _date_taken(db, series: str, date: str, dataset_id: str | None) -> str | None:
    row = db.execute(
        "SELECT id FROM datasets WHERE series = ? AND date = ? AND id != ?", (series, date, dataset_id or "")
    ).fetchone()
    return row["id"] if row else None


def series_date_taken(series: str, date: str, other: str):
    return problem(
        "duplicate_date",
        f"Series {series!r} already has a dataset dated {date} ({other!r}); give this one another date, "
        f"or DELETE {other!r} first",
    )
