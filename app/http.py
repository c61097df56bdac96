"""HTTP helpers shared by routers: strong ETags with 304s (one path for every cached response), running
CPU-heavy work off the event loop."""

from __future__ import annotations

import asyncio
import contextvars
import hashlib
import inspect
import json
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import Executor, Future, ThreadPoolExecutor
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from fastapi import Request, Response

from spatial.cancel import Cancelled, CancelToken, running

from .problems import ProblemError

if TYPE_CHECKING:
    from .deps import Source

JSON = "application/json"


def etag_for(*parts: Any) -> str:
    return '"' + hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:32] + '"'


def etag_matches(if_none_match: str | None, etag: str) -> bool:
    """Whether an If-None-Match header names ``etag`` (or is ``*``): the client already holds the response."""
    if not if_none_match:
        return False
    return if_none_match.strip() == "*" or etag in [t.strip() for t in if_none_match.split(",")]


def json_bytes(data: Any) -> bytes:
    """JSON as FastAPI sends it (UTF-8, compact, NaN refused), for bodies that are cached as bytes."""
    return json.dumps(data, ensure_ascii=False, allow_nan=False, separators=(",", ":")).encode("utf-8")


async def cached(
    request: Request,
    etag: str,
    make: Callable[[], bytes | Awaitable[bytes]],
    *,
    media_type: str = JSON,
    max_age: int = 300,
    headers: dict | None = None,
    source: Source | None = None,
) -> Response:
    """The one conditional-GET path: 304 when the client holds ``etag``, else the body, made only then.

    With ``source``, the body comes from the cache shared by workers, or ``make`` runs once (single flight)
    on the heavy pool and its result is stored under ``etag`` with the source's version.
    """
    headers = {**(headers or {}), "ETag": etag, "Cache-Control": f"public, max-age={max_age}"}
    if etag_matches(request.headers.get("if-none-match"), etag):
        return Response(status_code=304, headers=headers)
    if source is not None:
        body = await _stored(request, etag, source, make)
    else:
        body = make()
        if inspect.isawaitable(body):
            body = await body
    return Response(body, media_type=media_type, headers=headers)


async def _stored(request: Request, key: str, source: Source, make: Callable[[], bytes]) -> bytes:
    cache = request.app.state.cache
    body = cache.get(key)
    if body is None:

        def compute():
            data = make()
            cache.put(key, source.id, source.version, data)  # off the event loop
            return data

        body = await request.app.state.heavy.run(compute, key=key)
    return body


class _Job:
    """One submitted computation, shared by every request waiting for the same ``key``."""

    __slots__ = ("token", "cfut", "afut", "key", "waiters", "lane")

    def __init__(self, token: CancelToken, cfut: Future, afut: asyncio.Future, key, lane: set):
        self.token, self.cfut, self.afut, self.key, self.lane = token, cfut, afut, key, lane
        self.waiters = 0


# The ASGI ``receive`` of the request being handled (set by middleware.ClientWatch): lets a waiting
# request notice that its client hung up, so work nobody waits for is cancelled.
CLIENT_RECEIVE: ContextVar[Callable | None] = ContextVar("segmap_client_receive", default=None)


async def _client_gone(receive: Callable) -> None:
    """Return once the client has disconnected (GETs have no body left to read; uploads were read in full)."""
    while (await receive())["type"] != "http.disconnect":
        await asyncio.sleep(0.1)  # a server whose receive never blocks must not spin the event loop


class HeavyWork:
    """A bounded pool for CPU-heavy computations that are cancelled when nobody waits for them any more.

    FastAPI's default thread pool has 40 threads: CPU-bound work there oversubscribes the cores.
    Identical concurrent requests (same ``key``) share one computation (single flight). Each job runs
    with its own :class:`spatial.cancel.CancelToken`, whose deadline is the timeout: the computation
    stops at its next :func:`spatial.cancel.checkpoint` once it times out (503) or once every request
    waiting for it has gone (client disconnected). At most ``workers × (1 + queue)`` jobs may be running
    or queued, counting cancelled ones until they have really stopped; beyond that a request gets an
    immediate 503 "busy", so a burst cannot pile up work that outlives its clients.
    """

    def __init__(self, workers: int, timeout: float, queue: int = 4):
        self.workers = max(1, workers)
        self.pool = ThreadPoolExecutor(max_workers=self.workers, thread_name_prefix="segmap-heavy")
        self.timeout = timeout
        self.limit = self.workers * (1 + max(0, queue))
        self._lanes: dict[int, set[_Job]] = {}  # executor id -> its unfinished jobs
        self._inflight: dict = {}  # (executor id, key) -> job

    @property
    def pending(self) -> int:
        """Jobs submitted to the heavy pool and not yet finished (running, queued or stopping)."""
        return len(self._lanes.get(id(self.pool), ()))

    async def run(self, fn: Callable, *args, key=None, **kwargs):
        """``fn(*args, **kwargs)`` on the heavy pool; 503 when busy or timed out."""
        return await self.run_in(self.pool, self.limit, fn, *args, key=key, **kwargs)

    async def run_in(self, executor: Executor, limit: int, fn: Callable, *args, key=None, **kwargs):
        """As :meth:`run`, on another executor (e.g. a router's own tile encoder) with its own bound."""
        job = self._inflight.get((id(executor), key)) if key is not None else None
        if job is None:
            job = self._submit(executor, limit, fn, args, kwargs, key)
        job.waiters += 1
        try:
            return await self._wait(job)
        finally:
            job.waiters -= 1
            if job.waiters == 0 and not job.cfut.done():
                self._abandon(job, "no request waits for it")

    def _submit(self, executor: Executor, limit: int, fn: Callable, args, kwargs, key) -> _Job:
        lane = self._lanes.setdefault(id(executor), set())
        if len(lane) >= limit:
            raise ProblemError(
                503,
                "Busy",
                f"{len(lane)} computations are already running or queued; retry shortly.",
                code="busy",
                headers={"Retry-After": "5"},
            )
        token = CancelToken(deadline=time.monotonic() + self.timeout)

        def call():
            with running(token):
                return fn(*args, **kwargs)

        # Each job runs in its own copy of the context: its token is visible to its checkpoints only.
        cfut = executor.submit(contextvars.copy_context().run, call)
        loop = asyncio.get_running_loop()
        job = _Job(token, cfut, asyncio.wrap_future(cfut, loop=loop), key, lane)
        job.afut.add_done_callback(_retrieve)
        lane.add(job)
        if key is not None:
            self._inflight[(id(executor), key)] = job

        def finished(_):
            try:
                loop.call_soon_threadsafe(self._finished, job, id(executor))
            except RuntimeError:  # the event loop has closed (shutdown)
                pass

        cfut.add_done_callback(finished)
        return job

    def _finished(self, job: _Job, lane_id: int) -> None:
        job.lane.discard(job)
        if self._inflight.get((lane_id, job.key)) is job:
            del self._inflight[(lane_id, job.key)]

    def _abandon(self, job: _Job, reason: str) -> None:
        job.token.cancel(reason)
        job.cfut.cancel()  # a job still queued never starts; a running one stops at its next checkpoint
        for k, v in list(self._inflight.items()):
            if v is job:
                del self._inflight[k]

    async def _wait(self, job: _Job):
        remaining = job.token.deadline - time.monotonic()
        waiting = asyncio.shield(job.afut)
        receive = CLIENT_RECEIVE.get()
        watch = asyncio.ensure_future(_client_gone(receive)) if receive is not None else None
        try:
            done, _ = await asyncio.wait(
                {waiting, watch} - {None}, timeout=max(0.0, remaining), return_when=asyncio.FIRST_COMPLETED
            )
        finally:
            if watch is not None:
                watch.cancel()
            waiting.cancel()  # the shield only: the job itself carries on for other waiters
        if job.afut.done() and not job.afut.cancelled():
            try:
                return job.afut.result()
            except Cancelled:
                pass  # its deadline passed in the worker before the timeout fired here
        elif watch is not None and watch in done:
            raise ProblemError(
                503,
                "Client gone",
                "The client disconnected; the computation was cancelled.",
                code="cancelled",
                headers={"Retry-After": "0"},
            )
        raise ProblemError(
            503,
            "Computation timed out",
            f"The computation took longer than {self.timeout:g} s and was stopped; lower `permutations` "
            "or ask for fewer indices.",
            code="timeout",
            headers={"Retry-After": "30"},
        )

    def close(self) -> None:
        """Stop every job (at its next checkpoint) and the pool, so shutdown does not wait for them."""
        for lane in self._lanes.values():
            for job in list(lane):
                job.token.cancel("shutdown")
        self.pool.shutdown(wait=False, cancel_futures=True)


def _retrieve(fut: asyncio.Future) -> None:
    if not fut.cancelled():
        fut.exception()  # consumed: a job nobody waits for any more must not log "exception never retrieved"


def attachment(filename: str, disposition: str = "attachment") -> dict:
    """Content-Disposition with the name percent-encoded (RFC 6266/5987): no quote or CR/LF reaches the header."""
    return {"Content-Disposition": f"{disposition}; filename*=UTF-8''{quote(filename)}"}
