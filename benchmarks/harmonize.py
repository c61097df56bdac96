"""Boundary harmonisation at city scale: 100,000 areas onto 100,000 differently drawn areas (target < 30 s, #14),
with tobler's area_interpolate on the same layers in the same run."""

from __future__ import annotations

import sys
import time

import geopandas as gpd
import numpy as np
import shapely

from benchmarks.common import header, table, write
from spatial.change.harmonize import harmonize

CRS = "EPSG:3035"  # equal area: both tools measure the same polygons, no reprojection


def voronoi_city(n: int, seed: int, side: float) -> gpd.GeoDataFrame:
    """``n`` Voronoi cells of random points in a square of ``side`` metres (irregular, like real areas)."""
    rng = np.random.default_rng(seed)
    x0, y0 = 4_500_000.0, 3_200_000.0
    frame = shapely.box(x0, y0, x0 + side, y0 + side)
    pts = shapely.points(rng.uniform(x0, x0 + side, n), rng.uniform(y0, y0 + side, n))
    cells = shapely.intersection(
        shapely.get_parts(shapely.voronoi_polygons(shapely.multipoints(pts), extend_to=frame)), frame
    )
    total = rng.integers(50, 1500, len(cells))
    return gpd.GeoDataFrame(
        {"id": [f"a{k}" for k in range(len(cells))], "total": total, "migrants": rng.binomial(total, 0.2)},
        geometry=cells,
        crs=CRS,
    )


def main(n: int = 100_000) -> None:
    from tobler.area_weighted import area_interpolate

    side = np.sqrt(n) * 200.0
    source = voronoi_city(n, 1, side)
    target = voronoi_city(n, 2, side)[["id", "geometry"]]
    counts = ["total", "migrants"]
    t0, c0 = time.perf_counter(), time.process_time()
    res = harmonize(source, target, counts)
    t_ours, c_ours = time.perf_counter() - t0, time.process_time() - c0
    t0, c0 = time.perf_counter(), time.process_time()
    ref = area_interpolate(source, target, extensive_variables=counts)
    t_tobler, c_tobler = time.perf_counter() - t0, time.process_time() - c0
    diff = np.abs(res.estimates.to_numpy() - ref[counts].to_numpy()).max()
    rows = [
        {
            "source areas": len(source),
            "target areas": len(target),
            "pieces": res.table.nnz,
            "segmap harmonize s": t_ours,
            "tobler area_interpolate s": t_tobler,
            "ratio": t_tobler / t_ours,
            "segmap CPU s": c_ours,
            "tobler CPU s": c_tobler,
            "largest difference from tobler (people)": float(diff),
            "total kept": bool(res.frame["total"].sum() == source["total"].sum()),
        }
    ]
    write(
        "harmonize",
        header("Harmonisation: Voronoi cells onto other Voronoi cells (EPSG:3035)")
        + table(rows)
        + "\nsegmap's time includes checking both layers, the equal-area CRS choice, matching unchanged areas, "
        "integer rounding and the output frame; it cuts the pieces on up to 4 threads (GEOS releases the GIL), so "
        "its CPU time can exceed its wall time. tobler's is its default call (one process, n_jobs=1). Their floats "
        "differ only by tobler's float32 area table. CPU seconds show what a shared machine hid.\n",
    )


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 100_000)
