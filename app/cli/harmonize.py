"""`segmap harmonize`: carry counts from one geography onto another (a boundary reform, another year's areas)."""

from __future__ import annotations

import re
import sys
from pathlib import Path

from spatial.errors import ValidationError, problem

from .choices import HARMONIZE_METHODS as METHODS
from .choices import ID, MATCH_TOLERANCE
from .common import add_dataset_arguments, add_group_arguments, atomic_output, groups_from_args, load_from_args

FORMATS = {".gpkg": "GPKG", ".geojson": "GeoJSON", ".json": "GeoJSON", ".csv": None}


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "harmonize",
        help="carry counts onto another geography (area-weighted or through a finer layer)",
        description="Split each source area's counts over the target areas it overlaps, by area or by where a "
        "finer layer's people live; identical areas map one to one; integer totals are kept exactly.",
    )
    add_dataset_arguments(p, metavar="SOURCE")
    add_group_arguments(p, many=True, help="count column to carry (repeatable); --total is carried too")
    p.add_argument("--to", required=True, metavar="TARGET", help="the target areas' boundaries")
    p.add_argument("--target-key", metavar="COL", default=ID, help="id column of the target areas (default: id)")
    p.add_argument("--method", choices=METHODS, default="area", help="area (default) or population (needs --weights)")
    p.add_argument("--weights", metavar="FINER_LAYER", help="finer areas with counts, for --method population")
    p.add_argument("--weight-column", metavar="COL", help="the finer layer's population column")
    p.add_argument(
        "--by-group",
        action="store_true",
        help="each count follows the finer layer's column of the same name (foreigners where foreigners live)",
    )
    p.add_argument("--weights-counts", metavar="TABLE", help="count table of the finer layer, joined on --weights-key")
    p.add_argument("--weights-key", metavar="COL", help="join key of the finer layer (default: id)")
    p.add_argument(
        "--match-tolerance",
        type=float,
        default=MATCH_TOLERANCE,
        metavar="X",
        help=f"areas whose symmetric difference is under X of their area count as unchanged (default {MATCH_TOLERANCE})",
    )
    p.add_argument("-o", "--output", required=True, metavar="OUT", help=".gpkg, .geojson or .csv")
    p.set_defaults(func=run)


def _finer_layer(args, counts: list[str]):
    if args.method != "population":
        if args.weights:
            raise ValidationError(problem("bad_parameter", "--weights is only used with --method population"))
        return None, None
    if not args.weights or not (args.weight_column or args.by_group):
        raise ValidationError(
            problem(
                "missing_weights",
                "--method population needs --weights FINER_LAYER and --weight-column COL (its population) "
                "or --by-group",
            )
        )
    from spatial.io import load_dataset

    columns = counts if args.by_group else [args.weight_column]
    ds = load_dataset(args.weights, groups=columns, counts=args.weights_counts, key=args.weights_key or ID)
    return ds.areas, (dict(zip(counts, counts)) if args.by_group else args.weight_column)


def _write(frame, out: str) -> None:
    """Beside the target then renamed, so a failed run leaves no half-written file."""
    from spatial.export import csv_safe

    path = Path(out)
    ext = path.suffix.lower()
    if ext not in FORMATS:
        raise ValidationError(problem("unsupported_format", f"Output {out!r}: use .gpkg, .geojson or .csv"))
    with atomic_output(path, ext) as tmp:
        if FORMATS[ext] is None:
            csv_safe(frame.drop(columns=frame.geometry.name)).to_csv(tmp, index=False)
        else:
            tmp.unlink()
            layer = re.sub(r"\W", "_", path.stem) or "harmonized"  # GPKG: the temporary name would be the layer's
            frame.to_file(tmp, driver=FORMATS[ext], **({"layer": layer} if ext == ".gpkg" else {}))


def run(args) -> int:
    from spatial.change.harmonize import harmonize
    from spatial.io import read_boundaries

    if not 0 <= args.match_tolerance < 1:
        raise ValidationError(problem("bad_parameter", "--match-tolerance must lie in [0, 1)"))
    groups = groups_from_args(args, required=not args.total)
    if Path(args.output).suffix.lower() not in FORMATS:  # before any work
        raise ValidationError(problem("unsupported_format", f"Output {args.output!r}: use .gpkg, .geojson or .csv"))
    ds = load_from_args(args, groups or [args.total])
    counts = list(dict.fromkeys([*groups, *([ds.total] if args.total else [])]))
    target = read_boundaries(args.to)
    fine, weight_column = _finer_layer(args, counts)
    res = harmonize(
        ds.areas,
        target,
        counts,
        method=args.method,
        weights=fine,
        weight_column=weight_column,
        source_key=ID,
        target_key=args.target_key,
        total=ds.total if ds.total in counts else None,
        match_tolerance=args.match_tolerance,
    )
    _write(res.frame, args.output)
    totals = ", ".join(f"{c} {int(res.frame[c].sum()):,}" for c in counts)
    print(
        f"{len(ds.areas)} source areas → {len(res.frame)} target areas by {res.method}; totals kept: {totals}\n"
        f"unchanged areas matched one to one: {len(res.matched)}; "
        f"population estimated rather than carried whole: {100 * res.city_estimated_share:.1f} %",
        file=sys.stderr,
    )
    for note in res.notes:
        print(f"note: {note.message}", file=sys.stderr)
    return 0
