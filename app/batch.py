"""Batch results in the service: an uploaded result table (``segmap batch``'s results.parquet), checked and
kept under ``DATA_DIR/batch/``, shown as the same comparison report the CLI writes.

Only a table that passes :func:`spatial.batch.table.read_table` is kept (the known columns and types, finite
numbers, known statuses, bounded size), rewritten from the parsed values; the id is a hash of that content,
so the same table uploaded twice has one id and a report never changes under its URL. The table is the batch
run's public output, already computed from protected data (``--disclosure-threshold``): the service shows it,
it holds no counts.
"""

from __future__ import annotations

import hashlib
import io
import os
import re
from pathlib import Path

from .problems import ProblemError

ID = re.compile(r"^[0-9a-f]{16}$")


def folder(data_dir: Path) -> Path:
    path = Path(data_dir) / "batch"
    path.mkdir(parents=True, exist_ok=True)
    return path


def save(data: bytes, filename: str, data_dir: Path) -> tuple[str, int, int]:
    """Check and keep an uploaded table; (id, rows, jobs)."""
    from spatial.batch.table import read_table

    df = read_table(data, filename or "table.parquet")
    buf = io.BytesIO()
    df.to_parquet(buf, index=False)
    body = buf.getvalue()
    table_id = hashlib.sha256(df.to_csv(index=False).encode()).hexdigest()[:16]
    target = folder(data_dir) / f"{table_id}.parquet"
    if not target.exists():
        tmp = target.with_name(f".{table_id}.{os.getpid()}.tmp")
        tmp.write_bytes(body)
        tmp.replace(target)
    return table_id, len(df), int(df[["place", "date"]].drop_duplicates().shape[0])


def report_exists(table_id: str, data_dir: Path) -> Path:
    """The kept table's path; 404 for an unknown (or malformed) id."""
    path = folder(data_dir) / f"{table_id}.parquet"
    if not ID.fullmatch(table_id) or not path.exists():
        raise ProblemError(
            404, "Unknown batch result", f"No batch result {table_id!r}. Upload a table with POST /v1/batch-results.",
            code="unknown_batch_result",
        )  # fmt: skip
    return path


def report(table_id: str, data_dir: Path) -> bytes:
    """The report page of a kept table."""
    import pandas as pd

    from maps.batch_report import render_report

    path = report_exists(table_id, data_dir)
    return render_report(pd.read_parquet(path), f"segmap batch report {table_id}").encode()
