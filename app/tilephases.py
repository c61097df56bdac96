"""Timestamps of a worker's tile phases, on only when ``SEGMAP_TILE_PHASES`` names a folder (issue 18 item 3).

Not a tracer: a few wall-clock marks per request and per background step, gen-1/2 garbage collections over
5 ms, and two stall probes: how late the event loop wakes from a 5 ms sleep, and how late a plain thread does
(the GIL held by another thread). Each worker appends its marks to ``<folder>/<pid>.jsonl`` once a second, so
a benchmark can line its slow answers up with what the worker was doing then. Off, :func:`mark` is one test.
"""

from __future__ import annotations

import asyncio
import gc
import json
import os
import threading
import time
from pathlib import Path

FOLDER = os.environ.get("SEGMAP_TILE_PHASES")
PROBE_S, LATE_S = 0.005, 0.02  # a probe sleeping 5 ms and waking 20 ms late is a stall
_marks: list = []
_started: list = []
_lock = threading.Lock()


def mark(what: str, **fields) -> None:
    if FOLDER:
        _marks.append((time.time(), threading.current_thread().name, what, fields))


def start(loop: asyncio.AbstractEventLoop | None = None) -> None:
    """Start the probes once per process (and the event loop's probe once ``loop`` is known)."""
    if not FOLDER:
        return
    if loop is None:
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            pass
    with _lock:
        if not _started:
            _started.append("threads")
            gc.callbacks.append(_gc)
            threading.Thread(target=_thread_probe, name="segmap-phases", daemon=True).start()
        if loop is not None and "loop" not in _started:
            _started.append("loop")
            loop.create_task(_loop_probe())


_gc_start: list = [0.0]


def _gc(phase: str, info: dict) -> None:
    if phase == "start":
        _gc_start[0] = time.perf_counter()
    elif info.get("generation", 0) >= 1 and time.perf_counter() - _gc_start[0] > 0.005:
        mark("gc", gen=info["generation"], ms=round(1000 * (time.perf_counter() - _gc_start[0]), 1))


def _thread_probe() -> None:
    last_flush = time.time()
    while True:
        t0 = time.perf_counter()
        time.sleep(PROBE_S)
        late = time.perf_counter() - t0 - PROBE_S
        if late > LATE_S:
            mark("thread_late", ms=round(1000 * late, 1))
        if time.time() - last_flush > 1:
            flush()
            last_flush = time.time()


async def _loop_probe() -> None:
    while True:
        t0 = time.perf_counter()
        await asyncio.sleep(PROBE_S)
        late = time.perf_counter() - t0 - PROBE_S
        if late > LATE_S:
            mark("loop_late", ms=round(1000 * late, 1))


def flush() -> None:
    if not FOLDER or not _marks:
        return
    taken = [_marks.pop(0) for _ in range(len(_marks))]
    with open(Path(FOLDER) / f"{os.getpid()}.jsonl", "a") as f:
        for at, thread, what, fields in taken:
            f.write(json.dumps({"at": at, "pid": os.getpid(), "thread": thread, "what": what, **fields}) + "\n")
