"""A dataset version's tile index, built once and shared by every worker through files beside the dataset.

In ``<data dir>/tiles/<id>.<version>/``: each area's Web Mercator box, area and centroid (``.npy``, memory-mapped),
and its geometry as WKB, original and simplified for each zoom below 14 (one blob and its offsets per level).
One process builds them, holding ``build.lock`` (``flock``: released if it dies, and another worker carries
on); every process reads them memory-mapped, decoding only the areas a tile needs. So a new version costs its
projection and simplifications once, not once per worker, and no worker holds a million geometries.

While a level is being built a tile is still answered at once, drawn from the cheapest source ready: the
original geometries simplified for that tile alone (neighbours' borders may not meet exactly), or, before the
projection is shared, the areas' own geometries projected for that tile. Such a tile is
:class:`app.tiles.Provisional`: never cached. A small dataset (under ``INLINE_COORDS`` vertices) is built
before its first tile, which is as quick as a provisional one.
"""

from __future__ import annotations

import fcntl
import mmap
import os
import shutil
import threading
import time
from pathlib import Path

import geopandas as gpd
import numpy as np
import shapely
from pyproj import Transformer

from .tiles import SIMPLIFIED_BELOW, WORLD, TileIndex, simplify_level

INLINE_COORDS = 300_000
ORIG = "orig"


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


class SharedTileIndex(TileIndex):
    """The :class:`app.tiles.TileIndex` of one dataset version, read from (and, by one process, written to)
    ``folder``. Tiles equal those of an in-memory index once their level is ready."""

    def __init__(self, areas: gpd.GeoDataFrame, folder: Path):
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self._areas, self._lock = areas, threading.Lock()
        self._loaded: dict = {}  # level -> (blob, offsets), or "base" -> (bounds, area, centroids)
        self._native = None
        self._memory: dict = {}  # levels a final tile (an export) needed before the builder wrote them
        self._whole: TileIndex | None = None  # the in-memory index, if an export came before the shared one
        self.geoms = None  # the builder's projected geometries, only while it builds
        if int(shapely.get_num_coordinates(areas.geometry.values).sum()) < INLINE_COORDS:
            self._build(block=True)
        else:
            threading.Thread(target=self._run, name="segmap-tile-build", daemon=True).start()

    # -- building (one process at a time) ------------------------------------------------------------
    def _run(self) -> None:
        while not self._complete():
            if self._build(block=False):
                return
            time.sleep(0.5)  # another process builds: its files appear one by one; take over if it dies

    def _complete(self) -> bool:
        return self._ready("base") and all(self._ready(z) for z in range(SIMPLIFIED_BELOW))

    def _build(self, block: bool) -> bool:
        with open(self.folder / "build.lock", "a+b") as lock:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | (0 if block else fcntl.LOCK_NB))
            except BlockingIOError:
                return False
            try:
                self._build_missing()
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)
                self.geoms = None
        return True

    def _build_missing(self) -> None:
        if self._complete():
            return
        merc = self._areas.geometry.to_crs(3857)
        self.geoms = np.asarray(merc.values, dtype=object)
        area = shapely.area(self.geoms)
        if not self._ready("base"):
            self._forget_other_versions()
            _save(self.folder, "bounds", shapely.bounds(self.geoms))
            _save(self.folder, "area", area)
            _save(self.folder, "centroids", shapely.get_coordinates(shapely.centroid(self.geoms)))
            _save_wkb(self.folder, ORIG, self.geoms)
            (self.folder / "base.done").touch()
        for z in range(SIMPLIFIED_BELOW - 1, -1, -1):  # street zooms first: the most costly to do per tile
            if not self._ready(z):
                _save_wkb(self.folder, z, simplify_level(self.geoms, area, z))

    def _forget_other_versions(self) -> None:
        prefix = self.folder.name.rsplit(".", 1)[0] + "."
        for old in self.folder.parent.glob(prefix + "*"):
            if old != self.folder and old.name.rsplit(".", 1)[0] + "." == prefix:
                shutil.rmtree(old, ignore_errors=True)  # readers keep their open maps (Linux)

    # -- reading ------------------------------------------------------------------------------------
    def _ready(self, level) -> bool:
        if level in self._loaded:
            return True
        try:
            if level == "base":
                if not (self.folder / "base.done").exists():
                    return False
                loaded = tuple(
                    np.load(self.folder / f"{n}.npy", mmap_mode="r") for n in ("bounds", "area", "centroids")
                )
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
        out = shapely.from_wkb([blob[off[i] : off[i + 1]] for i in idx])
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
        self._wait_base()
        return self._loaded["base"][1]

    def _wait_base(self) -> None:
        while not self._ready("base"):
            time.sleep(0.05)

    def select(self, z: int, box: tuple, final: bool = False):
        if not self._ready("base"):
            # An export does not wait for a builder that may be slow or gone: it uses the same index, in memory.
            return self._whole_select(z, box) if final else self._native_select(z, box)
        bounds, area, centroids = self._loaded["base"]
        hits = np.flatnonzero(
            (bounds[:, 0] <= box[2]) & (bounds[:, 2] >= box[0]) & (bounds[:, 1] <= box[3]) & (bounds[:, 3] >= box[1])
        )
        key = ORIG if z >= SIMPLIFIED_BELOW else z
        if self._ready(key):
            return hits, area[hits], centroids[hits], lambda mask: self._wkb(key, hits[mask])
        if not self._ready(ORIG):  # removed meanwhile (a newer version replaced this one)
            return self._native_select(z, box) if not final else self._whole_select(z, box)
        if final:  # what the builder will write, made here (deterministic) rather than waited for
            with self._lock:
                if key not in self._memory and not self._ready(key):
                    self._memory[key] = simplify_level(self._wkb(ORIG, np.arange(len(area))), np.asarray(area), z)
            level = self._memory.get(key)
            if level is not None:
                return hits, area[hits], centroids[hits], lambda mask: level[hits[mask]]
            return hits, area[hits], centroids[hits], lambda mask: self._wkb(key, hits[mask])
        tolerance = 0.5 * WORLD / (256 * 2**z)

        def cheapest(mask):
            return shapely.simplify(self._wkb(ORIG, hits[mask]), tolerance, preserve_topology=True)

        cheapest.provisional = True
        return hits, area[hits], centroids[hits], cheapest

    def _whole_select(self, z: int, box: tuple):
        with self._lock:
            self._whole = self._whole or TileIndex(self._areas)
        return self._whole.select(z, box, final=True)

    def _native_select(self, z: int, box: tuple):
        """Before the projection is shared: the areas' own geometries, projected and simplified for this tile."""
        if self._native is None:
            native = self._areas.geometry
            self._native = (
                np.asarray(native.values, dtype=object),
                shapely.bounds(native.values),
                Transformer.from_crs(3857, native.crs, always_xy=True),
                Transformer.from_crs(native.crs, 3857, always_xy=True),
                native.crs,
            )
        geoms, bounds, to_native, to_merc, crs = self._native
        nb = to_native.transform_bounds(*box)
        hits = np.flatnonzero(
            (bounds[:, 0] <= nb[2]) & (bounds[:, 2] >= nb[0]) & (bounds[:, 1] <= nb[3]) & (bounds[:, 3] >= nb[1])
        )
        # Boxes and centroids projected as points (cheap); whole geometries only for the areas drawn as polygons.
        nb_hits = bounds[hits]
        x0, y0 = to_merc.transform(nb_hits[:, 0], nb_hits[:, 1])
        x1, y1 = to_merc.transform(nb_hits[:, 2], nb_hits[:, 3])
        native_area = shapely.area(geoms[hits])
        fill = native_area / np.maximum((nb_hits[:, 2] - nb_hits[:, 0]) * (nb_hits[:, 3] - nb_hits[:, 1]), 1e-300)
        area = np.abs((x1 - x0) * (y1 - y0)) * np.clip(fill, 0, 1)
        cx, cy = to_merc.transform(*shapely.get_coordinates(shapely.centroid(geoms[hits])).reshape(len(hits), 2).T)
        centroids = np.column_stack([cx, cy])
        tolerance = 0.5 * WORLD / (256 * 2**z)

        def cheapest(mask):
            merc = np.asarray(gpd.GeoSeries(geoms[hits[mask]], crs=crs).to_crs(3857).values, dtype=object)
            return merc if z >= SIMPLIFIED_BELOW else shapely.simplify(merc, tolerance, preserve_topology=True)

        cheapest.provisional = True
        return hits, area, centroids, cheapest
