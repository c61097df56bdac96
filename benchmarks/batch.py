"""`segmap batch` throughput on a synthetic country: jobs per minute on 1 and 2 Dask workers, peak memory per
worker, and a serial loop over pysal `segregation` (+ esda for the local clusters) on 20 of the places.

The country (``make_country``) has 1,000 places of 500–20,000 grid cells each (log-uniform sizes, seeded), one
GeoParquet file per place and a manifest; ``--places N`` keeps the first N (the same N places whatever the
total): the default run takes 30 (184,586 areas) to stay under ten minutes on 2 cores, and the pysal loop takes
the 20 smallest of the first 100, with 19 simulations on both sides. Each job: dissimilarity and isolation of one
group with 99 simulations, LISA with 999 permutations and FDR, on the protected table (threshold 10).

python -m benchmarks.batch [--places 30] [--pysal 20] [--out DIR]
"""

from __future__ import annotations

import argparse
import functools
import os
import resource
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import geopandas as gpd
import numpy as np
import pyarrow.parquet as pq
from shapely import box

from benchmarks.common import QUICK, header, ratio, table, write

PLACES, MIN_AREAS, MAX_AREAS = 1000, 500, 20_000
PERMUTATIONS, LOCAL_PERMUTATIONS = 99, 999
LOOP_PERMUTATIONS = 19  # the serial comparison: pysal's simulations are a Python loop over GeoDataFrames


def place_frame(k: int, n: int, rng) -> gpd.GeoDataFrame:
    """One place: a grid of ``n`` 200 m cells, a migrant cluster whose strength varies by place."""
    side = int(np.ceil(np.sqrt(n)))
    i, j = np.divmod(np.arange(n), side)
    x0, y0 = 300_000.0 + (k % 40) * 40_000.0, 5_000_000.0 + (k // 40) * 40_000.0
    geoms = box(x0 + i * 200.0, y0 + j * 200.0, x0 + (i + 1) * 200.0, y0 + (j + 1) * 200.0)
    total = rng.integers(30, 1200, n)
    strength = rng.uniform(0.0, 0.4)
    near = np.hypot(i - side * rng.uniform(0.2, 0.8), j - side * rng.uniform(0.2, 0.8)) < side / 4
    migrants = rng.binomial(total, np.where(near, 0.08 + strength, 0.08))
    return gpd.GeoDataFrame(
        {"area": [f"{k}-{m}" for m in range(n)], "total": total, "migrants": migrants}, geometry=geoms, crs="EPSG:32633"
    )


def make_country(out: Path, places: int = PLACES, seed: int = 0) -> Path:
    """Write the first ``places`` places of the country and their manifest; returns the manifest's path."""
    out.mkdir(parents=True, exist_ok=True)
    sizes = np.exp(np.random.default_rng(seed).uniform(np.log(MIN_AREAS), np.log(MAX_AREAS), PLACES)).astype(int)
    lines = ["place,date,boundaries,key,groups,total"]
    for k in range(places):
        path = out / f"place_{k:04d}.parquet"
        if not path.exists():
            place_frame(k, int(sizes[k]), np.random.default_rng([seed, k])).to_parquet(path)
        lines.append(f"Place {k:04d},2021,{path},area,migrants,total")
    manifest = out / "manifest.csv"
    manifest.write_text("\n".join(lines) + "\n")
    return manifest


def _usage() -> tuple[float, float]:
    """(peak RSS MB, CPU seconds) of this process. The peak is VmHWM: ru_maxrss is carried over from the parent
    through fork and exec, so every worker reported the benchmark process's own 2.67 GB."""
    r = resource.getrusage(resource.RUSAGE_SELF)
    peak = int(next(line for line in open("/proc/self/status") if line.startswith("VmHWM")).split()[1]) / 1024
    return peak, r.ru_utime + r.ru_stime


def run_cluster(jobs, workers: int, opts) -> dict:
    """Jobs per minute on a fresh LocalCluster of ``workers`` (start-up excluded), and each worker's peak RSS."""
    from dask.distributed import Client

    from spatial.batch.engine import local_cluster, run
    from spatial.batch.job import run_job

    with local_cluster(workers) as cluster, Client(cluster) as client:
        client.run(lambda: __import__("spatial.batch.job") and __import__("spatial.local"))  # imports warm
        failed = []
        cpu0 = client.run(_usage)
        load = os.getloadavg()[0]
        start = time.perf_counter()
        run(jobs, functools.partial(run_job, opts=opts), lambda j, rows: failed.extend(r for r in rows if r["status"] != "ok"), client=client)  # fmt: skip
        seconds = time.perf_counter() - start
        usage = client.run(_usage)
    cpu = {w: usage[w][1] - cpu0.get(w, (0, 0))[1] for w in usage}  # a restarted worker would count from 0
    # Cores the workers got: on a machine shared with other work, 2 workers may get no more than 1 did.
    return {"workers": workers, "jobs": len(jobs), "failed": len(failed), "seconds": seconds,
            "jobs per minute": len(jobs) / seconds * 60, "peak RSS per worker MB": max(u[0] for u in usage.values()),
            "worker CPU s": sum(cpu.values()), "cores used": sum(cpu.values()) / seconds,
            "load average at start": load}  # fmt: skip


def pysal_loop(jobs) -> float:
    """Seconds for the places through pysal segregation (Dissim, Isolation, each with 99 simulations) and esda's
    local Moran (999 permutations) + FDR, one after the other: what a script without segmap batch does."""
    import esda
    from libpysal.weights import Queen
    from segregation.inference import SingleValueTest
    from segregation.singlegroup import Dissim, Isolation

    def lisa(gdf):
        w = Queen.from_dataframe(gdf, use_index=False)
        w.transform = "r"
        out = esda.Moran_Local(gdf["migrants"] / gdf["total"], w, permutations=LOCAL_PERMUTATIONS, n_jobs=1, seed=0)
        return esda.fdr(out.p_sim, 0.05)

    lisa(gpd.read_parquet(jobs[0].boundaries))  # esda compiles with numba on its first call: not timed
    start = time.perf_counter()
    for job in jobs:
        gdf = gpd.read_parquet(job.boundaries)
        for cls in (Dissim, Isolation):
            index = cls(gdf, group_pop_var="migrants", total_pop_var="total")
            SingleValueTest(index, iterations_under_null=LOOP_PERMUTATIONS, null_approach="systematic", n_jobs=1)
        lisa(gdf)
    return time.perf_counter() - start


def segmap_loop(jobs, opts) -> float:
    from spatial.batch.job import run_job

    start = time.perf_counter()
    for job in jobs:
        run_job(job, opts)
    return time.perf_counter() - start


def main(places: int | None = None, n_pysal: int = 20, out: str | None = None, quick: bool = QUICK) -> None:
    """``places``: default 30, 20 in quick mode (`make bench`: the cluster runs are minutes on a loaded machine)."""
    places = places or (20 if quick else 30)
    from spatial.batch import read_manifest
    from spatial.batch.job import Options

    folder = Path(out) if out else Path(tempfile.gettempdir()) / "segmap-bench-country"
    t0 = time.perf_counter()
    every = read_manifest(make_country(folder, max(places, 100)))
    made = time.perf_counter() - t0
    every_areas = [pq.ParquetFile(j.boundaries).metadata.num_rows for j in every]
    jobs, areas = every[:places], every_areas[:places]
    opts = Options(
        indices=("dissimilarity", "isolation"), permutations=PERMUTATIONS, local_permutations=LOCAL_PERMUTATIONS
    )
    runs = [run_cluster(jobs, w, opts) for w in (1, 2)]
    w1, w2 = runs[0]["jobs per minute"], runs[1]["jobs per minute"]
    speedup = w2 / w1
    # The serial comparison on the smallest places of the first 100, with fewer simulations: pysal's are a Python
    # loop over GeoDataFrames (minutes per large place), and the whole benchmark has to stay under ten minutes.
    small = sorted(range(len(every)), key=every_areas.__getitem__)[:n_pysal]
    loop_opts = replace(opts, permutations=LOOP_PERMUTATIONS)
    if not n_pysal:  # --pysal 0: the cluster runs only
        write("batch", table(runs) + f"\nSpeed-up with 2 workers: {speedup:.2f}×\n")
        return
    t_pysal, t_segmap = pysal_loop([every[k] for k in small]), segmap_loop([every[k] for k in small], loop_opts)
    loop = [{"places (smallest of 100)": n_pysal, "areas": sum(every_areas[k] for k in small), "pysal + esda serial s": t_pysal,
             "segmap run_job serial s": t_segmap,
             "ratio": ratio([t_pysal], [t_segmap], key=f"serial loop, {n_pysal} places")}]  # fmt: skip
    write(
        "batch",
        header(
            f"Batch: {places} of the synthetic country's {PLACES} places ({sum(areas):,} areas, "
            f"{min(areas):,}–{max(areas):,} per place)"
        )  # fmt: skip
        + f"Country written in {made:.1f} s. Per job: dissimilarity and isolation with {PERMUTATIONS} simulations "
        f"(plus the calibration), LISA with {LOCAL_PERMUTATIONS} permutations and FDR, disclosure threshold 10. "
        "Jobs per minute exclude the cluster's start; peak memory is each worker process's maximum RSS; cores used "
        "is the workers' CPU time over the wall time (what the machine gave them beside other work).\n\n"
        + table(runs)
        + f"\nSpeed-up with 2 workers: {ratio([w2], [w1], key='2 workers / 1 worker, jobs per minute')} "
        "(target ≥ 1.7×; one run each: it depends on what else the 2 cores run).\n\n"
        + f"Serial loop, the same work per place with {LOOP_PERMUTATIONS} simulations per index "
        f"(pysal SingleValueTest, esda Moran_Local + fdr; esda's numba compile not timed):\n\n" + table(loop),
    )


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--places", type=int, default=30, help=f"places to run (the country has {PLACES}; default 30)")
    p.add_argument("--pysal", type=int, default=20, help="smallest places through the serial pysal loop (default 20)")
    p.add_argument("--out", help="folder for the country (default: a temp folder, reused)")
    a = p.parse_args()
    main(a.places, a.pysal, a.out)
