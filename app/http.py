"""HTTP helpers shared by routers: strong ETags with 304s, running CPU-heavy work off the event loop."""
from __future__ import annotations

import asyncio
import hashlib
import json
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable

from fastapi import Request, Response
from fastapi.responses import JSONResponse

from .problems import ProblemError


def etag_for(*parts: Any) -> str:
    return '"' + hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:32] + '"'


def not_modified(request: Request, etag: str) -> bool:
    header = request.headers.get("if-none-match")
    return bool(header) and (header.strip() == "*" or etag in [t.strip() for t in header.split(",")])


def cached(request: Request, etag: str, make: Callable[[], Response], max_age: int = 300) -> Response:
    headers = {"ETag": etag, "Cache-Control": f"public, max-age={max_age}"}
    if not_modified(request, etag):
        return Response(status_code=304, headers=headers)
    resp = make()
    resp.headers.update(headers)
    return resp


class HeavyWork:
    """A bounded pool for CPU-heavy computations, with a timeout that answers 503, not a hung worker.

    FastAPI's default thread pool has 40 threads: CPU-bound work there oversubscribes the cores.
    Identical concurrent requests (same ``key``) share one computation, so a burst of the same map
    or index queues one job, not sixteen.
    """

    def __init__(self, workers: int, timeout: float):
        self.pool = ThreadPoolExecutor(max_workers=max(1, workers), thread_name_prefix="segmap-heavy")
        self.slots = asyncio.Semaphore(max(1, workers) * 16)  # bounded queue: memory stays bounded
        self.timeout = timeout
        self._inflight: dict = {}

    async def run(self, fn: Callable, *args, key=None, **kwargs):
        if key is not None and key in self._inflight:
            return await asyncio.shield(self._inflight[key])
        if self.slots.locked():
            raise ProblemError(503, "Busy", "Too many computations are queued; retry shortly.", code="busy",
                               headers={"Retry-After": "5"})
        async with self.slots:
            loop = asyncio.get_running_loop()
            fut = loop.run_in_executor(self.pool, lambda: fn(*args, **kwargs))
            if key is not None:
                self._inflight[key] = fut
                fut.add_done_callback(lambda _: self._inflight.pop(key, None))
            try:
                return await asyncio.wait_for(asyncio.shield(fut), self.timeout)
            except asyncio.TimeoutError:
                raise ProblemError(503, "Computation timed out",
                                   f"The computation took longer than {self.timeout:.0f} s; lower `permutations` "
                                   "or ask for fewer indices.", code="timeout", headers={"Retry-After": "30"})


async def cached_body(request: Request, etag: str, dataset_id: str, version: str, make: Callable[[], bytes]) -> bytes:
    """The response body for ``etag``: from the cache shared by workers, else computed once (single-flight) and stored."""
    cache = request.app.state.cache
    body = cache.get(etag)
    if body is None:
        def compute():
            data = make()
            cache.put(etag, dataset_id, version, data)
            return data
        body = await request.app.state.heavy.run(compute, key=etag)
    return body


def json_response(data: Any, status: int = 200) -> JSONResponse:
    return JSONResponse(data, status_code=status)
