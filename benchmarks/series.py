"""Trends of a series: 10 dates at 100,000 areas, every index with 999-draw intervals (target < 30 s, #14).

Runs spatial.trend.trend — what GET /v1/series/{id}/indices and `segmap trend` call — on ten synthetic dates of
one grid city whose migrant share drifts year by year: a level row per date and index, and a change row per
later date against the first (the two-sample comparison), each with its interval and p-value.
"""

from __future__ import annotations

import dataclasses
import sys
import time

import numpy as np

from benchmarks.common import grid_city, header, table, write
from spatial.indices import names
from spatial.indices.inference import fast_path, reuse
from spatial.trend import Dated, trend


def series(n: int, dates: int = 10) -> list[Dated]:
    """``dates`` years of one city: the same areas, each year's migrants drawn with a slowly rising share."""
    base = grid_city(n)
    rng = np.random.default_rng(7)
    total = base.column("total").astype(int)
    share = base.column("migrants") / np.maximum(total, 1)
    out = []
    for k in range(dates):
        areas = base.areas.copy()
        areas["migrants"] = rng.binomial(total, np.clip(share * (1 + 0.03 * k), 0, 1)).astype(float)
        out.append(Dated(f"{2015 + k}", dataclasses.replace(base, areas=areas), f"d{k}", "one"))
    return out


def run(dated: list[Dated], indices: list[str], permutations: int, changes: bool) -> tuple[float, float, int]:
    """(wall s, CPU s, rows) of one trend table; with ``changes`` a change row per later date against the first."""
    reuse.clear()  # nothing carried over from an earlier run: only what this table reuses of itself
    wall, cpu = time.perf_counter(), time.process_time()
    baseline = dated[0].date if changes else None
    out = trend(dated, ["migrants"], indices=indices, permutations=permutations, seed=1, baseline=baseline)
    return time.perf_counter() - wall, time.process_time() - cpu, len(out["rows"])


def main(n: int = 100_000, quick: bool = False, every_index: bool = True) -> None:
    dated = series(n if not quick else 10_000)
    every = names(kind="two_group", spatial=False)
    rows = []
    runs = [("dissimilarity", ["dissimilarity"], False), ("dissimilarity", ["dissimilarity"], True)]
    if every_index:  # its levels alone: the first half of it
        runs.append((f"all {len(every)} aspatial two-group", every, True))
    for label, indices, changes in runs:
        wall, cpu, n_rows = run(dated, indices, 999, changes)
        rows.append(
            {
                "indices": label,
                "rows": "levels + changes" if changes else "levels",
                "areas": dated[0].dataset.n,
                "dates": len(dated),
                "draws": 999,
                "table rows": n_rows,
                "calibration": "large-city path" if fast_path("auto", dated[0].dataset.n) else "full",
                "wall s": wall,
                "CPU s": cpu,
                "target < 30 s": "yes" if wall < 30 else "no",
            }
        )
        print(rows[-1], file=sys.stderr, flush=True)
        report(rows)  # after each row: a long run stopped midway keeps what it measured


def report(rows: list[dict]) -> None:
    text = header("Trends of a series: 10 dates, 999-draw intervals (spatial.trend)") + table(rows)
    text += (
        "\nEach date gets its index with a bias-corrected 95% interval and p-value (999 simulations); each later "
        "date also gets its change from the first date with the two-sample comparison's interval and p-value, "
        "which calibrates both dates again: their simulations along λ are the level rows' own (same data, index "
        "and seed) and are reused within the process, so a change row costs little more than its comparison's "
        "draws. From 10,000 areas the calibration takes its large-city path (`test_inversion_asymptotic`: 40 "
        "simulated cities per λ with common random numbers, normal band, no nested widening).\n"
    )
    write("series", text)


if __name__ == "__main__":
    main(quick="--quick" in sys.argv, every_index="--dissimilarity" not in sys.argv)
