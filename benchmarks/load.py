"""Bounded load test with wrk (Debian) against a live server on 127.0.0.1: zero errors, memory flat.

Three 20 s phases (cached tile, indices, map page), 16 connections, 2 threads; the server's resident
memory (all its processes) is sampled every second. Prints a table and writes results/load.md.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from benchmarks.common import header, table, versions, write  # noqa: E402
from server import LiveServer  # noqa: E402

DURATION = 20


def rss_mb(pid: int) -> float:
    pids = [pid] + [
        int(p) for p in subprocess.run(["pgrep", "-g", str(pid)], capture_output=True, text=True).stdout.split()
    ]
    total = 0
    for p in set(pids):
        try:
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        except FileNotFoundError:
            pass
    return total / 1024


def group_cpu(pid: int) -> float:
    """CPU seconds used so far by the server's process group (workers, tile builder, forkservers)."""
    total = 0.0
    for p in subprocess.run(["pgrep", "-g", str(pid)], capture_output=True, text=True).stdout.split():
        try:
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        except (FileNotFoundError, IndexError):
            pass
    return total


def settle(pid: int, limit: float = 120.0) -> float:
    """Wait until the server is idle (< 5 % of a core over 2 s): a first tile request starts the dataset's tile
    build in the background, which would otherwise share the cores with the measured phases. Seconds waited."""
    t0, before = time.monotonic(), group_cpu(pid)
    while time.monotonic() - t0 < limit:
        time.sleep(2)
        now = group_cpu(pid)
        if now - before < 0.1:
            break
        before = now
    return time.monotonic() - t0


def sequential_ms(url: str, n: int = 200) -> float:
    """Median latency of ``n`` requests one after another on one connection: the cost of a request without
    queueing (less sensitive to other work on the machine than throughput)."""
    with httpx.Client(timeout=60) as client:
        times = []
        for _ in range(n):
            t0 = time.perf_counter()
            client.get(url)
            times.append(time.perf_counter() - t0)
    return float(np.median(times) * 1000)


def wrk(url: str, seconds: int) -> dict:
    out = subprocess.run(
        ["wrk", "-t2", "-c16", f"-d{seconds}s", "--latency", url], capture_output=True, text=True, timeout=seconds + 60
    ).stdout

    def grab(pattern, cast=float, default=0):
        m = re.search(pattern, out)
        return cast(m.group(1)) if m else default

    def ms(text):
        v = float(re.match(r"([\d.]+)", text).group(1))
        return v / 1000 if text.endswith("us") else v * 1000 if text.endswith("s") and not text.endswith("ms") else v

    p99 = re.search(r"^\s*99%\s+(\S+)", out, re.MULTILINE)
    errors = sum(int(x) for x in re.findall(r"(?:connect|read|write|timeout) (\d+)", out))
    non2xx = grab(r"Non-2xx or 3xx responses: (\d+)", int)
    return {
        "requests/s": grab(r"Requests/sec:\s+([\d.]+)"),
        "p99 ms": ms(p99.group(1)) if p99 else float("nan"),
        "requests": grab(r"(\d+) requests in", int),
        "errors": errors + non2xx,
    }


def main() -> None:
    if shutil.which("wrk") is None:
        print("wrk is not installed (Debian package wrk): skipping the load test")
        return
    rows = []
    server = LiveServer(workers=2)
    url = server.start()
    try:
        tile = f"{url}/v1/datasets/georgia-1990/tiles/6/16/25.mvt"
        indices = f"{url}/v1/datasets/georgia-1990/indices?group=foreign_born&index=dissimilarity&permutations=99"
        page = f"{url}/maps/georgia-1990?group=foreign_born&view=share"
        targets = [("cached tile", tile), ("indices (cached result)", indices)]
        if httpx.get(page, timeout=60).status_code == 200:
            targets.append(("map page", page))
        for _, u in targets:  # warm caches and code paths
            for _ in range(3):
                httpx.get(u, timeout=120)
        waited = settle(server.proc.pid)
        latency = {name: sequential_ms(u) for name, u in targets}
        samples: list[tuple[float, float]] = []
        stop = threading.Event()

        def sample():
            t0 = time.monotonic()
            while not stop.is_set():
                samples.append((time.monotonic() - t0, rss_mb(server.proc.pid)))
                time.sleep(1)

        thread = threading.Thread(target=sample, daemon=True)
        thread.start()
        for name, u in targets:
            load = os.getloadavg()[0]
            rows.append({"target": name, "one at a time: median ms": latency[name], **wrk(u, DURATION), "load": load})
        stop.set()
        thread.join()
    finally:
        server.stop()
    total = samples[-1][0]
    first = [m for t, m in samples if t <= 10]
    last = [m for t, m in samples if t >= total - 10]
    growth = max(last) - max(first)
    bound = 50.0
    wrk_version = subprocess.run(["wrk", "-v"], capture_output=True, text=True).stdout.split(" [")[0].strip()
    anchors = (
        f"{wrk_version} (Debian) on the same 2 cores as the server, {versions('uvicorn')}; Georgia 1990 counties; "
        f"caches warmed by 3 requests per target first, then {waited:.0f} s until the server was idle (the tile "
        "build a first tile request starts in the background). `one at a time`: median of 200 requests in a row on "
        "one connection, before the wrk phases; `load`: the 1-minute load average as the phase began. No anchor "
        "library: absolute figures only. Throughput depends on what else the 2 cores run (wrk itself takes a share)."
    )
    text = (
        header(
            f"Load test: wrk, 16 connections, 2 threads, {DURATION} s per target, 2 uvicorn workers on 127.0.0.1",
            anchors,
        )
        + table(rows)
        + f"\nServer memory (RSS, all processes): {max(first):.0f} MB in the first 10 s, "
        f"{max(last):.0f} MB in the last 10 s; growth {growth:+.0f} MB (bound {bound:.0f} MB): "
        f"{'flat' if growth <= bound else 'NOT flat'}. Errors counted: socket errors + non-2xx/3xx responses.\n"
    )
    write("load", text)


if __name__ == "__main__":
    main()
