"""Run every benchmark module (or the ones named) and rebuild benchmarks/README.md from the results.

python -m benchmarks [--full] [indices local scale mvt tiles maps informal load calibration ...]
python -m benchmarks check [--last] [--full] [indices local mvt ...]   (see benchmarks/reproduce.py)

Quick mode (the default, `make bench`) runs fewer sizes and repeats, leaves out the modules in FULL_ONLY (scale:
1M areas) and prints the calibration without writing it; --full runs every module and size, the slow anchors and
the calibration (hours). A run of every module records its wall time per module in results/run_<mode>.md, which
the README's introduction quotes. A module that fails is reported and the others still run (exit status 1).
Before each module the run waits (up to SEGMAP_BENCH_WAIT seconds, 300) for the machine to be quiet, and records
how busy it was beside the module's ratios.
"""

import datetime as dt
import importlib
import inspect
import os
import shutil
import sys
import tempfile
import time
import traceback
from pathlib import Path

args = sys.argv[1:]
if {"-h", "--help"} & set(args):
    print(__doc__)
    sys.exit(0)
check = args[:1] == ["check"]
full, last = "--full" in args, "--last" in args
os.environ["SEGMAP_BENCH_QUICK"] = "0" if full else "1"
RECORDED = Path(__file__).parent / "results"
if check and not last:  # a fresh run goes to a scratch directory: the recorded results stay as they are
    os.environ["SEGMAP_BENCH_RESULTS"] = tempfile.mkdtemp(prefix="segmap-bench-check-")
    for kept in RECORDED.iterdir():  # what quick mode carries over (memory, 1M rows); not the recorded ratios
        if kept.is_file() and not kept.name.endswith(".ratios.json"):
            shutil.copy(kept, os.environ["SEGMAP_BENCH_RESULTS"])

from benchmarks import reproduce  # noqa: E402
from benchmarks.common import FULL_ONLY, ORDER, RESULTS, assemble_readme, wait_for_quiet  # noqa: E402 (mode, dir)

named = [a for a in args[check:] if not a.startswith("--")]
if check:
    named = named or reproduce.topics(RECORDED)
    if last:
        sys.exit(0 if reproduce.report(RECORDED, None, named, "full" if full else "quick") else 1)
load = "/".join(f"{x:.1f}" for x in os.getloadavg())
spent, failed = {}, []
start = time.perf_counter()
SLOW = ("scale", "batch", "calibration")  # run last: a run cut short has still rewritten the others
every = [t for t in ORDER if full or t not in FULL_ONLY]
for topic in named or sorted(every, key=lambda t: t in SLOW):
    wait_for_quiet(float(os.environ.get("SEGMAP_BENCH_WAIT", 300)))
    t0 = time.perf_counter()
    try:
        main = importlib.import_module(f"benchmarks.{topic}").main
        main(quick=not full) if "quick" in inspect.signature(main).parameters else main()
    except Exception:  # one broken module must not hide the others' results
        traceback.print_exc()
        failed.append(topic)
    spent[topic] = time.perf_counter() - t0
    print(f"[bench] {topic}: {spent[topic]:.0f} s", flush=True)
total = time.perf_counter() - start
if check:
    ok = reproduce.report(RECORDED, RESULTS, named, "full" if full else "quick")
    print(f"[bench] check ran {', '.join(named)} in {total / 60:.1f} min; fresh results in {RESULTS}")
    sys.exit(0 if ok and not failed else 1)
if not named:
    mode = "full" if full else "quick"
    rows = "\n".join(f"| {t}{' (failed)' if t in failed else ''} | {s / 60:.1f} |" for t, s in spent.items())
    (RESULTS / f"run_{mode}.md").write_text(
        f"Last {mode} run of every module{'' if full else ' but ' + ', '.join(FULL_ONLY)}: {total / 60:.0f} min on {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC, "
        f"{os.cpu_count()} cores, load average {load} (1/5/15 min) at its start"
        f"{', failed: ' + ', '.join(failed) if failed else ''}.\n\n| module | minutes |\n|---|---|\n{rows}\n"
    )
assemble_readme((Path(__file__).parent / "targets.md").read_text())
print(f"[bench] total {total / 60:.1f} min; load average at start {load}; failed: {failed or 'none'}")
sys.exit(1 if failed else 0)
