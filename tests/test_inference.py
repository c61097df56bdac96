"""Inference: seeded, never p = 0, detects planted segregation, not random noise; comparisons."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from spatial.indices import get
from spatial.indices.inference import compare_samples, infer, two_sided_p

D = get("dissimilarity").evaluator()
MD = get("multigroup_dissimilarity").evaluator()


def random_city(n=200, seed=0):
    rng = np.random.default_rng(seed)
    t = rng.integers(50, 400, n).astype(float)
    return rng.binomial(t.astype(int), 0.2).astype(float), t


def segregated_city(n=200, seed=0):
    rng = np.random.default_rng(seed)
    t = rng.integers(50, 400, n).astype(float)
    p = np.where(np.arange(n) < n // 4, 0.6, 0.07)
    return rng.binomial(t.astype(int), p).astype(float), t


def test_same_seed_same_numbers_and_p_never_zero():
    x, t = segregated_city()
    a = infer(D, (x, t), kind="two_group", permutations=199, seed=11)
    b = infer(D, (x, t), kind="two_group", permutations=199, seed=11)
    assert a == b
    assert a["p_value"] == pytest.approx(1 / 200)  # nothing as extreme: the +1 correction, not 0
    assert a["ci_low"] <= a["value"] <= a["ci_high"]


def test_random_allocation_city_is_not_significant_and_expected_is_positive():
    x, t = random_city(seed=3)
    out = infer(D, (x, t), kind="two_group", permutations=499, seed=5)
    assert out["p_value"] > 0.05
    # Small areas show unevenness by chance alone: the null mean is well above 0 and near the value.
    assert 0 < out["expected"] == pytest.approx(out["value"], rel=0.25)


def test_p_values_are_uniform_under_the_null():
    from scipy import stats

    ps = [infer(D, random_city(n=60, seed=s), kind="two_group", permutations=99, seed=s)["p_value"] for s in range(60)]
    assert stats.kstest(ps, "uniform").pvalue > 0.001  # generous: 99-permutation p-values are discrete


def test_multigroup_and_permutation_null():
    rng = np.random.default_rng(1)
    X = rng.multinomial(200, [0.5, 0.3, 0.2], size=80).astype(float)
    out = infer(MD, (X,), kind="multigroup", permutations=99, seed=1)
    assert 0 < out["p_value"] <= 1 and out["expected"] > 0
    x, t = segregated_city()
    shuffled = infer(D, (x, t), kind="two_group", null="permutation", permutations=49, seed=1)
    assert shuffled["expected"] == pytest.approx(shuffled["value"])  # aspatial D ignores where areas are


def test_compare_detects_a_real_difference_and_not_a_null_one():
    seg, rnd = segregated_city(seed=1), random_city(seed=2)
    real = compare_samples(D, seg, D, rnd, kind="two_group", permutations=199, seed=3)
    assert real["difference"] > 0 and real["p_value"] < 0.01 and real["ci_low"] > 0
    same = compare_samples(
        D, segregated_city(seed=4), D, segregated_city(seed=5), kind="two_group", permutations=199, seed=3
    )
    assert same["p_value"] > 0.01 and same["ci_low"] < 0 < same["ci_high"] or abs(same["difference"]) < 0.03


def test_two_sided_p_counts_both_tails():
    sims = np.array([-2.0, -1, 0, 1, 2])
    assert two_sided_p(2.0, sims) == pytest.approx(3 / 6)
    assert two_sided_p(5.0, sims) == pytest.approx(1 / 6)


def test_memory_is_bounded_by_block():
    x, t = random_city(n=5000)
    seen = []

    def spy(xb, tb):
        seen.append(xb.shape[0])
        return D(xb, tb)

    infer(spy, (x, t), kind="two_group", permutations=300, seed=0, block_size=64)
    assert max(seen[1:]) == 64


def test_normal_approximation_gives_the_exact_null_distribution_of_d():
    """Areas at the approximation's edge (variance 9-20): the null D's mean and spread match exact binomial draws."""
    from spatial.indices.aspatial import dissimilarity
    from spatial.indices.inference import NORMAL_APPROX_MIN_VAR, binomial_counts

    rng = np.random.default_rng(11)
    t = rng.integers(100, 230, 3000).astype(float)
    P = 0.1
    assert (t * P * (1 - P) >= NORMAL_APPROX_MIN_VAR).all()  # every area takes the approximate path
    approx = dissimilarity(binomial_counts(rng, t, P, 4000).astype(float), np.broadcast_to(t, (4000, len(t))))
    exact = dissimilarity(
        rng.binomial(t.astype(np.int64), P, size=(4000, len(t))).astype(float), np.broadcast_to(t, (4000, len(t)))
    )
    assert abs(approx.mean() - exact.mean()) < 0.01 * exact.mean()
    assert abs(approx.std() - exact.std()) < 0.06 * exact.std()
    assert stats.ks_2samp(approx, exact).pvalue > 0.001
