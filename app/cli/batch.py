"""`segmap batch`: the same indices for many places and dates, on Dask (a LocalCluster or a cluster)."""

from __future__ import annotations

import functools
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

from spatial.errors import ValidationError, problem

from .choices import INDICES

if TYPE_CHECKING:
    from spatial.batch.job import Options

MANIFESTS = (".csv", ".yaml", ".yml")
NATIONAL = (".parquet", ".geoparquet")


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "batch",
        help="indices for many places and dates at once (Dask)",
        description="Run the indices and a local summary for every job of a manifest (CSV or YAML: place, date, "
        "boundaries, counts, key, groups, total) or every place × date of one national (Geo)Parquet file, on a "
        "local Dask cluster or an existing one. Writes OUT/results.parquet and OUT/results.csv.",
    )
    p.add_argument("input", metavar="INPUT", help="manifest (.csv, .yaml) or national file/folder (.parquet)")
    p.add_argument("-o", "--out", required=True, metavar="OUT", help="output folder")
    p.add_argument("--workers", type=int, metavar="N", help="local worker processes (default: one per core)")
    p.add_argument("--scheduler", metavar="tcp://HOST:PORT", help="use this running Dask scheduler instead")
    p.add_argument("--memory-limit", default="auto", metavar="SIZE", help="per local worker, e.g. 4GB (default auto)")
    p.add_argument("--resume", action="store_true", help="skip jobs already in OUT (finished or failed)")
    p.add_argument("--report", metavar="report.html", help="also write the comparison report (offline HTML)")
    p.add_argument(
        "--index",
        action="append",
        metavar="NAME",
        help=f"index (repeatable; default all aspatial): {', '.join(INDICES)}",
    )
    p.add_argument(
        "--permutations", "--simulations", dest="permutations", type=int, default=199, metavar="N",
        help="simulations for the indices' p-values and intervals (default 199)",
    )  # fmt: skip
    p.add_argument("--local-permutations", type=int, metavar="N", help="LISA permutations (default: enough for FDR)")
    p.add_argument("--seed", type=int, default=0, metavar="S", help="seed of every job (default 0)")
    p.add_argument("--alpha", type=float, default=0.05, help="FDR level of the high-high clusters (default 0.05)")
    p.add_argument(
        "--disclosure-threshold", type=int, metavar="N",
        help="withhold areas with a count from 1 to N-1, as the service does (default: the service's, 10; 0 disables)",
    )  # fmt: skip
    p.add_argument("--outputs", action="store_true", help="per place: LISA results as GeoParquet in OUT/places/")
    p.add_argument("--maps", action="store_true", help="with --outputs: a PNG map of the clusters too")
    national = p.add_argument_group("national file (INPUT is .parquet or a partitioned folder)")
    national.add_argument("--group", action="append", metavar="COL", help="group column (repeatable)")
    national.add_argument("--total", metavar="COL", help="total column (default: the sum of the groups)")
    national.add_argument("--key", metavar="COL", help="area id column")
    national.add_argument("--place-col", default="place", metavar="COL", help="place column (default place)")
    national.add_argument("--date-col", default="date", metavar="COL", help="date column, if any (default date)")
    p.set_defaults(func=run)


def _manifest(args):
    """The manifest's jobs (refused as a whole, naming lines, before anything is written), or None for a national
    file, which is split into the output folder."""
    from spatial.batch import read_manifest

    path = Path(args.input)
    if path.suffix.lower() in MANIFESTS:
        return read_manifest(path)
    if path.is_dir() or path.suffix.lower() in NATIONAL:
        if not args.group:
            raise ValidationError(problem("no_group", "A national file needs --group (and --total, --key as needed)"))
        return None
    raise ValidationError(
        problem("unsupported_format", f"INPUT {path.name!r}: give a manifest (.csv, .yaml) or a national .parquet")
    )


def _national(args, done: set):
    from spatial.batch import split_national

    return split_national(
        args.input, args.out, groups=args.group, total=args.total, key=args.key,
        place_col=args.place_col, date_col=args.date_col, skip=done,
    )  # fmt: skip


def _options(args) -> Options:
    from app.settings import Settings
    from spatial.batch.job import Options
    from spatial.indices import get as get_index

    threshold = args.disclosure_threshold
    if threshold is None:
        threshold = Settings().disclosure_threshold
    if args.permutations < 1:
        raise ValidationError(problem("bad_parameter", "--permutations must be at least 1: the table has p-values"))
    if args.maps and not args.outputs:
        raise ValidationError(problem("bad_parameter", "--maps draws per-place maps: add --outputs"))
    bad = [
        what
        for what, wrong in (
            ("--alpha must be between 0 and 1", not 0 < args.alpha < 1),
            ("--workers must be at least 1", args.workers is not None and args.workers < 1),
            ("--local-permutations must be 0 or more", (args.local_permutations or 0) < 0),
            ("--disclosure-threshold must be 0 or more", threshold < 0),
        )
        if wrong
    ]
    if bad:
        raise ValidationError([problem("bad_parameter", b) for b in bad])
    for name in args.index or ():  # an unknown index is refused here, not in every job
        get_index(name)
    return Options(
        indices=tuple(args.index) if args.index else None,
        permutations=args.permutations,
        local_permutations=args.local_permutations,
        seed=args.seed,
        alpha=args.alpha,
        disclosure_threshold=threshold,
        outputs=str(Path(args.out).resolve() / "places") if args.outputs else None,
    )


class Progress:
    """A one-line bar on stderr, only on a terminal."""

    def __init__(self, total: int, stream=sys.stderr):
        self.total, self.done, self.failed, self.stream = total, 0, 0, stream
        self.show = stream.isatty() and total > 0
        self.start = time.monotonic()

    def __call__(self, rows: list[dict]) -> None:
        self.done += 1
        self.failed += any(r.get("status") == "failed" and r.get("group") is None for r in rows)
        if self.show:
            width = 30
            filled = width * self.done // self.total
            rate = self.done / max(time.monotonic() - self.start, 1e-9) * 60
            self.stream.write(
                f"\r[{'#' * filled}{'.' * (width - filled)}] {self.done}/{self.total} jobs, "
                f"{self.failed} failed, {rate:.1f}/min"
            )
            self.stream.flush()
            if self.done == self.total:
                self.stream.write("\n")


def run(args) -> int:
    from spatial.batch.job import run_job
    from spatial.batch.table import Store

    opts = _options(args)
    jobs = _manifest(args)
    store = Store(args.out)
    done = store.done()
    if done and not args.resume:
        raise ValidationError(
            problem(
                "output_exists",
                f"{args.out} already holds results of {len(done)} jobs: add --resume, or choose another -o",
            )
        )
    jobs = jobs if jobs is not None else _national(args, done)
    pending = [j for j in jobs if j.key_id not in done]
    progress = Progress(len(pending))
    writer = None
    if args.maps:
        from maps.batch_report import place_map as writer

    def record(job, rows):
        store.add(job.place, job.date, rows)
        progress(rows)

    from spatial.batch.engine import run as run_jobs

    started = time.monotonic()
    try:
        if pending:
            run_jobs(pending, functools.partial(run_job, opts=opts, writer=writer), record, workers=args.workers,
                     scheduler=args.scheduler, memory_limit=args.memory_limit)  # fmt: skip
    except KeyboardInterrupt:
        print(
            f"\nsegmap batch: interrupted; {progress.done} finished jobs are kept: rerun with --resume", file=sys.stderr
        )
        raise
    table = store.finish()
    return _summary(args, table, len(jobs), len(pending), time.monotonic() - started)


def _summary(args, table, n_jobs: int, n_run: int, seconds: float) -> int:
    jobs = table.drop_duplicates(["place", "date"])
    failed = table[(table["status"] == "failed")]
    failed_jobs = failed.drop_duplicates(["place", "date"])
    print(
        f"{n_run} jobs run, {n_jobs - n_run} already done, in {seconds:.1f} s; table: {len(table)} rows of {len(jobs)} jobs"
    )
    print(f"results: {Path(args.out) / 'results.parquet'} and results.csv")
    if len(failed_jobs):
        print(f"{len(failed_jobs)} jobs have failures:")
        for r in failed_jobs.head(20).itertuples():
            print(f"  - {r.place} {r.date}{' [' + r.group + ']' if isinstance(r.group, str) else ''}: {r.error}")
    if args.report:
        from maps.batch_report import write_report

        write_report(table, args.report)
        print(f"report: {args.report}")
    return 1 if len(failed_jobs) else 0
