"""Local Moran and Gi* with 999 permutations: segmap vs esda with equal work, warm and cold, and memory; global
Moran's I by its analytic test and by permutation (``python -m benchmarks.local --agreement``: that table alone).

Equal work: segmap's LISA reports global Moran's I with its randomisation test, so esda runs ``Moran_Local``
plus ``Moran(permutations=0)`` (the same analytic test); with ``global_test='permutation'`` esda runs
``Moran(permutations=999)``. esda in its best configuration: ``n_jobs=1``, numba warmed for warm runs.
"""

from __future__ import annotations

import datetime as dt

from benchmarks.common import PEAK_RSS, QUICK, child, header, median, spread, write

SETUP = r"""
import json, sys, time, warnings
warnings.filterwarnings("ignore")
from benchmarks.local import dataset
from spatial.weights import build_weights
where, mode, reps = sys.argv[1], sys.argv[2], int(sys.argv[3])
ds = dataset(where)
w = build_weights(ds, "queen")
y = ds.share(ds.groups[0])
g = ds.groups[0]
def segmap(stat, global_test="randomisation"):
    from spatial.local import local_statistic
    return lambda: local_statistic(ds, g, stat, weights=w, permutations=999, seed=1, global_test=global_test)
def esda_(stat, global_perms=0):
    import esda
    def run():
        if stat == "lisa":
            esda.Moran_Local(y, w.graph, permutations=999, seed=1, keep_simulations=False, n_jobs=1)
            esda.Moran(y, w.graph, permutations=global_perms)
        else:
            esda.G_Local(y, w.graph.transform("b"), transform="B", star=True, permutations=999, seed=1,
                         keep_simulations=False, n_jobs=1)
    return run
w.graph  # libpysal's Graph made before any timing (esda's input)
"""

WARM = (
    SETUP
    + r"""
from benchmarks.common import alternate
calls = {
    "segmap lisa": segmap("lisa"), "esda lisa": esda_("lisa"),
    "segmap gi_star": segmap("gi_star"), "esda gi_star": esda_("gi_star"),
}
if len(ds.ids) <= 10_000:  # the permutation global test: same on both sides
    calls.update({"segmap lisa_perm": segmap("lisa", "permutation"), "esda lisa_perm": esda_("lisa", 999)})
print(json.dumps(alternate(calls, reps)))
"""
)

COLD = (
    SETUP
    + r"""
side, stat = sys.argv[4], sys.argv[5]
t0 = time.perf_counter()
(segmap if side == "segmap" else esda_)(stat)()  # imports the library, then the first call
print(json.dumps({"cold": time.perf_counter() - t0}))
"""
)

MEMORY = (
    SETUP
    + r"""
side, stat = sys.argv[4], sys.argv[5]
before = PEAK
(segmap if side == "segmap" else esda_)(stat)()
print(json.dumps({"before": before, "peak": PEAK}))
""".replace("PEAK", PEAK_RSS)
)


# The analytic randomisation test against 999 permutations of the same statistic (issue 20: which p-value the
# output uses, and that it agrees with the permutation p-value).
AGREE = r"""
import json, sys, time, warnings
warnings.filterwarnings("ignore")
from benchmarks.local import dataset
from spatial.local import local_statistic
from spatial.weights import build_weights
ds = dataset(sys.argv[1])
w = build_weights(ds, "queen")
g = ds.groups[0]
def run(test):
    t0 = time.perf_counter()
    r = local_statistic(ds, g, "lisa", weights=w, permutations=0, seed=1, global_test=test)
    return r.summary["global_moran"], time.perf_counter() - t0
(a, ta), (p, tp) = run("randomisation"), run("permutation")
print(json.dumps({"I": a["moran_i"], "p analytic": a["p_value"], "p permutation": p["p_value"],
                  "E[I] analytic / permutation mean": [a["expected"], p["expected_permutation"]],
                  "Var[I] analytic / permutation": [a["variance"], p["variance_permutation"]],
                  "time analytic / permutation": [ta, tp]}))
"""


AGREEMENT_TITLE = "### Global Moran's I: the analytic randomisation test against 999 permutations"


def agreement() -> str:
    """Global Moran's I by its randomisation moments and by 999 permutations, side by side."""
    rows = []
    for where in [w for w in ("berlin", "100000", "nopattern100000") if w != "berlin" or "berlin" in places()]:
        r = child(AGREE, where, timeout=1800)
        (e_a, e_p), (v_a, v_p), (t_a, t_p) = (
            r["E[I] analytic / permutation mean"],
            r["Var[I] analytic / permutation"],
            r["time analytic / permutation"],
        )
        rows.append(
            f"| {PLACE_NAMES.get(where, where)} | {r['I']:.4g} | {r['p analytic']:.3g} | {r['p permutation']:.3g} "
            f"| {e_a:.3g} / {e_p:.3g} | {v_a:.3g} / {v_p:.3g} | {t_a:.3g} s / {t_p:.3g} s |"
        )
    return (
        f"\n{AGREEMENT_TITLE}\n\n"
        f"Measured {dt.date.today()}, one fresh process per row. "
        "LISA's summary `global_moran` reports `test` (the one `p_value` comes from): `randomisation` by default, "
        "`permutation` with `global_test='permutation'` (CLI `--global-test permutation`, HTTP `global_test=`), "
        "which keeps the analytic value as `p_value_randomisation`. Two-sided p-values; the permutation p-value "
        "cannot go below 2/1000. Times: the whole LISA call with `permutations=0` (only the global test differs).\n\n"
        "| areas | I | p analytic | p 999 permutations | E[I] analytic / permutation mean "
        "| Var[I] analytic / permutation | time analytic / permutation |\n|---|---|---|---|---|---|---|\n"
        + "\n".join(rows)
        + "\n"
    )


PLACE_NAMES = {
    "berlin": "Berlin planning areas (foreigners)",
    "100000": "100,000-cell grid, corner cluster",
    "nopattern100000": "100,000-cell grid, no pattern (binomial, one share)",
}


def dataset(where: str):
    """A grid city of ``where`` areas, or Berlin's 448 planning areas (foreigners' share) from ../shared."""
    if where.startswith("nopattern"):
        return no_pattern(int(where.removeprefix("nopattern")))
    if where != "berlin":
        from benchmarks.common import grid_city

        return grid_city(int(where))
    import geopandas as gpd

    from benchmarks.common import ROOT
    from spatial.io import load_dataset

    base = ROOT.parent / "shared" / "data" / "berlin"
    gdf = gpd.read_file(base / "berlin-lor-planning-areas-until-2020.geojson")
    return load_dataset(
        gdf[~gdf["id"].duplicated(keep=False)],
        counts=base / "berlin-lor-population-2020-02-t1-planning-areas.csv",
        key="id",
        drop_unmatched=True,
        total="inhabitants",
        groups=["inhabitants_foreigners"],
    )


def no_pattern(n: int):
    """The grid city's cells and totals, every cell's group drawn with one share: no spatial pattern."""
    import numpy as np

    from benchmarks.common import grid_city
    from spatial.dataset import validate

    gdf = grid_city(n).areas.copy()
    gdf["migrants"] = np.random.default_rng(5).binomial(gdf["total"].to_numpy(int), 0.1)
    return validate(gdf, id_col="id", groups=["migrants"], total="total")


def places() -> list[str]:
    from benchmarks.common import ROOT

    berlin = (ROOT.parent / "shared" / "data" / "berlin").exists()
    return ["1000", "10000", "100000"] + (["berlin"] if berlin else [])


def main(quick: bool = QUICK) -> None:
    reps = 3 if quick else 7
    rows = []
    for where in places():
        warm = child(WARM, where, "warm", reps if where != "100000" else max(2, reps - 2), timeout=3600)
        cold_here = not quick or where == "10000"
        for stat in ("lisa", "gi_star", "lisa_perm"):
            if f"segmap {stat}" not in warm:
                continue
            row = {
                "statistic": {"lisa_perm": "lisa, global by 999 permutations"}.get(stat, stat),
                "areas": "Berlin planning areas" if where == "berlin" else f"{int(where):,}",
                "segmap warm": spread(warm[f"segmap {stat}"]),
                "esda warm": spread(warm[f"esda {stat}"]),
                "warm speed-up": f"{median(warm[f'esda {stat}']) / median(warm[f'segmap {stat}']):.2f}×",
            }
            if cold_here and stat != "lisa_perm":
                runs = {"segmap": [], "esda": []}
                for _ in range(1 if quick else 3):  # alternating fresh processes
                    for side in runs:
                        runs[side].append(child(COLD, where, "cold", 1, side, stat, timeout=900)["cold"])
                row.update(
                    {
                        "segmap cold": spread(runs["segmap"]),
                        "esda cold": spread(runs["esda"]),
                        "cold speed-up": f"{median(runs['esda']) / median(runs['segmap']):.1f}×",
                    }
                )
            if where == "100000" and stat != "lisa_perm":
                mem = {side: child(MEMORY, where, "memory", 1, side, stat, timeout=900) for side in ("segmap", "esda")}
                row["segmap / esda peak RSS MB"] = " / ".join(
                    f"{m['peak']:,.0f} (+{m['peak'] - m['before']:,.0f})" for m in mem.values()
                )
            rows.append(row)
    cols = list(dict.fromkeys(k for r in rows for k in r))
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    lines += ["| " + " | ".join(str(r.get(c, "")) for c in cols) + " |" for r in rows]
    write(
        "local",
        header("Local statistics: segmap vs esda 2.9.0, 999 permutations, equal work")
        + "\n".join(lines)
        + "\n\nesda: `Moran_Local` + `Moran(permutations=0)` (segmap's LISA includes global Moran's I with its "
        "randomisation test, the same analytic test), `G_Local(star=True)`; `n_jobs=1`, `keep_simulations=False`, "
        "same queen weights (libpysal's Graph, made before timing). Warm: one process, numba compiled by a "
        f"first call, then {reps} alternating runs per side (median and range). Cold: a fresh process per run "
        "(bytecode cached on both sides), timed from importing the library to the end of its first call, data and "
        "weights built before; cold runs only at 10,000 areas in quick mode. Peak RSS: a fresh process per side "
        "(data set-up included; in brackets what the call added).\n" + agreement(),
    )


def agreement_only() -> None:
    """Re-measure only the agreement table, replacing it in results/local.md (the esda tables kept as they were)."""
    from benchmarks.common import RESULTS

    path = RESULTS / "local.md"
    kept = path.read_text().split(AGREEMENT_TITLE)[0].rstrip("\n") + "\n" if path.exists() else ""
    write("local", kept + agreement())


if __name__ == "__main__":
    import sys

    agreement_only() if "--agreement" in sys.argv else main()
