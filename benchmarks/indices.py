"""City-wide indices and 999-simulation inference: segmap vs pysal `segregation` with equal work.

Both sides timed in the same process without a tracer, alternating runs; pysal's ``SingleValueTest`` with its
full 999 simulations and ``n_jobs=1`` wherever it finishes in under 2 minutes (the 100,000-area run in --full
mode only). Memory: peak RSS of a fresh process per task.
"""

from __future__ import annotations

import warnings
from pathlib import Path

from benchmarks.common import PEAK_RSS, QUICK, alternate, child, grid_city, header, median, spread, table, timed, write

warnings.filterwarnings("ignore")

CHICAGO = Path(__file__).resolve().parents[2] / "shared" / "data" / "chicago" / "Chicago_2020.geojson"

MEMORY = r"""
import json, sys, warnings
warnings.filterwarnings("ignore")
from benchmarks.common import grid_city
from spatial.indices.compute import compute_indices
ds = grid_city(int(sys.argv[1]))
before = PEAK
opts = {"permutations": 999, "seed": 1} if sys.argv[2] == "dissimilarity" else {}
compute_indices(ds, group="migrants", indices=[sys.argv[2]], **opts)
print(json.dumps({"before": before, "peak": PEAK}))
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


def _row(task, areas, ours, ref=None, note=""):
    return {
        "task": task,
        "areas": f"{areas:,}",
        "segmap": spread(ours),
        "pysal": spread(ref) if ref else note,
        "speed-up": f"{median(ref) / median(ours):,.0f}×" if ref else "",
    }


def main(quick: bool = QUICK) -> None:
    import os

    os.environ.setdefault("TQDM_DISABLE", "1")  # pysal's progress bars
    import segregation.singlegroup as sg
    from segregation.inference import SingleValueTest

    from spatial.indices import names
    from spatial.indices.compute import compute_indices

    reps = 3 if quick else 5
    big = 100_000
    mem = {task: child(MEMORY, big, task) for task in ("spatial_dissimilarity", "dissimilarity")}
    rows = []
    for n in (1_000, 10_000):
        ds = grid_city(n)
        times = alternate(
            {
                "ours": lambda ds=ds: compute_indices(ds, group="migrants", indices=["spatial_dissimilarity"]),
                "ref": lambda ds=ds: sg.SpatialDissim(ds.areas, "migrants", "total"),
            },
            reps if n < 10_000 else 2,
        )
        rows.append(_row("spatial_dissimilarity", n, times["ours"], times["ref"]))
    ds = grid_city(1_000)
    x, t = ds.counts("migrants")
    ours = [timed(_null_test, x, t)[1] for _ in range(reps)]
    ref = [
        timed(
            SingleValueTest,
            sg.Dissim(ds.areas, "migrants", "total"),
            iterations_under_null=999,
            null_approach="systematic",
            n_jobs=1,
        )[1]
        for _ in range(1 if quick else 2)
    ]
    rows.append(_row("D test, 999 random-allocation simulations (equal work)", 1_000, ours, ref))
    ds = grid_city(big)
    x, t = ds.counts("migrants")
    aspatial = names(kind="two_group", spatial=False)
    rows.append(
        _row(
            f"all {len(aspatial)} aspatial two-group indices",
            big,
            [timed(compute_indices, ds, group="migrants", indices=aspatial)[1] for _ in range(reps)],
        )
    )
    rows.append(
        _row(
            "spatial_dissimilarity (contiguity included)",
            big,
            [timed(compute_indices, ds, group="migrants", indices=["spatial_dissimilarity"])[1] for _ in range(reps)],
            note="not run (n×n dense matrix: ~80 GB)",
        )
    )
    pysal_big = None
    if not quick:
        pysal_big = [
            timed(
                SingleValueTest,
                sg.Dissim(ds.areas, "migrants", "total"),
                iterations_under_null=999,
                null_approach="systematic",
                n_jobs=1,
            )[1]
        ]
    rows.append(
        _row(
            "D test, 999 simulations (equal work)",
            big,
            [timed(_null_test, x, t)[1] for _ in range(reps)],
            pysal_big,
            note="--full only (76 s when measured for issue 18)",
        )
    )
    rows.append(
        _row(
            "D test, 999 simulations + calibrated interval",
            big,
            [
                timed(compute_indices, ds, group="migrants", indices=["dissimilarity"], permutations=999, seed=1)[1]
                for _ in range(2)
            ],
            note="no interval in pysal",
        )
    )
    if CHICAGO.exists():  # real data: Chicago's 2020 community data snapshot
        from spatial.io import load_dataset

        ch = load_dataset(CHICAGO, key="GEOID", groups=["FOR_BORN"], total="TOT_POP")
        times = alternate(
            {
                "ours": lambda: compute_indices(ch, group="FOR_BORN", indices=["spatial_dissimilarity"]),
                "ref": lambda: sg.SpatialDissim(ch.metric, "FOR_BORN", "TOT_POP"),
            },
            reps,
        )
        rows.append(_row("spatial_dissimilarity, Chicago 2020 (real)", ch.n, times["ours"], times["ref"]))
        cx, ct = ch.counts("FOR_BORN")
        ours = [timed(_null_test, cx, ct)[1] for _ in range(reps)]
        ref = [
            timed(
                SingleValueTest,
                sg.Dissim(ch.metric, "FOR_BORN", "TOT_POP"),
                iterations_under_null=999,
                null_approach="systematic",
                n_jobs=1,
            )[1]
        ]
        rows.append(_row("D test, 999 simulations, Chicago 2020 (real)", ch.n, ours, ref))
    write(
        "indices",
        header("Indices: segmap vs pysal segregation 2.5.4, equal work")
        + table(rows)
        + "\npysal: `SpatialDissim`, and `SingleValueTest(Dissim, iterations_under_null=999, "
        "null_approach='systematic', n_jobs=1)`, its full 999 simulations (it rebuilds the index object per "
        "simulation); segmap's equal work is its 999 random-allocation simulations and the p-value. Peak RSS of a "
        f"fresh process at {big:,} areas (data set-up included, in brackets what the task added): "
        + "; ".join(f"{k} {m['peak']:,.0f} MB (+{m['peak'] - m['before']:,.0f})" for k, m in mem.items())
        + " (`dissimilarity` with its 999-simulation test and interval).\n",
    )


if __name__ == "__main__":
    main()
