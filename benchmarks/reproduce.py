"""Are the recorded speed-up ratios reproduced? A ratio is *reproduced* when a new run's ratio is within
±25 % of the recorded one, or inside the recorded range of per-pair ratios (the spread the machine showed).

``python -m benchmarks check [--full] [topics]``  runs the modules again into a scratch directory (the recorded
results stay as they are) and compares their ratios with the last recorded run of the same mode;
``python -m benchmarks check --last [topics]``  compares the last two recorded runs, running nothing.
Exit status 1 when any ratio is not reproduced.
"""

from __future__ import annotations

import json
from pathlib import Path

TOLERANCE = 0.25

DEFINITION = f"""## Reproducing the ratios

Every speed-up ratio is the mean of the middle 80 % of per-round ratios (the median of fewer than 5), printed with
their range in brackets. The two sides run
in alternating rounds (A, B, B, A, …), one timed sample a side per round, and a round's ratio is the anchor's
sample over segmap's. A call much shorter than the other side's is repeated within its sample until the sample
spans about as long (at least 50 ms, at most 1 s; the sample's time divided by the calls), so both samples of a
round see the same stretch of the machine: on this 2-vCPU VM the same code's speed drifts by up to 2.4× over
seconds, within one process, and both sides mostly move together (spatial_dissimilarity at 1,000 areas: 1.9–4.7 ms
in 2 s windows, while the ratios of adjacent samples stayed within 18–25×). Where the sides ran a different number
of times (cold starts, one fresh process a run), the ratio is that of the sides' means without their fastest and
slowest run (from 5 runs; a median where fewer), and the range covers every pair: a fresh process runs fast or slow
as a whole (segmap's cold call ~30 or ~48 ms; its D test on Chicago 1.5–1.7 or 2.1–2.3 ms a call), so a median
jumps between the two modes while a mean moves with the share of slow processes. For that reason too the
rows of `indices` at 1,000 and 10,000 areas and on Chicago spread their rounds over 6–8 fresh processes (a D test:
one round a process), and local's warm rounds at 100,000 areas over 3 (each compiles esda's numba first).
Before each series of samples and each fresh process, the harness touches 3 GB of memory and frees it (at most
every 20 s): this VM hands memory back to its host, pages idle for a minute (DAMON pageout) and, within seconds,
every freed 2 MB block (the virtio balloon's free page reporting, `/sys/module/page_reporting`: 670 GB reported in
18 h of uptime), and the next touch of such memory cost ~10× (a first 800 MB allocation 1.3–1.6 s after 80 s idle,
0.16 s once touched). Calls that allocate hundreds of MB afresh (pysal's spatial D at 10,000 areas, local
statistics and MVT at 100,000, harmonize) get the settle before every sample: pysal's spatial D at 10,000 areas took
1.06–3.48 s a call without it, 1.18–1.99 s with it.
Each run of a module appends its ratios to `results/<topic>.ratios.json` (with the time, mode and load average).

A ratio is **reproduced** when a new run's ratio is within ±{TOLERANCE:.0%} of the recorded ratio, or inside the
recorded range of per-pair ratios. `python -m benchmarks check [topics]` runs the modules again into a scratch
directory and prints, ratio by ratio, whether it is reproduced (exit status 1 if any is not);
`python -m benchmarks check --last` compares the last two recorded runs without running anything. The table below
is that comparison for the recorded runs (same mode); ratios measured in only one run are listed as such. Every
module waits (up to `SEGMAP_BENCH_WAIT` s) for the machine to be quiet (under 25 % busy over 2 s) before it starts
and records how busy it was: ratios of a call of tens of milliseconds against one of tens of seconds, or of 2
workers against 1, move by more than 25 % when other work takes a core. Not timings, so not compared: the size
ratios of `maps` (bytes, the same in every run).

"""


def reproduced(rec: dict, new: dict) -> bool:
    """Within ±25 % of the recorded ratio, or inside the recorded per-pair range."""
    return abs(new["median"] / rec["median"] - 1) <= TOLERANCE or rec["min"] <= new["median"] <= rec["max"]


def runs(results: Path, topic: str, mode: str | None = None) -> list[dict]:
    path = results / f"{topic}.ratios.json"
    found = json.loads(path.read_text()) if path.exists() else []
    return [r for r in found if mode is None or r["mode"] == mode]


def topics(results: Path) -> list[str]:
    return sorted(p.name.removesuffix(".ratios.json") for p in results.glob("*.ratios.json"))


def _cell(r: dict | None) -> str:
    if r is None:
        return "not measured"
    fmt = (lambda x: f"{x:,.0f}") if r["median"] >= 10 else (lambda x: f"{x:.2f}")
    return f"{fmt(r['median'])}× ({fmt(r['min'])}–{fmt(r['max'])})"


def compare(topic: str, old: dict, new: dict) -> list[dict]:
    """One row per ratio of either run: both values, the change of the median and the verdict."""
    rows = []
    for key in dict.fromkeys([*old["ratios"], *new["ratios"]]):
        a, b = old["ratios"].get(key), new["ratios"].get(key)
        ok = a is not None and b is not None and reproduced(a, b)
        how = "yes" if ok and abs(b["median"] / a["median"] - 1) <= TOLERANCE else "yes, inside the range"
        rows.append(
            {
                "module": topic,
                "ratio": key,
                "earlier run": _cell(a),
                "later run": _cell(b),
                "change of median": f"{b['median'] / a['median'] - 1:+.0%}" if a and b else "",
                "reproduced": (how if ok else "**no**") if a and b else "one run only",
            }
        )
    return rows


def _runs_line(topic: str, old: dict, new: dict) -> str:
    when = "; ".join(
        f"{k} {r['when']}, load {'/'.join(map(str, r['load']))}"
        + (f", {r['busy at start']:.0%} busy at start" if r.get("busy at start") is not None else "")
        for k, r in (("earlier", old), ("later", new))
    )
    return f"`{topic}`, {new['mode']} mode ({when})"


def _table(rows: list[dict]) -> str:
    cols = list(rows[0])
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    lines += ["| " + " | ".join(str(r[c]) for c in cols) + " |" for r in rows]
    return "\n".join(lines) + "\n"


def _pairs(results: Path, names: list[str], mode: str | None):
    """(topic, earlier run, later run) for each topic with two recorded runs of one mode."""
    for topic in names:
        found = runs(results, topic, mode or (runs(results, topic) or [{"mode": None}])[-1]["mode"])
        if len(found) >= 2:
            yield topic, found[-2], found[-1]


def readme_section(results: Path) -> str:
    """The definition and, per module, its last two recorded runs side by side."""
    parts = [DEFINITION]
    for topic, old, new in _pairs(results, topics(results), None):
        rows = compare(topic, old, new)
        for r in rows:
            del r["module"]
        ok = sum(r["reproduced"].startswith("yes") for r in rows)
        parts.append(f"{_runs_line(topic, old, new)}: {ok} of {len(rows)} ratios reproduced.\n\n{_table(rows)}\n")
    singles = [t for t in topics(results) if len(runs(results, t)) < 2]
    if singles:
        parts.append("Recorded once so far (no comparison yet): " + ", ".join(f"`{t}`" for t in singles) + ".\n\n")
    return "".join(parts)


def report(recorded: Path, fresh: Path | None, names: list[str], mode: str) -> bool:
    """Print the comparison (fresh run against the recorded one, or the last two recorded runs); True if all
    ratios are reproduced."""
    rows = []
    for topic in names or topics(recorded):
        if fresh is None:
            for _, old, new in _pairs(recorded, [topic], mode):
                print(_runs_line(topic, old, new))
                rows += compare(topic, old, new)
            continue
        old, new = runs(recorded, topic, mode), runs(fresh, topic, mode)
        if old and new:
            print(_runs_line(topic, old[-1], new[-1]).replace("later", "fresh").replace("earlier", "recorded"))
            rows += compare(topic, old[-1], new[-1])
        else:
            print(f"[check] {topic}: {'no recorded run in ' + mode + ' mode' if not old else 'no fresh ratios'}")
    if not rows:
        print("[check] no ratios to compare")
        return False
    print(_table(rows))
    bad = [f"{r['module']}: {r['ratio']}" for r in rows if not r["reproduced"].startswith("yes")]
    print(f"[check] {len(rows) - len(bad)} of {len(rows)} ratios reproduced (±{TOLERANCE:.0%} or inside the range)")
    for b in bad:
        print(f"[check] not reproduced: {b}")
    return not bad
