"""Tiles in the first seconds of a new dataset version, on a 2-worker server (issue 18 item 3, issue 20).

A grid city is uploaded to a live uvicorn with 2 workers; from the moment the upload returns, two clients ask
for distinct uncached tiles (zooms 4-16 around the centre, never the same address twice) for SECONDS seconds.
Every answer's latency is recorded, and whether it was provisional (drawn while the version's shared index was
being built: ``Cache-Control: no-store``). Then the same is done for a second version (the dataset replaced).

Run it alone: ``flock /tmp/team/bench.lock python -m benchmarks.tiles_warmup [--areas N] [--seconds S]``.
"""

from __future__ import annotations

import argparse
import io
import math
import threading
import time

import httpx
import numpy as np

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


def _hammer(url: str, centre, seconds: float, clients: int = 2) -> list[dict]:
    """Distinct tiles near the centre, every zoom in turn, from ``clients`` threads for ``seconds``."""
    out, start, lock = [], time.perf_counter(), threading.Lock()
    counter = iter(range(10**9))

    def run():
        with httpx.Client(timeout=120) as client:
            while time.perf_counter() - start < seconds:
                k = next(counter)
                z = ZOOMS[k % len(ZOOMS)]
                zt, x, y = _tile(centre.x, centre.y, z)
                dx, dy = (k // len(ZOOMS)) % 5 - 2, (k // (5 * len(ZOOMS))) % 5 - 2
                t0 = time.perf_counter()
                r = client.get(f"{url}/v1/datasets/grid-warm/tiles/{zt}/{x + dx}/{y + dy}.mvt")
                ms = 1000 * (time.perf_counter() - t0)
                with lock:
                    out.append(
                        {
                            "at_s": t0 - start,
                            "zoom": z,
                            "ms": ms,
                            "status": r.status_code,
                            "provisional": r.headers.get("cache-control") == "no-store",
                        }
                    )

    threads = [threading.Thread(target=run) for _ in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return out


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
    }


def main(n_areas: int = 100_000, seconds: float = 10.0) -> None:
    ds = grid_city(n_areas, cell=100.0)
    centre = ds.areas.to_crs(4326).geometry.union_all().centroid
    rows, slow = [], []
    with LiveServer(workers=2, env={"SEGMAP_MAX_UPLOAD_MB": 400, "SEGMAP_REGISTER_BUNDLED": "false"}) as url:
        for label, scale in (("first", 1), ("replaced", 2)):
            _upload(url, ds, scale)
            result = _hammer(url, centre, seconds)
            rows.append(_summary(label, result))
            slow += [{"version": label, **r} for r in result if r["ms"] > 200][:10]
    text = header(f"Tiles in the first {seconds:g} s of a new dataset version ({n_areas:,} areas, 2 workers)")
    text += (
        "Two clients ask for distinct uncached tiles (zooms 4-16 near the centre) from the moment the upload "
        "returns. `provisional`: answered while the version's shared index was built (no-store, never cached).\n\n"
    )
    text += table(rows)
    if slow:
        text += "\nSlowest answers (over 200 ms):\n\n" + table(
            [{k: (round(v, 2) if isinstance(v, float) else v) for k, v in r.items()} for r in slow]
        )
    write("tiles_warmup", text)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--areas", type=int, default=100_000)
    parser.add_argument("--seconds", type=float, default=10.0)
    args = parser.parse_args()
    main(args.areas, args.seconds)
