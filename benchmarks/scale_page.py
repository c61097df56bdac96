"""The map page at a million areas (issue 20): a real uvicorn on 127.0.0.1 and headless Chromium (Debian's).

A 1,000,000-cell grid (and, with ``--voronoi``, the Voronoi tessellation of benchmarks/scale.py) is written into
a fresh registry, the server started on it (stopped by its pid), and for the share view and the LISA view the
map page is opened at zooms 5, 9 and 13 from the URL's ``at=`` state. "Drawn": the tile layer is not loading
(Leaflet's own state, the one its ``load`` event reports), none of its tiles is provisional (sent empty while the
server's index is built; the page asks again) and a tile holds shapes. Recorded per view
and zoom: the time from navigation to drawn, the page's bytes (HTML, scripts, tiles), the shapes drawn and how
(SVG or canvas), console errors; per run: the first page render on the server, the page's interactive routes
(search, area panel), the offline download and the server's RSS. Screenshots go to benchmarks/screenshots/.

``--data DIR`` keeps the registry in DIR and reuses a city already registered there (iterate without building a
million areas again; the server's caches there may then be warm, which the results say). ``--kinds``, ``--views``
and ``--zooms`` choose a part, so a run fits a hold of the bench lock; each kind's results are kept in
benchmarks/out/scale_page_<kind>.json and the report is written from every kind measured so far.

python -m benchmarks.scale_page [--n 1000000] [--kinds grid,voronoi] [--views share,lisa] [--zooms 5,9,13]
    [--data DIR] [--routes] [--alternatives] [--timeout 600] [--set SEGMAP_X=v]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import httpx

from benchmarks.common import PEAK_RSS, child, header, write

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from server import LiveServer  # noqa: E402

OUT = Path(__file__).parent / "out"
SHOTS = Path(__file__).parent / "screenshots"
CHROMIUM = "/usr/bin/chromium"
ZOOMS = [5, 9, 13]
VIEWS = ["share", "lisa"]  # --views and --zooms narrow these lists in place
ENV: dict[str, str] = {}  # the server's settings beyond the defaults (--set NAME=VALUE)
ALTERNATIVES = "--alternatives" in sys.argv  # also time PMTiles, PNG, CSV and GeoParquet (minutes at 1M)

REGISTER = r"""
import json, sys, time
from pathlib import Path
from app.registry import Registry
from benchmarks.scale import city
kind, n, root, dataset_id = sys.argv[1], int(sys.argv[2]), Path(sys.argv[3]), sys.argv[4]
t0 = time.perf_counter(); ds = city(kind, n); t1 = time.perf_counter()
Registry(root).put(dataset_id, ds)
t2 = time.perf_counter()
b = ds.areas.to_crs(4326).total_bounds
print(json.dumps({"build": t1 - t0, "register": t2 - t1, "bounds": [float(v) for v in b], "peak": PEAK}))
""".replace("PEAK", PEAK_RSS)

# Resolves with the ms since navigation when the vector layer has loaded every tile in view (none provisional, i.e.
# none the server sent empty while its index was being built) and drawn shapes; polled every 100 ms.
DRAWN = """() => new Promise(resolve => {
  const check = () => {
    const s = window.segmap, layer = s && s.layers && s.layers.vector;
    const drawn = layer && !layer.isLoading() && !s.page.provisional() && s.page.shapes() > 0;
    if (drawn) resolve(performance.now()); else setTimeout(check, 100);
  };
  check();
})"""

WEIGHT = """() => {
  const nav = performance.getEntriesByType('navigation')[0];
  const res = performance.getEntriesByType('resource');
  const sum = (rs) => rs.reduce((a, r) => a + (r.transferSize || r.encodedBodySize || 0), 0);
  const tiles = res.filter(r => r.name.includes('/tiles/'));
  const last = tiles.reduce((a, r) => Math.max(a, r.responseEnd), 0) / 1000;  // the last tile's bytes arrived
  return {html: nav ? (nav.transferSize || nav.encodedBodySize) : 0, total: (nav ? nav.transferSize : 0) + sum(res),
          tiles_in_s: last,
          tiles: tiles.length, tile_bytes: sum(tiles), paths: window.segmap.page.shapes(),
          renderer: window.segmap.cfg.canvas ? 'canvas' : 'svg'};
}"""


def rss_mb(pid: int) -> float:
    """Resident memory of the server's process group (uvicorn and any workers), in MB."""
    total = 0
    for p in Path("/proc").iterdir():
        if not p.name.isdigit():
            continue
        try:
            if os.getpgid(int(p.name)) != pid:
                continue
            line = next(x for x in (p / "status").read_text().splitlines() if x.startswith("VmRSS"))
            total += int(line.split()[1])
        except (OSError, StopIteration, ProcessLookupError):
            continue
    return total / 1024


def timed_get(client: httpx.Client, url: str, timeout: float) -> dict:
    t0 = time.perf_counter()
    try:
        r = client.get(url, timeout=timeout)
    except httpx.TimeoutException:
        return {"status": "timeout", "s": time.perf_counter() - t0, "bytes": 0, "body": ""}
    return {"status": r.status_code, "s": time.perf_counter() - t0, "bytes": len(r.content), "body": r.text[:300]}


def server_side(base: str, dataset_id: str, timeout: float, routes: bool) -> dict:
    """The page's HTML per view (its first, uncached render and a cached one), the interactive routes and the
    offline download, timed from the client; without ``routes`` the offline download alone."""
    out: dict = {}
    with httpx.Client() as c:
        # The first request to a fresh server also reads the million areas from the registry (any route would).
        out["offline download"] = timed_get(c, f"{base}/maps/{dataset_id}/download?view=lisa", timeout)
        out["offline download again"] = timed_get(c, f"{base}/maps/{dataset_id}/download?view=share", timeout)
        if not routes:
            return out
        for view in VIEWS:
            url = f"{base}/maps/{dataset_id}?view={view}"
            out[f"page {view} first"] = timed_get(c, url, timeout)
            out[f"page {view} cached"] = timed_get(c, url, timeout)
        out["search"] = timed_get(c, f"{base}/maps/{dataset_id}/search?q=a123456", timeout)
        out["search again"] = timed_get(c, f"{base}/maps/{dataset_id}/search?q=a12345", timeout)
        out["area panel"] = timed_get(c, f"{base}/maps/{dataset_id}/area?area=a123456&view=lisa", timeout)
        out["area panel again"] = timed_get(c, f"{base}/maps/{dataset_id}/area?area=a223456&view=lisa", timeout)
        if not ALTERNATIVES:
            return out
        # What the page links beside it, and what the download's refusal names instead.
        out["PMTiles export (share)"] = timed_get(c, f"{base}/v1/datasets/{dataset_id}/export.pmtiles", timeout)
        out["PNG (share)"] = timed_get(c, f"{base}/v1/datasets/{dataset_id}/map.png", timeout)
        out["data CSV (share)"] = timed_get(c, f"{base}/maps/{dataset_id}/data?format=csv", timeout)
        out["GeoParquet download"] = timed_get(c, f"{base}/v1/datasets/{dataset_id}/download.parquet", timeout)
    return out


def in_browser(base: str, dataset_id: str, centre: tuple[float, float], tag: str, timeout: float) -> list[dict]:
    from playwright.sync_api import sync_playwright

    rows = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=["--no-sandbox"])
        try:
            for view in VIEWS:
                for z in ZOOMS:
                    rows.append(_open(browser, base, dataset_id, view, z, centre, tag, timeout))
                    print(f"scale_page: {view} z{z}: {rows[-1]}", file=sys.stderr)
        finally:
            browser.close()
    return rows


def _open(browser, base, dataset_id, view, z, centre, tag, timeout) -> dict:
    ctx = browser.new_context(viewport={"width": 1280, "height": 800})
    ctx.add_init_script("performance.setResourceTimingBufferSize(100000)")  # 250 by default: tiles re-asked overflow it
    page = ctx.new_page()
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    lat, lon = centre
    url = f"{base}/maps/{dataset_id}?view={view}&at={lat:.5f},{lon:.5f},{z}"
    row = {"view": view, "zoom": z}
    try:
        page.goto(url, timeout=timeout * 1000, wait_until="commit")
        page.wait_for_selector("html[data-segmap-ready]", timeout=timeout * 1000)
        row["drawn s"] = page.evaluate(DRAWN) / 1000
        row.update(page.evaluate(WEIGHT))
        shot = SHOTS / f"scale_page_{tag}_{view}_z{z}.png"
        SHOTS.mkdir(exist_ok=True)
        page.screenshot(path=str(shot))
        row["screenshot"] = str(shot.relative_to(SHOTS.parent.parent))
    except Exception as exc:  # a page that never draws is the result, not a crash of the benchmark
        row["drawn s"] = f"failed: {type(exc).__name__}: {str(exc)[:200]}"
    row["console errors"] = errors
    ctx.close()
    return row


def register(kind: str, n: int, root: Path, dataset_id: str) -> dict:
    """Build and register the city in ``root``, or reuse it when this benchmark registered it there before."""
    done = root / f"scale_page_{dataset_id}.json"
    if done.exists():
        return {**json.loads(done.read_text()), "reused": True}
    reg = child(REGISTER, kind, n, root, dataset_id, timeout=3600)
    done.write_text(json.dumps(reg))
    return {**reg, "reused": False}


def run(kind: str, n: int, timeout: float, data: Path | None, routes: bool) -> dict:
    with tempfile.TemporaryDirectory(prefix="segmap-scale-page-") as tmp:
        root = data or Path(tmp)
        root.mkdir(parents=True, exist_ok=True)
        dataset_id = f"{kind}-{n // 1000}k"
        reg = register(kind, n, root, dataset_id)
        west, south, east, north = reg["bounds"]
        centre = ((south + north) / 2, (west + east) / 2)
        server = LiveServer(data_dir=root, env={"SEGMAP_REGISTER_BUNDLED": "false", **ENV})
        load0 = os.getloadavg()[0]
        base = server.start()
        try:
            rss0 = rss_mb(server.proc.pid)
            got = server_side(base, dataset_id, timeout, routes)
            rss1 = rss_mb(server.proc.pid)
            pages = in_browser(base, dataset_id, centre, f"{kind}_{n // 1000}k", timeout)
            rss2 = rss_mb(server.proc.pid)
            log = server.read_log()[-3000:]
        finally:
            server.stop()
    return {"kind": kind, "n": n, "env": dict(ENV), "register": reg, "routes": got, "pages": pages,
            "load": [load0, os.getloadavg()[0]], "at": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
            "rss": {"started": rss0, "after routes": rss1, "after browser": rss2}, "log": log}  # fmt: skip


RUNS = OUT / "scale_page_runs"  # one JSON per run; the report is made from all of them (delete old ones to drop)


def _section(r: dict) -> str:
    reg = r["register"]
    how = "reused from an earlier run (its caches may be warm)" if reg.get("reused") else "built for this run"
    text = (
        f"## {r['kind']}, {r['n']:,} areas: run ended {r.get('at', '?')}, load average (1 min) "
        f"{r.get('load', [0, 0])[0]:.1f} at the start, {r.get('load', [0, 0])[1]:.1f} at the end\n\n"
        f"Server settings beyond the defaults: {r['env'] or 'none'}. Data folder {how}: dataset built in "
        f"{reg['build']:.1f} s, registered in {reg['register']:.1f} s. Server RSS (1 worker): "
        f"{r['rss']['started']:.0f} MB started, {r['rss']['after routes']:.0f} MB after the routes below, "
        f"{r['rss']['after browser']:.0f} MB after the browser runs.\n\n"
        "| route | status | s | KiB |\n|---|---|---|---|\n"
    )
    for name, v in r["routes"].items():
        text += f"| {name} | {v['status']} | {v['s']:.2f} | {v['bytes'] / 1024:.0f} |\n"
    text += "\n| view | zoom | drawn s | last tile in s | page KiB | tiles | tile KiB | shapes | drawn as |"
    text += " console errors | screenshot |\n|---|---|---|---|---|---|---|---|---|---|---|\n"
    for p in r["pages"]:
        s = p["drawn s"]
        text += (
            f"| {p['view']} | {p['zoom']} | {s if isinstance(s, str) else f'{s:.2f}'} | {p.get('tiles_in_s', 0):.2f} | "
            f"{p.get('total', 0) / 1024:.0f} | {p.get('tiles', '')} | {p.get('tile_bytes', 0) / 1024:.0f} | "
            f"{p.get('paths', '')} | {p.get('renderer', 'svg')} | {len(p['console errors'])} | "
            f"{p.get('screenshot', '')} |\n"
        )
    return text + "\n"


BEFORE = (
    "Before the canvas renderer (commit c61b284's run of the grid, every tile an SVG element per shape, load average "
    "8–14): zoom 5 9.3 s (share) and 16.8 s (LISA), zoom 9 55.4 s and 43.4 s (222,878 shapes), zoom 13 6.7 s and "
    "6.3 s. A run on a data folder built for it includes the server building its shared tile index: tiles are "
    "sent provisional (not cached, empty or from the unfinished index) meanwhile and the page asks again (every 2 s "
    "in these runs: the Voronoi share view at zoom 9 waited 394 s and asked 1,380 times, 723 MB; since commit "
    "314780d after 2, 4, 8 … 30 s), so `tiles` counts those requests too and the first zooms opened wait for the "
    "index. The area panel's 404 on the Voronoi city: the benchmark asks for grid ids (a123456), not Voronoi ones. "
    "The two `grid` runs of zoom 9 alone are an A/B on one warm data folder: SVG forced with "
    "SEGMAP_CANVAS_AREAS=100000000, then the default canvas.\n\n"
)


def render(results: list[dict]) -> str:
    text = header("The map page at a million areas: uvicorn on 127.0.0.1 and headless Chromium (issue 20)")
    for r in sorted(results, key=lambda r: (r["kind"], r.get("at", ""))):
        text += _section(r)
    return (
        text
        + BEFORE
        + (
            "`drawn s`: from navigation (a fresh browser context, cold cache) to the tile layer's `load` event with "
            "shapes drawn and no tile provisional; the first row of each view includes the server's render of the page "
            "when not cached. `last tile in s`: when the last tile's bytes had arrived (the rest of `drawn s` is the "
            "browser decoding and drawing). `shapes`: shapes in the loaded tiles (areas, or merged cells where areas are "
            "under 2 px). `drawn as`: SVG elements, or one canvas per tile (above SEGMAP_CANVAS_AREAS). `page KiB`: "
            "transfer sizes of the HTML and every resource (tiles included) the page loaded.\n"
        )
    )


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=1_000_000)
    ap.add_argument("--kinds", default="grid", help="grid, voronoi or grid,voronoi")
    ap.add_argument("--voronoi", action="store_true", help="the same as --kinds grid,voronoi")
    ap.add_argument("--views", default=",".join(VIEWS))
    ap.add_argument("--zooms", default=",".join(map(str, ZOOMS)))
    ap.add_argument("--data", type=Path, help="keep the registry here and reuse a city registered there before")
    ap.add_argument("--routes", action="store_true", help="also time the page's HTML, search and area panel")
    ap.add_argument("--timeout", type=float, default=600)
    ap.add_argument("--alternatives", action="store_true", help="also time PMTiles, PNG, CSV, GeoParquet")
    ap.add_argument(
        "--set", action="append", default=[], help="a server setting, e.g. SEGMAP_MAX_OFFLINE_AREAS=2000000"
    )
    args = ap.parse_args()
    ENV.update(kv.split("=", 1) for kv in args.set)
    VIEWS[:] = args.views.split(",")
    ZOOMS[:] = [int(z) for z in args.zooms.split(",")]
    kinds = ("grid", "voronoi") if args.voronoi else tuple(args.kinds.split(","))
    RUNS.mkdir(parents=True, exist_ok=True)
    print(f"scale_page: started {time.strftime('%H:%M:%S')}, load {os.getloadavg()}", file=sys.stderr)
    for k in kinds:
        result = run(k, args.n, args.timeout, args.data, args.routes or ALTERNATIVES)
        (RUNS / f"{k}-{args.n // 1000}k-{time.strftime('%H%M%S')}.json").write_text(json.dumps(result, indent=1))
    write("scale_page", render([json.loads(f.read_text()) for f in sorted(RUNS.glob("*.json"))]))


if __name__ == "__main__":
    main()
