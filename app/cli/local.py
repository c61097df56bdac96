"""`segmap local`: where a group is concentrated — LISA, Gi*, location quotients, with significance."""

from __future__ import annotations

import sys

from spatial.errors import ValidationError, problem

from .choices import CORRECTIONS, GLOBAL_TESTS, KINDS, LOCAL_ALIASES, LOCAL_STATISTICS, MAX_AUTO_PERMUTATIONS
from .common import add_dataset_arguments, add_group_arguments, add_simulation_arguments, load_from_args


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "local",
        help="local clusters: LISA, Gi*, location quotients",
        description="Local statistics of a group's share per area, with multiple-testing control.",
    )
    add_dataset_arguments(p)
    add_group_arguments(p, many=False, required=True, help="group column whose share per area is tested")
    p.add_argument(
        "--statistic",
        choices=LOCAL_STATISTICS + LOCAL_ALIASES,
        default="lisa",
        help="lisa (= moran), gi_star (= getis_ord), lq (= location_quotient), entropy, bivariate_lisa (= bivariate_moran)",
    )
    p.add_argument("--weights", choices=KINDS, default="queen")
    p.add_argument("--k", type=int, help="neighbours for knn/kernel weights")
    p.add_argument("--distance", type=float, help="metres, for distance-band weights")
    add_simulation_arguments(
        p,
        permutations=None,
        seed=None,
        help="default: enough that the smallest p-value can pass --correction over these areas "
        f"(at most {MAX_AUTO_PERMUTATIONS:,})",
    )
    p.add_argument("--alpha", type=float, default=0.05)
    p.add_argument("--correction", choices=CORRECTIONS, default="fdr")
    p.add_argument("--other", metavar="COL", help="second variable for bivariate_lisa")
    p.add_argument("--smoothing", choices=("eb",), help="empirical Bayes smoothing of shares")
    p.add_argument(
        "--global-test",
        choices=GLOBAL_TESTS,
        default="randomisation",
        help="lisa's global Moran's I: randomisation (analytic moments, default) or permutation (999 permutations)",
    )
    p.add_argument("-o", "--output", metavar="FILE", help=".csv, .geojson, .gpkg or .parquet (default: CSV on stdout)")
    p.set_defaults(func=run)


def run(args) -> int:
    from spatial.export import csv_safe, local_frame
    from spatial.local import local_statistic

    groups = [args.group] + ([args.other] if args.other else [])
    ds = load_from_args(args, groups)
    res = local_statistic(
        ds,
        args.group,
        args.statistic,
        total=args.total,
        weights=args.weights,
        k=args.k,
        distance=args.distance,
        permutations=args.permutations,
        seed=args.seed,
        alpha=args.alpha,
        correction=args.correction,
        other=args.other,
        smoothing=args.smoothing,
        global_test=args.global_test,
    )
    out = args.output
    if out and out.lower().endswith((".geojson", ".json", ".gpkg")):
        frame = local_frame(ds, res)
        frame["label"] = frame["label"].astype(str)
        frame.to_file(out, driver="GPKG" if out.lower().endswith(".gpkg") else "GeoJSON")
    elif out and out.lower().endswith(".parquet"):
        frame = local_frame(ds, res, wgs84=False)
        frame["label"] = frame["label"].astype(str)
        frame.to_parquet(out)
    elif out is None or out.lower().endswith(".csv"):
        csv_safe(local_frame(ds, res, geometry=False)).to_csv(out or sys.stdout, index=False)
    else:
        raise ValidationError(problem("unsupported_format", f"Output {out!r}: use .csv, .geojson, .gpkg or .parquet"))
    labels = ", ".join(f"{k}: {v}" for k, v in res.summary.get("labels", {}).items())
    print(
        f"{args.statistic} of {args.group}: {ds.n} areas; {labels}; {args.correction} at alpha {args.alpha}, "
        f"{res.permutations} permutations"
        + (" (chosen for the correction)" if args.permutations is None and res.permutations else ""),
        file=sys.stderr,
    )
    g = res.summary.get("global_moran")
    if g and g.get("moran_i") is not None:
        print(f"global Moran's I {g['moran_i']:.4g}, p {g['p_value']:.3g} ({_global_test(g)})", file=sys.stderr)
    if "significance" in res.summary:
        print(res.summary["significance"]["explanation"], file=sys.stderr)
    for note in res.notes:
        print(f"note: {note.message}", file=sys.stderr)
    return 0


def _global_test(g: dict) -> str:
    """Which test the global p-value comes from, with the other one beside it when both were run."""
    if g["test"] == "permutation":
        return f"permutation test, {g['permutations']} permutations; randomisation p {g['p_value_randomisation']:.3g}"
    return "randomisation test, analytic moments"
