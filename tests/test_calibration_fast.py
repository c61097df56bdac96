"""The calibration's large-city path (issues 20 and 14): which path runs, how much it simulates, that it agrees
with the full calibration at moderate n, its table normals, and the reuse of seeded calibration work."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from benchmarks.calibration import Point, city
from spatial.indices import get
from spatial.indices.inference import (
    FAST_DRAWS,
    FAST_MIN_AREAS,
    FINE,
    GRID,
    BinomialSampler,
    calibrate,
    compare_samples,
    fast_path,
    infer,
    reuse,
)
from spatial.indices.inference.draws import TABLE_BOUND, normal_table, table_normals

D = get("dissimilarity").evaluator()


class Counting:
    """The dissimilarity evaluator, counting the simulated cities it is given."""

    def __init__(self):
        self.rows = 0

    def __call__(self, x, t):
        self.rows += 1 if np.ndim(x) == 1 else len(x)
        return D(x, t)


@pytest.fixture(scope="module")
def moderate():
    """4,000 areas of ~300 people, true D 0.2: one draw of counts."""
    t, p = city(Point(0.2, 4000, 300))
    return np.random.default_rng(5).binomial(t.astype(np.int64), p).astype(float), t


@pytest.fixture(scope="module")
def large():
    t = np.random.default_rng(1).integers(50, 400, FAST_MIN_AREAS).astype(float)
    p = np.where(np.arange(FAST_MIN_AREAS) < FAST_MIN_AREAS // 5, 0.35, 0.1)
    return np.random.default_rng(2).binomial(t.astype(np.int64), p).astype(float), t


def test_path_switches_at_the_stated_size():
    assert not fast_path("auto", FAST_MIN_AREAS - 1) and fast_path("auto", FAST_MIN_AREAS)
    assert fast_path("asymptotic", 30) and not fast_path("full", 10**7)
    with pytest.raises(ValueError, match="calibration path"):
        fast_path("quick", 10)


def test_large_city_takes_the_asymptotic_path_says_so_and_simulates_a_bounded_number_of_cities(large):
    reuse.clear()
    counting = Counting()
    out = infer(counting, large, kind="two_group", permutations=99, seed=3)
    assert out["interval_method"] == "test_inversion_asymptotic"
    # the observed value, the null's draws, FAST_DRAWS cities at each λ and the family's own values along FINE,
    # for each of the two families (deconvolved and scaled)
    assert counting.rows == 1 + 99 + 2 * (len(GRID) * FAST_DRAWS + len(FINE))
    # the areas' shares sit far from the city's, so the noise bias is small: the interval holds the true D
    # (by hand, of the generating shares), the value just above it (the scaled family put it 2 half-widths lower)
    t = np.random.default_rng(1).integers(50, 400, FAST_MIN_AREAS).astype(float)
    p = np.where(np.arange(FAST_MIN_AREAS) < FAST_MIN_AREAS // 5, 0.35, 0.1)
    truth = 0.5 * np.abs(t * p / (t * p).sum() - t * (1 - p) / (t * (1 - p)).sum()).sum()
    assert out["ci_low"] <= truth <= out["ci_high"] and out["ci_low"] <= out["value_bias_corrected"] < out["value"]
    assert 0 < out["p_value"] <= 0.01


def test_asymptotic_agrees_with_the_full_calibration_at_moderate_n(moderate):
    """Same data and seeds: the estimate within 0.3 and the interval's ends within 0.5 of the full interval's
    half-width (measured: 0.17 and 0.37 over 10 seeds; the full path also widens by its nested step, ~1.1)."""
    value = float(D(*moderate))
    for seed in range(2):
        full = calibrate(D, moderate, "two_group", value, seed=seed, path="full")
        fast = calibrate(D, moderate, "two_group", value, seed=seed, path="asymptotic")
        assert full["method"] == "test_inversion" and fast["method"] == "test_inversion_asymptotic"
        half = (full["ci_high"] - full["ci_low"]) / 2
        assert abs(fast["estimate"] - full["estimate"]) < 0.3 * half
        assert abs(fast["ci_low"] - full["ci_low"]) < 0.5 * half and abs(fast["ci_high"] - full["ci_high"]) < 0.5 * half
        assert fast["ci_low"] < fast["estimate"] < fast["ci_high"] < value  # the raw value is biased upward


def test_table_normals_are_standard_bounded_and_seeded():
    table = normal_table()
    assert len(table) == 2**16 and abs(table.mean()) < 1e-7 and table.var() == pytest.approx(1, abs=1e-6)
    assert np.abs(table).max() < TABLE_BOUND
    a, b = np.empty((3, 1001), np.float32), np.empty((3, 1001), np.float32)
    table_normals(np.random.default_rng(9), a)
    table_normals(np.random.default_rng(9), b)
    np.testing.assert_array_equal(a, b)
    assert stats.kstest(a.ravel(), "norm").pvalue > 0.001


def test_fast_sampler_gives_the_null_distribution_of_exact_draws():
    """Areas at the normal approximation's edge, some of them near 0 and t (the clipped ones)."""
    rng = np.random.default_rng(11)
    t = rng.integers(100, 230, 1500).astype(float)
    P = 0.1
    fast = BinomialSampler(t, P, fast=True)
    assert len(fast.low) > 0  # some areas can reach 0: they are clipped
    x = fast.draw(rng, 3000).astype(float)
    assert ((x >= 0) & (x <= t)).all() and np.array_equal(x, np.rint(x))
    tb = np.broadcast_to(t, (3000, len(t)))
    approx = D(x, tb)
    exact = D(rng.binomial(t.astype(np.int64), P, size=(3000, len(t))).astype(float), tb)
    assert abs(approx.mean() - exact.mean()) < 0.01 * exact.mean()
    assert abs(approx.std() - exact.std()) < 0.06 * exact.std()
    assert stats.ks_2samp(approx, exact).pvalue > 0.001


def test_common_normals_make_the_same_counts_as_a_draw():
    t = np.random.default_rng(0).integers(20, 2000, 500).astype(float)
    p = np.random.default_rng(1).uniform(0.05, 0.95, 500)
    sampler = BinomialSampler(t, p, fast=True)
    z = np.empty((4, 500), np.float32)
    table_normals(np.random.default_rng(4), z)
    via = sampler.from_normals(np.random.default_rng(5), z, np.empty_like(z))
    rng = np.random.default_rng(4)
    drawn = BinomialSampler(t, p, fast=True).draw(rng, 4)
    exact = sampler.exact
    keep = np.setdiff1d(np.arange(500), exact)
    np.testing.assert_array_equal(via[:, keep], drawn[:, keep])


def test_seeded_calibration_is_reused_and_gives_the_same_numbers(moderate):
    reuse.clear()
    value = float(D(*moderate))
    first, again = Counting(), Counting()
    a = calibrate(first, moderate, "two_group", value, seed=1, path="asymptotic")
    rows = first.rows
    b = calibrate(first, moderate, "two_group", value, seed=1, path="asymptotic")
    assert first.rows == rows == 2 * (len(GRID) * FAST_DRAWS + len(FINE))  # same evaluator, data, seed: reused
    assert [a[k] for k in ("estimate", "ci_low", "ci_high", "within_noise")] == [
        b[k] for k in ("estimate", "ci_low", "ci_high", "within_noise")
    ]
    np.testing.assert_array_equal(a["draws"], b["draws"])
    # an evaluator made again for the same index is the same index
    c = calibrate(get("dissimilarity").evaluator(), moderate, "two_group", value, seed=1, path="asymptotic")
    assert c["estimate"] == a["estimate"]
    calibrate(again, moderate, "two_group", value, seed=2, path="asymptotic")  # another seed: simulated again
    assert again.rows == rows
    unseeded = Counting()
    calibrate(unseeded, moderate, "two_group", value, seed=None, path="asymptotic")
    calibrate(unseeded, moderate, "two_group", value, seed=None, path="asymptotic")
    assert unseeded.rows == 2 * rows  # fresh entropy is never reused


def test_comparison_on_the_large_path(large):
    reuse.clear()
    x, t = large
    cmp = compare_samples(D, large, D, (x[::-1].copy(), t[::-1].copy()), kind="two_group", permutations=199, seed=2)
    assert cmp["interval_methods"] == ["test_inversion_asymptotic"] * 2
    # the same city in another order: same D, a difference of 0 inside its interval, not significant
    assert cmp["difference"] == pytest.approx(0, abs=1e-12)
    assert cmp["ci_low"] < 0 < cmp["ci_high"] and cmp["p_value"] > 0.2


def test_small_areas_of_the_null_are_drawn_from_exact_quantile_tables():
    """Areas too small for the normal approximation, one share: a lookup table per population instead of numpy's
    binomial; the table's own distribution has the binomial's mean and variance, and the draws are seeded."""
    from spatial.indices.inference.draws import _quantile_tables

    flat, offset = _quantile_tables(np.array([12, 50, 91]), np.full(3, 0.11))
    for j, n in enumerate((12, 50, 91)):
        row = flat[offset[j] : offset[j] + 2**16]
        assert row.mean() == pytest.approx(n * 0.11, rel=1e-4) and row.var() == pytest.approx(n * 0.11 * 0.89, rel=1e-3)
        assert row.min() >= 0 and row.max() <= n
    assert _quantile_tables(np.array([12, 50]), np.array([0.1, 0.2])) is None  # shares differ: numpy's binomial
    t = np.random.default_rng(0).integers(5, 120, 2000).astype(float)
    sampler = BinomialSampler(t, 0.11, fast=True)
    assert sampler.tables is not None and len(sampler.exact) > 1000
    a = sampler.draw(np.random.default_rng(4), 50).copy()
    np.testing.assert_array_equal(a, BinomialSampler(t, 0.11, fast=True).draw(np.random.default_rng(4), 50))
    small = a[:, sampler.exact]
    assert ((small >= 0) & (small <= sampler.trials)).all()
    assert small.mean() == pytest.approx((sampler.trials * 0.11).mean(), rel=0.01)


def test_the_same_numbers_on_one_thread_or_two(large, monkeypatch):
    """The large-city path's chunks each have their own generator: the thread count does not change a result."""
    from spatial.indices.inference import threaded

    results = []
    for threads in (1, 2):
        monkeypatch.setattr(threaded, "THREADS", threads)
        reuse.clear()
        results.append(infer(D, large, kind="two_group", permutations=99, seed=8))
    keys = ("p_value", "expected", "value_bias_corrected", "ci_low", "ci_high")
    assert [results[0][k] for k in keys] == [results[1][k] for k in keys]


def test_a_cancelled_job_stops_inside_the_threads(large):
    """Cancelled while the null's chunks run on two threads: the job ends soon after, with Cancelled."""
    from spatial.cancel import Cancelled, CancelToken, running

    token, counting = CancelToken(), Counting()

    def evaluate(x, t):
        if counting.rows >= 20:
            token.cancel("test")
        return counting(x, t)

    reuse.clear()
    with pytest.raises(Cancelled):
        with running(token):
            infer(evaluate, large, kind="two_group", permutations=999, seed=9)
    assert 20 <= counting.rows < 200  # not the 999 simulations, nor the calibration after them


def test_reuse_can_be_switched_off_for_timing(moderate, monkeypatch):
    monkeypatch.setattr(reuse, "ENABLED", False)
    value, counting = float(D(*moderate)), Counting()
    for _ in range(2):
        calibrate(counting, moderate, "two_group", value, seed=1, path="asymptotic")
    assert counting.rows == 4 * (len(GRID) * FAST_DRAWS + len(FINE))  # two calls, two families each


def test_an_interval_of_the_large_city_path_says_it_may_under_cover(monkeypatch):
    import geopandas as gpd
    from shapely.geometry import box

    from spatial.dataset import validate
    from spatial.indices import compute
    from spatial.indices.inference import asymptotic

    rng = np.random.default_rng(3)
    a, b = rng.integers(0, 40, 60), rng.integers(0, 40, 60)
    gdf = gpd.GeoDataFrame(
        {"id": [f"u{i}" for i in range(60)], "a": a, "b": b},
        geometry=[box(i % 10, i // 10, i % 10 + 1, i // 10 + 1) for i in range(60)],
        crs="EPSG:3857",
    )
    city_ = validate(gdf, id_col="id", groups=["a", "b"])
    opts = compute.IndexOptions(groups=("a",), indices=("dissimilarity",), permutations=99, seed=1)
    small = compute.compute_indices(city_, opts)["dissimilarity"]
    assert small.interval_method != "test_inversion_asymptotic"
    assert "interval_may_undercover" not in [n.code for n in small.notes]
    monkeypatch.setattr(asymptotic, "FAST_MIN_AREAS", 50)  # this city as if it were large
    reuse.clear()
    large = compute.compute_indices(city_, opts)["dissimilarity"]
    assert large.interval_method == "test_inversion_asymptotic"
    note = next(n for n in large.notes if n.code == "interval_may_undercover")
    assert "80 %" in note.message
