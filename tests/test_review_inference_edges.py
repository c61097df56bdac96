"""Edge cases of the simulated counts found in review: set-up bounded by the areas' variance, not their size."""

from __future__ import annotations

import time

import numpy as np
from scipy import stats

from spatial.indices.inference.draws import TABLE_BITS, BinomialSampler, _quantile_tables


def test_quantile_tables_equal_the_full_cdf_search():
    # the tables are searchsorted(cdf over 0..n, u): computed here over the whole support, independently
    u = (np.arange(2**TABLE_BITS) + 0.5) / 2**TABLE_BITS
    for p in (0.0, 0.03, 0.2, 1.0):
        trials = np.array([0, 1, 7, 40, 300])
        flat, offset = _quantile_tables(trials, np.full(len(trials), p))
        for j, n in enumerate(trials):
            want = np.minimum(np.searchsorted(stats.binom.cdf(np.arange(n + 1), n, p), u, side="left"), n)
            assert np.array_equal(flat[offset[j] : offset[j] + 2**TABLE_BITS], want), (n, p)


def test_one_huge_small_variance_area_sets_up_quickly():
    # an area of 10^9 people at a city-wide share of 10^-9 has variance 1: drawn exactly from a table, which
    # must not tabulate the binomial CDF at a billion points (8 GB, minutes)
    t = np.full(20_000, 10.0)
    t[0] = 1e9
    started = time.perf_counter()
    sampler = BinomialSampler(t, 1e-9, reuse=True, fast=True)
    assert time.perf_counter() - started < 5
    draws = sampler.draw(np.random.default_rng(1), 4)
    assert draws.shape == (4, 20_000) and np.all((draws >= 0) & (draws <= t))
    assert draws[:, 0].max() < 30  # Binomial(10^9, 10^-9) is about Poisson(1)


class _TopUniforms:
    """A generator whose uniforms are all the largest double below 1: the walk's far end."""

    def random(self, size):
        return np.full(size, np.nextafter(1.0, 0.0))


def test_inversion_never_draws_more_than_the_trials():
    from spatial.indices.inference.inversion import Inversion

    rng = np.random.default_rng(0)
    t = np.r_[np.arange(40), 200].astype(np.int64)  # the large area widens every row's window past its own t
    p = np.r_[rng.uniform(0, 0.5, 40), 0.04]
    for shares in (p, 1 - p):  # above 1/2 the draws are t minus a draw at 1 - p
        k = Inversion(t, shares).draw(_TopUniforms(), 1)[0]
        assert np.all((k >= 0) & (k <= t)), (k, t)
