"""`segmap export`: a PMTiles archive of a registered dataset's vector tiles, for any static host.

The archive holds the tiles the service's public URLs answer, byte for byte: the same protected table
(disclosure control of the dataset's own settings), the same index and encoder.
"""

from __future__ import annotations

import sys
from pathlib import Path

from spatial.errors import ValidationError, problem

from .choices import MAX_ZOOM
from .common import published_source

LIMIT = "SEGMAP_MAX_PERMUTATIONS"


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "export",
        help="export a registered dataset's vector tiles as a PMTiles archive",
        description="Write the public vector tiles of a dataset registered in the service's data directory "
        "(SEGMAP_DATA_DIR) to one PMTiles file, optionally carrying a group's local statistic.",
    )
    p.add_argument("dataset", metavar="DATASET", help="dataset id, as listed by GET /v1/datasets")
    p.add_argument("--pmtiles", metavar="FILE", required=True, help="archive to write (e.g. out.pmtiles)")
    p.add_argument("--group", metavar="COL", help="group whose local statistic the tiles carry")
    p.add_argument("--statistic", metavar="NAME", help="lisa, gi_star, lq … (adds value, p_value, label)")
    p.add_argument("--permutations", type=int, default=None, help="default: as the service chooses")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--minzoom", type=int, default=None, help="default 0")
    p.add_argument("--maxzoom", type=int, default=None, help="default: 4 past the zoom that fits the area, at most 14")
    p.add_argument("--max-tiles", type=int, default=None, help="refuse archives of more tiles (default 50,000)")
    p.set_defaults(func=run)


def _check(args) -> None:
    for name in ("minzoom", "maxzoom"):
        value = getattr(args, name)
        if value is not None and not 0 <= value <= MAX_ZOOM:
            raise ValidationError(problem("bad_parameter", f"--{name} must be 0-{MAX_ZOOM}; got {value}"))
    if not args.pmtiles.endswith(".pmtiles"):
        raise ValidationError(problem("unsupported_format", f"{args.pmtiles!r}: name the archive *.pmtiles"))
    if args.statistic and not args.group:
        raise ValidationError(problem("no_group", "--statistic needs --group COL"))


def run(args) -> int:
    from app import archive
    from app.settings import Settings
    from app.tiles import TileIndex
    from app.tileservice import Layer, area_properties, export_archive, tile_version

    _check(args)
    settings = Settings()
    if args.statistic:  # the server's limit, before the dataset is read
        from spatial.local.statistics import check_permutations

        check_permutations(args.statistic, args.permutations, "randomisation", settings.max_permutations, LIMIT)
    src = published_source(settings, args.dataset, "set SEGMAP_DATA_DIR")
    if args.group is not None:
        src.dataset.require_declared(args.group, "group")
    layer = Layer(args.group, args.statistic, args.permutations, args.seed)
    index = TileIndex(src.data.areas)
    attributes = area_properties(src.data, layer, settings.max_permutations)
    plan = export_archive(
        src,
        layer,
        Path(args.pmtiles),
        (args.minzoom, args.maxzoom),
        tile_version(src, settings),
        index=index,
        attributes=attributes,
        max_tiles=args.max_tiles or archive.MAX_TILES,
    )
    print(
        f"wrote {args.pmtiles}: zooms {plan.minzoom}-{plan.maxzoom}, {Path(args.pmtiles).stat().st_size:,} bytes",
        file=sys.stderr,
    )
    return 0
