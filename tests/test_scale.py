"""What lets inference run at a million areas without changing its numbers: binomial set-up made once, block
buffers reused (memory grows with n, not n × simulations), results pinned to the implementation before that."""

from __future__ import annotations

import numpy as np
import pytest

from spatial.indices import get
from spatial.indices.inference import BinomialSampler, binomial_counts, compare_samples, infer


def city(n=400, seed=2):
    """benchmarks.common.grid_city's counts: a corner cluster at 0.35, elsewhere 0.08."""
    side = int(np.ceil(np.sqrt(n)))
    rng = np.random.default_rng(seed)
    i, j = np.divmod(np.arange(n), side)
    total = rng.integers(50, 1500, n)
    p = np.where((i < side / 3) & (j < side / 3), 0.35, 0.08)
    return rng.binomial(total, p).astype(float), total.astype(float)


def test_reused_buffer_gives_the_same_draws_and_stays_one_buffer():
    rng_t = np.random.default_rng(0)
    t = rng_t.integers(1, 2000, 5000).astype(float)
    p = rng_t.uniform(0, 1, 5000)
    fresh = [binomial_counts(np.random.default_rng(3), t, p, 7)]
    sampler, rng = BinomialSampler(t, p, reuse=True), np.random.default_rng(3)
    first = sampler.draw(rng, 7)
    np.testing.assert_array_equal(first, fresh[0])
    again = sampler.draw(rng, 5)
    assert np.shares_memory(first, again)  # the block is written where the last one was
    rng2 = np.random.default_rng(3)
    binomial_counts(rng2, t, p, 7)
    np.testing.assert_array_equal(again, binomial_counts(rng2, t, p, 5))
    assert ((again >= 0) & (again <= t)).all() and np.array_equal(again, np.rint(again))


def test_same_seed_same_numbers_as_before_the_buffers():
    """Pinned: the output of the previous implementation (one module, fresh arrays per block), same seeds. Since
    #20 D of float32 counts is summed over a common denominator (tests/test_d_test_speed.py): its rounding moves
    these by < 2e-7 relative (a different stream would move them by ~1e-3), hence rel=1e-6."""
    x, t = city()
    D = get("dissimilarity").evaluator()
    r = infer(D, (x, t), kind="two_group", permutations=99, seed=7)
    got = [r["p_value"], r["value_bias_corrected"], r["ci_low"], r["ci_high"], r["expected"]]
    want = [0.01, 0.29061696460496284, 0.28527322222156015, 0.2963948214018934, 0.04282887554680458]
    assert got == pytest.approx(want, rel=1e-6, abs=1e-15)
    c = compare_samples(D, (x, t), D, (x[:200], t[:200]), kind="two_group", permutations=49, seed=7)
    got = [c["p_value"], c["difference_bias_corrected"], c["ci_low"], c["ci_high"]]
    want = [0.02, -0.1112953652968357, -0.11836370440019864, -0.10315918885227181]
    assert got == pytest.approx(want, rel=1e-6, abs=1e-15)
