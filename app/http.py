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
    """

    def __init__(self, workers: int, timeout: float):
        self.pool = ThreadPoolExecutor(max_workers=max(1, workers), thread_name_prefix="segmap-heavy")
        self.slots = asyncio.Semaphore(max(1, workers) * 4)  # queue at most a few requests per slot
        self.timeout = timeout

    async def run(self, fn: Callable, *args, **kwargs):
        if self.slots.locked():
            raise ProblemError(503, "Busy", "Too many computations are queued; retry shortly.", code="busy",
                               headers={"Retry-After": "5"})
        async with self.slots:
            loop = asyncio.get_running_loop()
            fut = loop.run_in_executor(self.pool, lambda: fn(*args, **kwargs))
            try:
                return await asyncio.wait_for(asyncio.shield(fut), self.timeout)
            except asyncio.TimeoutError:
                raise ProblemError(503, "Computation timed out",
                                   f"The computation took longer than {self.timeout:.0f} s; lower `permutations` "
                                   "or ask for fewer indices.", code="timeout", headers={"Retry-After": "30"})


def json_response(data: Any, status: int = 200) -> JSONResponse:
    return JSONResponse(data, status_code=status)
