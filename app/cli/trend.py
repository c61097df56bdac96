"""`segmap trend`: every index at every date of a series, and its change since a baseline, as one tidy table."""

from __future__ import annotations

import json
import sys

from .choices import INDICES
from .series import add_data_dir, open_registry


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "trend",
        help="indices of a series at every date, and their change, with intervals and p-values",
        description="One tidy table (date, group, index, value, ci_low, ci_high, p_value, kind, from, …): a level "
        "row per date, group and index, and a change row per later date (the difference from --baseline).",
    )
    p.add_argument("series", metavar="SERIES", help="series id (list them with `segmap series`)")
    p.add_argument("--group", metavar="COL", action="append", help="group column, repeatable (default: the first)")
    p.add_argument("--total", metavar="COL", help="total column (default: each dataset's)")
    p.add_argument("--index", metavar="NAME", action="append", help=f"index (repeatable). One of: {', '.join(INDICES)}")
    p.add_argument("--permutations", type=int, default=0, metavar="N", help="simulations for intervals and p-values")
    p.add_argument("--seed", type=int, default=0, metavar="S")
    p.add_argument("--baseline", metavar="DATE", help="date changes are measured from (default: the first; none)")
    p.add_argument("--null", metavar="NAME", help="random_allocation (default) or permutation")
    p.add_argument("--format", choices=("table", "json", "csv"), default="table")
    add_data_dir(p)
    p.set_defaults(func=run)


def run(args) -> int:
    from app import series
    from app.problems import ProblemError
    from spatial.errors import ValidationError, problem

    if args.permutations < 0:
        raise ValidationError(problem("bad_parameter", "--permutations must be 0 or more"))
    registry, settings = open_registry(args)
    try:
        members = series.load_members(registry, settings, args.series, owner=False)
    except ProblemError as err:
        raise ValidationError(problem("unknown_series", err.detail)) from None
    q = series.TrendQuery(
        args.group, args.total, args.index, args.permutations, args.seed, args.baseline, args.null, args.format
    )
    table = series.trend_table(members, q)
    if args.format == "csv":
        sys.stdout.write(series.to_csv(table["rows"]).decode())
    elif args.format == "json":
        sys.stdout.write(json.dumps({"series": args.series, **table}, indent=2) + "\n")
    else:
        sys.stdout.write(format_table(args.series, table))
    for note in table["notes"]:
        print(f"note: {note}", file=sys.stderr)
    return 0


def _f(v) -> str:
    return "" if v is None else f"{v:.4f}"


def format_table(series_id: str, table: dict) -> str:
    lines = [f"series {series_id}" + (f", changes since {table['baseline']}" if table["baseline"] else "")]
    head = f"{'date':12s} {'kind':6s} {'group':26s} {'index':30s} {'value':>8s} {'95% CI':>17s} {'p':>7s}"
    lines += [head, "-" * len(head)]
    for r in table["rows"]:
        ci = f"{_f(r['ci_low'])}–{_f(r['ci_high'])}" if r["ci_low"] is not None else ""
        lines.append(
            f"{r['date']:12s} {r['kind']:6s} {r['group'][:26]:26s} {r['index'][:30]:30s} {_f(r['value']):>8s} "
            f"{ci:>17s} {_f(r['p_value']):>7s}"
        )
    return "\n".join(lines) + "\n"
