"""Tiles of a million areas (issue 20) on a 2-worker uvicorn: the first seconds of a new version, the shared
index's build, every zoom's uncached tiles after it, cached tiles under wrk, and the server's memory.

The dataset (benchmarks.scale: a 1,000,000-cell grid of 200 m cells, or a Voronoi tessellation of 1,000,000
random points) is registered in the server's data folder before it starts (the upload has its own benchmark),
so the first tile request is the first time the service sees this version. Then:

1. two clients ask for distinct uncached tiles (zooms 4-16 near the centre) for SECONDS seconds;
2. the shared index's build (one process, ``build.log``: when each level was written, its peak memory);
3. after it, 8 distinct uncached tiles per zoom 4-16, at random areas' centroids;
4. wrk (2 threads, 16 connections, 10 s) on one cached tile at zoom 6 and one at zoom 12.

``flock /tmp/team/bench.lock python -m benchmarks.scale_tiles [--kind grid|voronoi] [--areas N] [--seconds S]``

To iterate: ``python -m benchmarks.scale_tiles --data-dir D --prepare`` registers the city in ``D`` and builds its
shared index there, untimed (no lock needed); then ``flock ... --data-dir D --phases zooms,cached`` reuses it
(phase 1 needs a fresh folder: it times the build). Runs with phases left out write ``scale_tiles_<kind>_partial``.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx
import numpy as np
import shapely

from benchmarks.common import header, table, write
from benchmarks.tiles_warmup import _hammer, _peak_rss, _summary, _tile, _timeline

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from server import LiveServer  # noqa: E402

ID = "big"


def _register(data_dir: Path, kind: str, n: int):
    from app.registry import Registry
    from benchmarks.scale import city

    ds = city(kind, n)
    t0 = time.perf_counter()
    Registry(data_dir).put(ID, ds)
    return ds, time.perf_counter() - t0


def _prepare(data_dir: Path, kind: str, n: int) -> None:
    """Register the city in ``data_dir`` (unless there) and build its shared tile index, as a server's builder would."""
    from app.registry import Registry
    from app.tilebuild import run

    data_dir.mkdir(parents=True, exist_ok=True)
    info = Registry(data_dir).info(ID)
    if info is None:
        _, seconds = _register(data_dir, kind, n)
        print(f"registered in {seconds:.1f} s")
        info = Registry(data_dir).info(ID)
    folder = data_dir / "tiles" / f"{ID}.{info['version']}"
    folder.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    run(str(data_dir / "datasets" / info["_file"]), str(folder))
    print(f"shared index in {folder} built in {time.perf_counter() - t0:.1f} s")


def _sample(data_dir: Path | None, kind: str, n: int):
    """(seconds to register or None when reused, the city's centre and 2,000 random areas' centroids, lon/lat)."""
    from app.registry import Registry

    registered = None
    if data_dir is not None and Registry(data_dir).info(ID) is not None:
        ds = Registry(data_dir).load(ID)
    else:
        data_dir.mkdir(parents=True, exist_ok=True)
        ds, registered = _register(data_dir, kind, n)
    b = ds.areas.to_crs(4326).total_bounds
    centre = shapely.Point((b[0] + b[2]) / 2, (b[1] + b[3]) / 2)
    sample = ds.areas.geometry.iloc[np.random.default_rng(1).choice(len(ds.areas), 2000, replace=False)]
    return registered, centre, shapely.get_coordinates(sample.centroid.to_crs(4326).values)


def _wait_built(data_dir: Path, timeout: float = 900) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        logs = list((data_dir / "tiles").glob(f"{ID}.*/build.log"))
        if logs and any((p.parent / "0.off.npy").exists() for p in logs):
            return json.loads(logs[0].read_text().splitlines()[-1])
        time.sleep(1)
    return {}


FRESH = httpx.Limits(max_keepalive_connections=0)  # a connection per request: both workers answer


def _settle(url: str, lonlat: np.ndarray, timeout: float = 300) -> float:
    """Seconds until 12 distinct uncached tiles in a row (new connections) are final: both workers are warm."""
    t0, in_a_row = time.perf_counter(), 0
    with httpx.Client(timeout=120, limits=FRESH) as client:
        for lon, lat in lonlat[::-1]:
            zt, x, y = _tile(lon, lat, 17)  # a zoom the per-zoom table does not ask for
            r = client.get(f"{url}/v1/datasets/{ID}/tiles/{zt}/{x}/{y}.mvt")
            in_a_row = 0 if "no-store" in r.headers.get("cache-control", "") else in_a_row + 1
            if in_a_row == 12 or time.perf_counter() - t0 > timeout:
                break
            time.sleep(0.2)
    return time.perf_counter() - t0


def _per_zoom(url: str, lonlat: np.ndarray, per_zoom: int, seed: int = 0) -> list[dict]:
    """``per_zoom`` distinct uncached tiles per zoom, each at a random area's centroid."""
    rng, rows = np.random.default_rng(seed), []
    with httpx.Client(timeout=120, limits=FRESH) as client:
        for z in range(4, 17):
            seen, ms, kb, provisional = set(), [], [], 0
            for lon, lat in lonlat[rng.permutation(len(lonlat))[:200]]:
                zt, x, y = _tile(lon, lat, z)
                if (x, y) in seen:
                    continue
                seen.add((x, y))
                t0 = time.perf_counter()
                r = client.get(f"{url}/v1/datasets/{ID}/tiles/{zt}/{x}/{y}.mvt")
                ms.append(1000 * (time.perf_counter() - t0))
                kb.append(len(r.content) / 1024)
                provisional += "no-store" in r.headers.get("cache-control", "")
                if len(seen) == per_zoom:
                    break
            rows.append(
                {
                    "zoom": z,
                    "tiles": len(ms),
                    "provisional": provisional,
                    "median ms": float(np.median(ms)),
                    "max ms": max(ms),
                    "max KB": max(kb),
                }
            )
    return rows


def _cpu_seconds(pid: int) -> float:
    """CPU seconds (user + system) used so far by a process and the processes of its group."""
    tick, total = os.sysconf("SC_CLK_TCK"), 0.0
    group = subprocess.run(["pgrep", "-g", str(pid)], capture_output=True, text=True).stdout.split()
    for p in {pid, *map(int, group)}:
        try:
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
        except (FileNotFoundError, IndexError):
            continue
        total += (int(fields[11]) + int(fields[12])) / tick
    return total


def _quiet(pid: int, timeout: float = 180) -> float:
    """Seconds until the server's processes use under 5 % of a core over 2 s: a worker still reading the version in
    the background (seconds of CPU at 1M areas) would serve wrk with what is left."""
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < timeout:
        before = _cpu_seconds(pid)
        time.sleep(2)
        if _cpu_seconds(pid) - before < 0.1:
            break
    return time.perf_counter() - t0


def _cached(url: str, lon: float, lat: float, server_pid: int) -> list[dict]:
    """wrk on one cached tile per zoom, with the CPU the server and wrk spent per request: on 2 shared cores their
    sum bounds what an idle machine could serve (2 s of CPU a second over the two)."""
    from benchmarks.load import wrk

    rows = []
    for z in (6, 12):
        zt, x, y = _tile(lon, lat, z)
        tile = f"{url}/v1/datasets/{ID}/tiles/{zt}/{x}/{y}.mvt"
        for _ in range(40):  # new connections: both workers hold it
            size = len(httpx.get(tile, timeout=120).content)
        if shutil.which("wrk"):
            _quiet(server_pid)
            load = os.getloadavg()[0]
            server0, child0 = _cpu_seconds(server_pid), resource.getrusage(resource.RUSAGE_CHILDREN)
            row = wrk(tile, 10)
            server1, child1 = _cpu_seconds(server_pid), resource.getrusage(resource.RUSAGE_CHILDREN)
            n = max(row["requests"], 1)
            server_us = 1e6 * (server1 - server0) / n
            wrk_us = 1e6 * (child1.ru_utime + child1.ru_stime - child0.ru_utime - child0.ru_stime) / n
            rows.append(
                {
                    "zoom": z,
                    "KB": size / 1024,
                    **row,
                    "load (1 min)": load,
                    "server CPU µs/request": server_us,
                    "wrk CPU µs/request": wrk_us,
                    "idle 2-core bound/s": 2e6 / (server_us + wrk_us),
                }
            )
    return rows


PHASES = ("warm", "zooms", "cached")


def main(
    kind: str = "grid", n: int = 1_000_000, seconds: float = 20.0, data_dir: Path | None = None, phases=PHASES
) -> None:
    keep = data_dir is not None
    data_dir = Path(data_dir) if keep else Path(tempfile.mkdtemp(prefix="segmap-scale-tiles-"))
    registered, centre, lonlat = _sample(data_dir, kind, n)
    for old in data_dir.glob("cache.sqlite*"):  # a reused folder's encoded tiles: every tile uncached again
        old.unlink()
    rss: list = []
    warm, build, after, zooms, cached = [], {}, (math.nan, math.nan), [], []
    server = LiveServer(workers=2, data_dir=data_dir, env={"SEGMAP_REGISTER_BUNDLED": "false"})
    try:
        with server as url:
            stop = threading.Event()
            threading.Thread(target=_peak_rss, args=(server.proc.pid, stop, rss), daemon=True).start()
            t0 = time.perf_counter()
            if "warm" in phases:
                warm = _hammer(url, centre, seconds, dataset=ID)
            build = _wait_built(data_dir)
            built_after = time.perf_counter() - t0
            after = (built_after, _settle(url, lonlat) + built_after)
            if "zooms" in phases:
                zooms = _per_zoom(url, lonlat, 8)
            if "cached" in phases:
                cached = _cached(url, centre.x, centre.y, server.proc.pid)
            steady = rss[-1] if rss else float("nan")
            stop.set()
    finally:
        if not keep:
            shutil.rmtree(data_dir, ignore_errors=True)
    topic = f"scale_tiles_{kind}" + ("" if tuple(phases) == PHASES and registered is not None else "_partial")
    _report(topic, kind, n, seconds, registered, warm, build, after, zooms, cached, rss, steady)


def _report(topic, kind, n, seconds, registered, warm, build, after, zooms, cached, rss, steady) -> None:
    what = f"{n:,} {'grid cells (200 m)' if kind == 'grid' else 'Voronoi cells'}"
    text = header(f"Tiles of {what} on a 2-worker server")
    if registered is not None:
        text += f"Registered in the data folder in {registered:.1f} s before the server started.\n\n"
    else:
        text += "A data folder registered and indexed before (``--data-dir``) reused: its index was not timed.\n\n"
    if warm:
        text += f"## The first {seconds:g} s after the first tile request\n\n" + table([_summary("first", warm)])
        text += "\n" + table(_timeline("first", warm))
    steps = build.get("done_at_s", {})
    text += (
        ""
        if not warm
        else (
            f"\nShared index built by one process (peak {build.get('peak_mb') or math.nan:,.0f} MB), written after "
            + ", ".join(f"{k}: {v:.1f} s" for k, v in steps.items())
            + f" (levels are zooms); complete {after[0]:.0f} s after the first tile request; both workers answering "
            f"final tiles {after[1]:.0f} s after it.\n\n"
        )
    )
    if zooms:
        text += "## Uncached tiles once built (8 distinct tiles a zoom, at random areas)\n\n" + table(zooms)
    if cached:
        text += "\n## Cached tiles under wrk (2 threads on the same 2 cores, 16 connections, 10 s)\n\n" + table(cached)
        text += (
            "\nCPU per request: the server's processes (from /proc) and wrk's (its rusage) over the run; the bound is "
            "2 s of CPU a second divided by their sum: what the two cores could serve with nothing else running.\n"
        )
    text += (
        f"\nServer memory (2 workers, builder, forkservers; RSS summed, shared pages counted in each): "
        f"peak {max(rss or [math.nan]):,.0f} MB, {steady:,.0f} MB at the end.\n"
    )
    write(topic, text)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kind", choices=("grid", "voronoi"), default="grid")
    parser.add_argument("--areas", type=int, default=1_000_000)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--data-dir", type=Path, help="use and keep this data folder (reused when it holds the city)")
    parser.add_argument("--prepare", action="store_true", help="only register and index the city in --data-dir")
    parser.add_argument("--phases", default=",".join(PHASES), help="comma-separated, of " + ", ".join(PHASES))
    args = parser.parse_args()
    if args.prepare:
        _prepare(args.data_dir, args.kind, args.areas)
    else:
        main(args.kind, args.areas, args.seconds, args.data_dir, tuple(args.phases.split(",")))
