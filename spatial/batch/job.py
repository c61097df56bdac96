"""One batch job: load a place at a date, protect it, compute its indices and its local summary, as table rows.

Pure computation (no HTTP, no Dask): it runs the same in a Dask worker, a test or a loop. Every problem of the
input — a missing or hostile path, a file that is not what its name says, wrong columns, no population — is
caught and returned as one ``failed`` row with the message, so the run goes on.

Disclosure: like the service, every number comes from the protected table (:func:`spatial.disclosure.protect`
at ``threshold``, default the service's 10): areas with a count from 1 to threshold − 1 are withheld and left
out of every statistic; ``n_areas`` and ``population`` count the published areas.
"""

from __future__ import annotations

import logging
import posixpath
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

import numpy as np
import pandas as pd

from ..disclosure import protect, protect_frame
from ..errors import ValidationError, problem
from .manifest import Job
from .table import clean

log = logging.getLogger("segmap.batch")
HIGH_HIGH = "lisa_high_high_fdr"  # the local summary's index name in the table
URL_SCHEMES = ("s3", "gs", "gcs", "az", "abfs", "abfss", "http", "https", "hdfs", "file")
_URL = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*)://")
MAX_ERROR = 2000


@dataclass(frozen=True)
class Options:
    """What every job of a run computes (picklable: it travels to the workers)."""

    indices: tuple[str, ...] | None = None  # None: every aspatial index (multigroup ones with 2+ groups)
    permutations: int = 199  # simulations for p-values and intervals of the indices
    local_permutations: int | None = None  # None: chosen for the FDR correction (spatial.local)
    seed: int = 0
    alpha: float = 0.05
    disclosure_threshold: int = 10
    max_vertices: int | None = 50_000_000
    max_bytes: int = 1 << 30  # what a file may decode to (zip members, Parquet pages, a URL's bytes)
    outputs: str | None = None  # folder for per-place outputs (local results as GeoParquet, maps)


def _open(path: str, what: str, limit: int) -> tuple[str | bytes, str | None]:
    """A path the loaders may read: a local file, or the bytes of an fsspec URL with its file name.

    GDAL virtual paths (/vsizip/, /vsicurl/ …) are refused: the format is chosen from the extension and the
    bytes must match it, as for an upload."""
    low = path.lower()
    if "/vsi" in low or low.startswith("vsi"):
        raise ValidationError(
            problem("hostile_path", f"{what} {path!r} is a GDAL virtual path (/vsi…); give a file path or a URL")
        )
    m = _URL.match(path)
    if m:
        if m.group(1).lower() not in URL_SCHEMES:
            raise ValidationError(problem("hostile_path", f"{what} {path!r}: URL scheme not one of {URL_SCHEMES}"))
        import fsspec

        with fsspec.open(path, "rb") as fh:
            data = fh.read(limit + 1)
        if len(data) > limit:
            raise ValidationError(problem("too_large", f"{what} {path!r} is over {limit:,} bytes"))
        return data, posixpath.basename(urlparse(path).path)
    if not Path(path).is_file():
        raise ValidationError(problem("not_found", f"{what} file not found: {path}"))
    return path, None


def load(job: Job, opts: Options):
    """The job's dataset, through the loaders every upload goes through."""
    from ..dataset import Metadata, check_column_names
    from ..io import load_dataset

    check_column_names(groups=job.groups, total=job.total, key=job.key, boundary_key=job.boundary_key)
    boundaries, bname = _open(job.boundaries, "boundaries", opts.max_bytes)
    counts, cname = _open(job.counts, "counts", opts.max_bytes) if job.counts else (None, None)
    return load_dataset(
        boundaries,
        boundaries_filename=bname,
        groups=list(job.groups),
        total=job.total,
        counts=counts,
        counts_filename=cname,
        key=job.key,
        boundary_key=job.boundary_key,
        name_col=job.name_col,
        max_vertices=opts.max_vertices,
        max_uncompressed_bytes=opts.max_bytes,
        tolerance=job.tolerance,
        meta=Metadata(name=job.place, source=Path(job.boundaries).name),
    )


def failed(job: Job, message: str, group: str | None = None) -> dict:
    return {"place": job.place, "date": job.date, "group": group, "status": "failed", "error": message[:MAX_ERROR]}


def _message(exc: Exception) -> str:
    if isinstance(exc, ValidationError):
        return "; ".join(p.message for p in exc.problems)
    return f"{type(exc).__name__}: {exc}"


def _index_names(opts: Options, n_groups: int) -> tuple[list[str], list[str]]:
    """(two-group, multigroup) index names this run computes."""
    from ..indices import get, names

    if opts.indices is None:
        return names("two_group", spatial=False), (names("multigroup", spatial=False) if n_groups >= 2 else [])
    specs = [get(n) for n in opts.indices]
    return [s.name for s in specs if s.kind == "two_group"], [s.name for s in specs if s.kind == "multigroup"]


def _index_rows(job: Job, base: dict, group: str, results: dict) -> list[dict]:
    return [
        {
            **base,
            "group": group,
            "index": name,
            "value": clean(r.value),
            "ci_low": clean(r.ci_low),
            "ci_high": clean(r.ci_high),
            "p_value": clean(r.p_value),
            "value_bias_corrected": clean(r.value_bias_corrected),
            "status": "ok",
        }
        for name, r in results.items()
    ]


def _high_high(job: Job, ds, group: str, opts: Options):
    """Share of ``group`` living in FDR-significant high-high LISA clusters; areas and people there."""
    from ..local import local_statistic

    res = local_statistic(
        ds,
        group,
        "lisa",
        total=job.total,
        permutations=opts.local_permutations,
        seed=opts.seed,
        alpha=opts.alpha,
        correction="fdr",
    )
    x, t = ds.counts(group, job.total)
    inside = pd.Index(ds.ids).isin(res.ids[np.asarray(res.labels) == "high_high"])  # hashed: np.isin sorts text
    row = {
        "group": group,
        "index": HIGH_HIGH,
        "value": float(x[inside].sum() / x.sum()) if x.sum() > 0 else None,
        "p_value": clean(res.summary.get("global_moran", {}).get("p_value")),
        "n_areas": int(inside.sum()),
        "population": float(t[inside].sum()),
        "status": "ok",
    }
    return row, res


def _group(job: Job, public, group: str, two: list[str], opts: Options, base: dict, writer) -> list[dict]:
    from ..indices.compute import compute_indices

    ds = public.dataset
    try:
        rows = []
        if two:
            res = compute_indices(
                ds, groups=(group,), total=job.total, indices=two, permutations=opts.permutations, seed=opts.seed
            )
            rows = _index_rows(job, base, group, res)
        row, local = _high_high(job, ds, group, opts)
        rows.append({**base, **row})
        if opts.outputs:
            write_local(job, public, group, local, opts.outputs, writer)
        return rows
    except Exception as exc:  # this group only: the others and the run go on
        if not isinstance(exc, ValidationError):
            log.warning("job %r %r group %r failed: %r", job.place, job.date, group, exc)
        return [{**failed(job, _message(exc), group), **{k: base[k] for k in ("n_areas", "population")}}]


def write_local(job: Job, public, group: str, local, outputs: str, writer: Callable | None) -> None:
    """Per-place outputs: the LISA result as GeoParquet (withheld areas kept, with null values), and a map."""
    from ..export import local_frame
    from .national import part_name

    folder = Path(outputs) / part_name(job.place, job.date).removesuffix(".parquet")
    folder.mkdir(parents=True, exist_ok=True)
    frame = protect_frame(local_frame(public.dataset, local, geometry=True, wgs84=False), public)
    frame["label"] = frame["label"].astype(str)
    tmp = folder / f".lisa_{group}.parquet.tmp"
    frame.to_parquet(tmp, index=False)
    tmp.replace(folder / f"lisa_{group}.parquet")
    if writer is not None:
        writer(public, group, folder / f"lisa_{group}.png", permutations=local.permutations, seed=local.seed)


def run_job(job: Job, opts: Options, writer: Callable | None = None) -> list[dict]:
    """The table rows of one job; never raises for a problem of its input (a ``failed`` row instead)."""
    try:
        public = protect(load(job, opts), opts.disclosure_threshold)
        ds = public.dataset
        population = float(ds.column(job.total or ds.total).sum())
        if not population > 0:
            raise ValidationError(
                problem("empty_population", f"{job.place!r} has no population in its published areas")
            )
        two, multi = _index_names(opts, len(job.groups))
    except Exception as exc:  # any input problem, even one the loaders did not foresee, fails this job only
        if not isinstance(exc, ValidationError):
            log.warning("job %r %r failed: %r", job.place, job.date, exc)
        return [failed(job, _message(exc))]
    base = {"place": job.place, "date": job.date, "n_areas": ds.n, "population": population, "error": None}
    rows = []
    for group in job.groups:
        rows += _group(job, public, group, two, opts, base, writer)
    if multi:
        from ..indices.compute import compute_indices

        label = "+".join(job.groups)
        try:
            res = compute_indices(
                ds,
                groups=list(job.groups),
                total=job.total,
                indices=multi,
                permutations=opts.permutations,
                seed=opts.seed,
            )
            rows += _index_rows(job, base, label, res)
        except Exception as exc:
            rows.append({**failed(job, _message(exc), label), "n_areas": ds.n, "population": population})
    return rows
