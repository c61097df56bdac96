"""A dataset version's tile index, built once by a process of its own and shared by every worker through files.

In ``<data dir>/tiles/<id>.<version>/`` (written by :mod:`app.tilebuild`): each area's Web Mercator box, area and
centroid, the Z-order of the centroids' pixel cells and the areas sorted by size (``.npy``, memory-mapped),
and the geometries as WKB, original and simplified for each zoom below 14 (one blob and its offsets per level).
Every worker reads them memory-mapped and decodes only what a tile draws; no worker holds a million geometries,
builds anything or waits for a build.

While the index is built a tile is still answered at once, from what is there: before the boxes exist, an
empty tile; before a zoom's simplification exists, its polygons simplified for that tile alone (neighbours'
borders may not meet exactly), or left out before the original geometries exist. Such a tile is
:class:`app.tiles.Provisional`: never cached, and sent with a short max-age so map clients fetch it again.
Merged pixel cells need only the boxes: a tile of merged cells is final as soon as they exist. A small dataset
(under ``INLINE_COORDS`` vertices) is built before its first tile, in a few milliseconds.
"""

from __future__ import annotations

import fcntl
import logging
import mmap
import multiprocessing
import threading
import time
from pathlib import Path

import geopandas as gpd
import numpy as np
import shapely
from pyproj import Transformer

from . import tilebuild
from .tilebuild import BASE, ORIG, build_missing, complete, written
from .tilegrid import cell_size, cells_of_run, tile_run
from .tiles import SIMPLIFIED_BELOW, WORLD, Selection, TileIndex, simplify_level, tiles_covering

INLINE_COORDS = 30_000
NEAR_FROM = 20_000
SIMPLIFY_FROM = 16  # coordinates: smaller polygons are drawn unsimplified in a provisional tile
BUILD_ATTEMPTS = 3  # a builder that fails this often (a broken file) is not started again by this worker
log = logging.getLogger("segmap.tiles")
_CONTEXT: list = []


def _builders():
    """Builder processes are forked from a forkserver that has imported app.tilebuild: they start in
    milliseconds, single-threaded (a fork of a threaded worker could inherit a held lock)."""
    if not _CONTEXT:
        ctx = multiprocessing.get_context("forkserver")
        ctx.set_forkserver_preload(["app.tilebuild"])
        _CONTEXT.append(ctx)
    return _CONTEXT[0]


def warm_builders() -> None:
    """Start the forkserver now, so that a new dataset version's build starts without a second of imports."""
    from multiprocessing import forkserver

    _builders()
    forkserver.ensure_running()


def start_builder(source: Path, folder: Path):
    """A child process running :func:`app.tilebuild.run` (tests replace this to simulate a slow builder)."""
    proc = _builders().Process(target=tilebuild.run, args=(str(source), str(folder)), daemon=True)
    proc.start()
    return proc


def simplified(geoms: np.ndarray, tolerance: float) -> np.ndarray:
    """A provisional tile's polygons simplified for it alone, but those of ``SIMPLIFY_FROM`` coordinates or fewer
    drawn as they are: simplifying them saves no bytes worth the time (10,000 grid squares: 35-110 ms a tile on a
    loaded 2-core machine, most of such a tile's time; issue 18 item 3)."""
    many = shapely.get_num_coordinates(geoms) > SIMPLIFY_FROM
    if many.any():
        geoms = geoms.copy()
        geoms[many] = shapely.simplify(geoms[many], tolerance, preserve_topology=True)
    return geoms


class SharedTileIndex(TileIndex):
    """The :class:`app.tiles.TileIndex` of one dataset version, read from ``folder``; its files are written by a
    builder process reading ``source`` (the version's GeoParquet; None: written here from ``areas``). Tiles
    equal those of an in-memory index once their level is written."""

    def __init__(self, areas: gpd.GeoDataFrame, folder: Path, source: Path | None = None):
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self._areas, self._source, self._lock = areas, source, threading.Lock()
        self._loaded: dict = {}  # level -> (blob, offsets), or "base" -> the arrays of tilebuild.BASE
        self._memory: dict = {}  # levels a final tile (an export) needed before the builder wrote them
        self._whole: TileIndex | None = None  # the in-memory index, if an export came before the shared one
        self._builder, self._closed = None, False
        if int(shapely.get_num_coordinates(areas.geometry.values).sum()) < INLINE_COORDS:
            with open(self.folder / "build.lock", "a+b") as lock:
                fcntl.flock(lock, fcntl.LOCK_EX)
                build_missing(self.folder, areas.geometry)
        else:
            threading.Thread(target=self._watch, name="segmap-tile-build", daemon=True).start()

    # -- building: in a child process; this thread only waits -----------------------------------------
    def _watch(self) -> None:
        failures = 0
        while not self._closed and not complete(self.folder) and failures < BUILD_ATTEMPTS:
            if self._locked():  # another process builds: its files appear one by one; take over if it dies
                time.sleep(0.25)
                continue
            try:
                self._builder = start_builder(self._source_file(), self.folder)
                self._builder.join()
                code = self._builder.exitcode
            except Exception as exc:  # a builder that cannot start: tiles stay provisional, the server goes on
                code = repr(exc)
            if code != 0 and not self._closed:
                failures += 1
                log.warning("tile index builder for %s failed: %s", self.folder.name, code)
            self._builder = None

    def _locked(self) -> bool:
        with open(self.folder / "build.lock", "a+b") as lock:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                return True
            fcntl.flock(lock, fcntl.LOCK_UN)
            return False

    def _source_file(self) -> Path:
        if self._source is not None and Path(self._source).is_file():
            return Path(self._source)
        path = self.folder / "source.parquet"
        if not path.exists():
            tmp = self.folder / f".source.{threading.get_ident()}.tmp.parquet"
            gpd.GeoDataFrame(geometry=self._areas.geometry.values, crs=self._areas.crs).to_parquet(tmp)
            tmp.replace(path)
        return path

    def close(self) -> None:
        """Stop this worker's builder, if it runs (another worker's takes over)."""
        self._closed = True
        builder = self._builder
        if builder is not None and builder.is_alive():
            builder.terminate()

    def _complete(self) -> bool:
        return complete(self.folder)

    # -- reading ------------------------------------------------------------------------------------
    def _ready(self, level) -> bool:
        if level in self._loaded:
            return True
        try:
            if level == "base":
                if not written(self.folder, "base"):
                    return False
                loaded = tuple(np.load(self.folder / f"{n}.npy", mmap_mode="r") for n in BASE)
                if len(loaded[1]) != len(self._areas):  # not this dataset's areas: never drawn
                    return False
            else:
                offsets = np.load(self.folder / f"{level}.off.npy", mmap_mode="r")
                with open(self.folder / f"{level}.wkb", "rb") as f:
                    loaded = (mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ), offsets)
        except (FileNotFoundError, ValueError):  # not written yet, or being replaced
            return False
        self._loaded[level] = loaded
        return True

    def _wkb(self, level, idx: np.ndarray) -> np.ndarray:
        blob, off = self._loaded[level]
        starts, ends = np.asarray(off[idx]).tolist(), np.asarray(off[np.asarray(idx) + 1]).tolist()  # not per item
        out = shapely.from_wkb([blob[a:b] for a, b in zip(starts, ends)])
        return np.asarray(out, dtype=object).reshape(len(idx))

    @property
    def bounds_3857(self) -> tuple:
        if self._ready("base"):
            b = self._loaded["base"][0]
            return (float(b[:, 0].min()), float(b[:, 1].min()), float(b[:, 2].max()), float(b[:, 3].max()))
        native = self._areas.geometry
        return tuple(Transformer.from_crs(native.crs, 3857, always_xy=True).transform_bounds(*native.total_bounds))

    @property
    def area(self) -> np.ndarray:
        while not self._ready("base"):
            time.sleep(0.05)
        return self._loaded["base"][1]

    def select(self, z: int, x: int, y: int, box: tuple, final: bool = False) -> Selection | None:
        if not self._ready("base"):
            # An export does not wait for a builder that may be slow or gone: it uses the same index, in memory.
            return self._whole_select(z, x, y, box) if final else None
        _, area, _, codes, order, area_sorted, _ = self._loaded["base"]
        lo, hi = tile_run(codes, z, x, y)  # areas whose centroid is in the tile: one run of the Z-order
        run = np.asarray(order[lo:hi])
        everyone = len(area_sorted) and area_sorted[-1] < cell_size(z) ** 2  # all merge: no gather of their areas
        small = np.ones(len(run), dtype=bool) if everyone else area[run] < cell_size(z) ** 2
        none = np.empty(0, dtype=np.int64)
        cell, gx, gy = cells_of_run(np.asarray(codes[lo:hi])[small], z) if small.any() else (none, none, none)
        drawn = self._drawn(box, cell_size(z) ** 2)
        geometries, provisional = self._geometries(z, drawn, final) if len(drawn) else (None, False)
        return Selection(drawn, geometries, run[small], cell, gx, gy, provisional)

    def _drawn(self, box: tuple, least: float) -> np.ndarray:
        """Areas of at least ``least`` m² whose boxes meet ``box``, sorted. Tested: the large ones when they are
        few, else those whose centroid is near enough (a few runs of the Z-order), else all (32 MB at 1M)."""
        bounds, area, _, _, _, area_sorted, by_area = self._loaded["base"]
        k = int(np.searchsorted(area_sorted, least, side="left"))
        if 2 * k >= len(area):  # few are drawn at this zoom
            cand = np.asarray(by_area[k:])
        else:  # testing every box is quicker than a search below some 20,000 areas
            cand = self._near(box) if len(area) > NEAR_FROM else None
        if cand is None:
            b = bounds
            hit = (b[:, 0] <= box[2]) & (b[:, 2] >= box[0]) & (b[:, 1] <= box[3]) & (b[:, 3] >= box[1])
            return np.flatnonzero(hit & (area >= least))
        b = bounds[cand]
        hit = (b[:, 0] <= box[2]) & (b[:, 2] >= box[0]) & (b[:, 1] <= box[3]) & (b[:, 3] >= box[1])
        return np.unique(cand[hit & (area[cand] >= least)])  # sorted; a wide area may also be near

    def _near(self, box: tuple) -> np.ndarray | None:
        """Areas whose box may meet ``box``: centroids within ``reach`` of it (every area's box extends at most that
        far from its centroid, but for the few far-reaching ``wide`` ones, added whole); None: too many."""
        _, _, _, codes, order, _, _ = self._loaded["base"]
        reach, wide = self._reach()
        x0, y0, x1, y1 = box[0] - reach, box[1] - reach, box[2] + reach, box[3] + reach
        q = int(np.clip(np.floor(np.log2(WORLD / max(x1 - x0, y1 - y0))), 0, 22))  # tiles of q: at most 2 × 2
        runs = [tile_run(codes, *t) for t in tiles_covering((x0, y0, x1, y1), q)]
        if sum(hi - lo for lo, hi in runs) > len(order) // 4:
            return None
        return np.concatenate([np.asarray(order[lo:hi]) for lo, hi in runs] + [wide])

    def _reach(self) -> tuple[float, np.ndarray]:
        if "reach" not in self._loaded:
            bounds, _, centroids, *_ = self._loaded["base"]
            c = np.asarray(centroids)
            far = np.max(np.abs(np.asarray(bounds) - np.hstack([c, c])), axis=1)
            cut = max(4 * float(np.median(far)), float(np.quantile(far, 0.999))) if len(far) else 0.0
            wide = np.flatnonzero(far > cut)
            # 1 m more: a centroid on the edge of a tile is in it by either rounding
            self._loaded["reach"] = (float(far[far <= cut].max(initial=0.0)) + 1.0, wide)
        return self._loaded["reach"]

    def _geometries(self, z: int, drawn: np.ndarray, final: bool):
        key = ORIG if z >= SIMPLIFIED_BELOW else z
        if self._ready(key):
            return (lambda: self._wkb(key, drawn)), False
        if final:  # what the builder will write, made here (deterministic) rather than waited for
            level = self._final_level(key, z)
            return (lambda: level[drawn]), False
        if not self._ready(ORIG):
            return None, True
        tolerance = 0.5 * WORLD / (256 * 2**z)
        return (lambda: simplified(self._wkb(ORIG, drawn), tolerance)), True

    def _final_level(self, key, z: int) -> np.ndarray:
        with self._lock:
            if key not in self._memory:
                if self._ready(key):
                    self._memory[key] = self._wkb(key, np.arange(len(self.area)))
                elif self._ready(ORIG):
                    whole = self._wkb(ORIG, np.arange(len(self.area)))
                    self._memory[key] = whole if key == ORIG else simplify_level(whole, np.asarray(self.area), z)
                else:
                    self._whole = self._whole or TileIndex(self._areas)
                    self._memory[key] = self._whole.geometries(z)
            return self._memory[key]

    def _whole_select(self, z: int, x: int, y: int, box: tuple) -> Selection:
        with self._lock:
            self._whole = self._whole or TileIndex(self._areas)
        return self._whole.select(z, x, y, box, final=True)
