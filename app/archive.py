"""PMTiles archives of a dataset's vector tiles: the live service's tiles, byte for byte, in one static file.

An archive is planned before it is built: the number of tiles (every tile of each zoom that the dataset's
bounds touch) and an estimate of its bytes (a few tiles per zoom encoded, times the count), so a zoom range
too large is refused with the size it would have instead of filling a disk. Tiles are encoded by the same
:meth:`app.tiles.TileIndex.tile` from the same protected attributes as the live service, gzip-compressed
(PMTiles readers decompress) and written in tile-id order; empty tiles are left out, as the service answers
them with an empty body.
"""

from __future__ import annotations

import gzip
import math
import os
from dataclasses import dataclass
from pathlib import Path

from pmtiles.tile import Compression, TileType, zxy_to_tileid
from pmtiles.writer import Writer

from spatial.cancel import checkpoint
from spatial.errors import ValidationError, problem

from .tiles import MAX_ZOOM, ORIGIN, WORLD, TileAttributes, TileIndex

MAX_TILES = 50_000
MAX_BYTES = 512 * 2**20
SAMPLE = 4  # tiles encoded per zoom for the size estimate


@dataclass(frozen=True)
class Plan:
    minzoom: int
    maxzoom: int
    tiles: int  # tiles the bounds touch (empty ones are encoded, then left out)
    estimated_bytes: int


def tile_ranges(bounds_3857, z: int) -> tuple[range, range]:
    minx, miny, maxx, maxy = bounds_3857
    size = WORLD / 2**z
    last = 2**z - 1
    x0, x1 = (min(last, max(0, int((v + ORIGIN) // size))) for v in (minx, maxx))
    y0, y1 = (min(last, max(0, int((ORIGIN - v) // size))) for v in (maxy, miny))
    return range(x0, x1 + 1), range(y0, y1 + 1)


def fit_zoom(bounds_3857, px: int = 1024) -> int:
    """The zoom at which the whole area fits in about ``px`` screen pixels."""
    minx, miny, maxx, maxy = bounds_3857
    span = max(maxx - minx, maxy - miny, 1e-9)
    return int(max(0, min(MAX_ZOOM, math.floor(math.log2(WORLD * px / 256 / span)))))


def default_zooms(index: TileIndex) -> tuple[int, int]:
    """0 to four zooms past the one that fits the area, at most 14 (MapLibre over-zooms beyond)."""
    return 0, min(14, fit_zoom(index.bounds_3857) + 4)


def plan(index: TileIndex, attributes: TileAttributes, minzoom: int, maxzoom: int) -> Plan:
    """Count and size an archive before building it (tiles at a few evenly spread addresses per zoom)."""
    if not (0 <= minzoom <= maxzoom <= MAX_ZOOM):
        raise ValidationError(
            problem(
                "bad_parameter", f"Zooms must satisfy 0 <= minzoom <= maxzoom <= {MAX_ZOOM}; got {minzoom}-{maxzoom}"
            )
        )
    count, size = 0, 0.0
    for z in range(minzoom, maxzoom + 1):
        xs, ys = tile_ranges(index.bounds_3857, z)
        n = len(xs) * len(ys)
        count += n
        if count > 50 * MAX_TILES:  # far too large already: the estimate would cost more than it tells
            size += n * (size / max(1, count - n))
            continue
        sample = [(xs[int(i * len(xs) / SAMPLE)], ys[int(i * len(ys) / SAMPLE)]) for i in range(min(SAMPLE, n))]
        sample = list(dict.fromkeys(sample))
        sizes = [len(gzip.compress(index.tile(z, x, y, attributes), mtime=0)) for x, y in sample]
        size += n * sum(sizes) / len(sizes)
    return Plan(minzoom, maxzoom, count, int(size))


def check(p: Plan, max_tiles: int = MAX_TILES, max_bytes: int = MAX_BYTES) -> None:
    if p.tiles > max_tiles or p.estimated_bytes > max_bytes:
        raise ValidationError(
            problem(
                "export_too_large",
                f"Zooms {p.minzoom}-{p.maxzoom} would make {p.tiles:,} tiles, about {p.estimated_bytes / 2**20:,.1f} MB "
                f"(limits: {max_tiles:,} tiles, {max_bytes / 2**20:,.0f} MB); lower maxzoom",
            )
        )


def _header(index: TileIndex, p: Plan, lonlat_bounds) -> dict:
    w, s, e, n = lonlat_bounds

    def e7(v: float) -> int:
        return int(round(v * 1e7))

    return {
        "tile_type": TileType.MVT,
        "tile_compression": Compression.GZIP,
        "min_lon_e7": e7(w),
        "min_lat_e7": e7(s),
        "max_lon_e7": e7(e),
        "max_lat_e7": e7(n),
        "center_zoom": max(p.minzoom, min(p.maxzoom, fit_zoom(index.bounds_3857))),
        "center_lon_e7": e7((w + e) / 2),
        "center_lat_e7": e7((s + n) / 2),
    }


def write(path: Path, index: TileIndex, attributes: TileAttributes, p: Plan, metadata: dict, lonlat_bounds) -> int:
    """Write the planned archive to ``path`` (beside it first, then renamed: never half a file). Returns its
    number of non-empty tiles."""
    addresses = []
    for z in range(p.minzoom, p.maxzoom + 1):
        xs, ys = tile_ranges(index.bounds_3857, z)
        addresses += [(zxy_to_tileid(z, x, y), z, x, y) for x in xs for y in ys]
    addresses.sort()
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    written = 0
    try:
        with open(tmp, "wb") as f:
            writer = Writer(f)
            for tile_id, z, x, y in addresses:
                checkpoint()
                body = index.tile(z, x, y, attributes, final=True)
                if body:
                    writer.write_tile(tile_id, gzip.compress(body, mtime=0))
                    written += 1
            if not written:
                raise ValidationError(problem("empty_export", "No area falls in these zooms' tiles; nothing to write"))
            writer.finalize(_header(index, p, lonlat_bounds), metadata)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return written
