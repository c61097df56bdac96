"""Two threads for the large-city path's simulations (numpy's draws and array loops release the GIL).

The work is cut into fixed chunks, each with its own generator spawned from the seed, so the numbers do not
depend on how many threads ran them or in which order. Each thread keeps its own count buffer. Cancellation
(:func:`spatial.cancel.checkpoint`) works in the threads: each task runs in a copy of the caller's context.
"""

from __future__ import annotations

import contextvars
import copy
import os
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from ...cancel import checkpoint

THREADS = max(1, min(2, os.cpu_count() or 1))
CHUNK = 16  # simulated cities per task: one generator each


def run(tasks: list, work: Callable, threads: int | None = None, done: Callable | None = None) -> list:
    """``work(task)`` for every task, on ``threads`` threads (default THREADS), results in the tasks' order;
    ``done(i)`` in the caller's thread after each (progress)."""
    threads = THREADS if threads is None else threads
    if threads <= 1 or len(tasks) <= 1:
        out = []
        for i, task in enumerate(tasks):
            out.append(work(task))
            if done:
                done(i)
        return out
    ctx = contextvars.copy_context()
    with ThreadPoolExecutor(threads) as pool:
        futures = [pool.submit(ctx.copy().run, work, task) for task in tasks]
        out = []
        try:
            for i, f in enumerate(futures):
                out.append(f.result())
                if done:
                    done(i)
        except BaseException:  # cancelled or failed: drop the tasks not started
            for f in futures:
                f.cancel()
            raise
        return out


def simulate_null(evaluate: Callable, sampler, t32: np.ndarray, count: int, block: int, seed, progress, total):
    """``count`` values of ``evaluate`` on counts drawn by ``sampler`` (a :class:`BinomialSampler` with a reused
    buffer, copied per thread), in chunks of CHUNK with generators spawned from ``seed``."""
    starts = list(range(0, count, CHUNK))
    streams = np.random.SeedSequence(None if seed is None else [int(seed), 31]).spawn(len(starts))
    out = np.empty(count)
    local = threading.local()
    n = len(t32)

    def work(i: int) -> None:
        own = getattr(local, "sampler", None)
        if own is None:
            own = local.sampler = copy.copy(sampler)
            own._buffer = np.empty((0, n), np.float32)
        rng = np.random.default_rng(streams[i])
        at, end = starts[i], min(starts[i] + CHUNK, count)
        while at < end:
            checkpoint()
            b = min(block, end - at)
            out[at : at + b] = evaluate(own.draw(rng, b), np.broadcast_to(t32, (b, n)))
            at += b

    report = (lambda i: progress(min(count, (i + 1) * CHUNK), total or count)) if progress else None
    run(list(range(len(starts))), work, done=report)
    return out
