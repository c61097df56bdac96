"""The jobs on ``dask.distributed``: a LocalCluster sized to the machine, or an existing scheduler.

Each job is one independent task (``client.submit`` + ``as_completed``); Dask schedules them, moves them off
a worker that dies (the nanny restarts it; the task runs again elsewhere), and hands each result back once.
This module only submits and collects: it has no queue or retry of its own. Largest inputs go first (Dask
priority) so one big place does not start last and leave the other workers idle. A job that states the memory
it needs (manifest ``memory``) asks for it as a Dask resource ``MEMORY``: it runs only on a worker that
declares that much (``dask worker --resources MEMORY=64e9``), and never beside other jobs that would exceed it.
"""

from __future__ import annotations

import hashlib
import logging
import os
import uuid
import warnings
from collections.abc import Callable, Iterable
from contextlib import ExitStack
from pathlib import Path

from .job import failed
from .manifest import Job

# One thread per worker process, and numerical libraries single-threaded inside it: processes give the
# parallelism, and two levels of threads on a small machine only fight.
THREAD_ENV = dict.fromkeys(("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMEXPR_NUM_THREADS"), "1")


def default_workers() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)


def _size(job: Job) -> int:
    """Bytes of the job's local input files: a cheap guess of its cost, for priority."""
    total = 0
    for path in (job.boundaries, job.counts):
        try:
            total += Path(path).stat().st_size if path else 0
        except OSError:
            pass
    return total


def local_cluster(workers: int | None = None, memory_limit: str | int = "auto"):
    """A LocalCluster of ``workers`` single-threaded processes on 127.0.0.1, no dashboard; each worker declares
    its memory limit as the resource ``MEMORY``."""
    from dask.distributed import LocalCluster
    from dask.utils import parse_bytes
    from distributed.system import MEMORY_LIMIT

    # No dashboard; the scheduler's small HTTP server binds 127.0.0.1 (host), on another port when 8787 is taken.
    warnings.filterwarnings("ignore", message="Port 8787 is already in use")
    n = workers or default_workers()
    limit = MEMORY_LIMIT // n if memory_limit == "auto" else parse_bytes(memory_limit)
    return LocalCluster(
        n_workers=n,
        threads_per_worker=1,
        processes=True,
        host="127.0.0.1",
        dashboard_address=None,
        memory_limit=limit,
        resources={"MEMORY": limit},
        env=THREAD_ENV,
        silence_logs=logging.ERROR,
    )


def _largest_memory(client) -> float | None:
    """The largest ``MEMORY`` resource a worker declares, or None when none does."""
    found = [w.get("resources", {}).get("MEMORY") for w in client.scheduler_info()["workers"].values()]
    found = [m for m in found if m]
    return max(found) if found else None


def run(
    jobs: Iterable[Job],
    task: Callable[[Job], list[dict]],
    on_result: Callable[[Job, list[dict]], None],
    *,
    workers: int | None = None,
    scheduler: str | None = None,
    client=None,
    memory_limit: str | int = "auto",
) -> int:
    """Run ``task`` on every job, calling ``on_result(job, rows)`` in this process once per job as each finishes
    (a task lost for good, e.g. killed on every worker it tried, gives a ``failed`` row). Returns the count."""
    from dask.distributed import Client, as_completed

    jobs = list(jobs)
    with ExitStack() as stack:
        if client is None:
            if scheduler:
                client = stack.enter_context(Client(scheduler, timeout="30s"))
            else:
                cluster = stack.enter_context(local_cluster(workers, memory_limit))
                client = stack.enter_context(Client(cluster))
        largest = _largest_memory(client)
        run_id = uuid.uuid4().hex[:8]
        futures = {}
        for job in jobs:
            if job.memory and largest is not None and job.memory > largest:
                on_result(
                    job, [failed(job, f"needs {job.memory:,} bytes of memory; the largest worker has {largest:,.0f}")]
                )
                continue
            key = hashlib.sha256(f"{job.place}\x00{job.date}".encode()).hexdigest()[:16]
            fut = client.submit(
                task,
                job,
                key=f"segmap-job-{key}-{run_id}",
                priority=_size(job),
                resources={"MEMORY": job.memory} if job.memory and largest is not None else None,
                retries=0,
            )
            futures[fut] = job
        try:
            for fut in as_completed(futures):
                job = futures[fut]
                try:
                    rows = fut.result()
                except Exception as exc:  # the task itself was lost (worker deaths beyond Dask's allowed failures)
                    rows = [failed(job, f"the task failed on the cluster: {type(exc).__name__}: {exc}")]
                on_result(job, rows)
                fut.release()
        finally:
            client.cancel(list(futures))
    return len(jobs)
