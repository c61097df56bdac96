"""The arguments every command that reads a city shares, declared once, and the one way they are loaded.

`indices`, `local`, `informal` and `map` add their inputs (boundaries, counts, join keys, total, group
columns, survey tolerance, simulations) from here, so a flag means the same thing in each, and load
them with :func:`load_from_args`.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from contextlib import contextmanager
from pathlib import Path

from spatial.errors import ValidationError, problem


def add_dataset_arguments(
    p: argparse.ArgumentParser, *, metavar: str = "BOUNDARIES", optional: bool = False, keys: bool = True
) -> None:
    """The boundary file (positional, stored as ``boundaries``), the count table and how they join."""
    p.add_argument(
        "boundaries",
        metavar=metavar,
        nargs="?" if optional else None,
        help="GeoPackage, GeoJSON, Shapefile (.shp or .zip), GeoParquet or FlatGeobuf"
        + (" (or use --dataset)" if optional else ""),
    )
    p.add_argument(
        "--counts",
        metavar="TABLE",
        help="CSV or Parquet of counts joined on --key (default: the boundary file's own columns)",
    )
    p.add_argument("--key", metavar="COL", help="join key in the count table (and the area id)")
    p.add_argument("--total", metavar="COL", help="total population column (default: the sum of the groups)")
    p.add_argument("--name-col", metavar="COL", help="column with area names, for labels")
    if keys:
        p.add_argument(
            "--boundary-key", metavar="COL", help="join key in the boundaries when named differently from --key"
        )
        p.add_argument(
            "--drop-unmatched",
            action="store_true",
            help="drop areas or rows whose key has no partner instead of failing",
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


def _columns(text: str) -> list[str]:
    return [c.strip() for c in text.split(",") if c.strip()]


def add_group_arguments(p: argparse.ArgumentParser, *, many: bool, required: bool = False, help: str) -> None:
    """``--group COL``; with ``many``, repeatable and also ``--groups A,B,C``, all into ``args.groups`` in order
    (the first group is the focal one: :func:`groups_from_args`). Without ``many``, one column in ``args.group``."""
    if not many:
        p.add_argument("--group", metavar="COL", required=required, help=help)
        return
    p.add_argument("--group", metavar="COL", dest="groups", action="append", help=help)
    p.add_argument(
        "--groups",
        metavar="COL,COL",
        dest="groups",
        type=_columns,
        action="extend",
        help="several group columns at once, comma-separated (same as repeating --group)",
    )


def groups_from_args(args, *, required: bool) -> list[str]:
    """The groups of ``--group``/``--groups`` in order, each once; the first is the focal one."""
    groups = list(dict.fromkeys(args.groups or []))
    if required and not groups:
        raise ValidationError(problem("no_group", "Name a group column with --group COL (repeat it for several)"))
    return groups


def add_simulation_arguments(p: argparse.ArgumentParser, *, permutations: int | None, help: str, seed: int | None):
    p.add_argument("--permutations", type=int, default=permutations, metavar="N", help=help)
    p.add_argument(
        "--seed", type=int, default=seed, metavar="S", help="random seed: the same seed gives the same numbers"
    )


def report_repairs(ds, stream=sys.stderr) -> None:
    """Say on stderr what loading changed (clipped counts, repaired geometry), with the ids."""
    for r in ds.repairs:
        stream.write(
            f"note: {r.message}\n" if len(r.ids) <= 10 else f"note: {r.message}; all ids: {', '.join(r.ids)}\n"
        )


def load_from_args(args, groups, **overrides):
    """The dataset the arguments name, repairs reported; ``overrides`` replace what the arguments say
    (another boundary file joined the same way, a key named by another flag)."""
    from spatial.io import load_dataset

    spec = {
        "boundaries": args.boundaries,
        "total": args.total,
        "counts": args.counts,
        "key": args.key,
        "boundary_key": getattr(args, "boundary_key", None),
        "name_col": args.name_col,
        "region_col": getattr(args, "region", None),
        "drop_unmatched": getattr(args, "drop_unmatched", False),
        "tolerance": getattr(args, "tolerance", 0),
        **overrides,
    }
    ds = load_dataset(spec.pop("boundaries"), groups=groups, **spec)
    report_repairs(ds)
    return ds


def published_source(settings, dataset_id: str, hint: str):
    """A registered dataset as the service publishes it (app/deps.py load_source, not the owner's view): the stored
    disclosure settings and the overlap guard's refusal. ``hint``: how to find the right dataset, for the error.
    Nothing is registered or swept (a version stored before the overlap check gets its check recorded, as at the
    service's first public read of it)."""
    from app.deps import load_source
    from app.registry import Registry

    src = None
    if (settings.data_dir / "catalog.sqlite").is_file():
        src = load_source(Registry(settings.data_dir, sweep=False), settings, dataset_id, owner=False)
    if src is None:
        raise ValidationError(problem("unknown_dataset", f"No dataset {dataset_id!r} in {settings.data_dir}; {hint}"))
    return src


@contextmanager
def atomic_output(path: Path, suffix: str):
    """A temporary name beside ``path``, renamed onto it when the block succeeds: a failed run never leaves half a
    file. The file gets the permissions any new file gets (the umask), not mkstemp's owner-only 0600: reports
    and maps are shared."""
    fd, tmp = tempfile.mkstemp(dir=path.parent if str(path.parent) else ".", prefix=".segmap-", suffix=suffix)
    os.close(fd)
    try:
        yield Path(tmp)
        mask = os.umask(0)
        os.umask(mask)
        os.chmod(tmp, 0o666 & ~mask)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
