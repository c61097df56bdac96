"""City-wide indices and 999-simulation inference: segmap vs pysal `segregation` with equal work.

Both sides timed in the same process without a tracer, alternating runs; pysal's ``SingleValueTest`` with its
full 999 simulations and ``n_jobs=1`` wherever it finishes in under 2 minutes (the 100,000-area run in --full
mode only), on a plain DataFrame (its best configuration: the aspatial ``Dissim`` needs no geometry, and a
GeoDataFrame's geometry is copied in every simulation). Memory: peak RSS of a fresh process per task.
"""

from __future__ import annotations

import warnings
from pathlib import Path

from benchmarks.common import (
    PAIR_SPAN,
    PEAK_RSS,
    PROCESSES,
    QUICK,
    alternate,
    child,
    grid_city,
    header,
    pooled,
    ratio,
    spread,
    table,
    timed,
    versions,
    write,
)

warnings.filterwarnings("ignore")

CHICAGO = Path(__file__).resolve().parents[2] / "shared" / "data" / "chicago" / "Chicago_2020.geojson"

MEMORY = r"""
import json, sys, time, warnings
warnings.filterwarnings("ignore")
from benchmarks.common import grid_city
from spatial.indices.compute import compute_indices
import spatial.indices.inference  # imported at start, as a service does (scipy.stats: ~1 s; not the test's work)
ds = grid_city(int(sys.argv[1]))
before = PEAK
opts = {"permutations": 999, "seed": 1} if sys.argv[2] == "dissimilarity" else {}
t0 = time.perf_counter()
compute_indices(ds, group="migrants", indices=[sys.argv[2]], **opts)
print(json.dumps({"before": before, "peak": PEAK, "seconds": time.perf_counter() - t0}))
""".replace("PEAK", PEAK_RSS)


def _null_test(x, t):
    """segmap's 999-simulation p-value alone (what pysal's SingleValueTest computes)."""
    import numpy as np

    from spatial.indices import get
    from spatial.indices.inference import _block_size, _drawers, _simulate, two_sided_p

    evaluate = get("dissimilarity").evaluator()
    nulls, _ = _drawers((x, t), "two_group", np.random.default_rng(1))
    sims = _simulate(evaluate, nulls["random_allocation"], 999, _block_size(len(t), 2, None), None)
    return two_sided_p(float(evaluate(x, t)), sims)


def _pysal_test(frame, group, total):
    import pandas as pd
    import segregation.singlegroup as sg
    from segregation.inference import SingleValueTest

    plain = pd.DataFrame(frame[[group, total]])  # no geometry: pysal's fastest input for an aspatial index
    return lambda: SingleValueTest(
        sg.Dissim(plain, group, total), iterations_under_null=999, null_approach="systematic", n_jobs=1
    )


def _cold(ds):
    """``ds`` with an empty weights cache: pysal builds its contiguity in every call, so segmap's call must too (a
    dataset keeps its contiguity for the next request, which would time the index alone)."""
    from spatial.lru import LRU

    object.__setattr__(ds, "weights_cache", LRU(8))
    return ds


def _row(task, areas, ours, ref=None, note=""):
    return {
        "task": task,
        "areas": f"{areas:,}",
        "segmap": spread(ours),
        "pysal": spread(ref) if ref else note,
        "speed-up (range of pairs)": ratio(ref, ours, key=f"{task}, {areas:,} areas") if ref else "",
    }


BIG_MATRIX = 10_000  # areas from which pysal's SpatialDissim allocates hundreds of MB a call (800 MB at 10,000)


def _spatial_d(ds, group, total, frame, rounds):
    """spatial_dissimilarity against pysal's SpatialDissim on the same metric frame, alternating: times; memory
    settled before each sample where pysal's dense matrix is big (common.alternate)."""
    import segregation.singlegroup as sg

    from spatial.indices.compute import compute_indices

    return alternate(
        {
            "ours": lambda: compute_indices(_cold(ds), group=group, indices=["spatial_dissimilarity"]),
            "ref": lambda: sg.SpatialDissim(frame, group, total),
        },
        rounds,
        settle_each=ds.n >= BIG_MATRIX,
    )


def _d_test(ds, group, total, frame, rounds, with_ref=True):
    """The 999-simulation D test on both sides (pysal's only ``with_ref``), alternating: times. pysal's test takes
    seconds and is not warmed: segmap's samples span :data:`PAIR_SPAN` each (Chicago: 1.5-2.5 ms a call)."""
    x, t = ds.counts(group)
    calls = {"ours": lambda: _null_test(x, t)}
    if with_ref:
        calls["ref"] = _pysal_test(frame, group, total)
    return alternate(calls, rounds, warm=("ours",), span=PAIR_SPAN)


# Small places run in fresh processes (common.pooled), away from the 100,000-area city's objects in this one.
FULL_ONLY_NOTE = "--full only (76 s when measured for issue 18)"
SMALL = r"""
import json, os, sys
os.environ.setdefault("TQDM_DISABLE", "1")
from benchmarks.indices import small_times
print(json.dumps(small_times(sys.argv[1], sys.argv[2], int(sys.argv[3]))))
"""


def _place(where: str):
    """(dataset, group, total, pysal's frame) of a small place: ``grid:N`` or ``chicago``."""
    if where == "chicago":
        from spatial.io import load_dataset

        ch = load_dataset(CHICAGO, key="GEOID", groups=["FOR_BORN"], total="TOT_POP")
        return ch, "FOR_BORN", "TOT_POP", ch.metric
    ds = grid_city(int(where.split(":")[1]))
    return ds, "migrants", "total", ds.areas


def small_times(what: str, where: str, rounds: int) -> dict:
    """In a child process: the alternating samples of one small task (``spatial_d`` or ``d_test``) on one place."""
    ds, group, total, frame = _place(where)
    task = _spatial_d if what == "spatial_d" else _d_test
    times = task(ds, group, total, frame, rounds)
    return {"n": ds.n, "number": times.number["ours"], **{side: list(ts) for side, ts in times.items()}}


NUMBERS: dict[str, int] = {}  # segmap's calls per sample of each small row, for the table's note


def _small(task: str, what: str, where: str, rounds: int, processes: int = PROCESSES) -> dict:
    """A table row from alternating rounds spread over fresh processes (common.pooled)."""
    got = pooled(SMALL, rounds, what, where, processes=processes)
    NUMBERS[f"{task} {got['n']:,}"] = got["number"]
    return _row(task, got["n"], got["ours"], got["ref"])


def _fresh_vs_warm(ds, rounds: int) -> tuple[list[dict], list[float]]:
    """The 999-simulation D test with its interval as the first call of a fresh process (:data:`MEMORY`: its
    seconds and peak RSS) and as a warm call here, alternating fresh, warm, warm, fresh, ... (calibration reuse
    off, else a repeated seeded call reuses the calibration and times no work)."""
    from spatial.indices.compute import compute_indices
    from spatial.indices.inference import reuse

    def warm_call():
        return compute_indices(_cold(ds), group="migrants", indices=["dissimilarity"], permutations=999, seed=1)

    fresh, warm = [], []
    reuse.ENABLED = False
    try:
        warm_call()  # this process's own first call is not a warm one
        for i in range(rounds):
            for side in ("fresh", "warm") if i % 2 == 0 else ("warm", "fresh"):
                if side == "fresh":
                    fresh.append(child(MEMORY, ds.n, "dissimilarity"))
                else:
                    warm.append(timed(warm_call)[1])
    finally:
        reuse.ENABLED = True
    return fresh, warm


def _big_rows(ds, reps, quick):
    """Rows at 100,000 areas and the D test's peak RSS in a fresh process."""
    from spatial.indices import names
    from spatial.indices.compute import compute_indices

    aspatial = names(kind="two_group", spatial=False)

    def runs(n, **kw):
        return [timed(lambda: compute_indices(_cold(ds), group="migrants", **kw))[1] for _ in range(n)]

    fresh, warm = _fresh_vs_warm(ds, reps)
    fresh_s = [f["seconds"] for f in fresh]
    d999 = _d_test(ds, "migrants", "total", ds.areas, reps if quick else 3, with_ref=not quick)
    rows = [
        _row(f"all {len(aspatial)} aspatial two-group indices", ds.n, runs(reps, indices=aspatial)),
        _row(
            "spatial_dissimilarity (contiguity included)",
            ds.n,
            runs(reps, indices=["spatial_dissimilarity"]),
            note="not run (n×n dense matrix: ~80 GB)",
        ),
        _row("D test, 999 simulations (equal work)", ds.n, d999["ours"], d999.get("ref"), note=FULL_ONLY_NOTE),
        _row("D test, 999 simulations + calibrated interval", ds.n, warm, note="no interval in pysal"),
        {
            **_row("the same, first call in a fresh process (data set-up before)", ds.n, fresh_s),
            "pysal": f"fresh / warm: {ratio(fresh_s, warm, key=f'D test fresh / warm, {ds.n:,} areas')} "
            "(target ≤ 1.2×)",
        },
    ]
    return rows, fresh[0]


def _chicago_rows(rounds, test_rounds):
    if not CHICAGO.exists():  # real data: Chicago's 2020 community data snapshot, in ../shared
        return []
    return [
        _small("spatial_dissimilarity, Chicago 2020 (real)", "spatial_d", "chicago", rounds),
        _small("D test, 999 simulations, Chicago 2020 (real)", "d_test", "chicago", test_rounds, test_rounds),
    ]


def main(quick: bool = QUICK) -> None:
    import os

    os.environ.setdefault("TQDM_DISABLE", "1")  # pysal's progress bars
    reps = 5 if quick else 7
    rounds = 80 if quick else 120  # pairs of a millisecond call and pysal's tens of milliseconds: ~10-30 s
    # 10,000 areas: pysal's SpatialDissim takes 1.1-3.4 s (its dense n x n matrix: 800 MB of fresh pages a call)
    big_rounds, big_processes = (12, 6) if quick else (16, 8)
    test_rounds = 8 if quick else 10  # pysal's 999-simulation tests: 6-9 s each; one round per process
    mem = {"spatial_dissimilarity": child(MEMORY, 100_000, "spatial_dissimilarity")}
    rows = [
        _small("spatial_dissimilarity", "spatial_d", "grid:1000", rounds),
        _small("spatial_dissimilarity", "spatial_d", "grid:10000", big_rounds, big_processes),
        _small(
            "D test, 999 random-allocation simulations (equal work)", "d_test", "grid:1000", test_rounds, test_rounds
        ),
    ]
    big, mem["dissimilarity"] = _big_rows(grid_city(100_000), reps, quick)
    rows += big
    rows += _chicago_rows(rounds, test_rounds)
    anchors = (
        f"{versions('segregation', 'libpysal', 'pandas', 'geopandas', 'numpy')}. `SpatialDissim` (queen contiguity, "
        "the same frame), and `SingleValueTest(Dissim, iterations_under_null=999, null_approach='systematic', "
        "n_jobs=1)` on a plain DataFrame of the two count columns, its full 999 simulations (it rebuilds the index "
        "object per simulation); segmap's equal work is its 999 random-allocation simulations and the p-value. "
        "Alternating rounds, one sample a side each, the speed-up the mean of the middle 80 % of the rounds' ratios: "
        f"spatial_dissimilarity {rounds} rounds over {PROCESSES} fresh processes ({big_rounds} over {big_processes} "
        f"at 10,000 areas, memory settled before each sample), the D tests {test_rounds}, one per fresh process "
        "(a process runs fast or slow as a whole here); a first untimed call of "
        "each side (pysal's tests excepted); segmap's call repeated within its sample until the sample spans about "
        f"as long as pysal's call (at most {PAIR_SPAN:.0f} s; calls per sample: "
        + ", ".join(f"{k} ×{v}" for k, v in NUMBERS.items())
        + "). The fresh-process D test: "
        f"{reps} fresh processes alternating with {reps} warm calls here (calibration reuse off)."
    )
    write(
        "indices",
        header("Indices: segmap vs pysal segregation, equal work", anchors)
        + table(rows)
        + "\nPeak RSS of a fresh process at 100,000 areas (data set-up included, in brackets what the task added): "
        + "; ".join(f"{k} {m['peak']:,.0f} MB (+{m['peak'] - m['before']:,.0f})" for k, m in mem.items())
        + " (`dissimilarity` with its 999-simulation test and interval).\n",
    )


if __name__ == "__main__":
    main()
