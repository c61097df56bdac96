"""Writes a dataset version's shared tile index (read by :mod:`app.tilestore`), normally in a process of its own.

The build (projection, per-zoom coverage simplification, WKB encoding) holds the GIL for seconds at 100,000
areas and a minute at 1,000,000: in a worker's thread it stalled that worker's tiles for as long (issue 18).
So a worker starts :func:`run` in a child forked from a forkserver that has imported this module already
(started in a few ms, not a second of imports), at the lowest CPU priority (nice 19, ``SCHED_IDLE``): it runs only on CPU the workers leave idle. The
child takes ``build.lock`` itself (``flock``: released when it exits or dies), so of racing workers one
builds and the others' children return at once.

Files are written in the order tiles can use them: ``base`` (boxes, areas, centroids and the Z-order of the
centroids' pixel cells: every merged-cell tile is final from then on), the original geometries, then each
zoom's simplified coverage, street zooms first.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import time
from pathlib import Path

import numpy as np
import shapely

from .tilegrid import grid_order
from .tiles import SIMPLIFIED_BELOW, simplify_level

ORIG = "orig"
BASE = ("bounds", "area", "centroids", "codes", "order", "area_sorted", "by_area")
NICE = 19  # and SCHED_IDLE: the build runs on what CPU the workers (and anything else) leave over


def _save(folder: Path, name: str, array: np.ndarray) -> None:
    tmp = folder / f".{name}.{os.getpid()}.tmp.npy"
    np.save(tmp, array)
    os.replace(tmp, folder / f"{name}.npy")


def _save_wkb(folder: Path, key, geoms: np.ndarray) -> None:
    """The level's WKB blob, then its offsets: the offsets file is the sign that the level is complete."""
    wkb = shapely.to_wkb(geoms)
    offsets = np.zeros(len(wkb) + 1, dtype=np.int64)
    np.cumsum([len(b) for b in wkb], out=offsets[1:])
    tmp = folder / f".{key}.{os.getpid()}.tmp.wkb"
    with open(tmp, "wb") as f:
        f.write(b"".join(wkb) or b"\0")  # mmap cannot map an empty file
    os.replace(tmp, folder / f"{key}.wkb")
    _save(folder, f"{key}.off", offsets)


BASE_DONE = "base2.done"  # base2: with the Z-order and the size order (folders of the first format are rebuilt)


def written(folder: Path, level) -> bool:
    return (folder / (BASE_DONE if level == "base" else f"{level}.off.npy")).exists()


def complete(folder: Path) -> bool:
    return all(written(folder, level) for level in ("base", ORIG, *range(SIMPLIFIED_BELOW)))


def _write_base(folder: Path, geoms: np.ndarray, area: np.ndarray) -> None:
    centroids = shapely.get_coordinates(shapely.centroid(geoms))
    codes, order = grid_order(centroids)
    by_area = np.argsort(area, kind="stable")
    arrays = (shapely.bounds(geoms), area, centroids, codes, order, area[by_area], by_area)
    for name, array in zip(BASE, arrays):
        _save(folder, name, array)
    (folder / BASE_DONE).touch()


def forget_other_versions(folder: Path) -> None:
    prefix = folder.name.rsplit(".", 1)[0] + "."
    for old in folder.parent.glob(prefix + "*"):
        if old != folder and old.name.rsplit(".", 1)[0] + "." == prefix:
            shutil.rmtree(old, ignore_errors=True)  # readers keep their open maps (Linux)


def build_missing(folder: Path, geometry) -> None:
    """Write whatever of ``folder``'s index is missing, from ``geometry`` (a GeoSeries); the caller holds the lock."""
    if complete(folder):
        return
    started, steps = time.perf_counter(), {}
    geoms = np.asarray(geometry.to_crs(3857).values, dtype=object)
    area = shapely.area(geoms)
    if not written(folder, "base"):
        _write_base(folder, geoms, area)
        forget_other_versions(folder)
        steps["base"] = time.perf_counter() - started
    if not written(folder, ORIG):
        _save_wkb(folder, ORIG, geoms)
        steps[ORIG] = time.perf_counter() - started
    for z in range(SIMPLIFIED_BELOW - 1, -1, -1):  # street zooms first: the most costly to do per tile
        if not written(folder, z):
            _save_wkb(folder, z, simplify_level(geoms, area, z))
            steps[z] = time.perf_counter() - started
    with open(folder / "build.log", "a") as log:  # who built what, when (seconds from its start), at what memory
        entry = {"pid": os.getpid(), "areas": len(geoms), "done_at_s": steps, "peak_mb": _peak_mb()}
        log.write(json.dumps(entry) + "\n")


def _peak_mb() -> float | None:
    try:
        with open("/proc/self/status") as f:
            return next(int(line.split()[1]) / 1024 for line in f if line.startswith("VmHWM"))
    except (OSError, StopIteration):
        return None


def read_geometry(source: Path):
    """The geometry column of a GeoParquet file, alone (what the index needs of a registered dataset)."""
    import geopandas as gpd
    import pyarrow.parquet as pq

    geo = json.loads(pq.read_schema(source).metadata[b"geo"])
    return gpd.read_parquet(source, columns=[geo["primary_column"]]).geometry


def lower_priority() -> None:
    """The lowest CPU priority this process may take: at nice 10 a builder still took ~10 % of a core the workers
    wanted (CFS weight 110 against 1024); SCHED_IDLE's weight is 3. Either may be refused (a container): ignored."""
    try:
        os.setpriority(os.PRIO_PROCESS, 0, max(NICE, os.getpriority(os.PRIO_PROCESS, 0)))
    except OSError:
        pass
    try:
        os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))
    except (OSError, AttributeError):
        pass


def run(source: str, folder: str) -> int:
    """A builder process: build ``folder`` from ``source`` unless another process holds its lock (then return)."""
    lower_priority()
    folder_path = Path(folder)
    with open(folder_path / "build.lock", "a+b") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return 0
        build_missing(folder_path, read_geometry(Path(source)))
    return 0
