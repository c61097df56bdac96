"""`segmap map`: an interactive HTML map (self-contained, works offline) or a PNG/SVG for reports."""

from __future__ import annotations

import sys
from pathlib import Path

from spatial.errors import ValidationError, problem

from .common import (
    add_dataset_arguments,
    add_group_arguments,
    add_simulation_arguments,
    atomic_output,
    load_from_args,
    published_source,
)

VIEWS = ("share", "lq", "lisa", "hotspots", "informal")
SCHEMES = ("quantiles", "natural_breaks", "equal_interval")


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "map",
        help="map a group: HTML (offline, self-contained), PNG or SVG",
        description="Map a group's share, location quotient, LISA clusters, Gi* hot spots or informal "
        "settlements. The output type follows the -o extension.",
    )
    add_dataset_arguments(p, optional=True)
    p.add_argument(
        "--dataset",
        metavar="ID",
        help="a dataset registered in the service's data directory (SEGMAP_DATA_DIR), mapped as the service "
        "publishes it: its own disclosure control (threshold and method set at upload)",
    )
    add_group_arguments(p, many=False, help="group column (with --dataset, default: the dataset's first)")
    p.add_argument("--view", choices=VIEWS, default="share")
    p.add_argument("--scheme", choices=SCHEMES, default="quantiles", help="classification of shares")
    p.add_argument("--classes", type=int, default=5, metavar="K", help="number of classes, 3–7")
    add_simulation_arguments(p, permutations=999, seed=0, help="permutations for LISA and hot spots")
    p.add_argument("--width", type=int, default=1200, help="PNG/SVG width in pixels")
    p.add_argument("--height", type=int, default=900, help="PNG/SVG height in pixels")
    p.add_argument("--dpi", type=int, default=150, help="PNG/SVG resolution (at most 300)")
    p.add_argument(
        "--disclosure-threshold",
        metavar="N",
        type=int,
        default=None,
        help="hide counts from 1 to N−1 in the output (default 0: show all; it is your data). Not with --dataset, "
        "which applies the dataset's own settings",
    )
    p.add_argument("-o", "--output", metavar="FILE", required=True, help="map.html, map.png or map.svg")
    p.set_defaults(func=run)


def _load(args):
    if args.dataset:
        if args.boundaries:
            raise ValidationError(problem("bad_parameter", "Give either BOUNDARIES or --dataset, not both"))
        if args.disclosure_threshold is not None:  # the stored settings are the publication's: none lowered here
            raise ValidationError(
                problem(
                    "bad_parameter",
                    "--disclosure-threshold is for BOUNDARIES files: a map of --dataset applies the dataset's own "
                    "disclosure settings (set at upload), as the service publishes it; leave the option out",
                )
            )
        return args.dataset, _registered(args.dataset)
    if not args.boundaries:
        raise ValidationError(problem("bad_parameter", "Give a BOUNDARIES file or --dataset ID"))

    groups = [args.group] if args.group else None
    if groups is None:
        raise ValidationError(problem("no_group", "Name the group to map with --group COL"))
    if args.view == "informal" and "informal" not in groups:
        groups.append("informal")
    ds = load_from_args(args, groups)
    return Path(args.boundaries).stem, ds


def _registered(dataset_id: str):
    """A registered dataset's protected table, as every public read gets it (common.published_source)."""
    from app.settings import Settings

    hint = (
        "list them with GET /v1/datasets or set SEGMAP_DATA_DIR (the bundled sample is registered "
        "when `segmap serve` first starts on a data directory)"
    )
    return published_source(Settings(), dataset_id, hint).data


def _threshold(args, ds) -> int:
    """The threshold the output states: a registered dataset's table is protected already (its own threshold)."""
    return ds.threshold if args.dataset else args.disclosure_threshold or 0


def _write(path: Path, data: bytes) -> None:
    with atomic_output(path, path.suffix) as tmp:
        tmp.write_bytes(data)


def run(args) -> int:
    out = Path(args.output)
    fmt = out.suffix.lower().lstrip(".")
    if fmt not in ("html", "png", "svg"):
        raise ValidationError(problem("unsupported_format", f"Output {args.output!r}: use .html, .png or .svg"))
    ident, ds = _load(args)
    group = args.group or ds.groups[0]
    if fmt == "html":
        from maps.views import PageOptions, render_page

        opts = PageOptions(
            dataset_id=ident,
            group=group,
            view=args.view,
            scheme=args.scheme,
            k=args.classes,
            mode="download",
            permutations=args.permutations,
            seed=args.seed,
            disclosure_threshold=_threshold(args, ds),
            vector_tiles=False,
        )
        page, info = render_page(ds, opts)
        _write(out, page.encode("utf-8"))
        from maps.data import summary_text

        alt = summary_text(info["views"][args.view])
    else:
        from maps.data import view_data
        from maps.static import render

        vd = view_data(
            ds,
            group,
            args.view,
            scheme=args.scheme,
            k=args.classes,
            permutations=args.permutations,
            seed=args.seed,
            disclosure_threshold=_threshold(args, ds),
        )
        data, alt = render(ds, vd, fmt, width=args.width, height=args.height, dpi=args.dpi)
        _write(out, data)
    print(f"wrote {out} ({out.stat().st_size:,} bytes)", file=sys.stderr)
    print(f"alt text: {alt}", file=sys.stderr)
    return 0
