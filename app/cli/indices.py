"""`segmap indices`: city-wide segregation indices of one or more groups."""

from __future__ import annotations

import argparse
import csv
import json
import math
import sys
import time

from spatial.errors import ValidationError, problem

from .choices import INDICES
from .common import (
    add_dataset_arguments,
    add_group_arguments,
    add_simulation_arguments,
    groups_from_args,
    load_from_args,
    report_repairs,
)

# Kept importable from here for older callers; they live in .common.
__all__ = ["format_table", "load_from_args", "register", "report_repairs", "run"]


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "indices",
        help="city-wide segregation indices",
        description="City-wide segregation indices of a group against the rest of its total, "
        "and multigroup indices over several groups.",
    )
    add_dataset_arguments(p)
    add_group_arguments(
        p, many=True, help="group column; repeat for multigroup indices (the first is the focal one: two-group indices)"
    )
    p.add_argument("--region", metavar="COL", help="region column: decomposes mutual_information into between/within")
    p.add_argument(
        "--index",
        metavar="NAME",
        action="append",
        help=f"index to compute (repeatable; default: all aspatial). One of: {', '.join(INDICES)}",
    )
    p.add_argument("--format", choices=("table", "json", "csv"), default="table")
    add_simulation_arguments(
        p, permutations=0, seed=None, help="simulations for p-values and bias-corrected intervals (0: none)"
    )
    p.add_argument(
        "--null", metavar="NAME", help="null model: random_allocation (default) or permutation (spatial indices)"
    )
    p.add_argument("--compare", metavar="OTHER", help="second boundaries file to compare with (another city or year)")
    p.add_argument("--compare-counts", metavar="TABLE", help="count table of --compare, joined on --key")
    p.add_argument("--compare-group", metavar="COL", help="compare the first group with this group of the same dataset")
    p.add_argument(
        "--multiscalar",
        metavar="METRES",
        type=_distances,
        help="comma-separated distances, e.g. 500,1000,2000,4000: each aspatial two-group index recomputed "
        "on populations summed within each distance (its multiscalar profile)",
    )
    p.set_defaults(func=run)


def _distances(text: str) -> list[float]:
    try:
        distances = [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError("distances are metres separated by commas, e.g. 500,1000,2000,4000") from None
    if not distances or not all(math.isfinite(d) and d > 0 for d in distances):  # nan and inf parse as floats
        raise argparse.ArgumentTypeError(
            f"distances must be finite positive metres, e.g. 500,1000,2000,4000; got {text!r}"
        )
    return distances


class Progress:
    """A one-line progress bar on stderr, shown only once a run has taken more than a second."""

    def __init__(self, stream=sys.stderr, after: float = 1.0):
        self.stream, self.after, self.start, self.shown = stream, after, time.monotonic(), False

    def __call__(self, done: int, total: int) -> None:
        if time.monotonic() - self.start < self.after and done < total:
            return
        if not self.shown and done >= total:
            return
        self.shown = True
        width = 30
        filled = int(width * done / max(total, 1))
        self.stream.write(f"\r[{'#' * filled}{'.' * (width - filled)}] {100 * done // max(total, 1):3d}%")
        if done >= total:
            self.stream.write("\n")
        self.stream.flush()


def run(args) -> int:
    from spatial.indices.compute import IndexOptions, compute_indices

    groups = groups_from_args(args, required=True)
    ds, other = _load(args, groups)
    options = IndexOptions(
        groups=tuple(groups),
        total=args.total,
        indices=tuple(args.index or ()),
        region=args.region,
        permutations=args.permutations,
        seed=args.seed,
        null=args.null,
        compare=other,
        compare_group=args.compare_group,
        multiscalar=tuple(args.multiscalar or ()),
    )
    results = compute_indices(ds, options, progress=Progress() if args.permutations else None)
    WRITERS[args.format](results, ds, sys.stdout)
    return 0


def _load(args, groups: list[str]):
    """This dataset (with the group compared with, if any) and the dataset compared with, if any."""
    if args.compare_counts and not args.compare:
        raise ValidationError(
            problem("bad_parameter", "--compare-counts needs --compare (the boundaries of the other dataset)")
        )
    ds = load_from_args(args, groups + ([args.compare_group] if args.compare_group else []))
    other = None
    if args.compare:
        other = load_from_args(
            args, groups[:1], boundaries=args.compare, counts=args.compare_counts, name_col=None, region_col=None
        )
    return ds, other


CSV_FIELDS = (
    "index",
    "value",
    "p_value",
    "ci_low",
    "ci_high",
    "expected",
    "groups",
    "total",
    "value_bias_corrected",
    "within_noise",
)


def write_json(results, ds, out) -> None:
    json.dump({name: r.to_dict() for name, r in results.items()}, out, indent=2)
    out.write("\n")


def write_csv(results, ds, out) -> None:
    from spatial.export import csv_cell

    w = csv.writer(out)
    w.writerow(CSV_FIELDS)
    for name, r in results.items():
        d = {**r.to_dict(), "index": name}
        d["groups"] = "+".join(d["groups"])
        w.writerow([csv_cell(d.get(f)) for f in CSV_FIELDS])


def write_table(results, ds, out) -> None:
    out.write(format_table(results, ds))


WRITERS = {"json": write_json, "csv": write_csv, "table": write_table}


def _f(v) -> str:
    return "" if v is None else f"{v:.4f}"


def format_table(results, ds) -> str:
    first = next(iter(results.values()))
    lines = [f"{ds.meta.name}: {ds.n} areas, total {first.total!r}"]
    inference = any(r.permutations for r in results.values())
    head = (
        f"{'index':34s} {'value':>8s}"
        + (f" {'corrected':>9s} {'95% CI':>17s} {'p':>7s} {'expected':>9s}" if inference else "")
        + "  groups"
    )
    lines += [head, "-" * len(head)]
    for name, r in results.items():
        row = f"{name:34s} {_f(r.value):>8s}"
        if inference:
            ci = f"{_f(r.ci_low)}–{_f(r.ci_high)}" if r.ci_low is not None else ""
            row += f" {_f(r.value_bias_corrected):>9s} {ci:>17s} {_f(r.p_value):>7s} {_f(r.expected):>9s}"
        lines.append(row + "  " + "+".join(r.groups))
        lines += [f"{'':34s} note: {note.message}" for note in r.notes]
        if r.extra.get("multiscalar"):
            lines.append(
                f"{'':34s} multiscalar: " + " · ".join(f"{d} m {_f(v)}" for d, v in r.extra["multiscalar"].items())
            )
        cmp = r.extra.get("comparison")
        if cmp:
            lines.append(
                f"{'':34s} vs {cmp['against']}: {_f(cmp['value_b'])}, difference {_f(cmp['difference'])}, "
                f"bias-corrected {_f(cmp.get('difference_bias_corrected'))} "
                f"(95% CI {_f(cmp['ci_low'])}–{_f(cmp['ci_high'])}), p = {_f(cmp['p_value'])}"
            )
    if inference:
        lines.append(
            f"p-values: two-sided against {first.null}, {first.permutations} simulations, seed {first.seed}; "
            "intervals around the bias-corrected values"
        )
    return "\n".join(lines) + "\n"
