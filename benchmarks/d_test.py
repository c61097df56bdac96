"""The 999-simulation D test with its calibrated interval at 10,000 to 1,000,000 areas (#20: < 15 s at 1M), each
run in a fresh process (repeated: median and range): the step `benchmarks/scale.py` times, alone. At 100,000 areas
the full calibration runs too, on the same data, to compare the intervals.

``--equivalence``: what the speed-up of #20 changed in the numbers (results/d_test_equivalence.md): D over a common
denominator against its definition on the same null draws, the null's mean and sd over many seeds, the size of the
test on cities drawn under the null, and the large-city interval with the small areas' old draw order.

``--before COMMIT``: the same runs alternate with this checkout whose speed-up files (:data:`SPEEDUP`) are as they were
at COMMIT (before: 46955b1), so before and after differ by the speed-up only.

python -m benchmarks.d_test [--sizes 10000,100000,1000000] [--full-at 100000] [--repeats 3] [--before COMMIT]
                            [--equivalence]
"""

from __future__ import annotations

import sys

import numpy as np

from benchmarks.common import PEAK_RSS, child, header, write

STEP = r"""
import json, os, sys, time, warnings
warnings.filterwarnings("ignore")
if sys.argv[3]:  # another version's spatial/ (--before), in front of this checkout's
    sys.path.insert(0, sys.argv[3])
import numpy as np
from benchmarks.scale import city
from spatial.indices import get
from spatial.indices.compute import compute_indices
from spatial.indices.inference import _block_size, _drawers, _simulate, infer
n, full = int(sys.argv[1]), sys.argv[2] == "1"
ds = city("grid", n)
out = {"areas": n, "load average at the start": os.getloadavg()[0]}
t0, c0 = time.perf_counter(), time.process_time()
r = compute_indices(ds, group="migrants", indices=["dissimilarity"], permutations=999, seed=1)["dissimilarity"]
out["D test with interval s"] = time.perf_counter() - t0
out["its CPU s"] = time.process_time() - c0
out.update(value=r.value, corrected=r.value_bias_corrected, ci_low=r.ci_low, ci_high=r.ci_high, p_value=r.p_value,
           interval_method=r.interval_method)
x, t = ds.column("migrants").astype(float), ds.column("total").astype(float)
D = get("dissimilarity").evaluator()
fast = r.interval_method.endswith("asymptotic")
nulls, _ = _drawers((x, t), "two_group", np.random.default_rng(1), fast=fast)
t0, c0 = time.perf_counter(), time.process_time()
_simulate(D, nulls["random_allocation"], 999, _block_size(n, 2, None), None)
out["null's 999 draws alone, one thread s"] = time.perf_counter() - t0
out["their CPU s"] = time.process_time() - c0
if full:
    t0, c0 = time.perf_counter(), time.process_time()
    f = infer(D, (x, t), kind="two_group", permutations=999, seed=1, calibration="full")
    out["D test with the full calibration s"] = time.perf_counter() - t0
    out["its CPU s (full)"] = time.process_time() - c0
    half = (f["ci_high"] - f["ci_low"]) / 2
    out.update(full_corrected=f["value_bias_corrected"], full_ci_low=f["ci_low"], full_ci_high=f["ci_high"],
               full_p_value=f["p_value"])
    out["max end difference / full half-width"] = max(abs(r.ci_low - f["ci_low"]), abs(r.ci_high - f["ci_high"])) / half
out["load average at the end"] = os.getloadavg()[0]
out["peak memory MB"] = PEAK
print(json.dumps(out))
""".replace("PEAK", PEAK_RSS)

TIMES = ("s", "CPU s", "CPU s (full)")


def merge(runs: list[dict]) -> dict:
    """One column from repeated runs: times as median (min–max), loads as their range, memory the largest."""
    out = {}
    for k in runs[0]:
        vals = [r[k] for r in runs if k in r]
        if k.startswith("load"):
            out[k] = f"{min(vals):.1f}–{max(vals):.1f}" if len(vals) > 1 else f"{vals[0]:.1f}"
        elif k == "peak memory MB":
            out[k] = f"{max(vals):,.0f}"
        elif k.endswith(TIMES) and len(vals) > 1:
            out[k] = f"{np.median(vals):.3g} ({min(vals):.3g}–{max(vals):.3g})"
        else:
            out[k] = vals[0]  # seeded: the same in every run
    return out


SPEEDUP = (
    "spatial/indices/aspatial.py",
    "spatial/indices/inference/draws.py",
    "spatial/indices/inference/asymptotic.py",
)


def checkout(commit: str) -> str:
    """This checkout's ``spatial/`` with the files of the #20 speed-up (:data:`SPEEDUP`) as they were at ``commit``,
    in a temporary folder (its path): the same code but for the speed-up, whatever else changed since."""
    import shutil
    import subprocess
    import tempfile
    from pathlib import Path

    from benchmarks.common import ROOT

    folder = Path(tempfile.mkdtemp(prefix="d_test_before_"))
    shutil.copytree(ROOT / "spatial", folder / "spatial", ignore=shutil.ignore_patterns("__pycache__"))
    for path in SPEEDUP:
        old = subprocess.run(["git", "-C", str(ROOT), "show", f"{commit}:{path}"], capture_output=True, check=True)
        (folder / path).write_bytes(old.stdout)
    return str(folder)


def main(sizes=(10_000, 100_000, 1_000_000), full_at=(100_000,), repeats: int = 3, before: str | None = None) -> None:
    """Each size ``repeats`` times; with ``before`` (a commit) its code too, runs alternating before, after. The
    table is written after each size (a run cut short keeps the sizes done)."""
    sides = {"": ""} if before is None else {f" before ({before})": checkout(before), " after": ""}
    cols = {}
    for n in sizes:
        runs = {side: [] for side in sides}
        for k in range(repeats):
            for side, tree in sides.items():
                full = "1" if n in full_at and k == 0 and not tree else "0"
                runs[side].append(child(STEP, n, full, tree, timeout=3600))
                print(runs[side][-1], file=sys.stderr, flush=True)
        for side in sides:
            cols[f"{n:,} areas{side}"] = merge(runs[side])
        report(cols, repeats, before)


def report(cols: dict, repeats: int, before: str | None) -> None:
    names = list(dict.fromkeys(k for c in cols.values() for k in c if k != "areas"))
    lines = ["| | " + " | ".join(cols) + " |", "|---|" + "---|" * len(cols)]
    for k in names:
        cells = [cols[n].get(k, "—") for n in cols]
        lines.append(f"| {k} | " + " | ".join(f"{v:.6g}" if isinstance(v, float) else str(v) for v in cells) + " |")
    against = (
        f" `--before {before}`: this checkout with the files of the speed-up ({', '.join(SPEEDUP)}) as of {before}, "
        "in the same runs, alternating with it."
    )
    write(
        "d_test",
        header("999-simulation D test with its calibrated interval, 10,000 to 1,000,000 areas (#20)")
        + "The grid city of `benchmarks/scale.py`, `compute_indices(..., permutations=999, seed=1)` in a fresh "
        f"process per run, {repeats} runs per size (times: median and range; the seeded values are the same in every "
        "run); `interval_method` says which calibration ran (`test_inversion_asymptotic`: the large-city path). "
        "The null's draws alone run on one thread (the test runs them on two). The full calibration "
        '(`calibration="full"`) runs after it in the first run where shown, on the same data. What the speed-up '
        "of #20 changed in the numbers: results/d_test_equivalence.md."
        + (against if before else "")
        + "\n\n"
        + "\n".join(lines)
        + "\n",
    )


if __name__ == "__main__":
    args = sys.argv[1:]
    if "--equivalence" in args:
        from benchmarks.d_test_equivalence import main as study

        study()
        sys.exit()
    sizes = tuple(int(s) for s in args[args.index("--sizes") + 1].split(",")) if "--sizes" in args else None
    full_at = tuple(int(s) for s in args[args.index("--full-at") + 1].split(",") if s) if "--full-at" in args else None
    repeats = int(args[args.index("--repeats") + 1]) if "--repeats" in args else 3
    before = args[args.index("--before") + 1] if "--before" in args else None
    main(sizes or (10_000, 100_000, 1_000_000), full_at if full_at is not None else (100_000,), repeats, before)
