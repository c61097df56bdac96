"""Vector tiles of the registered datasets: one :class:`TileService` per app, made and closed in its lifespan.

As a source in martin, a dataset version (an :class:`app.deps.Source`: id, version, the caller's protected
table) offers its TileJSON and its tiles. The service keeps what tiles of a version share: the geometry
index (public, so owner and public share it), the per-area attributes of a query, and its own encoder
thread. Encoded tiles go to the disk cache shared by workers; the ASGI layer in front
(``app.tilefast``) answers repeated anonymous ones from memory.
"""

from __future__ import annotations

import asyncio
import gc
import hashlib
import json
import math
import threading
import time
import weakref
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlencode

import numpy as np
from fastapi import Request, Response
from starlette.concurrency import run_in_threadpool

from spatial.dataset import ID
from spatial.disclosure import PublicData
from spatial.lru import LRU

from . import archive, tilephases
from .cache import DiskCache
from .deps import Source, method_for, threshold_for
from .http import HeavyWork, etag_for, etag_matches
from .problems import not_found
from .quietread import quiet_read
from .tilephases import mark
from .tiles import AGGREGATE_PX, LAYER, Provisional, TileAttributes, TileIndex, offline_tiles
from .tilestore import SharedTileIndex, warm_builders

MVT = "application/vnd.mapbox-vector-tile"
IMMUTABLE = "public, max-age=31536000, immutable"  # a versioned tile URL never changes meaning
# A tile drawn while its version's index is built: no cache keeps it, and map clients that schedule reloads from
# max-age (MapLibre's refreshExpiredTiles) fetch it again in a moment, when the final one may be there.
PROVISIONAL = "no-store, max-age=2"
WRITES_WAITING = 32


def tile_version(src: Source, settings) -> str:
    """The version token tile URLs carry: the dataset's content digest and its public disclosure rule (tiles
    change with either), the same for every caller, so replacing a dataset changes every tile URL."""
    rule = [src.version, threshold_for(src.info, settings, False), method_for(src.info, settings)]
    return hashlib.sha256(json.dumps(rule).encode()).hexdigest()[:16]


def tile_path(src: Source, version: str) -> str:
    return f"/v1/datasets/{src.id}/tiles/{version}/{{z}}/{{x}}/{{y}}.mvt"


@dataclass(frozen=True)
class Layer:
    """What a dataset's tiles carry beyond its counts and shares: optionally a group's local statistic."""

    group: str | None = None
    statistic: str | None = None
    permutations: int | None = None  # None: enough for the multiple-testing correction, at most the server's cap
    seed: int = 0

    def canonical(self) -> Layer:
        """The same tiles under one key: without a statistic, group, permutations and seed change nothing."""
        return self if self.statistic else Layer()


def area_properties(data: PublicData, layer: Layer, max_permutations: int = 9999) -> TileAttributes:
    """id, name, total, group counts and shares (+ statistic value, p-value, label) per area, all from the
    protected table: withheld areas carry nulls and the label ``suppressed``."""
    ds = data.dataset
    frame = data.areas[[ID] + ([ds.name_col] if ds.name_col else []) + list(ds.count_columns)].copy()
    for g in ds.groups:
        frame[f"{g}_share"] = data.share(g)
    g = layer.group or ds.groups[0]
    if layer.statistic:
        from spatial.local import local_statistic  # the statistics library: loaded by the first tile that needs it

        res = local_statistic(
            ds, g, layer.statistic, permutations=layer.permutations, seed=layer.seed, max_permutations=max_permutations
        )
        frame["value"] = data.expand(res.values)
        if res.p_value is not None:
            frame["p_value"] = data.expand(res.p_value)
        frame["label"] = data.labels(res.labels)
    columns = {}
    for name in frame.columns:
        values = frame[name].to_numpy()
        if values.dtype.kind in "fiub":
            columns[name] = np.round(values.astype(float), 6)
        else:
            columns[name] = np.array(
                [None if v is None or (isinstance(v, float) and math.isnan(v)) else str(v) for v in values],
                dtype=object,
            )
    ratios = {f"{g_}_share": (g_, ds.total) for g_ in ds.groups}
    if layer.statistic and _is_lq(layer.statistic) and ds.areas[g].sum() > 0:  # merged cells: share ÷ city share
        ratios["value"] = (g, ds.total, float(ds.areas[ds.total].sum() / ds.areas[g].sum()))
    return TileAttributes(
        columns, sums=tuple(ds.count_columns), ratios=ratios, modes=("label",) if "label" in columns else ()
    )


def _is_lq(statistic: str) -> bool:
    from spatial.local import ALIASES

    return ALIASES.get(statistic, statistic) == "lq"


def tilejson(src: Source, base_url: str, group: str | None, statistic: str | None, version: str) -> dict:
    """TileJSON 3.0.0 of a dataset's tiles (for ``group``'s ``statistic`` when given), at versioned URLs."""
    info, data = src.info, src.data
    if group is not None:
        src.dataset.require_declared(group, "group")
    query = urlencode([(k, v) for k, v in (("group", group), ("statistic", statistic)) if v])
    fields = {ID: "String", data.total: "Number"}
    if data.name_col:
        fields[data.name_col] = "String"
    for g in data.groups:
        fields[g] = "Number"
        fields[f"{g}_share"] = "Number"
    if statistic:
        fields.update(value="Number", p_value="Number", label="String")
    fields["areas"] = "Number"
    w, s, e, n = info["bounds"]
    return {
        "tilejson": "3.0.0",
        "name": info["title"],
        "version": "1.0.0",
        "scheme": "xyz",
        "tiles": [base_url + tile_path(src, version) + (f"?{query}" if query else "")],
        "bounds": [w, s, e, n],
        "center": [(w + e) / 2, (s + n) / 2, 8],
        "minzoom": 0,
        "maxzoom": 16,
        "attribution": info.get("source") or "",
        "description": f"Areas smaller than {AGGREGATE_PX}x{AGGREGATE_PX} screen pixels at a zoom are merged into "
        "squares of that size: counts summed, shares recomputed, label the most common; `areas` says "
        "how many merged. A cell holding withheld counts has no summed count; its shares are those of its "
        "published members, and `withheld` says how many were left out.",
        "vector_layers": [{"id": LAYER, "fields": fields, "minzoom": 0, "maxzoom": 16}],
    }


def export_archive(
    src: Source,
    layer: Layer,
    path,
    zooms: tuple[int | None, int | None],
    version: str,
    *,
    index: TileIndex,
    attributes: TileAttributes,
    max_tiles: int = archive.MAX_TILES,
) -> archive.Plan:
    """A PMTiles archive of the source's tiles for ``layer`` (see :mod:`app.archive`), refused when too large.
    Its metadata is the TileJSON without tile URLs (the archive is the tiles), plus the dataset and version."""
    first, last = archive.default_zooms(index)
    plan = archive.plan(
        index, attributes, first if zooms[0] is None else zooms[0], last if zooms[1] is None else zooms[1]
    )
    archive.check(plan, max_tiles)
    meta = tilejson(src, "", layer.group, layer.statistic, version)
    del meta["tiles"]
    meta.update(minzoom=plan.minzoom, maxzoom=plan.maxzoom, dataset=src.id, dataset_version=version)
    meta["vector_layers"][0].update(minzoom=plan.minzoom, maxzoom=plan.maxzoom)
    archive.write(path, index, attributes, plan, meta, src.info.get("bounds") or [-180, -85, 180, 85])
    return plan


ARCHIVES_PER_DATASET = 8
ARCHIVE_GRACE_S = 60  # an archive this fresh may be about to be served: never removed


def evict_archives(folder: Path, dataset_id: str, version: str, keep: int = ARCHIVES_PER_DATASET) -> None:
    """Remove a dataset's archives of other versions, and all but its ``keep`` most recently built ones."""
    now = time.time()
    mine = []
    for p in folder.glob(f"{dataset_id}.*.pmtiles"):
        if p.name.split(".")[1] != version:
            p.unlink(missing_ok=True)
        else:
            try:
                mine.append((p.stat().st_mtime, p))
            except FileNotFoundError:
                continue
    for mtime, p in sorted(mine, reverse=True)[keep:]:
        if now - mtime > ARCHIVE_GRACE_S:
            p.unlink(missing_ok=True)


class TileService:
    """Tiles of every dataset version, with what they share kept in bounded caches."""

    def __init__(
        self,
        cache: DiskCache,
        heavy: HeavyWork,
        max_permutations: int,
        *,
        datasets: int = 16,
        attributes: int = 8,
        queue: int = 64,
        store: Path | None = None,
    ):
        self.cache, self.heavy, self.max_permutations = cache, heavy, max_permutations
        self.store = store  # where versions' indexes are shared by workers (app.tilestore); None: in memory
        self._indexes = LRU(datasets)  # dataset id -> (version, TileIndex)
        self._attributes = LRU(attributes)  # per-area columns of a query: ~10 MB each at 100,000 areas
        # Encoding is CPU-bound: one thread per worker keeps it off FastAPI's 40-thread pool and the heavy pool.
        self._encoder = ThreadPoolExecutor(max_workers=1, thread_name_prefix="segmap-tiles")
        self._queue = queue  # distinct tiles waiting for the encoder; beyond, 503 busy
        self._froze = False
        self._shared: weakref.WeakSet = weakref.WeakSet()  # shared indexes whose builders close() stops
        self._sources, self._reading = LRU(64), {}  # versions this worker has read / is reading (app.tilesource)
        self._reader = ThreadPoolExecutor(max_workers=1, thread_name_prefix="segmap-tile-source")
        self._reading_lock = threading.Lock()
        self._writer, self._writes = ThreadPoolExecutor(max_workers=1, thread_name_prefix="segmap-tile-cache"), 0
        tilephases.start()
        if store is not None:  # the builders' forkserver imports its modules now, not when a dataset arrives
            threading.Thread(target=warm_builders, name="segmap-tile-builders", daemon=True).start()

    def _source_file(self, src: Source) -> Path | None:
        """The version's GeoParquet in the registry (``<data dir>/datasets``, beside ``store``): what the
        builder process reads, rather than this worker writing the geometries out again."""
        name = src.info.get("_file")
        return self.store.parent / "datasets" / name if name else None

    def index(self, src: Source) -> TileIndex:
        """The geometry index of the source's version (a replaced dataset's index is dropped)."""
        hit = self._indexes.get(src.id)
        if hit is not None and hit[0] == src.version:
            return hit[1]
        if self.store is not None:
            index = SharedTileIndex(src.data.areas, self.store / f"{src.id}.{src.version}", self._source_file(src))
            self._indexes.put(src.id, (src.version, index))
            self._shared.add(index)
            return index
        index = TileIndex(src.data.areas)
        self._indexes.put(src.id, (src.version, index))
        index.warm(on_done=self._freeze)
        return index

    def read_later(self, pending) -> bool:
        """True while this worker reads ``pending``'s version in the background (started now if need be); False
        once it has read it (the caller gets it from the registry's memory at once)."""
        key = pending.key()
        if self._sources.get(key):
            return False
        with self._reading_lock:
            if key not in self._reading:
                self._reading[key] = self._reader.submit(self._read, key, pending)
        return True

    def _read(self, key: tuple, pending) -> None:
        try:
            mark("read_start")
            with quiet_read():  # no collections, a short switch interval: see app/quietread.py
                src = self._load(pending)
            if src is not None:
                self._sources.put(key, True)
                self._freeze()  # the version's objects, read once, need no cyclic GC: no gen-2 pauses in tiles
                mark("read_frozen")
        finally:
            with self._reading_lock:
                self._reading.pop(key, None)

    def _load(self, pending):
        src = pending.load()
        mark("read_loaded")
        if src is not None:
            self.index(src)  # the shared index's build starts (or is found done)
            mark("read_indexed")
            self.attributes(src, Layer())
            mark("read_attributes")
        return src

    def _freeze(self) -> None:
        # Once built, a million long-lived geometries need no cyclic GC (they hold no cycles; refcounting still
        # frees them): freezing what is alive stops 50-100 ms gen-2 pauses in the middle of tiles. gc.freeze is
        # process-wide, so the service that builds the geometries owns it, and close() gives it back.
        gc.freeze()
        self._froze = True

    def attributes(self, src: Source, layer: Layer) -> TileAttributes:
        return self._attributes.get_or_make(
            (src.key(), layer), lambda: area_properties(src.data, layer, self.max_permutations)
        )

    async def tile(self, src: Source, z: int, x: int, y: int, layer: Layer, *, key: str) -> bytes:
        """One encoded tile: from the disk cache (another worker may have encoded it), else encoded once
        (single flight, cancellable like other heavy work) and stored under ``key``."""
        body = self.cache.get(key)
        if body is None:

            def encode() -> bytes:
                data = self.index(src).tile(z, x, y, self.attributes(src, layer))
                if not isinstance(data, Provisional):  # a warm-up tile is answered, never kept
                    self._keep(key, src, data)
                return data

            body = await self.heavy.run_in(self._encoder, self._queue, encode, key=key)
        return body

    def _keep(self, key: str, src: Source, data: bytes) -> None:
        """Into the disk cache after the tile is answered (a 700 KB SQLite write is tens of ms); inline when
        ``WRITES_WAITING`` writes wait already, so unwritten tiles never pile up in memory."""
        with self._reading_lock:
            later = self._writes < WRITES_WAITING
            self._writes += later
        if not later:
            self.cache.put(key, src.id, src.version, data)
            return

        def write():
            try:
                self.cache.put(key, src.id, src.version, data)
            finally:
                with self._reading_lock:
                    self._writes -= 1

        self._writer.submit(write)

    async def archive(self, src: Source, layer: Layer, zooms: tuple, version: str, folder: Path) -> Path:
        """The PMTiles archive of ``layer`` at ``zooms``, made once; each dataset keeps only its most recently built
        few (public callers varying parameters cannot fill the disk) and a replaced version's are removed."""
        layer = layer.canonical()
        wanted = json.dumps([src.key(), layer.group, layer.statistic, layer.permutations, layer.seed, *zooms])
        path = folder / f"{src.id}.{version}.{hashlib.sha256(wanted.encode()).hexdigest()[:16]}.pmtiles"
        if path.is_file():  # not touched: its mtime is in the ETag that Range readers (PMTiles JS) check
            return path

        def build():
            folder.mkdir(parents=True, exist_ok=True)
            self.export(src, layer, path, zooms, version)
            evict_archives(folder, src.id, version)

        await self.heavy.run(build, key=("export", path.name))
        return path

    def export(self, src: Source, layer: Layer, path, zooms: tuple, version: str) -> archive.Plan:
        """Build an archive from this service's own index and attributes: the bytes its tiles have."""
        index, attributes = self.index(src), self.attributes(src, layer)
        return export_archive(src, layer, path, zooms, version, index=index, attributes=attributes)

    def offline(self, src: Source, layer: Layer) -> tuple[dict[str, bytes], tuple[int, int]]:
        """The tiles an offline page of a large city carries, and their zoom range (see tiles.offline_tiles)."""
        return offline_tiles(self.index(src), self.attributes(src, layer))

    def close(self) -> None:
        for index in list(self._shared):
            index.close()
        self._encoder.shutdown(wait=False, cancel_futures=True)
        self._reader.shutdown(wait=False, cancel_futures=True)
        self._writer.shutdown(wait=True)  # tiles encoded are kept
        if self._froze:
            gc.unfreeze()


async def tile_response(
    request: Request, tiles: TileService, src, zxy: tuple, layer: Layer, max_age: int | None
) -> Response:
    """A tile with its ETag (304 when the client holds it), immutable when ``max_age`` is None. A tile drawn while
    the version's index is still built, or while this worker still reads the version (``src`` is an
    :class:`app.tilesource.Pending`, and no worker has cached the tile), goes out ``no-store`` (with a max-age of
    2 s that clients reload at) without an ETag, so no cache (ours included) keeps it or takes it for final."""
    tilephases.start(asyncio.get_running_loop())
    mark("response", path=request.url.path)
    etag = etag_for("tile", src.key(), *zxy, (layer.group, layer.statistic, layer.permutations, layer.seed))
    headers = {"ETag": etag, "Cache-Control": IMMUTABLE if max_age is None else f"public, max-age={max_age}"}
    if etag_matches(request.headers.get("if-none-match"), etag):
        return Response(status_code=304, headers=headers)
    if not isinstance(src, Source) and not layer.statistic:
        body = tiles.cache.get(etag)  # encoded by a worker that has read the version
        mark("response_pending", cached=body is not None, path=request.url.path)
        if body is None:
            return Response(b"", media_type=MVT, headers={"Cache-Control": PROVISIONAL})
        return Response(body, media_type=MVT, headers=headers)
    if not isinstance(src, Source):  # a statistic layer needs the table: read it now
        dataset_id, src = src.id, await run_in_threadpool(src.load)
        if src is None:
            raise not_found("dataset", dataset_id, "List the available ones with GET /v1/datasets.")
    body = await tiles.tile(src, *zxy, layer, key=etag)
    mark("response_encoded", provisional=isinstance(body, Provisional), path=request.url.path)
    if isinstance(body, Provisional):
        return Response(bytes(body), media_type=MVT, headers={"Cache-Control": PROVISIONAL})
    return Response(body, media_type=MVT, headers=headers)
