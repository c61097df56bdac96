"""`segmap indices`: city-wide segregation indices of one or more groups."""

from __future__ import annotations

import argparse
import csv
import json
import math
import sys
import time

from spatial.errors import ValidationError, problem
from spatial.export import csv_cell
from spatial.indices import names
from spatial.indices.compute import compute_indices
from spatial.io import load_dataset


def add_dataset_arguments(p: argparse.ArgumentParser) -> None:
    """Arguments every command that reads boundaries + counts shares."""
    p.add_argument(
        "boundaries",
        metavar="BOUNDARIES",
        help="GeoPackage, GeoJSON, Shapefile (.shp or .zip), GeoParquet or FlatGeobuf",
    )
    p.add_argument(
        "--counts",
        metavar="TABLE",
        help="CSV or Parquet of counts joined on --key (default: the boundary file's own columns)",
    )
    p.add_argument("--key", metavar="COL", help="join key in the count table (and the area id)")
    p.add_argument("--boundary-key", metavar="COL", help="join key in the boundaries when named differently from --key")
    p.add_argument("--total", metavar="COL", help="total population column (default: the sum of the groups)")
    p.add_argument("--name-col", metavar="COL", help="column with area names, for labels")
    p.add_argument(
        "--drop-unmatched", action="store_true", help="drop areas or rows whose key has no partner instead of failing"
    )
    add_tolerance_argument(p)


def add_tolerance_argument(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--tolerance",
        type=float,
        default=0,
        metavar="N",
        help="survey estimates: let groups exceed the total by up to N people per area (alone or added up); "
        "those areas are clipped to the total and listed on stderr (default 0: refuse)",
    )


def report_repairs(ds, stream=sys.stderr) -> None:
    """Say on stderr what loading changed (clipped counts, repaired geometry), with the ids."""
    for r in ds.repairs:
        stream.write(
            f"note: {r.message}\n" if len(r.ids) <= 10 else f"note: {r.message}; all ids: {', '.join(r.ids)}\n"
        )


def load_from_args(args, groups) -> object:
    ds = load_dataset(
        args.boundaries,
        groups=groups,
        total=args.total,
        counts=args.counts,
        key=args.key,
        boundary_key=args.boundary_key,
        name_col=args.name_col,
        region_col=getattr(args, "region", None),
        drop_unmatched=args.drop_unmatched,
        tolerance=args.tolerance,
    )
    report_repairs(ds)
    return ds


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "indices",
        help="city-wide segregation indices",
        description="City-wide segregation indices of a group against the rest of its total, "
        "and multigroup indices over several groups.",
    )
    add_dataset_arguments(p)
    p.add_argument(
        "--group",
        metavar="COL",
        action="append",
        required=True,
        help="group column; repeat for multigroup indices (two-group indices use the first)",
    )
    p.add_argument("--region", metavar="COL", help="region column: decomposes mutual_information into between/within")
    p.add_argument(
        "--index",
        metavar="NAME",
        action="append",
        help=f"index to compute (repeatable; default: all aspatial). One of: {', '.join(names())}",
    )
    p.add_argument("--format", choices=("table", "json", "csv"), default="table")
    p.add_argument(
        "--permutations",
        type=int,
        default=0,
        metavar="N",
        help="simulations for p-values and bootstrap intervals (0: none)",
    )
    p.add_argument("--seed", type=int, metavar="S", help="random seed: the same seed gives the same numbers")
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
    groups = list(dict.fromkeys(args.group))
    if args.compare_group:
        groups.append(args.compare_group)
    ds = load_from_args(args, groups)
    other = None
    if args.compare:
        other = load_dataset(
            args.compare,
            groups=[args.group[0]],
            total=args.total,
            counts=args.compare_counts,
            key=args.key,
            boundary_key=args.boundary_key,
            drop_unmatched=args.drop_unmatched,
            tolerance=args.tolerance,
        )
        report_repairs(other)
    elif args.compare_counts:
        raise ValidationError(
            problem("bad_parameter", "--compare-counts needs --compare (the boundaries of the other dataset)")
        )
    results = compute_indices(
        ds,
        group=args.group[0],
        groups=list(dict.fromkeys(args.group)),
        total=args.total,
        indices=args.index,
        region=args.region,
        permutations=args.permutations,
        seed=args.seed,
        null=args.null,
        compare=other,
        compare_group=args.compare_group,
        progress=Progress() if args.permutations else None,
        multiscalar=args.multiscalar,
    )
    out = sys.stdout
    if args.format == "json":
        json.dump({name: r.to_dict() for name, r in results.items()}, out, indent=2)
        out.write("\n")
    elif args.format == "csv":
        fields = [
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
        ]
        w = csv.writer(out)
        w.writerow(fields)
        for name, r in results.items():
            d = r.to_dict()
            w.writerow(
                [
                    csv_cell(v)
                    for v in (
                        name,
                        d["value"],
                        d.get("p_value"),
                        d.get("ci_low"),
                        d.get("ci_high"),
                        d.get("expected"),
                        "+".join(d["groups"]),
                        d["total"],
                        d.get("value_bias_corrected"),
                        d.get("within_noise"),
                    )
                ]
            )
    else:
        out.write(format_table(results, ds))
    return 0


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
