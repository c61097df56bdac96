"""A worker's first requests made before it serves any: what FastAPI and the tile path initialise on first use.

FastAPI (0.165) builds a router's routes (dependency graphs, pydantic adapters) when a request first reaches
it, on the event loop: 0.7-1.6 s on a loaded 2-core machine, during which that worker answered nothing, so the
first tiles of a new dataset version took 0.3-0.9 s in each worker (issue 18 item 3). Sending a few requests
through the app in the lifespan, before the worker accepts connections, builds them then, and also opens the
thread pool, its SQLite connections and the modules a tile imports on first use.
"""

from __future__ import annotations

import asyncio
import logging
import time

log = logging.getLogger("segmap.warmup")
# An unknown dataset: each is a 404 after routing and the tile dependencies, reading and writing nothing.
PATHS = (
    "/v1/datasets/-warm-up-/tiles/0/0/0.mvt",
    "/v1/datasets/-warm-up-/tiles/0000000000000000/0/0/0.mvt",
    "/v1/datasets/-warm-up-/tilejson.json",
    "/-warm-up-",  # no route: every router is built on the way
)


async def request(app, path: str) -> int:
    """One GET through the whole ASGI app (middleware included), as a loopback client; its status."""
    done, status, asked = asyncio.Event(), [], []

    async def receive():
        if not asked:
            asked.append(True)
            return {"type": "http.request", "body": b"", "more_body": False}
        await done.wait()
        return {"type": "http.disconnect"}

    async def send(message):
        if message["type"] == "http.response.start":
            status.append(message["status"])
        elif message["type"] == "http.response.body" and not message.get("more_body"):
            done.set()

    scope = {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.3"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "root_path": "",
        "query_string": b"",
        "headers": [(b"host", b"127.0.0.1")],
        "client": ("127.0.0.1", 0),
        "server": ("127.0.0.1", 0),
    }
    await app(scope, receive, send)
    done.set()
    return status[0] if status else 0


async def warm(app) -> None:
    """Send :data:`PATHS` through ``app`` (call it in the lifespan, once its state is set); never fails startup."""
    started = time.perf_counter()
    for path in PATHS:
        try:
            await request(app, path)
        except Exception:  # a warm-up that fails leaves the first real request to do the work, as before
            log.exception("warm-up request %s failed", path)
    log.info("warm-up requests took %.2f s", time.perf_counter() - started)
