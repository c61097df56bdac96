"""Uploading a million areas over HTTP (issue 20): a 1,000,000-cell grid and a 1,000,000-cell Voronoi tessellation
(benchmarks/scale.py's makers) written as GeoParquet with their counts, POSTed to /v1/datasets of a real uvicorn on
127.0.0.1 (one worker, a fresh one per upload, stopped by its pid), timing the request and the server's peak RSS.
A broken copy (one invalid geometry, one duplicated id) must be refused in one 4xx naming both, with the registry
and its directory untouched.

python -m benchmarks.scale_upload [N]      # N areas (default 1,000,000)
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import httpx

from benchmarks.common import ROOT, header, table, write

OUT = Path(__file__).parent / "out"
KEY = "bench-key"
LIMITS = {"SEGMAP_MAX_UPLOAD_MB": 1024, "SEGMAP_MAX_VERTICES": 20_000_000}  # the rest (timeout 60 s) default
BOWTIE = "POLYGON ((0 0, 1 1, 1 0, 0 1, 0 0))"  # self-intersecting: shifted onto the broken area's place


def make_files(kind: str, n: int) -> tuple[Path, Path]:
    """The GeoParquet of ``kind`` with counts, and a copy with one bow-tie polygon and one repeated id."""
    import shapely

    from benchmarks.scale import city

    good, bad = OUT / f"upload_{kind}_{n}.parquet", OUT / f"upload_{kind}_{n}_bad.parquet"
    if good.exists() and bad.exists():
        return good, bad
    areas = city(kind, n).areas[["id", "total", "migrants", "geometry"]]
    OUT.mkdir(exist_ok=True)
    areas.to_parquet(good, index=False)
    broken = areas.copy()
    at, dup = n // 3, (2 * n) // 3
    x, y = shapely.get_coordinates(broken.geometry.iloc[at])[0]
    bowtie = shapely.affinity.translate(shapely.affinity.scale(shapely.from_wkt(BOWTIE), 100, 100, origin=(0, 0)), x, y)
    broken.loc[at, "geometry"] = bowtie
    broken.loc[dup, "id"] = broken.loc[0, "id"]
    broken.to_parquet(bad, index=False)
    return good, bad


def peak_mb(pid: int) -> float:
    """The process's peak resident memory (VmHWM) in MB."""
    with open(f"/proc/{pid}/status") as fh:
        return int(next(line for line in fh if line.startswith("VmHWM")).split()[1]) / 1024


def cpu_s(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as fh:
        fields = fh.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def listing(data_dir: Path) -> set[str]:
    return {str(p.relative_to(data_dir)) for p in (data_dir / "datasets").rglob("*")}


def upload(path: Path, name: str, data_dir: Path) -> dict:
    """POST ``path`` to a fresh one-worker server: time, status, body, peak RSS, CPU, files before and after."""
    sys.path.insert(0, str(ROOT / "tests"))
    from server import LiveServer

    env = {"SEGMAP_API_KEY": KEY, **LIMITS}
    srv = LiveServer(env=env, data_dir=data_dir)
    url = srv.start()
    try:
        return _post(url, srv.proc.pid, path, name, data_dir)
    finally:
        srv.stop()


def _post(url: str, pid: int, path: Path, name: str, data_dir: Path) -> dict:
    with httpx.Client(base_url=url, timeout=900) as client:
        before_ids = sorted(d["id"] for d in client.get("/v1/datasets").json()["datasets"])
        before_files = listing(data_dir)
        base_peak, base_cpu = peak_mb(pid), cpu_s(pid)
        body = path.read_bytes()
        t0 = time.perf_counter()
        r = client.post(
            "/v1/datasets",
            files={"boundaries": (path.name, body, "application/octet-stream")},
            data={"groups": "migrants", "total": "total", "key": "id", "title": name},
            headers={"X-API-Key": KEY},
        )
        wall = time.perf_counter() - t0
        out = {
            "status": r.status_code,
            "s": wall,
            "server CPU s": cpu_s(pid) - base_cpu,
            "peak MB": peak_mb(pid),
            "idle peak MB": base_peak,
            "file MB": len(body) / 2**20,
            "body": r.json(),
            "content-type": r.headers.get("content-type", ""),
        }
        after_ids = sorted(d["id"] for d in client.get("/v1/datasets").json()["datasets"])
        out["added ids"] = sorted(set(after_ids) - set(before_ids))
        out["added files"] = sorted(listing(data_dir) - before_files)
        return out


def _names_both(body: dict, n: int) -> bool:
    """The problems name the invalid area's id and the repeated id, each under its code."""
    named = {p["code"]: p["ids"] for p in body.get("problems", [])}
    invalid = any(f"{p}{n // 3}" in named.get("invalid_geometry", []) for p in "av")
    return invalid and any(i in named.get("duplicate_id", []) for i in ("a0", "v0"))


def main(n: int = 1_000_000) -> None:
    import tempfile

    rows, notes = [], []
    for kind in ("grid", "voronoi"):
        good, bad = make_files(kind, n)
        for label, path in ((f"{kind}, valid", good), (f"{kind}, 1 invalid + 1 duplicate", bad)):
            with tempfile.TemporaryDirectory(prefix="segmap-upload-") as tmp:
                r = upload(path, f"{kind} {n}", Path(tmp))
            ok = r["status"] == 201 and r["body"].get("n_areas") == n if "valid" == label.split(", ")[1] else None
            if ok is None:
                ok = 400 <= r["status"] < 500 and not r["added ids"] and not r["added files"]
                ok = ok and r["content-type"].startswith("application/problem+json") and _names_both(r["body"], n)
                notes.append(f"{label}: HTTP {r['status']}: {r['body'].get('detail', '')[:600]}")
            rows.append(
                {
                    "upload": label,
                    "file MB": r["file MB"],
                    "HTTP": r["status"],
                    "as expected": "yes" if ok else "**no**",
                    "wall s": r["s"],
                    "server CPU s": r["server CPU s"],
                    "server peak MB": r["peak MB"],
                    "idle server MB": r["idle peak MB"],
                }
            )
            print(rows[-1], file=sys.stderr)
    write(
        "scale_upload",
        header(f"Uploading {n:,} areas over HTTP as GeoParquet (issue 20)")
        + "Each upload goes to a fresh one-worker uvicorn on 127.0.0.1 (API key set; upload limit raised to 1 GB and "
        "vertices to 20 million, as the Voronoi file has 91 MB and 7 million vertices against the defaults' 50 MB and 5 "
        "million; the 60 s compute timeout and the other limits at their defaults) and is timed from the request to the answer: reading, "
        "validation, the GeoParquet written to the registry and its catalogue row. `server peak MB` is the "
        "server process's VmHWM; `server CPU s` its user + system time during the request. The broken copies have "
        f"a self-intersecting polygon at row {n // 3:,} and row {(2 * n) // 3:,} repeating the first id: the answer "
        "must be one problem+json naming both, with no dataset or file added.\n\n"
        + table(rows)
        + "\n"
        + "\n".join(f"- {t}" for t in notes)
        + "\n",
    )


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 1_000_000)
