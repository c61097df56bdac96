"""The tidy result table of a batch run, and how it is kept on disk while the run goes.

One row per place, date, group and index (a failed job is one row with its error). Each finished job is
written at once to its own small Parquet file under ``OUT/jobs/`` (temporary name, then rename), so an
interrupted run loses at most the jobs that were running; :meth:`Store.finish` gathers them into
``results.parquet`` and ``results.csv``, sorted, so a resumed run gives the same table as an uninterrupted one.
"""

from __future__ import annotations

import hashlib
import io
import math
import os
from pathlib import Path

import numpy as np
import pandas as pd

from ..errors import ValidationError, problem
from ..export import csv_safe

COLUMNS = (
    "place",
    "date",
    "group",
    "index",
    "value",
    "ci_low",
    "ci_high",
    "p_value",
    "n_areas",
    "population",
    "status",
    "error",
    "value_bias_corrected",  # beside value: the interval (ci_low, ci_high) is of this one
)
TEXT = ("place", "date", "group", "index", "status", "error")
NUMBERS = ("value", "ci_low", "ci_high", "p_value", "population", "value_bias_corrected")
STATUSES = ("ok", "failed")
SORT = ["place", "date", "group", "index"]
MAX_ROWS = 2_000_000  # what an uploaded table may hold (the service)


def frame(rows: list[dict]) -> pd.DataFrame:
    """Rows as the table, columns in order with fixed types (text, float64, nullable integer)."""
    df = pd.DataFrame(rows, columns=list(COLUMNS))
    for c in TEXT:
        df[c] = df[c].astype("string")
    for c in NUMBERS:
        df[c] = pd.to_numeric(df[c], errors="coerce").astype("float64")
    df["n_areas"] = pd.to_numeric(df["n_areas"], errors="coerce").astype("Int64")
    return df


def sort(df: pd.DataFrame) -> pd.DataFrame:
    return df.sort_values(SORT, na_position="first", kind="stable").reset_index(drop=True)


def job_file(place: str, date: str) -> str:
    return hashlib.sha256(f"{place}\x00{date}".encode()).hexdigest()[:24] + ".parquet"


def _atomic_write(path: Path, write) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    write(tmp)
    with open(tmp, "rb") as fh:
        os.fsync(fh.fileno())
    tmp.replace(path)


class Store:
    """The output folder: one file per finished job, then the gathered table."""

    def __init__(self, out: str | Path):
        self.out = Path(out)
        self.jobs_dir = self.out / "jobs"
        self.jobs_dir.mkdir(parents=True, exist_ok=True)

    @property
    def parquet(self) -> Path:
        return self.out / "results.parquet"

    @property
    def csv(self) -> Path:
        return self.out / "results.csv"

    def done(self) -> set[tuple[str, str]]:
        """(place, date) of every job already in the output: its own file or the gathered table."""
        keys = set()
        for path in [self.parquet, *sorted(self.jobs_dir.glob("*.parquet"))]:
            if path.exists():
                df = pd.read_parquet(path, columns=["place", "date"])
                keys |= set(zip(df["place"].astype(str), df["date"].fillna("").astype(str)))
        return keys

    def add(self, place: str, date: str, rows: list[dict]) -> None:
        df = frame(rows)
        _atomic_write(self.jobs_dir / job_file(place, date), lambda p: df.to_parquet(p, index=False))

    def gather(self) -> pd.DataFrame:
        """Every job's rows, once each (a job file wins over an older gathered table), sorted."""
        parts = [pd.read_parquet(p) for p in sorted(self.jobs_dir.glob("*.parquet"))]
        fresh = {(r.place, r.date) for df in parts for r in df[["place", "date"]].drop_duplicates().itertuples()}
        if self.parquet.exists():
            old = pd.read_parquet(self.parquet)
            keep = [(p, d) not in fresh for p, d in zip(old["place"], old["date"])]
            parts.insert(0, old[np.asarray(keep, dtype=bool)])
        return sort(frame(pd.concat(parts).to_dict("records") if parts else []))

    def finish(self) -> pd.DataFrame:
        df = self.gather()
        _atomic_write(self.parquet, lambda p: df.to_parquet(p, index=False))
        _atomic_write(self.csv, lambda p: csv_safe(df).to_csv(p, index=False))
        for path in self.jobs_dir.glob("*.parquet"):  # now in the table
            path.unlink()
        return df


def read_table(data: bytes, name: str = "table") -> pd.DataFrame:
    """An uploaded result table, checked: the columns and types of :data:`COLUMNS`, finite numbers, known
    statuses, bounded size. Anything else is a ValidationError naming what to fix."""
    from ..io import checks, parquet

    checks.expect("counts-parquet", checks.head_of(data), name)
    parquet.check(data, name, 256 << 20)
    try:
        df = pd.read_parquet(io.BytesIO(data))
    except Exception:
        raise ValidationError(problem("unreadable", f"{name!r} is not a readable Parquet table")) from None
    missing = [c for c in COLUMNS[:12] if c not in df.columns]
    if missing:
        raise ValidationError(problem("bad_table", f"The table lacks columns {missing}; upload results.parquet"))
    if len(df) > MAX_ROWS:
        raise ValidationError(problem("too_large", f"The table has {len(df):,} rows; at most {MAX_ROWS:,}"))
    wrong = [
        c for c in (*NUMBERS, "n_areas") if c in df and not (pd.api.types.is_numeric_dtype(df[c]) or df[c].isna().all())
    ]
    if wrong:
        raise ValidationError(
            problem("bad_table", f"The table's columns have the wrong types: {wrong} must be numbers")
        )
    try:
        df = frame(df.reindex(columns=list(COLUMNS)).to_dict("records"))
    except (TypeError, ValueError) as exc:
        raise ValidationError(problem("bad_table", f"The table's columns have the wrong types: {exc}")) from None
    bad = sorted(set(df["status"].dropna()) - set(STATUSES))
    if bad:
        raise ValidationError(problem("bad_table", f"Unknown status values {bad[:5]}; expected {list(STATUSES)}"))
    values = df[list(NUMBERS)].to_numpy(dtype=float)
    if np.isinf(values).any():
        raise ValidationError(problem("bad_table", "The table has infinite numbers; only finite values or nulls"))
    return sort(df)


def clean(value):
    """A number for the table: None for NaN/None."""
    if value is None:
        return None
    value = float(value)
    return None if math.isnan(value) else value
