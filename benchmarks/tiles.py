"""Vector tile encoding: segmap's tile pipeline vs the naive STRtree + clip + mapbox-vector-tile path."""
from __future__ import annotations

import math
import time

import mapbox_vector_tile
import numpy as np
import shapely

from app.tiles import TileIndex, tile_bounds
from benchmarks.common import grid_city, header, table, write


def naive_tile(tree, geoms, props, z, x, y):
    minx, miny, maxx, maxy = tile_bounds(z, x, y)
    hits = tree.query(shapely.box(minx, miny, maxx, maxy))
    clipped = shapely.clip_by_rect(geoms[hits], minx, miny, maxx, maxy)
    feats = [{"geometry": g, "properties": props[i]} for g, i in zip(clipped, hits) if not g.is_empty]
    return mapbox_vector_tile.encode([{"name": "areas", "features": feats}], quantize_bounds=(minx, miny, maxx, maxy))


def tile_of(lon, lat, z):
    n = 2**z
    return z, int((lon + 180) / 360 * n), int((1 - math.asinh(math.tan(math.radians(lat))) / math.pi) / 2 * n)


def main(n_areas=100_000) -> None:
    ds = grid_city(n_areas, cell=100.0)
    props = [{"id": i, "total": int(t), "migrants": int(m)} for i, t, m in zip(ds.ids, ds.areas["total"], ds.areas["migrants"])]
    t0 = time.perf_counter()
    index = TileIndex(ds.areas)
    setup = time.perf_counter() - t0
    merc = ds.areas.to_crs(3857)
    geoms = np.asarray(merc.geometry.values)
    tree = shapely.STRtree(geoms)
    centre = ds.areas.to_crs(4326).geometry.union_all().centroid
    rows = []
    for z in range(8, 17, 2):
        zt, x, y = tile_of(centre.x, centre.y, z)
        index.geometries(z)  # per-zoom simplification is built once per dataset, outside the tile timing
        t0 = time.perf_counter(); ours = index.tile(zt, x, y, props); t_ours = time.perf_counter() - t0
        t0 = time.perf_counter(); naive = naive_tile(tree, geoms, props, zt, x, y); t_naive = time.perf_counter() - t0
        n_feat = len(mapbox_vector_tile.decode(ours)["areas"]["features"]) if ours else 0
        rows.append({"zoom": z, "features": n_feat, "segmap ms": 1000 * t_ours, "naive ms": 1000 * t_naive,
                     "speed-up": t_naive / t_ours, "segmap KB": len(ours) / 1024, "naive KB": len(naive) / 1024})
    write("tiles", header(f"Vector tiles: {n_areas:,}-area grid city, one uncached tile per zoom at the centre")
          + table(rows) + f"\nTile index set-up (projection + STRtree): {setup:.2f} s once per dataset version; "
          "per-zoom coverage simplification is built on first use of each zoom and then reused.\n"
          "Both paths use mapbox-vector-tile's encoder; segmap simplifies per zoom and snaps to the tile grid first.\n")


if __name__ == "__main__":
    main()
