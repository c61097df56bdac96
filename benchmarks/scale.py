"""A million areas (issue 20): a square grid and a Voronoi tessellation of random points, 10,000 to 1,000,000
areas, every step in a fresh process per size, with esda, pysal and libpysal anchors in the same run.

python -m benchmarks.scale [--full] [--sizes 1000000]   # quick: grid 10k/100k/1M, Voronoi 1M; full: both at
                                                        # 10k/100k/300k/1M; --sizes: those columns only
"""

from __future__ import annotations

import sys
from pathlib import Path

from benchmarks.common import PEAK_RSS, QUICK, RESULTS, child, header, write

OUT = Path(__file__).parent / "out"  # generated tessellations (git-ignored)

# One child per (tessellation, size): every step in turn, then the process's peak RSS.
STEPS = r"""
import json, os, sys, time, warnings
warnings.filterwarnings("ignore")
from benchmarks.scale import city
kind, n, what = sys.argv[1], int(sys.argv[2]), sys.argv[3]
T, CPU = {}, {}
load = os.getloadavg()[0]
t0 = time.perf_counter(); ds = city(kind, n); T["dataset build"] = time.perf_counter() - t0
import numpy as np
from spatial.weights import build_weights, contiguity_matrix
from spatial.local import local_statistic
from spatial.indices import names
from spatial.indices.compute import compute_indices
def step(name, fn):
    c0, t0 = time.process_time(), time.perf_counter()
    out = fn()
    T[name], CPU[name] = time.perf_counter() - t0, time.process_time() - c0
    return out
def sd():
    return compute_indices(ds, group="migrants", indices=["spatial_dissimilarity"])
w = step("queen weights (contiguity built)", lambda: build_weights(ds, "queen"))
step("rook contiguity", lambda: contiguity_matrix(np.asarray(ds.metric.geometry.values), rook=True))
lisa = step("LISA 999, global Moran's I included", lambda: local_statistic(ds, "migrants", "lisa", weights=w,
            permutations=999, seed=1))
import resource
r0 = resource.getrusage(resource.RUSAGE_SELF)
step("Gi* 999", lambda: local_statistic(ds, "migrants", "gi_star", weights=w, permutations=999, seed=1))
r1 = resource.getrusage(resource.RUSAGE_SELF)
T["Gi* 999: minor page faults, waits for a core"] = (f"{r1.ru_minflt - r0.ru_minflt:,} "
    f"({(r1.ru_minflt - r0.ru_minflt) * 4 / 1024:,.0f} MB), {r1.ru_nivcsw - r0.ru_nivcsw:,}")
aspatial = names(kind="two_group", spatial=False)
step(f"all {len(aspatial)} aspatial two-group indices", lambda: compute_indices(ds, group="migrants",
     indices=aspatial))
step("spatial dissimilarity, contiguity shared with the weights", sd)
ds.weights_cache.pop(("contiguity", False))  # as on a dataset whose weights were never asked for
step("spatial dissimilarity, contiguity built in the call", sd)
if what == "all":
    step("999-simulation D test with its interval", lambda: compute_indices(ds, group="migrants",
         indices=["dissimilarity"], permutations=999, seed=1))
T["peak memory"] = PEAK
T["global Moran's p from"] = lisa.summary["global_moran"]["test"]
T["load average at start (2 cores)"] = f"{load:.1f}"
print(json.dumps({**T, **{f"{k} [CPU]": v for k, v in CPU.items()}}))
""".replace("PEAK", PEAK_RSS)

MAKE = r"""
import json, sys, time
from benchmarks.scale import city
t0 = time.perf_counter(); city("voronoi", int(sys.argv[1]))
print(json.dumps({"Voronoi tessellation made (once, then read from disk)": time.perf_counter() - t0}))
"""

LIBPYSAL = r"""
import json, sys, time, warnings
warnings.filterwarnings("ignore")
from benchmarks.scale import city
from libpysal.graph import Graph
ds = city(sys.argv[1], int(sys.argv[2]))
t0 = time.perf_counter(); Graph.build_contiguity(ds.metric, rook=False); t = time.perf_counter() - t0
print(json.dumps({"libpysal queen": t, "libpysal peak memory": PEAK}))
""".replace("PEAK", PEAK_RSS)

# esda with numba warmed on a small city first (its best configuration), equal work: Moran_Local + Moran.
ESDA = r"""
import json, sys, time, warnings
warnings.filterwarnings("ignore")
import esda
from benchmarks.scale import city
from spatial.weights import build_weights
def run(ds):
    w = build_weights(ds, "queen").graph
    y = ds.share("migrants")
    t0 = time.perf_counter()
    esda.Moran_Local(y, w, permutations=999, seed=1, keep_simulations=False, n_jobs=1)
    esda.Moran(y, w, permutations=0)
    t1 = time.perf_counter()
    esda.G_Local(y, w.transform("b"), transform="B", star=True, permutations=999, seed=1, keep_simulations=False,
                 n_jobs=1)
    return t1 - t0, time.perf_counter() - t1
run(city("grid", 400))
lisa, gi = run(city(sys.argv[1], int(sys.argv[2])))
print(json.dumps({"esda LISA 999 + Moran": lisa, "esda Gi* 999": gi}))
"""

PYSAL_D = r"""
import json, sys, time, warnings
warnings.filterwarnings("ignore")
import segregation.singlegroup as sg
from segregation.inference import SingleValueTest
from benchmarks.scale import city
ds = city(sys.argv[1], int(sys.argv[2]))
t0 = time.perf_counter()
SingleValueTest(sg.Dissim(ds.areas, "migrants", "total"), iterations_under_null=999, null_approach="systematic",
                n_jobs=1)
print(json.dumps({"pysal D test 999 (no interval)": time.perf_counter() - t0}))
"""


def city(kind: str, n: int):
    """The grid city of benchmarks.common, or a Voronoi tessellation of ``n`` random points (cached on disk)."""
    from benchmarks.common import grid_city

    if kind == "grid":
        return grid_city(n)
    import geopandas as gpd
    import numpy as np

    from spatial.dataset import validate

    path = OUT / f"voronoi_{n}.parquet"
    if path.exists():
        geoms = gpd.read_parquet(path).geometry.to_numpy()
    else:
        geoms = voronoi(n)
        OUT.mkdir(exist_ok=True)
        gpd.GeoDataFrame(geometry=geoms, crs="EPSG:32633").to_parquet(path)
    rng = np.random.default_rng(0)
    x = gpd.GeoSeries(geoms).centroid.x.to_numpy()
    total = rng.integers(50, 1500, n)
    share = 0.05 + 0.3 * (x - x.min()) / (np.ptp(x) or 1)  # a west-to-east gradient
    gdf = gpd.GeoDataFrame(
        {"id": [f"v{k}" for k in range(n)], "total": total, "migrants": rng.binomial(total, share)},
        geometry=geoms,
        crs="EPSG:32633",
    )
    return validate(gdf, id_col="id", groups=["migrants"], total="total")


def voronoi(n: int, seed: int = 0):
    """``n`` Voronoi cells of uniform random points in a square of ~200 m cells, clipped to the square."""
    import numpy as np
    import shapely

    side = 200.0 * np.sqrt(n)
    rng = np.random.default_rng(seed)
    pts = shapely.multipoints(rng.uniform(0, side, (n, 2)) + [500_000.0, 5_000_000.0])
    frame = shapely.box(500_000.0, 5_000_000.0, 500_000.0 + side, 5_000_000.0 + side)
    cells = shapely.get_parts(shapely.voronoi_polygons(pts, extend_to=frame))
    return shapely.intersection(cells, frame)


def cell(row: str, v, cpu=None) -> str:
    if isinstance(v, str):
        return v
    if "memory" in row:
        return f"{v:,.0f} MB"
    return f"{v:.3g} s" + (f" ({cpu:.3g} s CPU)" if cpu is not None else "")


def measure(kind: str, sizes, libpysal_max: int, anchor_at: int, pysal_d: bool) -> dict:
    cols = {}
    for n in sizes:
        print(f"scale: {kind} {n:,}", file=sys.stderr)
        made = {}
        if kind == "voronoi" and not (OUT / f"voronoi_{n}.parquet").exists():  # made once, not a dataset build
            made = child(MAKE, n, timeout=3600)
        what = "all" if kind == "grid" or n <= 100_000 or not QUICK else "no D test"
        r = child(STEPS, kind, n, what, timeout=1800)
        if n <= libpysal_max:
            r.update(child(LIBPYSAL, kind, n, timeout=1800))
        if n == anchor_at:
            r.update(child(ESDA, kind, n, timeout=1800))
            if pysal_d:
                r.update(child(PYSAL_D, kind, n, timeout=1800))
        cols[n] = {**made, **r}
    return cols


def render(kind: str, cols: dict) -> str:
    rows = []
    for cols_n in cols.values():
        rows += [k for k in cols_n if k not in rows and not k.endswith(" [CPU]")]
    sizes = list(cols)
    lines = [
        "| step | " + " | ".join(f"{n:,}" for n in sizes) + " |",
        "|---|" + "---|" * len(sizes),
    ]
    for row in rows:
        cells = (cell(row, cols[n].get(row, "—"), cols[n].get(f"{row} [CPU]")) for n in sizes)
        lines.append(f"| {row} | " + " | ".join(cells) + " |")
    return f"### {kind}\n\n" + "\n".join(lines) + "\n"


RENAMED = {  # rows of earlier tables under today's names (the same steps)
    "queen weights": "queen weights (contiguity built)",
    "spatial dissimilarity (its contiguity included)": "spatial dissimilarity, contiguity built in the call",
}
STORE = RESULTS / "scale.json"  # every column's raw values, so a run of some sizes keeps the others' columns


def stored() -> dict:
    """Columns of earlier runs: results/scale.json, or at first the tables of results/scale.md as text."""
    import json
    import re

    if STORE.exists():
        return {kind: {int(n): col for n, col in cols.items()} for kind, cols in json.loads(STORE.read_text()).items()}
    md = (RESULTS / "scale.md").read_text() if (RESULTS / "scale.md").exists() else ""
    date = (re.search(r"Measured (\S+) ", md) or [None, "earlier"])[1]
    out = {}
    for kind, table in re.findall(r"### (Grid|Voronoi tessellation)\n\n(.*?)(?:\n\n|$)", md, re.S):
        lines = [[c.strip() for c in line.strip("|").split("|")] for line in table.splitlines()]
        sizes = [int(v.replace(",", "")) for v in lines[0][1:]]
        cols = {n: {"measured": f"{date}, earlier code"} for n in sizes}
        for row in lines[2:]:
            for n, v in zip(sizes, row[1:], strict=True):
                if v != "—":
                    cols[n][RENAMED.get(row[0], row[0])] = v
        out["grid" if kind == "Grid" else "voronoi"] = cols
    return out


def main(quick: bool = QUICK, only: tuple[int, ...] | None = None) -> None:
    """Measure every size (or only those given), keep the other columns from earlier runs, write the tables."""
    import datetime as dt
    import json

    sizes = (10_000, 100_000, 1_000_000) if quick else (10_000, 100_000, 300_000, 1_000_000)
    pick = [n for n in sizes if only is None or n in only]
    grid = measure("grid", pick, libpysal_max=100_000 if quick else 1_000_000, anchor_at=100_000, pysal_d=True)
    vor_sizes = [n for n in ((1_000_000,) if quick else sizes) if only is None or n in only]
    vor = measure("voronoi", vor_sizes, libpysal_max=0 if quick else 300_000, anchor_at=0, pysal_d=False)
    now = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    cols = stored() if only is not None else {}
    for kind, new in (("grid", grid), ("voronoi", vor)):
        cols.setdefault(kind, {}).update({n: {"measured": now, **c} for n, c in new.items()})
    RESULTS.mkdir(exist_ok=True)
    STORE.write_text(json.dumps(cols, indent=1))
    write("scale", text({k: dict(sorted(v.items())) for k, v in cols.items()}))


def text(cols: dict) -> str:
    return (
        header("A million areas: growth from 10,000 to 1,000,000 areas (issue 20)")
        + "Each column is one fresh process running the steps in turn (peak memory is that process's); "
        "libpysal's `Graph.build_contiguity`, esda (numba warmed on a small city first, `n_jobs=1`, "
        "`Moran_Local` + `Moran` for equal work) and pysal `segregation` (`SingleValueTest`, 999 simulations, "
        "`n_jobs=1`, no interval) each in a fresh process of their own on the same data. "
        "The grid has a corner cluster (queen: ~8 neighbours); the Voronoi cells of uniform random points "
        "(~6 neighbours) are made by `benchmarks/scale.py` and have a west-to-east gradient. "
        "LISA's global Moran's I is tested with its randomisation moments (the row `global Moran's p from`); "
        "`global_test='permutation'` permutes instead. segmap's steps show wall clock and, in brackets, the "
        "process's CPU time: on a shared machine the gap between them is time spent waiting for a core (the load "
        "average row), not work. Contiguity is built once per dataset and shared by the weights and the spatial "
        "indices; the two spatial dissimilarity rows time it shared and built in the call. "
        "`python -m benchmarks.scale --sizes 1000000` re-measures those columns only; the row `measured` says when "
        "each column was (columns of earlier code lack the newer rows).\n\n"
        + render("Grid", cols.get("grid", {}))
        + "\n"
        + render("Voronoi tessellation", cols.get("voronoi", {}))
    )


if __name__ == "__main__":
    given = next((a.split("=", 1)[1] for a in sys.argv if a.startswith("--sizes=")), None)
    if "--sizes" in sys.argv:
        given = sys.argv[sys.argv.index("--sizes") + 1]
    main(quick="--full" not in sys.argv, only=tuple(int(v) for v in given.split(",")) if given else None)
