"""What the D test's speed-up (#20) changed in its numbers, and that its statistics did not change.

The null's counts are the same numbers as before (same generator calls; tests/test_d_test_speed.py). Two things
moved: D of float32 counts is summed over a common denominator (rounding), and on the large-city path the small
areas' exact draws at λ ≠ 0 are made by inversion of tabulated CDFs instead of numpy's binomial, in another
order (by population and share): other uniforms, the same distribution. Measured here at 10,000 areas (the grid city's populations):

1. D both ways on the same null draws, many seeds: largest relative difference; the null's mean and sd per seed.
2. Size: cities drawn under random allocation, the share of p-values <= 0.05 and <= 0.01 with either D.
3. The large-city interval with the small areas drawn as before and as now, over seeds.

python -m benchmarks.d_test --equivalence   (about 2 min on an idle core)
"""

from __future__ import annotations

import contextlib

import numpy as np

from benchmarks.common import header, write
from spatial.indices import get
from spatial.indices.inference import _block_size, calibrate, reuse, two_sided_p
from spatial.indices.inference.draws import BinomialSampler, _quantile_tables, null_sampler

N = 10_000
D = get("dissimilarity").evaluator()


def definition(x, t):
    """D = ½ Σ |x/X − y/Y|: the implementation before #20, term by term."""
    X, Y = x.sum(axis=-1)[..., None], (t - x).sum(axis=-1)[..., None]
    return 0.5 * np.abs(x / X - (t - x) / Y).sum(axis=-1)


def populations(n: int = N) -> np.ndarray:
    return np.random.default_rng(0).integers(50, 1500, n).astype(float)  # as benchmarks.common.grid_city


def grid_counts(t: np.ndarray) -> np.ndarray:
    side = int(np.ceil(np.sqrt(len(t))))
    i, j = np.divmod(np.arange(len(t)), side)
    p = np.where((i < side / 3) & (j < side / 3), 0.35, 0.08)
    return np.random.default_rng(1).binomial(t.astype(np.int64), p).astype(float)


def null_values(x, t, seed: int, draws: int = 999) -> tuple[np.ndarray, np.ndarray]:
    """``draws`` null cities (the large path's sampler), D both ways on each."""
    sampler, t32 = null_sampler((x, t), fast=True)
    rng, block = np.random.default_rng([seed, 5]), _block_size(len(t), 2, None)
    new, old = np.empty(draws), np.empty(draws)
    for at in range(0, draws, block):
        b = min(block, draws - at)
        xs = sampler.draw(rng, b)
        tb = np.broadcast_to(t32, xs.shape)
        new[at : at + b], old[at : at + b] = D(xs, tb), definition(xs, tb)
    return new, old


def same_draws(seeds: int = 100) -> str:
    t = populations()
    x = grid_counts(t)
    rel, dm, ds, sds = 0.0, 0.0, 0.0, []
    for s in range(seeds):
        new, old = null_values(x, t, s)
        rel = max(rel, float(np.max(np.abs(new / old - 1))))
        dm, ds = max(dm, abs(new.mean() - old.mean())), max(ds, abs(new.std() - old.std()))
        sds.append(old.std())
    sd = float(np.mean(sds))
    return (
        f"1. **Same null draws, D both ways** ({seeds} seeds × 999 cities, the grid city's counts): largest relative "
        f"difference of a simulated D {rel:.2g}; largest difference of a seed's null mean {dm:.2g} "
        f"({dm / sd:.2g} of the null's sd, {sd:.3g}) and of its sd {ds:.2g}.\n"
    )


def size(replicates: int = 400) -> str:
    t = populations()
    P = grid_counts(t).sum() / t.sum()
    p_new, p_old = [], []
    for r in range(replicates):
        x = np.random.default_rng([r, 7]).binomial(t.astype(np.int64), P).astype(float)
        new, old = null_values(x, t, 10_000 + r)
        p_new.append(two_sided_p(float(D(x, t)), new))
        p_old.append(two_sided_p(float(definition(x, t)), old))
    p_new, p_old = np.array(p_new), np.array(p_old)
    se = np.sqrt(0.05 * 0.95 / replicates)
    return (
        f"2. **Size under the null** ({replicates} cities drawn by random allocation at the grid city's share "
        f"{P:.3f}, 999 simulations each): p <= 0.05 in {np.mean(p_new <= 0.05):.3f} (definition: "
        f"{np.mean(p_old <= 0.05):.3f}; 0.05 ± {1.96 * se:.3f} expected), p <= 0.01 in {np.mean(p_new <= 0.01):.3f} "
        f"({np.mean(p_old <= 0.01):.3f}); p-values differing between the two: {int(np.sum(p_new != p_old))}.\n"
    )


@contextlib.contextmanager
def old_order():
    """BinomialSampler as before #20 on the large path: small areas ordered by population only, drawn by numpy's
    binomial where their shares differ (not by inversion)."""
    init = BinomialSampler.__init__

    def patched(self, t, p, reuse=False, fast=False):
        init(self, t, p, reuse, fast)
        if fast and len(self.exact):
            shares = np.broadcast_to(np.asarray(p, dtype=float), t.shape)
            idx = np.sort(self.exact)
            self.exact = idx[np.argsort(t[idx], kind="stable")]
            self.trials = np.rint(t[self.exact]).astype(np.int64)
            self.p_exact = np.clip(shares[self.exact], 0, 1)
            self.tables = _quantile_tables(self.trials, self.p_exact)
            self.inversion = None  # numpy's binomial where shares differ, as before

    BinomialSampler.__init__ = patched
    try:
        yield
    finally:
        BinomialSampler.__init__ = init


def interval(seeds: int = 20) -> str:
    t = populations()
    x = grid_counts(t)
    observed = float(D(x, t))
    reuse.ENABLED = False
    rows = {}
    for name, ctx in (("before", old_order), ("now", contextlib.nullcontext)):
        with ctx():
            cal = [calibrate(D, (x, t), "two_group", observed, seed=s, path="asymptotic") for s in range(seeds)]
        rows[name] = np.array([[c["estimate"], c["ci_low"], c["ci_high"]] for c in cal])
    reuse.ENABLED = True
    old, new = rows["before"], rows["now"]
    half = float(np.mean(old[:, 2] - old[:, 1]) / 2)
    sd = old.std(axis=0, ddof=1)
    lines = [
        f"3. **Large-city interval, small areas drawn as before (numpy's binomial) and now (inversion)** ({seeds} seeds, the grid city's "
        f"counts, D {observed:.5f}; mean half-width {half:.3g}):\n",
        "| | estimate | ci_low | ci_high |",
        "|---|---|---|---|",
    ]
    for name, a in rows.items():
        lines.append(
            f"| {name}: mean (sd over seeds) | "
            + " | ".join(f"{m:.6f} ({s:.2g})" for m, s in zip(a.mean(axis=0), a.std(axis=0, ddof=1)))
            + " |"
        )
    diff = (new - old).mean(axis=0)
    se = (new - old).std(axis=0, ddof=1) / np.sqrt(seeds)
    lines.append(
        "| mean difference now − before (its SE) | " + " | ".join(f"{d:.2g} ({e:.2g})" for d, e in zip(diff, se)) + " |"
    )
    lines.append("| same, in seed-to-seed sds | " + " | ".join(f"{d / s:.2g}" for d, s in zip(diff, sd)) + " |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parts = [same_draws(), size(), interval()]
    write(
        "d_test_equivalence",
        header("What the D test's speed-up changed in its numbers (#20)")
        + __doc__.split("\n\n")[1].replace("\n", " ")
        + "\n\n"
        + "\n".join(parts),
    )


if __name__ == "__main__":
    main()
