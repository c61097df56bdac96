"""Local Moran and Gi* with 999 permutations: segmap vs esda with equal work, warm and cold, and memory; global
Moran's I by its analytic test and by permutation (``python -m benchmarks.local --agreement``: that table alone).

Equal work: segmap's LISA reports global Moran's I with its randomisation test, so esda runs ``Moran_Local``
plus ``Moran(permutations=0)`` (the same analytic test); with ``global_test='permutation'`` esda runs
``Moran(permutations=999)``. esda in its best configuration: ``n_jobs=1``, numba warmed for warm runs.
"""

from __future__ import annotations

import datetime as dt
import json

from benchmarks.common import PEAK_RSS, QUICK, child, header, pooled, ratio, spread, versions, write

SETUP = r"""
import json, sys, time, warnings
warnings.filterwarnings("ignore")
from benchmarks.local import sides
"""

WARM = (
    SETUP
    + r"""
from benchmarks.common import PAIR_SPAN, alternate
out = {}
for where in sys.argv[1].split(","):  # one process: esda's numba compiles once, on the first (small) place
    if where.startswith("compile:"):  # numba compiled on a small place, nothing timed
        segmap, esda_, n = sides(where.removeprefix("compile:"))
        for stat in ("lisa", "gi_star"):
            segmap(stat)()
            esda_(stat)()
        continue
    segmap, esda_, n = sides(where)
    calls = {
        "segmap lisa": segmap("lisa"), "esda lisa": esda_("lisa"),
        "segmap gi_star": segmap("gi_star"), "esda gi_star": esda_("gi_star"),
    }
    if n <= 10_000:  # the permutation global test: same on both sides
        calls.update({"segmap lisa_perm": segmap("lisa", "permutation"), "esda lisa_perm": esda_("lisa", 999)})
    big = n > 10_000  # numba is compiled by now: a warm-up call of esda here would cost ~20 s a statistic
    warm = [k for k in calls if not big or "segmap" in k]
    times = alternate(
        calls, int(sys.argv[3 if big else 2]), warm=warm, span=PAIR_SPAN if big else None, settle_each=big
    )
    out[where] = {"times": times, "number": times.number}
print(json.dumps(out))
"""
)

COLD = (
    SETUP
    + r"""
where, side, stat = sys.argv[1], sys.argv[2], sys.argv[3]
segmap, esda_, _ = sides(where)
t0 = time.perf_counter()
(segmap if side == "segmap" else esda_)(stat)()  # imports the library, then the first call
print(json.dumps({"cold": time.perf_counter() - t0}))
"""
)

MEMORY = (
    SETUP
    + r"""
where, side, stat = sys.argv[1], sys.argv[2], sys.argv[3]
segmap, esda_, _ = sides(where)
before = PEAK
(segmap if side == "segmap" else esda_)(stat)()
print(json.dumps({"before": before, "peak": PEAK}))
""".replace("PEAK", PEAK_RSS)
)


def sides(where: str):
    """(segmap, esda, n): makers of each side's call on one place, 999 permutations, the same queen weights
    (libpysal's Graph, esda's input, made before any timing)."""
    from spatial.weights import build_weights

    ds = dataset(where)
    w = build_weights(ds, "queen")
    g = ds.groups[0]
    y = ds.share(g)
    w.graph  # noqa: B018 (made now, not inside esda's timed call)

    def segmap(stat, global_test="randomisation"):
        from spatial.local import local_statistic

        return lambda: local_statistic(ds, g, stat, weights=w, permutations=999, seed=1, global_test=global_test)

    def esda_(stat, global_perms=0):
        def run():
            import esda

            if stat == "lisa":
                esda.Moran_Local(y, w.graph, permutations=999, seed=1, keep_simulations=False, n_jobs=1)
                esda.Moran(y, w.graph, permutations=global_perms)
            else:
                esda.G_Local(
                    y, w.graph.transform("b"), transform="B", star=True, permutations=999, seed=1,
                    keep_simulations=False, n_jobs=1,
                )  # fmt: skip

        return run

    return segmap, esda_, len(ds.ids)


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
        f"Measured {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC, one fresh process per row. "
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


def _warm_row(where: str, stat: str, warm: dict) -> dict:
    times = warm["times"]
    areas = "Berlin planning areas" if where == "berlin" else f"{int(where):,}"
    return {
        "statistic": {"lisa_perm": "lisa, global by 999 permutations"}.get(stat, stat),
        "areas": areas,
        "segmap warm": spread(times[f"segmap {stat}"]),
        "esda warm": spread(times[f"esda {stat}"]),
        "warm speed-up (range of pairs)": ratio(
            times[f"esda {stat}"], times[f"segmap {stat}"], key=f"{stat} warm, {areas}"
        ),
    }


def _cold(where: str, stat: str, quick: bool) -> dict:
    """Fresh processes: segmap 9 runs (its import and first call take tens of ms, in a fast or a slow mode per
    process), esda 2 in quick mode, 3 in full (30-75 s each: numba's compile), each esda run between segmap runs."""
    runs = {"segmap": [], "esda": []}
    esda_after = {1, 5} if quick else {1, 4, 7}
    for i in range(9):
        runs["segmap"].append(child(COLD, where, "segmap", stat, timeout=900)["cold"])
        if i in esda_after:
            runs["esda"].append(child(COLD, where, "esda", stat, timeout=900)["cold"])
    return {
        "segmap cold": spread(runs["segmap"]),
        "esda cold": spread(runs["esda"]),
        "cold speed-up (range of pairs)": ratio(runs["esda"], runs["segmap"], key=f"{stat} cold, {int(where):,}"),
    }


def _memory(where: str, stat: str, quick: bool) -> str:
    """Peak RSS of a fresh process per side; quick mode shows the last measurement (esda's compile: ~50 s each)."""
    from benchmarks.common import RESULTS

    path = RESULTS / "local_memory.json"
    kept = json.loads(path.read_text()) if path.exists() else {}
    if quick:
        return f"{kept[stat]['cell']} ({kept[stat]['when']})" if stat in kept else "full mode only"
    mem = {side: child(MEMORY, where, side, stat, timeout=900) for side in ("segmap", "esda")}
    cell = " / ".join(f"{m['peak']:,.0f} (+{m['peak'] - m['before']:,.0f})" for m in mem.values())
    kept[stat] = {"cell": cell, "when": f"{dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC"}
    path.write_text(json.dumps(kept, indent=1) + "\n")
    return cell


BIG = "100000"  # its warm rounds spread over fresh processes (warm_big)


def warm_big(reps: int, processes: int, rounds: int) -> dict:
    """The 100,000-area place's warm rounds in ``processes`` fresh processes, ``rounds`` each (each compiles esda's
    numba on 1,000 areas first, 30-40 s): one process runs fast or slow as a whole (common.middle_mean), and its
    esda-to-segmap ratio moved 155x to 201x between two single-process runs of Gi*."""
    return pooled(WARM, processes * rounds, f"compile:1000,{BIG}", reps, processes=processes, timeout=3600)[BIG]


def main(quick: bool = QUICK) -> None:
    reps, big_processes, big_rounds = (7, 3, 2) if quick else (9, 5, 2)
    where_all = places()
    warm = child(WARM, ",".join(w for w in where_all if w != BIG), reps, big_rounds, timeout=3600)
    warm[BIG] = warm_big(reps, big_processes, big_rounds)
    rows = []
    for where in where_all:
        for stat in ("lisa", "gi_star", "lisa_perm"):
            if f"segmap {stat}" not in warm[where]["times"]:
                continue
            row = _warm_row(where, stat, warm[where])
            if (not quick or where == "10000") and stat != "lisa_perm":
                row.update(_cold(where, stat, quick))
            if where == "100000" and stat != "lisa_perm":
                row["segmap / esda peak RSS MB"] = _memory(where, stat, quick)
            rows.append(row)
    cols = list(dict.fromkeys(k for r in rows for k in r))
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    lines += ["| " + " | ".join(str(r.get(c, "")) for c in cols) + " |" for r in rows]
    numbers = {w: {k: v for k, v in warm[w]["number"].items() if v > 1} for w in where_all}
    repeated = "; ".join(f"{w}: " + ", ".join(f"{k} ×{v}" for k, v in n.items()) for w, n in numbers.items() if n)
    tail = (_kept_agreement() if quick else "") or agreement()  # no ratio: quick mode keeps the last one
    write(
        "local",
        header(
            "Local statistics: segmap vs esda, 999 permutations, equal work",
            f"{versions('esda', 'libpysal', 'numba', 'numpy')}",
        )
        + "\n".join(lines)
        + "\n\nesda: `Moran_Local` + `Moran(permutations=0)` (segmap's LISA includes global Moran's I with its "
        "randomisation test, the same analytic test), `G_Local(star=True)`; `n_jobs=1`, `keep_simulations=False`, "
        "same queen weights (libpysal's Graph, made before timing). Warm: one process for the smaller places, numba "
        f"compiled by the first place's warm-up calls, then {reps} alternating rounds, one sample per side each; "
        f"100,000 areas: {big_processes} fresh processes of {big_rounds} rounds (each compiles numba on 1,000 areas "
        "first; only segmap gets an untimed warm-up call; memory settled before each sample), the speed-up the mean "
        "of the middle 80 % of the rounds' ratios; a call is repeated within its sample until the sample spans about "
        f"as long as the place's slowest call (at most 1 s; {repeated or 'none was'}). Cold: a fresh process per run "
        "(bytecode cached on both sides), timed from importing the library to the end of its first call, data and weights "
        f"built before; segmap 9 runs, esda {2 if quick else 3} between them; the cold speed-up is the ratio of the "
        "sides' means without their fastest and slowest run (from 5 runs; segmap's runs fall into a fast and a slow "
        "mode, ~30 and ~48 ms, import and call alike, which a median of 9 jumps between); cold runs only "
        "at 10,000 areas in quick mode. Peak "
        "RSS: a fresh process per side (data set-up included; in brackets what the call added), measured in full "
        "mode (quick mode shows the last measurement, with its date: esda's compile costs ~50 s a process).\n" + tail,
    )


def _kept_agreement() -> str:
    """The agreement table as last measured (it has no ratio and its date in its text): quick mode keeps it."""
    from benchmarks.common import RESULTS

    path = RESULTS / "local.md"
    text = path.read_text() if path.exists() else ""
    return "\n" + AGREEMENT_TITLE + text.split(AGREEMENT_TITLE, 1)[1] if AGREEMENT_TITLE in text else ""


def agreement_only() -> None:
    """Re-measure only the agreement table, replacing it in results/local.md (the esda tables kept as they were)."""
    from benchmarks.common import RESULTS

    path = RESULTS / "local.md"
    kept = path.read_text().split(AGREEMENT_TITLE)[0].rstrip("\n") + "\n" if path.exists() else ""
    write("local", kept + agreement())


if __name__ == "__main__":
    import sys

    agreement_only() if "--agreement" in sys.argv else main()
