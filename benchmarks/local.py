"""Local Moran and Gi* with 999 permutations: segmap vs esda, cold (fresh process) and warm."""

from __future__ import annotations

import json
import subprocess
import sys

from benchmarks.common import header, table, write

SCRIPT = r"""
import json, sys, time, warnings, tracemalloc
warnings.filterwarnings("ignore")
from benchmarks.common import grid_city
n, who, stat = int(sys.argv[1]), sys.argv[2], sys.argv[3]
ds = grid_city(n)
from spatial.weights import build_weights
w = build_weights(ds, "queen")
y = ds.share("migrants")
def run():
    if who == "segmap":
        from spatial.local import local_statistic
        local_statistic(ds, "migrants", stat, weights=w, permutations=999, seed=1)
    else:
        import esda
        if stat == "lisa":
            esda.Moran_Local(y, w.graph, permutations=999, seed=1, keep_simulations=False)
        else:
            esda.G_Local(y, w.graph.transform("b"), transform="B", star=True, permutations=999, seed=1, keep_simulations=False)
tracemalloc.start()
t0 = time.perf_counter(); run(); cold = time.perf_counter() - t0
t0 = time.perf_counter(); run(); warm = time.perf_counter() - t0
print(json.dumps({"cold": cold, "warm": warm, "peak_mb": tracemalloc.get_traced_memory()[1] / 2**20}))
"""


def measure(n, who, stat):
    out = subprocess.run([sys.executable, "-c", SCRIPT, str(n), who, stat], capture_output=True, text=True, timeout=900)
    if out.returncode:
        raise RuntimeError(out.stderr[-2000:])
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(sizes=(1_000, 10_000, 100_000)) -> None:
    rows = []
    for n in sizes:
        for stat in ("lisa", "gi_star"):
            ours, ref = measure(n, "segmap", stat), measure(n, "esda", stat)
            rows.append(
                {
                    "statistic": stat,
                    "areas": n,
                    "segmap cold s": ours["cold"],
                    "esda cold s": ref["cold"],
                    "cold speed-up": ref["cold"] / ours["cold"],
                    "segmap warm s": ours["warm"],
                    "esda warm s": ref["warm"],
                    "warm speed-up": ref["warm"] / ours["warm"],
                    "segmap MB": ours["peak_mb"],
                    "esda MB": ref["peak_mb"],
                }
            )
    write(
        "local",
        header("Local statistics: segmap vs esda 2.9.0 (999 permutations, one core, keep_simulations=False)")
        + table(rows)
        + "\nCold = first call in a fresh process (esda includes numba compilation). Same queen weights.\n",
    )


if __name__ == "__main__":
    main()
