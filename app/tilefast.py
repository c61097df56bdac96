"""The one memory cache of tiles, answered before FastAPI: the first thing a worker does with a request (issue 20).

A map repeats tile requests all the time. A repeated anonymous tile is answered here with the exact bytes and
headers the whole stack sent for it the first time (security headers, CORS, Vary, ETag; a 304 when If-None-Match
names it), with one cheap check per request: SQLite's ``PRAGMA data_version``, which changes whenever any process
commits to the catalogue (a dataset added, replaced, deleted, its disclosure changed). Then every stored tile is
dropped, so none is ever served for a replaced version.

Stored: 200 answers with an ETag, a cache policy other than ``no-store``/``private`` (so never a provisional tile)
and a Vary naming nothing but Origin and X-API-Key, to requests without X-API-Key (an owner's tiles carry raw
counts). One body per tile; beside it, the headers of each CORS variant: what the app's own CORS layer adds for
the request's Origin (found by running that layer on an empty response), so one Origin is never answered with the
headers another got, and every Origin the CORS settings refuse shares one variant.
"""

from __future__ import annotations

import re
import sqlite3
from pathlib import Path
from typing import NamedTuple

from fastapi import FastAPI
from starlette.datastructures import Headers
from starlette.middleware.cors import CORSMiddleware

from spatial.lru import LRU

from .http import etag_matches
from .problems import SECURITY_HEADERS

TILE_PATH = re.compile(r"^/v1/datasets/[^/]+/tiles/(?:[0-9a-f]+/)?\d+/\d+/\d+\.mvt$")  # current or versioned
# What a 304 carries, as the route and the layers around it send it (plus what CORS adds: see _not_modified).
NOT_MODIFIED = {b"etag", b"cache-control", b"vary", *(k.lower().encode() for k in SECURITY_HEADERS)}
KEYED_ON = {b"origin", b"x-api-key"}  # request headers a stored answer may vary on: Origin keys it, a key bypasses
NO_ORIGIN = "no origin"  # the variant of requests without an Origin (a probe gives a tuple)
MAX_VARIANTS = 8  # header variants kept per tile: a tile asked from many origins keeps the first ones
HEADER_COST = 120  # bytes a stored header costs beside its name and value (a tuple, two bytes objects)
SLOT = 8  # a 304 header: a pointer to the 200 header it repeats
ENTRY_COST = 400  # bytes an entry costs beside its key's text: the key tuple, the Tile, the LRU's links
MAX_QUERY = 512  # a longer query string is not a tile's (its parameters are few): answered, never stored


class CatalogueWatch:
    """The catalogue's ``PRAGMA data_version`` on a connection of this thread: a new value after any other
    connection (in any process) committed. About 5 µs; None when the catalogue cannot be read."""

    def __init__(self, path: Path):
        self.path, self._conn = Path(path), None

    def version(self) -> int | None:
        try:
            if self._conn is None:
                if not self.path.is_file():
                    return None
                self._conn = sqlite3.connect(self.path, timeout=5, isolation_level=None, check_same_thread=False)
            return self._conn.execute("PRAGMA data_version").fetchone()[0]
        except sqlite3.Error:
            return None


class Tile(NamedTuple):
    """A stored tile: its body once, and per CORS variant the headers of its 200 and of its 304."""

    body: bytes
    etag: str
    variants: dict  # variant -> (200 headers, 304 headers)
    key_bytes: int  # the path and query string it is stored under: an empty tile still costs its key


def _tile_size(tile: Tile) -> int:
    """What the tile costs in the budget: its body and every header of every variant."""
    heads = [h for ok, _ in tile.variants.values() for h in ok]
    slots = sum(len(not_modified) for _, not_modified in tile.variants.values())
    variants = sum(len(k) + len(v) + HEADER_COST for k, v in heads) + SLOT * slots
    return ENTRY_COST + tile.key_bytes + len(tile.body) + variants


def _cacheable(status: int | None, headers: list) -> bool:
    """A final tile anyone may be given: 200, an ETag, a shared cache policy, varying only on what is keyed."""
    names = dict(headers)
    control = names.get(b"cache-control", b"no-store")
    if status != 200 or b"etag" not in names or b"no-store" in control or b"private" in control:
        return False
    vary = {t.strip().lower() for k, v in headers if k.lower() == b"vary" for t in v.split(b",")}
    return vary <= KEYED_ON | {b""}


class CorsProbe:
    """What the app's CORS layer adds to an answer for a request's headers: it runs that layer's own ``send`` on an
    empty response. Equal probes mean equal CORS headers, so they name a variant; None when it cannot be run."""

    def __init__(self, cors: CORSMiddleware):
        self.cors = cors

    async def variant(self, scope) -> tuple | None:
        out: list = []

        async def keep(message):
            out.extend(message["headers"])

        try:
            start = {"type": "http.response.start", "status": 200, "headers": []}
            await self.cors.send(start, keep, Headers(scope=scope))
        except Exception:  # another Starlette's CORS layer: no stored answer for Origin requests, the full stack
            return None
        return tuple(out)


class FastTiles:
    """Repeated anonymous tiles from memory, bounded by the bytes of their bodies and headers."""

    def __init__(self, catalogue: Path, cors: CORSMiddleware | None = None, max_bytes: int = 256 * 2**20):
        self.watch, self.max_bytes = CatalogueWatch(catalogue), max_bytes
        self.probe = CorsProbe(cors) if cors is not None else None
        self.clear()
        self._seen: int | None = None  # the catalogue's data_version the entries were made under
        self.hits = 0

    def current(self) -> int | None:
        """The catalogue's data_version now; every entry is dropped when it changed."""
        version = self.watch.version()
        if version != self._seen or version is None:
            self.clear()
            self._seen = version
        return version

    def clear(self) -> None:
        self._entries = LRU(self.max_bytes, sizeof=_tile_size)

    @property
    def size(self) -> int:
        """Bytes held, as the budget counts them."""
        return self._entries.size

    async def _ask(self, scope) -> tuple | None:
        """(path and query, CORS variant, If-None-Match) of a request this cache may answer, else None."""
        condition, origin = b"", False
        for name, value in scope["headers"]:
            if name == b"x-api-key":
                return None
            if name == b"if-none-match":
                condition = value
            origin = origin or name == b"origin"
        # Without a CORS layer an Origin changes nothing; Starlette's reads the request only when it has one.
        variant = await self.probe.variant(scope) if origin and self.probe is not None else NO_ORIGIN
        query = scope.get("query_string", b"")
        if variant is None or len(query) > MAX_QUERY:
            return None
        return (scope["path"], query), variant, condition

    async def __call__(self, scope, receive, send, app) -> None:
        asked = await self._ask(scope)
        version = self.current() if asked is not None else None
        if version is None:
            return await app(scope, receive, send)
        key, variant, condition = asked
        tile = self._entries.get(key)
        heads = tile.variants.get(variant) if tile is not None else None
        if heads is not None:
            self.hits += 1
            if condition and etag_matches(condition.decode("latin-1"), tile.etag):
                await send({"type": "http.response.start", "status": 304, "headers": heads[1]})
                return await send({"type": "http.response.body", "body": b""})
            await send({"type": "http.response.start", "status": 200, "headers": heads[0]})
            return await send({"type": "http.response.body", "body": tile.body})
        start: dict = {}
        parts: list = []

        async def capture(message):
            if message["type"] == "http.response.start":
                start.update(message, headers=list(message.get("headers", [])))
            elif message["type"] == "http.response.body":
                parts.append(message.get("body", b""))
                if not message.get("more_body"):
                    self._store(key, variant, start, b"".join(parts), version)
            await send(message)

        await app(scope, receive, capture)

    def _store(self, key: tuple, variant, start: dict, body: bytes, version: int) -> None:
        headers = start.get("headers", [])
        if not _cacheable(start.get("status"), headers) or len(body) > self.max_bytes // 16:
            return
        if self.current() != version:  # the catalogue changed meanwhile
            return
        etag = dict(headers)[b"etag"].decode("latin-1")
        tile = self._entries.get(key)
        if tile is None or tile.etag != etag or tile.body != body:  # a first answer, or a new one: start again
            tile = Tile(body, etag, {}, len(key[0]) + len(key[1]))
        elif len(tile.variants) >= MAX_VARIANTS:
            return
        kept = NOT_MODIFIED | ({k.lower() for k, _ in variant} if isinstance(variant, tuple) else set())
        not_modified = [(k, v) for k, v in headers if k.lower() in kept]
        # A new Tile rather than a changed one: the LRU counts an entry's size when it is put.
        self._entries.put(key, tile._replace(variants={**tile.variants, variant: (headers, not_modified)}))


def app_cors(app: FastAPI) -> CORSMiddleware | None:
    """The app's CORS layer as configured (``app.add_middleware``), for probes; None without one."""
    for entry in app.user_middleware:
        if isinstance(entry.cls, type) and issubclass(entry.cls, CORSMiddleware):
            return entry.cls(None, *entry.args, **entry.kwargs)
    return None


class TileApp(FastAPI):
    """The service's FastAPI application: a tile request goes through :class:`FastTiles` before anything else."""

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http" or scope["method"] != "GET" or not TILE_PATH.match(scope["path"]):
            return await super().__call__(scope, receive, send)
        fast = self.__dict__.get("_fast_tiles")
        if fast is None:
            catalogue = Path(self.state.settings.data_dir) / "catalog.sqlite"
            fast = self.__dict__["_fast_tiles"] = FastTiles(catalogue, app_cors(self))
        await fast(scope, receive, send, super().__call__)
