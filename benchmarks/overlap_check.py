"""The check that refuses areas overlapping each other within one upload (spatial/overlaps.py), alone: a square grid
and a Voronoi tessellation (benchmarks/scale.py's makers) of 100,000 and 1,000,000 areas, each in a fresh process,
with one coarse cell laid over 4 grid cells (or over a Voronoi cell) as the overlap it must find. The whole upload at
1M is timed by benchmarks/scale_upload.py.

python -m benchmarks.overlap_check [N ...]      # default: 100000 1000000
"""

from __future__ import annotations

import sys

from benchmarks.common import child, header, table, write

STEP = r"""
import json, os, sys, time, warnings
warnings.filterwarnings("ignore")
import numpy as np, shapely
from benchmarks.scale import city
from spatial import overlaps
kind, n = sys.argv[1], int(sys.argv[2])
geoms = np.asarray(city(kind, n).areas.geometry.values, dtype=object)
load = os.getloadavg()[0]
t0 = time.perf_counter()
bounds, area, tree = shapely.bounds(geoms), shapely.area(geoms), shapely.STRtree(geoms)
cand = sum(len(overlaps._candidates(tree, geoms[r], r, bounds, area, overlaps.TOL)[0])
           for r in overlaps._row_chunks(bounds))
t_cand = time.perf_counter() - t0
c0, t0 = time.process_time(), time.perf_counter()
clean = overlaps.overlapping_pairs(geoms)
wall, cpu = time.perf_counter() - t0, time.process_time() - c0
x0, y0, x1, y1 = shapely.bounds(geoms[n // 2])
bad = geoms.copy()
bad[0] = shapely.box(x0, y0, x0 + 2 * (x1 - x0), y0 + 2 * (y1 - y0))  # a coarse cell over its neighbours
t0 = time.perf_counter(); found = overlaps.overlapping_pairs(bad); t_bad = time.perf_counter() - t0
print(json.dumps({"candidates": cand, "candidates s": t_cand, "check s": wall, "check CPU s": cpu,
                  "pairs found": len(clean), "with a coarse cell s": t_bad, "found there": len(found),
                  "load at start": load, "load at end": os.getloadavg()[0]}))
"""


def main(sizes=(100_000, 1_000_000)) -> None:
    rows = []
    for kind in ("grid", "voronoi"):
        for n in sizes:
            r = child(STEP, kind, n, timeout=1800)
            rows.append(
                {
                    "tessellation": kind,
                    "areas": f"{n:,}",
                    "candidate pairs (boxes overlap > 1 %)": f"{r['candidates']:,}",
                    "candidates s": r["candidates s"],
                    "whole check s": r["check s"],
                    "check CPU s": r["check CPU s"],
                    "overlaps in the clean layer": r["pairs found"],
                    "with one coarse cell: s": r["with a coarse cell s"],
                    "pairs found": r["found there"],
                    "load (start/end)": f"{r['load at start']:.1f}/{r['load at end']:.1f}",
                }
            )
            print(rows[-1], file=sys.stderr)
    write(
        "overlap_check",
        header("Refusing areas that overlap within one upload: the check alone")
        + "`spatial.overlaps.overlapping_pairs` on the layer's geometry (built before timing): an STR-tree of the "
        "boxes, pairs whose boxes overlap by more than 1 % of the smaller area (a grid's neighbours only touch: "
        "none), then the DE-9IM pattern `T********` on two threads, and the overlap measured for the pairs whose "
        "interiors meet. `check CPU s` is the process's CPU time (both threads). The coarse cell replaces area 0 "
        "by a box twice the size of the middle area, over it and its neighbours.\n\n" + table(rows),
    )


if __name__ == "__main__":
    main(tuple(int(a) for a in sys.argv[1:]) or (100_000, 1_000_000))
