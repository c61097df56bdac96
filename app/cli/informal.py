"""`segmap informal`: overlay informal-settlement polygons (or points) on areal units."""

from __future__ import annotations

import sys

from spatial.errors import ValidationError, problem

from .common import add_dataset_arguments, add_group_arguments, groups_from_args, load_from_args


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "informal",
        help="informal settlements per unit (area, count, population)",
        description="Overlay settlements on units in an equal-area CRS; population split by area.",
    )
    add_dataset_arguments(p, metavar="UNITS", keys=False)  # the units: boundaries, --counts, --key, --total
    p.add_argument("--settlements", required=True, metavar="FILE", help="settlement polygons or points")
    p.add_argument("--population", metavar="COL", help="population column of the settlements")
    p.add_argument("--unit-key", metavar="COL", help="id column of the units (default: --key, or 'id')")
    add_group_arguments(p, many=True, help="migrant group columns to keep (with --total)")
    p.add_argument("--sliver-m2", type=float, default=1.0, help="ignore settlement pieces smaller than this")
    p.add_argument("-o", "--output", metavar="FILE", help=".gpkg, .geojson or .csv (default: CSV on stdout)")
    p.set_defaults(func=run)


def run(args) -> int:
    from spatial.export import csv_safe
    from spatial.informal import load_settlements, overlay
    from spatial.io import read_boundaries

    if args.total or args.counts:
        if not args.total:
            raise ValidationError(problem("missing_total", "--counts needs --total: the units' population column"))
        groups = groups_from_args(args, required=False) or [args.total]
        units = load_from_args(args, groups, key=args.key or args.unit_key, boundary_key=args.unit_key)
    else:
        units = read_boundaries(args.boundaries)
    sett = load_settlements(args.settlements, population=args.population)
    res = overlay(
        units,
        sett,
        population=args.population,
        unit_key=args.unit_key or args.key,
        sliver_m2=args.sliver_m2,
        name_col=args.name_col,
    )
    areas = res.dataset.areas
    out = args.output
    if out and out.lower().endswith((".gpkg", ".geojson", ".json")):
        areas.to_file(out, driver="GPKG" if out.lower().endswith(".gpkg") else "GeoJSON")
    elif out is None or out.lower().endswith(".csv"):
        csv_safe(areas.drop(columns="geometry")).to_csv(out or sys.stdout, index=False)
    else:
        raise ValidationError(problem("unsupported_format", f"Output {out!r}: use .gpkg, .geojson or .csv"))
    s = res.summary
    print(
        f"units: {s['units']}; settlements: {s['settlements']} ({s['polygons']} polygons, {s['points']} points)\n"
        f"informal area: {s['informal_area_m2'] / 1e6:,.2f} km² = {100 * s['area_share_of_city']:.2f} % of the units' area\n"
        f"population: {s['population_input']:,.0f} in, {s['population_allocated']:,.0f} allocated, "
        f"{s['population_outside_units']:,.0f} outside every unit ({s['settlements_outside']} settlements)\n"
        f"repaired: {s['repaired']}; empty skipped: {s['empty_skipped']}; slivers ignored: {s['slivers_ignored']}",
        file=sys.stderr,
    )
    for note in res.notes:
        print(f"note: {note.message}", file=sys.stderr)
    return 0
