"""Tiles in the first seconds of a new dataset version, on a 2-worker server (issue 18 item 3, issue 20).

A grid city is uploaded to a live uvicorn with 2 workers; from the moment the upload returns, two clients ask
for distinct uncached tiles (zooms 4-16 around the centre, never the same address twice) for SECONDS seconds.
Every answer's latency is recorded, and whether it was provisional (drawn while the version's shared index was
being built: ``Cache-Control: no-store, max-age=2``). Then the same is done for a second version (the dataset replaced).

Run it alone: ``flock /tmp/team/bench.lock python -m benchmarks.tiles_warmup [--areas N] [--runs 3]``;
``--phases DIR`` has the workers write their phase marks (app.tilephases) and prints them around each slow answer.
"""

from __future__ import annotations

import argparse
import gc
import io
import math
import os
import threading
import time

import httpx
import numpy as np
import shapely

from benchmarks.common import grid_city, header, table, write
from benchmarks.tiles import LiveServer

ZOOMS = range(4, 17)


def _tile(lon: float, lat: float, z: int) -> tuple[int, int, int]:
    n = 2**z
    return z, int((lon + 180) / 360 * n), int((1 - math.asinh(math.tan(math.radians(lat))) / math.pi) / 2 * n)


def _upload(url: str, ds, scale: int) -> None:
    frame = ds.areas[["id", "total", "migrants", "geometry"]].copy()
    frame["total"] = frame["total"] * scale
    buf = io.BytesIO()
    frame.to_parquet(buf)
    httpx.delete(f"{url}/v1/datasets/grid-warm", timeout=60)
    r = httpx.post(
        f"{url}/v1/datasets",
        files={"boundaries": ("grid.parquet", buf.getvalue())},
        data={"groups": "migrants", "total": "total", "key": "id", "id": "grid-warm", "title": "Grid city"},
        timeout=900,
    )
    r.raise_for_status()


def _hammer(url: str, centre, seconds: float, clients: int = 2, dataset: str = "grid-warm") -> list[dict]:
    """Distinct tiles near the centre, every zoom in turn, from ``clients`` threads for ``seconds``."""
    out, start, lock = [], time.perf_counter(), threading.Lock()
    counter = iter(range(10**9))
    # The client's own pauses are not the server's: its garbage collector (this process holds the city's 100,000
    # geometries) and CPU waits are kept out of the figures, or at least measured (``client stall ms``).
    gc.collect()
    gc.freeze()
    stalls, done = [], threading.Event()
    threading.Thread(target=_client_probe, args=(stalls, done), daemon=True).start()

    def run():
        # A new connection per tile, as a browser's several connections would spread over the workers (a kept-alive
        # connection stays with one worker).
        with httpx.Client(timeout=120, limits=httpx.Limits(max_keepalive_connections=0)) as client:
            while time.perf_counter() - start < seconds:
                k = next(counter)
                z = ZOOMS[k % len(ZOOMS)]
                zt, x, y = _tile(centre.x, centre.y, z)
                dx, dy = (k // len(ZOOMS)) % 5 - 2, (k // (5 * len(ZOOMS))) % 5 - 2
                t0, wall = time.perf_counter(), time.time()
                path = f"/v1/datasets/{dataset}/tiles/{zt}/{x + dx}/{y + dy}.mvt"
                r = client.get(url + path)
                t1 = time.perf_counter()
                ms = 1000 * (t1 - t0)
                with lock:
                    out.append(
                        {
                            "at_s": t0 - start,
                            "wall": wall,
                            "path": path,
                            "zoom": z,
                            "ms": ms,
                            "status": r.status_code,
                            "provisional": "no-store" in r.headers.get("cache-control", ""),
                            "empty": not r.content,
                            "t0": t0,
                            "t1": t1,
                        }
                    )

    threads = [threading.Thread(target=run) for _ in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    done.set()
    gc.unfreeze()
    for r in out:  # the longest pause of the client's probe that overlapped the answer
        t0, t1 = r.pop("t0"), r.pop("t1")
        r["client stall ms"] = max((ms for at, ms in stalls if at - ms / 1000 < t1 and at > t0), default=0.0)
    return out


def _client_probe(stalls: list, done: threading.Event, every: float = 0.005) -> None:
    """How late this process wakes from a 5 ms sleep (GIL, CPU or collector): (when it woke, ms late)."""
    while not done.is_set():
        t0 = time.perf_counter()
        time.sleep(every)
        now = time.perf_counter()
        if now - t0 - every > 0.02:
            stalls.append((now, 1000 * (now - t0 - every)))


def _summary(label: str, rows: list[dict]) -> dict:
    ms = np.array([r["ms"] for r in rows])
    first = [r["ms"] for r in sorted(rows, key=lambda r: r["at_s"])[:4]]
    return {
        "version": label,
        "tiles": len(rows),
        "non-200": sum(r["status"] != 200 for r in rows),
        "provisional": sum(r["provisional"] for r in rows),
        "first 4 ms": " / ".join(f"{v:.0f}" for v in first),
        "median ms": float(np.median(ms)),
        "p95 ms": float(np.percentile(ms, 95)),
        "max ms": float(ms.max()),
        "over 200 ms": int((ms > 200).sum()),
        "of them with a client stall > 50 ms": sum(r["ms"] > 200 and r.get("client stall ms", 0) > 50 for r in rows),
    }


def _timeline(label: str, rows: list[dict]) -> list[dict]:
    """Second by second: how many answers, how many provisional (and of those empty), median and worst."""
    out = []
    for second in range(int(max(r["at_s"] for r in rows)) + 1):
        part = [r for r in rows if second <= r["at_s"] < second + 1]
        if part:
            ms = np.array([r["ms"] for r in part])
            out.append(
                {
                    "version": label,
                    "second": second,
                    "tiles": len(part),
                    "provisional": sum(r["provisional"] for r in part),
                    "of them empty": sum(r["provisional"] and r["empty"] for r in part),
                    "median ms": float(np.median(ms)),
                    "max ms": float(ms.max()),
                }
            )
    return out


def _peak_rss(pid: int, stop: threading.Event, out: list) -> None:
    from benchmarks.load import rss_mb

    while not stop.wait(0.5):
        out.append(rss_mb(pid))


def _phases(folder: str, slow: list[dict], upload_walls: list[float]) -> str:
    """The workers' marks (app.tilephases) during each slow answer, and its background steps, as text."""
    import glob
    import json

    marks = sorted(
        (json.loads(line) for f in glob.glob(f"{folder}/*.jsonl") for line in open(f)), key=lambda m: m["at"]
    )
    t_zero = upload_walls[0] if upload_walls else 0.0

    def fmt(m: dict) -> str:
        extra = " ".join(f"{k}={v}" for k, v in m.items() if k not in ("at", "pid", "thread", "what"))
        return f"{m['at'] - t_zero:9.3f} {m['pid']} {m['thread'][:22]:22} {m['what']} {extra}"

    lines = ["Background steps, stalls and collections (s from the first upload's end):"]
    lines += [fmt(m) for m in marks if not m["what"].startswith(("source", "response"))]
    for r in slow:
        lines.append(f"\nslow answer at {r['wall'] - t_zero:.3f} s, {r['ms']:.0f} ms, zoom {r['zoom']}:")
        during = [m for m in marks if r["wall"] - 0.02 <= m["at"] <= r["wall"] + r["ms"] / 1000 + 0.01]
        mine = [m for m in during if m.get("path") == r["path"]]
        pids = {m["pid"] for m in mine}
        lines += [fmt(m) for m in during if m in mine or (m["pid"] in pids and "path" not in m)]
    return "\n".join(lines)


def _run(ds, centre, seconds: float, phases: str | None, client_nice: int) -> dict:
    """One server: the first version, then its replacement, each hammered for ``seconds``."""
    rows, slow, timeline, rss, walls = [], [], [], [], []
    env = {"SEGMAP_MAX_UPLOAD_MB": 2000, "SEGMAP_REGISTER_BUNDLED": "false"}
    if phases:
        env["SEGMAP_TILE_PHASES"] = phases
    load = os.getloadavg()[0]
    server = LiveServer(workers=2, env=env)
    with server as url:
        nice = _client_priority(client_nice)  # after the server started: it keeps the default priority
        stop = threading.Event()
        sampler = threading.Thread(target=_peak_rss, args=(server.proc.pid, stop, rss), daemon=True)
        sampler.start()
        for label, scale in (("first", 1), ("replaced", 2)):
            _upload(url, ds, scale)
            walls.append(time.time())
            result = _hammer(url, centre, seconds)
            rows.append({"load (1 min) at start": load, "client nice": nice, **_summary(label, result)})
            timeline += _timeline(label, result)
            slow += [{"version": label, **r} for r in result if r["ms"] > 200][:10]
        stop.set()
        if phases:
            time.sleep(1.5)  # the workers' last marks are flushed
        _client_priority(0)
    if phases:
        print(_phases(phases, slow, walls))
    for r in slow:
        r.pop("wall"), r.pop("path")
    return {"rows": rows, "slow": slow, "timeline": timeline, "rss": max(rss or [0])}


def _client_priority(nice: int) -> int:
    """The client's threads (made from now on) at ``nice``: its own CPU waits are not the server's latency (the
    client stands in for browsers on other machines). Root only below 0; else it stays where it is."""
    try:
        os.setpriority(os.PRIO_PROCESS, 0, nice)
    except OSError:
        pass
    return os.getpriority(os.PRIO_PROCESS, 0)


def main(
    n_areas: int = 100_000,
    seconds: float = 10.0,
    kind: str = "grid",
    phases: str | None = None,
    runs: int = 1,
    client_nice: int = -5,
) -> None:
    if kind == "grid":
        ds = grid_city(n_areas, cell=100.0)
    else:
        from benchmarks.scale import city

        ds = city(kind, n_areas)
    b = ds.areas.to_crs(4326).total_bounds
    centre = shapely.Point((b[0] + b[2]) / 2, (b[1] + b[3]) / 2)
    done = [_run(ds, centre, seconds, phases, client_nice) for _ in range(runs)]
    rows = [{"run": i + 1, **r} for i, d in enumerate(done) for r in d["rows"]]
    what = f"{n_areas:,} areas ({'grid' if kind == 'grid' else 'Voronoi cells'})"
    text = header(f"Tiles in the first {seconds:g} s of a new dataset version ({what}, 2 workers, {runs} run(s))")
    text += (
        "Each run: a new server; two clients ask for distinct uncached tiles (zooms 4-16 near the centre) from the "
        "moment the upload returns, for the first version and then for its replacement. `provisional`: answered "
        "while the version's shared index was built or read (no-store, never cached). The client runs at the "
        "`client nice` shown (the server at 0); `client stall ms`: the longest the client's own 5 ms probe woke "
        "late during that answer (its CPU or GIL waits, not the server's).\n\n"
    )
    text += table(rows)
    text += (
        "\nServer memory (2 workers, the builder and their forkservers; RSS summed, shared pages counted in each): "
        f"peak {max(d['rss'] for d in done):,.0f} MB.\n\nSecond by second, run 1 (`of them empty`: asked before "
        "the worker had read the version or the shared boxes existed; the client is told to fetch them again in "
        "2 s):\n\n" + table(done[0]["timeline"])
    )
    slow = [{"run": i + 1, **r} for i, d in enumerate(done) for r in d["slow"]]
    if slow:
        text += "\nSlowest answers (over 200 ms; at most 10 per version and run):\n\n" + table(
            [{k: (round(v, 2) if isinstance(v, float) else v) for k, v in r.items()} for r in slow]
        )
    write("tiles_warmup" if (n_areas, kind) == (100_000, "grid") else f"tiles_warmup_{kind}_{n_areas}", text)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--areas", type=int, default=100_000)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--kind", choices=("grid", "voronoi"), default="grid")
    parser.add_argument("--phases", help="a folder for the workers' phase marks (app.tilephases), printed at the end")
    parser.add_argument("--runs", type=int, default=1, help="servers started one after the other, all reported")
    parser.add_argument("--client-nice", type=int, default=-5, help="the client's priority (below 0: root only)")
    args = parser.parse_args()
    main(args.areas, args.seconds, args.kind, args.phases, args.runs, args.client_nice)
