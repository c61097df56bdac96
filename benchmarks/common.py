"""Shared helpers: a synthetic grid city, timing, peak memory, result tables."""

from __future__ import annotations

import datetime as dt
import gc
import json
import math
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import geopandas as gpd
import numpy as np
from shapely import box

from spatial.dataset import validate

# `python -m benchmarks check` writes a fresh run to a scratch directory, not over the recorded results
RESULTS = Path(os.environ.get("SEGMAP_BENCH_RESULTS") or Path(__file__).parent / "results")


def grid_city(n_areas: int, cell: float = 200.0, seed: int = 0):
    """A square grid of cells with a migrant cluster in one corner (EPSG:32633, metres)."""
    side = int(np.ceil(np.sqrt(n_areas)))
    rng = np.random.default_rng(seed)
    i, j = np.divmod(np.arange(n_areas), side)
    x0, y0 = 500_000.0, 5_000_000.0
    geoms = box(x0 + i * cell, y0 + j * cell, x0 + (i + 1) * cell, y0 + (j + 1) * cell)
    total = rng.integers(50, 1500, n_areas)
    p = np.where((i < side / 3) & (j < side / 3), 0.35, 0.08)
    migrants = rng.binomial(total, p)
    gdf = gpd.GeoDataFrame(
        {"id": [f"a{k}" for k in range(n_areas)], "total": total, "migrants": migrants},
        geometry=geoms,
        crs="EPSG:32633",
    )
    return validate(gdf, id_col="id", groups=["migrants"], total="total")


QUICK = os.environ.get("SEGMAP_BENCH_QUICK") == "1"  # `python -m benchmarks --quick`: fewer sizes and repeats
ROOT = Path(__file__).resolve().parents[1]


def timed(fn, *args, **kwargs):
    """(result, seconds) of one call: wall clock, no tracer (tracemalloc slowed pysal 2.5-3.8x, segmap ~1.05x)."""
    start = time.perf_counter()
    out = fn(*args, **kwargs)
    return out, time.perf_counter() - start


MIN_SAMPLE = 0.05  # seconds: a timed sample shorter than this is mostly timer, scheduler and cache noise
# Seconds a cheap side's sample may span to match a slow side's call. This 2-vCPU machine's speed drifts over
# seconds (spatial_dissimilarity at 1,000 areas: 1.9-4.7 ms in 2 s windows of one process), both sides mostly
# together: ratios of adjacent samples held 18-25x while the times moved 2.4x. A 2 ms sample beside a 1 s one
# would catch one moment of the drift; one spanning about as long catches the same stretch.
PAIR_SPAN = 1.0
MAX_NUMBER = 1000  # calls in one sample at most


SETTLE_GB = 3.0  # more than any side's working set here (pysal's spatial D at 10,000 areas: an 800 MB matrix a call)
_settled = [-1e9]


def settle_memory(gb: float | None = None, fresh_for: float = 20.0) -> float:
    """Touch ``gb`` of fresh memory and free it (not again within ``fresh_for`` s); seconds taken. This VM gives
    memory back to its host: pages idle for a minute (DAMON pageout) and, within seconds, every freed 2 MB block
    (the virtio balloon's free page reporting: ``/sys/module/page_reporting``, order 9, 670 GB reported in 18 h
    here). The next touch of such memory costs ~10x: a first 800 MB allocation took 1.3-1.6 s after 80 s idle,
    0.16 s once memory had been touched. Without this, the side that happens to run first after a quiet minute
    pays it (suspected behind one run in which esda's LISA at 100,000 areas took 69 s instead of 14 s)."""
    if time.monotonic() - _settled[0] < fresh_for:
        return 0.0
    start = time.perf_counter()
    block = np.empty(int((gb or SETTLE_GB) * 2**30), dtype=np.uint8)
    block[::4096] = 1
    del block
    _settled[0] = time.monotonic()
    return time.perf_counter() - start


class Times(dict):
    """Seconds per call of each named side (lists); ``number``: calls per timed sample of each side."""

    number: dict


def alternate(calls: dict, repeats, warm=True, number=None, span: float | None = None, settle_each=False) -> Times:
    """Seconds per call of each named call, run in turn A, B, B, A, A, B, ... (the order flips every round) so
    drift in the machine's load hits every side alike, and the samples of one round are neighbours in time (their
    ratio is the round's pair ratio, see :func:`ratio`). ``repeats``: timed samples per call, or a dict of them (a
    slow anchor runs fewer times: it joins the first rounds). ``warm``: a first untimed call of each (True), of
    none (False) or of the names given. ``number``: calls per timed sample (int or dict); by default a warmed
    call is repeated within one sample until the sample spans ``span`` seconds (timeit's approach; the sample's
    time divided by the calls). ``span`` defaults to the slowest warmed call, within [:data:`MIN_SAMPLE`,
    :data:`PAIR_SPAN`]: give it when a slow side is not warmed. ``settle_each``: memory settled before every
    sample, for calls that allocate hundreds of MB afresh (pysal's spatial D at 10,000 areas: 1.06-3.48 s a call
    plain, 1.18-1.99 s settled, as freed blocks went back to the host between calls or not)."""
    counts = repeats if isinstance(repeats, dict) else dict.fromkeys(calls, repeats)
    numbers = number if isinstance(number, dict) else dict.fromkeys(calls, number)
    once = {name: timed(fn)[1] for name, fn in calls.items() if warm is True or (warm and name in warm)}
    span = span or min(PAIR_SPAN, max([MIN_SAMPLE, *once.values()]))
    for name, seconds in once.items():
        if numbers.get(name) is None:
            numbers[name] = min(MAX_NUMBER, max(1, math.ceil(span / max(seconds, 1e-6))))
    numbers = {name: int(numbers.get(name) or 1) for name in calls}
    times = Times({name: [] for name in calls})
    times.number = numbers
    order = list(calls)
    # Set-up objects (e.g. 100,000 ready-made feature dicts for one side) frozen out of the collector, and each
    # side's garbage collected before the other's sample: a full collection inside a timed call otherwise walks
    # them and bills one side for the other's objects (segmap's 100k MVT encode swung 0.45-0.69 s).
    settle_memory()
    gc.collect()
    gc.freeze()
    try:
        for i in range(max(counts.values())):
            for name in order if i % 2 == 0 else order[::-1]:
                if i < counts[name]:
                    k = numbers[name]
                    if settle_each:
                        settle_memory(fresh_for=0)
                    gc.collect()
                    times[name].append(timed(lambda fn=calls[name], k=k: [fn() for _ in range(k)])[1] / k)
    finally:
        gc.unfreeze()
    return times


def busy_fraction(seconds: float = 2.0) -> float:
    """Share of the machine's CPU time spent busy over ``seconds`` (from /proc/stat): other work running now."""

    def sample():
        fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
        return sum(fields), fields[3] + fields[4]  # total, idle + iowait

    (t0, i0), _, (t1, i1) = sample(), time.sleep(seconds), sample()
    return 1 - (i1 - i0) / max(t1 - t0, 1)


QUIET = 0.25  # a machine busier than this before a module starts is not quiet: ratios shift by more than 25 %
BUSY_AT_START: list[float] = []  # the busy share measured before the running module started (set by __main__)


def wait_for_quiet(max_wait: float) -> float:
    """Wait up to ``max_wait`` seconds for the machine to be quiet (busy share < :data:`QUIET` over 2 s);
    returns the last busy share, recorded beside the module's ratios."""
    deadline = time.monotonic() + max_wait
    busy = busy_fraction()
    while busy >= QUIET and time.monotonic() < deadline:
        print(f"[bench] machine {busy:.0%} busy: waiting for it to be quiet", flush=True)
        busy = busy_fraction(5.0)
    BUSY_AT_START[:] = [busy]
    return busy


def versions(*dists: str) -> str:
    """``segregation 2.5.4, esda 2.9.0``: the installed versions, for the anchors' line beside a table."""
    from importlib.metadata import version

    return ", ".join(f"{d} {version(d)}" for d in dists)


def median(ts) -> float:
    return float(np.median(ts))


def middle_mean(ts) -> float:
    """Mean of the middle 80 % (at least the fastest and slowest dropped) when there are 5 or more values, else the
    median. A median of per-round ratios jumps between modes: a fresh process here runs fast or slow as a whole
    (segmap's D test on Chicago 1.5-1.7 ms a call in one process, 2.1-2.3 ms in another; its cold LISA call ~30 or
    ~48 ms), so over pooled processes the mean moves with the share of slow ones, while stray samples are dropped."""
    ts = sorted(ts)
    cut = max(1, len(ts) // 10)
    return float(np.mean(ts[cut:-cut])) if len(ts) >= 5 else median(ts)


def pair_ratios(ref, ours) -> list[float]:
    """Ratios ref / ours of the runs made in the same round (zip), or of every pair when the sides ran a
    different number of times (a slow anchor in fewer rounds, fresh processes)."""
    ref, ours = list(ref), list(ours)
    if len(ref) == len(ours):
        return [a / b for a, b in zip(ref, ours)]
    return [a / b for a in ref for b in ours]


RATIOS: dict[str, dict] = {}  # ratios measured since the last write(), recorded with that topic's results


def _fmt(r: float, like: float | None = None) -> str:
    """``601`` or ``1.27``; ``like``: format as that number is (a range in the style of its median)."""
    return f"{r:,.0f}" if (r if like is None else like) >= 10 else f"{r:.2f}"


def ratio(ref, ours, key: str | None = None) -> str:
    """Speed-up with the range of the per-pair ratios, ``601× (540–650)`` or ``1.27× (1.20–1.31)`` (below 1: the
    anchor is faster). Sides sampled in the same rounds: the :func:`middle_mean` of the rounds' pair ratios (each
    pair ran side by side, so the machine's drift cancels); otherwise the ratio of the sides' middle means.
    ``key``: the ratio's stable name; it is recorded for ``check``."""
    pairs = pair_ratios(ref, ours)
    paired = len(list(ref)) == len(list(ours))
    r = middle_mean(pairs) if paired else middle_mean(ref) / middle_mean(ours)
    if key:
        RATIOS[key] = {"median": r, "min": min(pairs), "max": max(pairs), "pairs": len(pairs), "paired": paired}
    rng = f" ({_fmt(min(pairs), r)}–{_fmt(max(pairs), r)})" if len(pairs) > 1 else " (one pair)"
    return f"{_fmt(r)}×{rng}"


def spread(ts) -> str:
    """Median with the range of the runs, e.g. ``1.23 s (1.19–1.31)``."""
    ts = list(ts)
    if len(ts) == 1:
        return f"{ts[0]:.3g} s"
    return f"{np.median(ts):.3g} s ({min(ts):.3g}–{max(ts):.3g})"


def child(script: str, *args, timeout: float = 900) -> dict:
    """Run ``script`` in a fresh Python process (bytecode cached as for any install) and return the JSON dict
    its last line prints; the script can add ``peak_mb``, its own peak RSS, with :data:`PEAK_RSS`."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    settle_memory()  # the child's first allocations come from memory touched lately, as for every other run
    out = subprocess.run(
        [sys.executable, "-c", script, *map(str, args)],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=ROOT,
        env=env,
    )
    if out.returncode:
        raise RuntimeError(out.stderr[-3000:])
    return json.loads(out.stdout.strip().splitlines()[-1])


PROCESSES = 8  # fresh processes a millisecond call's rounds are spread over by default (see middle_mean)


def pooled(script: str, rounds: int, *args, processes: int = PROCESSES, timeout: float = 1800) -> dict:
    """``script`` (printing a dict of per-round sample lists, as :func:`child`, given the rounds as its last
    argument) run in ``processes`` fresh processes sharing ``rounds``; the lists joined (still paired by index), at
    any depth of nested dicts, anything else from the first process. With 3 processes the share of slow ones (0 to 3
    of 3) moved segmap's Chicago D test ratio by 1.45x between runs; over 8 the share's spread (binomial) is 0.6x as
    wide."""
    processes = min(processes, rounds)
    got = [child(script, *args, math.ceil(rounds / processes), timeout=timeout) for _ in range(processes)]
    return _joined(got)


def _joined(parts: list):
    """One value from the processes' values: lists concatenated, dicts joined key by key, else the first."""
    if isinstance(parts[0], dict):
        return {k: _joined([p[k] for p in parts]) for k in parts[0]}
    return [x for p in parts for x in p] if isinstance(parts[0], list) else parts[0]


# In a child script: the process's peak resident memory so far, in MB. VmHWM, not ru_maxrss: Linux carries
# ru_maxrss over from the parent through fork and exec, so a child of a big process would report the parent's.
PEAK_RSS = "int(next(l for l in open('/proc/self/status') if l.startswith('VmHWM')).split()[1]) / 1024"


def header(title: str, anchors: str = "") -> str:
    """Title, machine, mode and load; ``anchors``: the anchor libraries' versions and configuration."""
    load = "/".join(f"{x:.1f}" for x in os.getloadavg())
    text = (
        f"# {title}\n\nMeasured {dt.date.today()} on {platform.machine()} with {os.cpu_count()} cores, "
        f"Python {platform.python_version()}{', quick mode' if QUICK else ', full mode'}; load average {load} "
        "(1/5/15 min) when written, other work may have been running. Times are wall clock with no tracer on "
        "either side; where runs were repeated, the median and (range) of alternating runs. Memory, where shown, "
        "is the peak RSS of a fresh process doing that task (data set-up included).\n\n"
    )
    return text + (f"Anchors: {anchors}\n\n" if anchors else "")


def table(rows: list[dict]) -> str:
    cols = list(rows[0])
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for r in rows:
        lines.append("| " + " | ".join(f"{v:.3g}" if isinstance(v, float) else str(v) for v in r.values()) + " |")
    return "\n".join(lines) + "\n"


def write(topic: str, text: str) -> None:
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"{topic}.md").write_text(text)
    if RATIOS:
        record_ratios(topic, dict(RATIOS))
        RATIOS.clear()
    print(text)


KEEP_RUNS = 6  # runs of a module's ratios kept in results/<topic>.ratios.json


def record_ratios(topic: str, ratios: dict) -> None:
    """Append this run's ratios to ``results/<topic>.ratios.json`` (the last :data:`KEEP_RUNS` runs are kept)."""
    path = RESULTS / f"{topic}.ratios.json"
    runs = json.loads(path.read_text()) if path.exists() else []
    runs.append(
        {
            "when": f"{dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC",
            "mode": "quick" if QUICK else "full",
            "load": [round(x, 1) for x in os.getloadavg()],
            "busy at start": round(BUSY_AT_START[0], 2) if BUSY_AT_START else None,
            "ratios": ratios,
        }
    )
    path.write_text(json.dumps(runs[-KEEP_RUNS:], indent=1) + "\n")


ORDER = [  # what `make bench` runs, in this order; other modules run by name (python -m benchmarks NAME)
    "indices",
    "local",
    "scale",
    "mvt",
    "tiles",
    "tiles_warmup",
    "maps",
    "informal",
    "harmonize",
    "series",
    "batch",
    "load",
    "calibration",
]
# No ratio and minutes each: `make bench` (quick) leaves them to --full or `python -m benchmarks NAME`, so a quick
# run stays near 40 minutes on 2 shared cores (the six modules with ratios: 32-37). scale: absolute figures at
# 1,000,000 areas; series: quick mode would overwrite the 100,000-area results the targets quote with a 10,000-area
# run; calibration: quick mode only prints.
FULL_ONLY = ("scale", "series", "calibration")
INTRO = """# Benchmarks

Speed is measured here, not in timed tests. Each module runs segmap and its anchor library (pysal
`segregation`, esda, libpysal, tobler, mapbox-vector-tile, folium) in the same run, with equal work on both
sides, and prints the mean of the middle 80 % of per-round ratios of alternating samples with their range; no
tracer runs while timing; memory is the peak RSS of separate fresh processes; servers listen on 127.0.0.1 only and are
stopped by process id; load tests are bounded in time.
Each table's `Anchors:` line gives the anchors' versions and configuration (n_jobs, numba warm or cold,
simulations, repeats), and its header the mode and the machine's load when it was written.

```sh
make bench                                 # quick mode: fewer sizes and repeats; not scale, series, calibration
.venv/bin/python -m benchmarks --full      # every module and size, full anchors, the calibration (hours)
.venv/bin/python -m benchmarks tiles load  # some of them
.venv/bin/python -m benchmarks check       # run the modules with ratios again; are the recorded ratios reproduced?
```

Each run rewrites `results/<topic>.md` and this file from them. The machine: 2 cores, 24 GB, Python 3.11,
shared with other work (numbers are noisy by ±20 %, more when the load average is above 2).

{runs}## Targets from the issues and where they stand

{targets}"""


def assemble_readme(targets: str) -> None:
    """benchmarks/README.md = the introduction (with the last runs' times), the targets table and every results
    file: those of ORDER first, then any other module's."""
    from benchmarks.reproduce import readme_section

    runs = "".join(p.read_text().strip() + "\n\n" for p in sorted(RESULTS.glob("run_*.md")))
    parts = [INTRO.format(targets=targets, runs=runs + readme_section(RESULTS))]
    others = sorted(p.stem for p in RESULTS.glob("*.md") if p.stem not in ORDER and not p.stem.startswith("run_"))
    for topic in ORDER + others:
        path = RESULTS / f"{topic}.md"
        if topic == (others or [None])[0]:
            parts.append(
                "## Not part of `make bench`\n\nResults of modules run on their own (`python -m benchmarks.MODULE`): "
                + ", ".join(f"`results/{o}.md`" for o in others)
                + ".\n"
            )
        if path.exists():
            parts.append("#" + path.read_text().strip().replace("\n# ", "\n## ") + "\n")
    (RESULTS.parent / "README.md").write_text("\n".join(parts))
