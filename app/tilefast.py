"""Cached tiles answered before FastAPI: the first thing a worker does with a request (issue 20).

A map repeats tile requests all the time. ``middleware.CachedTiles`` answers them from memory, but inside FastAPI's
own layers and after reading the dataset's catalogue row (an SQLite transaction): some 150 µs a request. Here a
repeated anonymous tile is answered with the exact bytes and headers the whole stack sent for it the first time
(security headers, Vary, ETag; a 304 when If-None-Match names it), with one cheap check per request: SQLite's
``PRAGMA data_version``, which changes whenever any process commits to the catalogue (a dataset added, replaced,
deleted, its disclosure changed). Then every stored tile is dropped, so none is ever served for a replaced version.

Stored: 200 answers with an ETag and a cache policy other than ``no-store`` (so never a provisional tile) to
requests without X-API-Key (an owner's tiles carry raw counts), and, when CORS is configured, without an Origin
(what CORS adds depends on it: those requests take the full stack).
"""

from __future__ import annotations

import re
import sqlite3
from pathlib import Path

from fastapi import FastAPI

from spatial.lru import LRU

from .http import etag_matches
from .problems import SECURITY_HEADERS

TILE_PATH = re.compile(r"^/v1/datasets/[^/]+/tiles/(?:[0-9a-f]+/)?\d+/\d+/\d+\.mvt$")  # current or versioned
# What a 304 carries, as the route and the layers around it send it.
NOT_MODIFIED = {b"etag", b"cache-control", b"vary", *(k.lower().encode() for k in SECURITY_HEADERS)}


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


class FastTiles:
    """Repeated anonymous tiles from memory, bounded by the bytes of their bodies."""

    def __init__(self, catalogue: Path, cors: bool, max_bytes: int = 256 * 2**20):
        self.watch, self.cors, self.max_bytes = CatalogueWatch(catalogue), cors, max_bytes
        self._entries = LRU(max_bytes, sizeof=lambda entry: len(entry[1]))  # (headers, body, etag, 304 headers)
        self._seen: int | None = None  # the catalogue's data_version the entries were made under
        self.hits = 0

    def current(self) -> int | None:
        """The catalogue's data_version now; every entry is dropped when it changed."""
        version = self.watch.version()
        if version != self._seen or version is None:
            self._entries = LRU(self.max_bytes, sizeof=lambda entry: len(entry[1]))
            self._seen = version
        return version

    def _key(self, scope) -> tuple | None:
        """(path and query, If-None-Match) of a request this cache may answer, else None."""
        condition = b""
        for name, value in scope["headers"]:
            if name == b"x-api-key" or (name == b"origin" and self.cors):
                return None
            if name == b"if-none-match":
                condition = value
        return (scope["path"], scope.get("query_string", b"")), condition

    async def __call__(self, scope, receive, send, app) -> None:
        asked = self._key(scope)
        version = self.current() if asked is not None else None
        if version is None:
            return await app(scope, receive, send)
        key, condition = asked
        hit = self._entries.get(key)
        if hit is not None:
            headers, body, etag, not_modified = hit
            self.hits += 1
            if condition and etag_matches(condition.decode("latin-1"), etag):
                await send({"type": "http.response.start", "status": 304, "headers": not_modified})
                return await send({"type": "http.response.body", "body": b""})
            await send({"type": "http.response.start", "status": 200, "headers": headers})
            return await send({"type": "http.response.body", "body": body})
        start: dict = {}
        parts: list = []

        async def capture(message):
            if message["type"] == "http.response.start":
                start.update(message, headers=list(message.get("headers", [])))
            elif message["type"] == "http.response.body":
                parts.append(message.get("body", b""))
                if not message.get("more_body"):
                    self._store(key, start, b"".join(parts), version)
            await send(message)

        await app(scope, receive, capture)

    def _store(self, key: tuple, start: dict, body: bytes, version: int) -> None:
        headers = start.get("headers", [])
        names = dict(headers)
        etag, control = names.get(b"etag"), names.get(b"cache-control", b"no-store")
        if start.get("status") != 200 or etag is None or b"no-store" in control or b"private" in control:
            return
        if len(body) > self.max_bytes // 16 or self.current() != version:  # the catalogue changed meanwhile
            return
        not_modified = [(k, v) for k, v in headers if k.lower() in NOT_MODIFIED]
        self._entries.put(key, (headers, body, etag.decode("latin-1"), not_modified))


class TileApp(FastAPI):
    """The service's FastAPI application: a tile request goes through :class:`FastTiles` before anything else."""

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http" or scope["method"] != "GET" or not TILE_PATH.match(scope["path"]):
            return await super().__call__(scope, receive, send)
        fast = self.__dict__.get("_fast_tiles")
        if fast is None:
            settings = self.state.settings
            fast = self.__dict__["_fast_tiles"] = FastTiles(
                Path(settings.data_dir) / "catalog.sqlite", bool(settings.cors_origins)
            )
        await fast(scope, receive, send, super().__call__)
