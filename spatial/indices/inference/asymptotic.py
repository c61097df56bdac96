"""The calibration's large-city path: the same test inversion along the scaled family, with fewer simulated cities.

At large n the index's sampling distribution at each λ is close to normal (a sum over many areas), and the
interval spans a tiny stretch of λ around the estimate, so what the calibration needs is the mean curve and
the spread there, not the shape of the tails. This path therefore:

- simulates ``FAST_DRAWS`` cities per λ instead of 200, with common random numbers: one block of normals is
  turned into counts at every λ of the grid (each λ's counts keep their own distribution; the curves become
  smooth in λ, and the normals are drawn once, not nine times);
- takes the normal quantiles for the band instead of the pooled simulated ones;
- skips the nested one-step widening (it tends to 1 as n grows; measured in benchmarks/calibration.py) and
  gives comparisons normal draws with the interval's spread (a large-sample z-interval of the difference).

Results say so: ``method`` is ``test_inversion_asymptotic``. benchmarks/calibration.py measures its coverage
at 10,000 and 100,000 areas and against the full calibration on the same inputs.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from scipy import stats

from ...cancel import checkpoint
from . import threaded
from .draws import _simulate, _stream, table_normals

FAST_MIN_AREAS = 10_000  # from this many areas the calibration takes this path (path="auto")
FAST_DRAWS = 40  # simulated cities per λ on this path
PATHS = ("auto", "full", "asymptotic")


def fast_path(path: str, n: int) -> bool:
    """Whether ``calibrate`` takes the large-city path for ``n`` areas (``path``: auto, full or asymptotic)."""
    if path not in PATHS:
        raise ValueError(f"calibration path {path!r}: choose from {PATHS}")
    return path == "asymptotic" or (path == "auto" and n >= FAST_MIN_AREAS)


def simulate_grid(evaluate: Callable, fam, grid: np.ndarray, rng, draws: int, block: int, report) -> list:
    """Simulated index values at each λ of ``grid``, ``draws`` each, common random numbers across λ.

    Two-group: one block of table normals per block of cities, made into counts at every λ. Multigroup
    counts (multinomial) are drawn per λ as on the full path, only fewer.
    """
    if fam.kind != "two_group":
        out = []
        for j, lam in enumerate(grid):
            out.append(_simulate(evaluate, fam.drawer(rng, fam.shares(lam)), draws, block, None))
            if report:
                report((j + 1) * draws)
        return out
    n, lams = len(fam.t), range(len(grid) - 1, -1, -1)  # largest λ first: most small areas, the longest tasks
    samplers: list = [None] * len(grid)  # the family's (deconvolved: skewed), each made in its λ's first task
    # each λ's small areas take their own generator (spawned from the family's), so λs can run on two threads
    rngs = [np.random.default_rng(s) for s in np.random.SeedSequence(rng.integers(2**63)).spawn(len(grid))]
    t32 = fam.t.astype(np.float32)
    t32.flags.writeable = False  # constant: an index's evaluator may keep its sum (aspatial._row_sums)
    z, counts = np.empty((block, n), np.float32), [np.empty((block, n), np.float32) for _ in grid]
    values = np.empty((len(grid), draws))
    done, b = 0, 0

    def work(j: int) -> None:
        if samplers[j] is None:  # the nine set-ups (~0.1 s each at a million areas) on two threads, not one
            samplers[j] = fam.fast_sampler(fam.shares(grid[j]))
        x = samplers[j].from_normals(rngs[j], z[:b], counts[j][:b])
        values[j, done : done + b] = evaluate(x, np.broadcast_to(t32, (b, n)))

    while done < draws:
        checkpoint()
        b = min(block, draws - done)
        table_normals(rng, z[:b])
        threaded.run(list(lams), work, threads=1 if fam.A is not None else None)  # spatial set-ups: one thread
        done += b
        if report:
            report(done * len(grid))
    return list(values)


def result(est: float, lo: float, hi: float, noise: bool, floor: float, sign: float, level: float, spread) -> dict:
    """The large-city path's answer; ``spread`` gives ``outer`` normal draws of the estimator around 0 for a
    given standard deviation (comparisons combine them)."""
    sd = abs(hi - lo) / (2 * stats.norm.ppf(0.5 + level / 2))
    if sign * (lo - floor) < 0:  # never below no segregation
        lo = floor
    return {
        "estimate": est,
        "ci_low": min(lo, hi),
        "ci_high": max(lo, hi),
        "within_noise": noise,
        "method": "test_inversion_asymptotic",
        "floor": floor,
        "widening": 1.0,
        "sd_inversion": sd,
        "sd_nested": float("nan"),
        "draws": est + spread(sd),
    }


def normal_spread(seed: int | None, stream: int, outer: int) -> Callable:
    """``sd -> outer`` seeded normal draws with that standard deviation, from the nested step's stream."""
    return lambda sd: sd * _stream(seed, stream).standard_normal(outer)
