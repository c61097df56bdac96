"""Boundary harmonisation at city scale: 100,000 areas onto 100,000 differently drawn areas (target < 30 s, #14),
with tobler's area_interpolate on the same layers in the same run."""

from __future__ import annotations

import sys
import time

import geopandas as gpd
import numpy as np
import shapely

from benchmarks.common import QUICK, header, median, ratio, settle_memory, spread, table, versions, write
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


def _run(fn):
    """(result, wall s, CPU s) of one call."""
    t0, c0 = time.perf_counter(), time.process_time()
    out = fn()
    return out, time.perf_counter() - t0, time.process_time() - c0


def main(n: int = 100_000, quick: bool = QUICK) -> None:
    from tobler.area_weighted import area_interpolate

    side = np.sqrt(n) * 200.0
    source = voronoi_city(n, 1, side)
    target = voronoi_city(n, 2, side)[["id", "geometry"]]
    counts = ["total", "migrants"]
    runs = {"ours": [], "ref": []}
    calls = {
        "ours": lambda: harmonize(source, target, counts),
        "ref": lambda: area_interpolate(source, target, extensive_variables=counts),
    }
    for i in range(2 if quick else 4):  # A B B A ..., no warm-up (each call does all its work afresh)
        for name in list(calls) if i % 2 == 0 else list(calls)[::-1]:
            settle_memory(fresh_for=0)  # both allocate GBs afresh: none of it just handed back to the host
            runs[name].append(_run(calls[name]))
    res, ref = runs["ours"][0][0], runs["ref"][0][0]
    wall = {k: [r[1] for r in v] for k, v in runs.items()}
    cpu = {k: median([r[2] for r in v]) for k, v in runs.items()}
    diff = np.abs(res.estimates.to_numpy() - ref[counts].to_numpy()).max()
    rows = [
        {
            "source areas": f"{len(source):,}",
            "target areas": f"{len(target):,}",
            "pieces": f"{res.table.nnz:,}",
            "segmap harmonize": spread(wall["ours"]),
            "tobler area_interpolate": spread(wall["ref"]),
            "speed-up (range of pairs)": ratio(wall["ref"], wall["ours"], key=f"harmonize {len(source):,} areas"),
            "segmap CPU s": cpu["ours"],
            "tobler CPU s": cpu["ref"],
            "largest difference from tobler (people)": float(diff),
            "total kept": bool(res.frame["total"].sum() == source["total"].sum()),
        }
    ]
    anchors = (
        f"{versions('tobler', 'geopandas', 'shapely')}: `area_interpolate(source, target, "
        "extensive_variables=[total, migrants])`, its default (one process, n_jobs=1), on the same layers; "
        f"{len(wall['ours'])} runs a side, alternating (A, B, B, A), in one process, memory settled before each run."
    )
    write(
        "harmonize",
        header("Harmonisation: Voronoi cells onto other Voronoi cells (EPSG:3035)", anchors)
        + table(rows)
        + "\nsegmap's time includes checking both layers, the equal-area CRS choice, matching unchanged areas, "
        "integer rounding and the output frame; it cuts the pieces on up to 4 threads (GEOS releases the GIL), so "
        "its CPU time can exceed its wall time. Their floats differ only by tobler's float32 area table. CPU seconds "
        "(medians) show what a shared machine hid.\n",
    )


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 100_000)
