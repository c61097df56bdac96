"""Do the 95 % intervals cover the truth, and do the p-values hold their size? (issue 17)

A city here is a fixed set of areas with known true shares; each replicate draws its counts
(binomial per area) and runs segmap's inference on them. The truth is the index of the expected
counts (t_i · p_i), which is what ``value_bias_corrected`` and its interval estimate.

True shares: Beta with mean P = 0.2 (the usual model of over-dispersed shares), its concentration set
so that the truth's D is the grid value; area populations uniform on 0.5–1.5 × the grid's people per
area (at least 2). Small D gives bell-shaped shares, large D U-shaped ones (many areas near 0 and 1).
Plus the issue's city: 30 areas of ~3,000 people, shares uniform on 0.18–0.22 (true D 0.029).

For each grid point: the share of replicates flagged ``within_noise``; the coverage of the reported
interval (flagged replicates included: their interval reaches the no-segregation value); for
comparison, the coverage of the interval centred on the observed value (segmap before issue 17) and
of the plain bootstrap shift 2·value − draws (the R package ``segregation``); mean errors. Under the
null (every share P) the rejection rate of the random-allocation p-value at 0.05.

    python -m benchmarks calibration            # the full grid, ~25 min on 2 cores
    python -m benchmarks.calibration --quick    # a few points, printed only, ~2 min
    python -m benchmarks.calibration --index spatial_dissimilarity   # re-measure one index's rows
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import time
from dataclasses import dataclass

import numpy as np
from scipy import optimize, stats

from spatial.indices import get
from spatial.indices.inference import (
    _block_size,
    _drawers,
    _Scaled,
    _simulate,
    calibrate,
    two_sided_p,
)

P = 0.2
LEVEL = 0.95
D_GRID = (0.02, 0.05, 0.1, 0.2, 0.4, 0.6)
AREAS = (30, 200, 2000)
PEOPLE = (20, 200, 3000)
REPS = 400  # coverage SE ≈ 1.1 points at 95 %; half as many at 2,000 areas (SE 1.5), which cost most
NULL_REPS = 1000
NULL_PERMUTATIONS = 199
ISSUE_D = 0.029


@dataclass(frozen=True)
class Point:
    d: float | None  # target D (None: the issue's uniform city)
    areas: int
    people: int
    index: str = "dissimilarity"
    shape: str = "beta"  # beta, uniform (the issue's city), dirichlet (multigroup), clustered (spatial), bimodal

    @property
    def label(self) -> str:
        return f"{self.index} D≈{self.d} {self.areas}×{self.people}" if self.d else f"{self.index} issue city"


def populations(areas: int, people: int, rng: np.random.Generator) -> np.ndarray:
    return np.maximum(2.0, np.rint(rng.uniform(0.5, 1.5, areas) * people))


def dissimilarity_of(t, p) -> float:
    return float(get("dissimilarity").evaluator()(t * p, t))


def beta_shares(t: np.ndarray, target: float, rng: np.random.Generator) -> np.ndarray:
    """Shares from Beta(Pκ, (1−P)κ) at fixed quantiles, κ chosen so that their D is ``target``."""
    z = (rng.permutation(len(t)) + 0.5) / len(t)

    def shares(log_k):
        k = np.exp(log_k)
        return stats.beta.ppf(z, P * k, (1 - P) * k)

    log_k = optimize.brentq(lambda lk: dissimilarity_of(t, shares(lk)) - target, -9.0, 16.0, xtol=1e-10)
    return shares(log_k)


def city(point: Point, seed: int = 0):
    """(data, kind, truth, evaluate, ctx-free evaluator name) of one grid point's fixed city."""
    rng = np.random.default_rng([seed, point.areas, point.people])
    t = populations(point.areas, point.people, rng)
    if point.shape == "uniform":  # the issue's city: shares 0.18–0.22, scaled about their mean to true D 0.029
        u = rng.uniform(0.18, 0.22, point.areas)
        centre = np.average(u, weights=t)
        p = centre + (u - centre) * ISSUE_D / dissimilarity_of(t, u)
    elif point.shape == "bimodal":  # not a Beta: 80 % of areas near 0.15, 20 % enclaves near 0.4, scaled to D
        z = (rng.permutation(point.areas) + 0.5) / point.areas
        u = np.where(z < 0.8, stats.beta.ppf(z / 0.8, 6, 34), stats.beta.ppf((z - 0.8) / 0.2, 16, 24))
        centre = np.average(u, weights=t)
        p = centre + (u - centre) * point.d / dissimilarity_of(t, u)
    elif point.shape == "dirichlet":
        shares = np.array([0.6, 0.25, 0.15])
        k = 8.0
        p = rng.dirichlet(shares * k, size=point.areas)
        return t, p
    else:
        p = beta_shares(t, point.d, rng)
        if point.shape == "clustered":  # shares rise from west to east: spatial structure
            p = np.sort(p)
    return t, p


def grid_context(areas: int):
    """A square grid of 200 m cells (for spatial indices), areas numbered west to east."""
    import geopandas as gpd
    from shapely import box

    from spatial.dataset import validate
    from spatial.indices.spatial_context import SpatialContext

    side = int(np.ceil(np.sqrt(areas)))
    i, j = np.divmod(np.arange(areas), side)
    x0, y0 = 500_000.0, 5_000_000.0
    geoms = box(x0 + i * 200, y0 + j * 200, x0 + (i + 1) * 200, y0 + (j + 1) * 200)
    gdf = gpd.GeoDataFrame(
        {"id": [f"a{k}" for k in range(areas)], "total": np.ones(areas), "g": np.zeros(areas)},
        geometry=geoms,
        crs="EPSG:32633",
    )
    return SpatialContext(validate(gdf, id_col="id", groups=["g"], total="total"))


def evaluator(point: Point):
    """(batched evaluator, kind, queen neighbour pairs or None) of the point's index."""
    spec = get(point.index)
    if not spec.spatial:
        return spec.evaluator(None), spec.kind, None
    ctx = grid_context(point.areas)
    return spec.evaluator(ctx), spec.kind, ctx.queen


def _bootstrap_at_observed(evaluate, data, kind, rng, draws, block) -> tuple[float, float, float]:
    """Quantiles and mean of the plain bootstrap at the observed compositions (the intervals segmap replaced)."""
    a = (1 - LEVEL) / 2
    fam = _Scaled(data, kind)
    at_observed = fam.shares(1.0)
    boot = _simulate(evaluate, lambda b: fam.draw(rng, at_observed, b), draws, block, None)
    boot = boot[np.isfinite(boot)]
    q_lo, q_hi = np.quantile(boot, [a, 1 - a])
    return q_lo, q_hi, boot.mean()


def coverage(
    point: Point, reps: int = REPS, draws: int = 200, seed: int = 0, path: str = "auto", baselines: bool = True
) -> dict:
    """Coverage and errors of segmap's interval (and of the two it replaces) at one grid point.

    ``path``: the calibration's path (auto, full, asymptotic); ``baselines`` False skips the two old intervals
    (their bootstrap costs more than the large-city calibration)."""
    evaluate, kind, neighbours = evaluator(point)
    t, p = city(point, seed)
    if kind == "multigroup":
        truth = float(evaluate(t[:, None] * p))
    else:
        truth = float(evaluate(t * p, t))
    rng = np.random.default_rng([seed, 1, point.areas, point.people])
    block = _block_size(point.areas, 2 if kind == "two_group" else p.shape[1], None)
    rows, widening, methods = [], [], set()
    for r in range(reps):
        if kind == "multigroup":
            data = (rng.multinomial(t.astype(np.int64), p).astype(float),)
        else:
            data = (rng.binomial(t.astype(np.int64), p).astype(float), t)
        value = float(evaluate(*data))
        cal = calibrate(
            evaluate, data, kind, value, seed=r, draws=draws, level=LEVEL, block=block, neighbours=neighbours, path=path
        )
        widening.append(cal.get("widening", np.nan))
        methods.add(cal["method"])
        q_lo, q_hi, m = _bootstrap_at_observed(evaluate, data, kind, rng, draws, block) if baselines else [np.nan] * 3
        old, shift = (value + q_lo - m, value + q_hi - m), (2 * value - q_hi, 2 * value - q_lo, 2 * value - m)
        rows.append((value, cal["estimate"], cal["ci_low"], cal["ci_high"], cal["within_noise"], *old, *shift))
    v, est, lo, hi, noise, old_lo, old_hi, sh_lo, sh_hi, sh_est = np.array(rows, dtype=float).T

    def cover(lo, hi):
        return float(np.mean((lo <= truth) & (truth <= hi)))

    return {
        "point": point,
        "truth": truth,
        "reps": reps,
        "flagged": float(noise.mean()),
        "coverage": cover(lo, hi),
        "below": float(np.mean(truth < lo)),
        "above": float(np.mean(truth > hi)),
        "coverage_unflagged": cover(lo[noise == 0], hi[noise == 0]) if (noise == 0).any() else float("nan"),
        "coverage_old": cover(old_lo, old_hi),
        "coverage_shift": cover(sh_lo, sh_hi),
        "error_value": float(v.mean() - truth),
        "error_corrected": float(np.nanmean(est) - truth),
        "error_shift": float(sh_est.mean() - truth),
        "half_width": float(np.mean(hi - lo) / 2),
        "widening": float(np.nanmean(widening)) if np.isfinite(widening).any() else float("nan"),
        "methods": sorted(methods),
    }


def null_size(
    areas: int,
    people: int,
    reps: int = NULL_REPS,
    permutations: int = NULL_PERMUTATIONS,
    seed: int = 0,
    fast: bool = False,
) -> dict:
    """Rejection rate at 0.05 of the random-allocation p-value of D when every area's share is P (``fast``: the
    large-city path's table normals)."""
    evaluate = get("dissimilarity").evaluator()
    rng = np.random.default_rng([seed, 2, areas, people])
    t = populations(areas, people, rng)
    block = _block_size(areas, 2, None)
    ps = []
    for _ in range(reps):
        x = rng.binomial(t.astype(np.int64), P).astype(float)
        nulls, _ = _drawers((x, t), "two_group", rng, fast=fast)
        sims = _simulate(evaluate, nulls["random_allocation"], permutations, block, None)
        ps.append(two_sided_p(float(evaluate(x, t)), sims))
    ps = np.array(ps)
    return {
        "areas": areas,
        "people": people,
        "reps": reps,
        "rejected_05": float(np.mean(ps <= 0.05)),
        "rejected_01": float(np.mean(ps <= 0.01)),
    }


def grid(quick: bool = False) -> list[Point]:
    if quick:
        return [
            Point(None, 30, 3000, shape="uniform"),
            Point(0.1, 200, 200),
            Point(0.4, 200, 20),
            Point(0.05, 2000, 200),
        ]
    points = [Point(None, 30, 3000, shape="uniform")]
    points += [Point(d, n, m) for d in D_GRID for n in AREAS for m in PEOPLE]
    # Every index family at two grid points (aspatial two-group, multigroup, spatial).
    for index in ("gini", "entropy", "atkinson", "isolation", "exposure"):
        points += [Point(0.1, 200, 200, index), Point(0.4, 200, 20, index)]
    for index in ("multigroup_dissimilarity", "information_theory", "mutual_information"):
        points += [Point(None, 200, 100, index, "dirichlet"), Point(None, 30, 1000, index, "dirichlet")]
    # Spatial: shares sorted west to east on a grid (smooth), and the same shares at random places.
    for shape in ("clustered", "beta"):
        points += [
            Point(0.1, 200, 200, "spatial_dissimilarity", shape),
            Point(0.4, 200, 20, "spatial_dissimilarity", shape),
        ]
    points += [Point(0.1, 200, 200, name, "clustered") for name in ("boundary_spatial_dissimilarity", "delta")]
    return points


def _run(args):
    kind, item, reps = args
    if kind == "coverage":
        return coverage(item, reps=reps)
    return null_size(*item, reps=reps)


def fmt(v, digits=3) -> str:
    return "" if v is None or (isinstance(v, float) and np.isnan(v)) else f"{v:.{digits}f}"


def label(pt: Point) -> str:
    where = {"uniform": " (issue's city)", "clustered": " (clustered)"}.get(pt.shape, "")
    if pt.shape == "beta" and get(pt.index).spatial:
        where = " (random places)"
    return pt.index + where


def summary(points: list[tuple[float, float]]) -> str:
    """The sentence under the table, from (flagged, coverage) of every point."""
    judged = [cov for flagged, cov in points if flagged < 0.5]
    inside = [c for c in judged if 0.93 <= c <= 0.97]
    above = [c for c in judged if c > 0.97]
    return (
        f"Points not within the noise (flagged in fewer than half the replicates): {len(judged)}; coverage "
        f"{fmt(min(judged))}–{fmt(max(judged))}, median {fmt(float(np.median(judged)))}; {len(inside)} inside "
        f"93–97 %, {len(above)} above, {len(judged) - len(inside) - len(above)} below."
    )


def row(c: dict) -> str:
    pt = c["point"]
    return (
        f"| {label(pt)} | {c['truth']:.3f} | {pt.areas} | {pt.people} | {fmt(c['flagged'], 2)} | "
        f"**{fmt(c['coverage'])}** | {fmt(c['below'])} | {fmt(c['above'])} | {fmt(c['coverage_old'])} | "
        f"{fmt(c['coverage_shift'])} | {c['error_value']:+.4f} | {c['error_corrected']:+.4f} | "
        f"{c['error_shift']:+.4f} |"
    )


def merge(text: str, cov: list[dict], seconds: float) -> str:
    """Replace the rows of re-measured indices in an existing report and redo its summary."""
    names = sorted({c["point"].index for c in cov})
    lines = text.rstrip("\n").split("\n")

    def is_row(line):
        return line.startswith("| ") and line.count("|") == 14 and not line.startswith("| index ")

    rows = [i for i, line in enumerate(lines) if is_row(line)]
    stale = [i for i in rows if lines[i].split("|")[1].strip().split(" (")[0] in names]
    at = stale[0] if stale else rows[-1] + 1
    lines = [line for i, line in enumerate(lines) if i not in set(stale)]
    lines[at:at] = [row(c) for c in cov]
    points = [(float(line.split("|")[5]), float(line.split("|")[6].strip(" *"))) for line in lines if is_row(line)]
    where = next(i for i, line in enumerate(lines) if line.startswith("Points not within the noise"))
    lines[where] = summary(points) + (
        f" Rows of {', '.join(names)} re-measured {time.strftime('%Y-%m-%d')} ({seconds / 60:.0f} min); the other "
        "rows come from the full run above (their code path did not change)."
    )
    return "\n".join(lines) + "\n"


def report(cov: list[dict], size: list[dict], seconds: float, reps: int) -> str:
    from benchmarks.common import header

    lines = [
        header("Calibration of intervals and p-values (issue 17)").rstrip("\n"),
        "",
        (
            f"{reps} replicates a point, {reps // 2} at 2,000 areas (coverage standard error "
            f"{100 * np.sqrt(0.95 * 0.05 / reps):.1f} and {100 * np.sqrt(0.95 * 0.05 / (reps // 2)):.1f} points at 95 %); "
            "200 simulations per λ; "
            f"{seconds / 60:.0f} min on 2 processes. Truth: the index of the expected counts. `flagged`: share of "
            "replicates reported `within_noise`. `coverage`: the reported interval (flagged ones included, their "
            "interval reaches no segregation); `old`: centred on the observed value (before issue 17); `shift`: "
            "2·value − bootstrap (R `segregation`). Errors are mean estimate − truth."
        ),
        "",
        (
            "| index | true value | areas | people/area | flagged | coverage | below | above | old | shift | "
            "error of value | error corrected | error shift |"
        ),
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    lines += [row(c) for c in cov]
    lines += ["", summary([(c["flagged"], c["coverage"]) for c in cov]), ""]
    if size:
        lines += [
            (
                "Size of the random-allocation p-value of D under the null (every share 0.2), "
                f"{NULL_PERMUTATIONS} simulations, {size[0]['reps']} replicates:"
            ),
            "",
            "| areas | people/area | rejected at 0.05 | rejected at 0.01 |",
            "|---|---|---|---|",
        ]
        lines += [f"| {s['areas']} | {s['people']} | {fmt(s['rejected_05'])} | {fmt(s['rejected_01'])} |" for s in size]
    return "\n".join(lines) + "\n"


def main(quick: bool = False, processes: int = 2, only: list[str] | None = None) -> None:
    from benchmarks.common import RESULTS, write

    reps = 150 if quick else REPS
    jobs = [
        ("coverage", pt, reps if pt.areas <= 200 else reps // 2) for pt in grid(quick) if not only or pt.index in only
    ]
    sizes = [(n, m) for n in AREAS for m in PEOPLE] if not quick else [(30, 200)]
    sizes = [] if only else sizes
    jobs += [("size", s, 200 if quick else NULL_REPS) for s in sizes]
    start = time.perf_counter()
    # Biggest first, so the two processes finish together.
    order = sorted(range(len(jobs)), key=lambda i: -(jobs[i][1].areas if jobs[i][0] == "coverage" else jobs[i][1][0]))
    with mp.get_context("fork").Pool(processes) as pool:
        done = dict(zip(order, pool.map(_run, [jobs[i] for i in order], chunksize=1)))
    results = [done[i] for i in range(len(jobs))]
    seconds = time.perf_counter() - start
    cov = [r for r in results if "coverage" in r]
    size = [r for r in results if "rejected_05" in r]
    if only:  # re-measure some indices in the existing report
        write("calibration", merge((RESULTS / "calibration.md").read_text(), cov, seconds))
        return
    text = report(cov, size, seconds, reps)
    if quick:  # a look, not a result: results/calibration.md holds the full grid only
        print(text)
    else:
        write("calibration", text)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a few grid points, fewer replicates")
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument(
        "--index", action="append", help="re-measure only this index's points in results/calibration.md"
    )
    args = parser.parse_args()
    main(quick=args.quick, processes=args.processes, only=args.index)
