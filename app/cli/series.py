"""`segmap series`: the series of the service's data directory (datasets of one place at several dates)."""

from __future__ import annotations

import json
import sys
from pathlib import Path


def add_data_dir(p) -> None:
    p.add_argument(
        "--data-dir",
        type=Path,
        help="the service's data directory (default: ./var, or SEGMAP_DATA_DIR); a fresh one gets the bundled "
        "samples, as at the first `segmap serve`",
    )


def open_registry(args):
    """The registry of the data directory; a directory without a catalogue is set up as `segmap serve` would."""
    from app.registry import Registry, register_bundled
    from app.settings import Settings

    settings = Settings(**({"data_dir": args.data_dir} if args.data_dir else {}))
    fresh = not (settings.data_dir / "catalog.sqlite").is_file()
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    registry = Registry(settings.data_dir, sweep=False)
    if fresh and settings.register_bundled:
        print(f"segmap: {settings.data_dir} is new: registering the bundled samples", file=sys.stderr)
        register_bundled(registry, settings.bundled_dir)
    return registry, settings


def register(subparsers) -> None:
    p = subparsers.add_parser("series", help="list series, or show one series' datasets and geographies")
    p.add_argument("action", nargs="?", choices=("list", "show"), default="list")
    p.add_argument("series", nargs="?", metavar="ID", help="the series to show")
    p.add_argument("--format", choices=("table", "json"), default="table")
    add_data_dir(p)
    p.set_defaults(func=run)


def run(args) -> int:
    from app import series
    from app.problems import ProblemError
    from spatial.errors import ValidationError, problem

    registry, _ = open_registry(args)
    if args.action == "show" or args.series:
        if not args.series:
            raise ValidationError(problem("bad_parameter", "Name the series to show: segmap series show ID"))
        try:
            body = series.describe_series(registry, args.series, "")
        except ProblemError as err:  # unknown series: an input error, with the hint
            raise ValidationError(problem("unknown_series", err.detail)) from None
        sys.stdout.write(json.dumps(body, indent=2) + "\n" if args.format == "json" else show_table(body))
    else:
        body = series.list_series(registry, "")
        sys.stdout.write(json.dumps(body, indent=2) + "\n" if args.format == "json" else list_table(body))
    return 0


def list_table(body: dict) -> str:
    lines = [f"{'series':28s} {'datasets':>8s}  {'first':10s}  {'last':10s}", "-" * 62]
    lines += [f"{s['id']:28s} {s['n_datasets']:>8d}  {s['first']:10s}  {s['last']:10s}" for s in body["series"]]
    if not body["series"]:
        lines.append("(none: upload datasets with the fields `series` and `date`)")
    return "\n".join(lines) + "\n"


def show_table(body: dict) -> str:
    lines = [f"series {body['id']}: {body['n_datasets']} datasets", ""]
    lines += [f"{'date':12s} {'dataset':28s} {'areas':>6s}  geography", "-" * 66]
    lines += [f"{d['date']:12s} {d['id']:28s} {d['n_areas']:>6d}  {d['geography']}" for d in body["datasets"]]
    for c in body["geography_changes"]:
        lines.append(
            f"geography changes between {c['from']} and {c['to']} ({c['n_areas_from']} → {c['n_areas_to']} areas)"
        )
    return "\n".join(lines) + "\n"
