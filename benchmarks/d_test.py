"""The 999-simulation D test with its calibrated interval at 100,000 and 1,000,000 areas (#20: < 15 s at 1M),
each size in a fresh process: the step `benchmarks/scale.py` times, alone. At 100,000 areas the full calibration
runs too, on the same data, to compare the intervals.

python -m benchmarks.d_test [--sizes 100000,1000000] [--full-at 100000]
"""

from __future__ import annotations

import sys

from benchmarks.common import PEAK_RSS, child, header, write

STEP = r"""
import json, sys, time, warnings
warnings.filterwarnings("ignore")
import numpy as np
from benchmarks.scale import city
from spatial.indices import get
from spatial.indices.compute import compute_indices
from spatial.indices.inference import _block_size, _drawers, _simulate, infer
n, full = int(sys.argv[1]), sys.argv[2] == "1"
ds = city("grid", n)
out = {"areas": n}
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
out["null's 999 draws alone s"] = time.perf_counter() - t0
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
out["load average at the end"] = "/".join(f"{x:.1f}" for x in __import__("os").getloadavg())
out["peak memory MB"] = PEAK
print(json.dumps(out))
""".replace("PEAK", PEAK_RSS)


def main(sizes=(100_000, 1_000_000), full_at=(100_000,)) -> None:
    cols = {}
    for n in sizes:
        cols[n] = child(STEP, n, "1" if n in full_at else "0", timeout=3600)
        print(cols[n], file=sys.stderr, flush=True)
    names = list(dict.fromkeys(k for c in cols.values() for k in c if k != "areas"))
    lines = ["| | " + " | ".join(f"{n:,} areas" for n in cols) + " |", "|---|" + "---|" * len(cols)]
    for k in names:
        cells = [cols[n].get(k, "—") for n in cols]
        lines.append(f"| {k} | " + " | ".join(f"{v:.6g}" if isinstance(v, float) else str(v) for v in cells) + " |")
    write(
        "d_test",
        header("999-simulation D test with its calibrated interval, 100,000 and 1,000,000 areas (#20)")
        + "The grid city of `benchmarks/scale.py`, `compute_indices(..., permutations=999, seed=1)` in a fresh "
        "process per size; `interval_method` says which calibration ran (`test_inversion_asymptotic`: the large-city "
        "path). The full calibration (`calibration=\"full\"`) runs after it where shown, on the same data.\n\n"
        + "\n".join(lines)
        + "\n",
    )


if __name__ == "__main__":
    args = sys.argv[1:]
    sizes = tuple(int(s) for s in args[args.index("--sizes") + 1].split(",")) if "--sizes" in args else None
    full_at = tuple(int(s) for s in args[args.index("--full-at") + 1].split(",")) if "--full-at" in args else None
    main(sizes or (100_000, 1_000_000), full_at if full_at is not None else (100_000,))
