"""The 999-simulation D test at a million areas (#20): what made it faster keeps its numbers. Counts made tile by
tile equal the whole-block computation they replace, without an index array of the block's size; D over a common
denominator equals its definition; a read-only row of totals is summed once."""

from __future__ import annotations

import tracemalloc

import numpy as np
import pytest

from spatial.indices.aspatial import _ROW_SUMS, _row_sums, dissimilarity
from spatial.indices.inference import draws
from spatial.indices.inference.draws import BinomialSampler, normal_table, null_sampler, table_normals


def whole_block(sampler: BinomialSampler, z: np.ndarray) -> np.ndarray:
    """rint(mean + sd·z) clipped to [0, t] over the whole block at once (the computation before #20)."""
    out = np.multiply(z, sampler.sd)
    out += sampler.mean
    np.rint(out, out=out)
    return np.minimum(np.maximum(out, np.float32(0)), sampler.top)


def words(seed: int, size: int) -> np.ndarray:
    return np.random.default_rng(seed).bit_generator.random_raw(-(-size // 4)).view(np.uint16)[:size]


@pytest.mark.parametrize(("n", "tile"), [(1000, 64), (1000, 999), (37, 10), (37, 4096)])
def test_counts_made_tile_by_tile_equal_the_whole_block(monkeypatch, n, tile):
    """Tiles across areas (n >= tile, a short last tile) and across cities (n < tile): the same numbers."""
    monkeypatch.setattr(draws, "TILE", tile)
    rng = np.random.default_rng(0)
    t = rng.integers(0, 400, n).astype(float)
    p = rng.uniform(0, 1, n)
    z = table_normals(np.random.default_rng(1), np.empty((5, n), np.float32))
    np.testing.assert_array_equal(z, normal_table()[words(1, 5 * n)].reshape(5, n))
    for fast in (False, True):
        sampler = BinomialSampler(t, p, fast=fast)
        keep = np.setdiff1d(np.arange(n), sampler.exact)
        got = sampler.from_normals(np.random.default_rng(2), z)
        np.testing.assert_array_equal(got[:, keep], whole_block(sampler, z)[:, keep])
    # a draw: its normals (numpy's, or the table's for large cities), then the small areas, in the generator's order
    plain = BinomialSampler(t, p).draw(np.random.default_rng(4), 3)
    rng = np.random.default_rng(4)
    want = whole_block(BinomialSampler(t, p), rng.standard_normal((3, n), dtype=np.float32))
    s = BinomialSampler(t, p)
    want[:, s.exact] = rng.binomial(s.trials, s.p_exact, size=(3, len(s.exact)))
    np.testing.assert_array_equal(plain, want)


def test_a_draw_at_a_million_areas_makes_no_index_array_of_its_size():
    """np.take wants 8-byte indices: made per tile (256 KB), not for the block (8 MB a million areas)."""
    n = 1_000_000
    t = np.random.default_rng(0).integers(50, 1500, n).astype(float)
    sampler, _ = null_sampler((np.rint(t * 0.11), t), fast=True)
    out = np.empty((1, n), np.float32)
    sampler.draw(np.random.default_rng(1), 1)  # its block buffer, kept across draws
    tracemalloc.start()
    try:
        table_normals(np.random.default_rng(1), out)
        normals = tracemalloc.get_traced_memory()[1]
        tracemalloc.reset_peak()
        sampler.draw(np.random.default_rng(1), 1)
        drawn = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert normals < 3 * 2**20  # the 16-bit words (2 MB) and one tile of indices
    assert drawn < 4 * 2**20  # the same, and the small areas' table lookups


def test_dissimilarity_over_a_common_denominator_is_its_definition():
    x, t = np.array([10.0, 0.0, 5.0, 0.0]), np.array([20.0, 10.0, 5.0, 0.0])
    assert dissimilarity(x, t) == pytest.approx(0.5, abs=1e-15)  # ½(|10/15 − 10/20| + |0 − 10/20| + |5/15 − 0|)
    rng = np.random.default_rng(3)
    t = rng.integers(0, 900, (6, 5000)).astype(float)
    x = rng.binomial(t.astype(np.int64), rng.uniform(0, 1, 5000)).astype(float)
    X, Y = x.sum(axis=1, keepdims=True), (t - x).sum(axis=1, keepdims=True)
    definition = 0.5 * np.abs(x / X - (t - x) / Y).sum(axis=1)
    np.testing.assert_allclose(dissimilarity(x, t), definition, rtol=1e-13)
    np.testing.assert_allclose(dissimilarity(x.astype(np.float32), t.astype(np.float32)), definition, rtol=1e-6)
    with np.errstate(all="ignore"):  # nobody in the group, or everybody: undefined, as the definition
        assert np.isnan(dissimilarity(np.zeros(3), np.ones(3))) and np.isnan(dissimilarity(np.ones(3), np.ones(3)))


def test_a_read_only_row_of_totals_is_summed_once():
    _ROW_SUMS.clear()
    t = np.random.default_rng(0).uniform(0, 1500, 100_003).astype(np.float32)
    block = np.broadcast_to(t, (3, len(t)))
    assert (_row_sums(block) == block.sum(axis=-1)).all() and id(t) not in _ROW_SUMS  # writeable: not kept
    t.flags.writeable = False
    assert (_row_sums(np.broadcast_to(t, (1, len(t)))) == t.sum()).all() and id(t) in _ROW_SUMS
    _ROW_SUMS[id(t)] = (_ROW_SUMS[id(t)][0], np.float32(-1))
    assert _row_sums(np.broadcast_to(t, (2, len(t))))[1] == -1  # the kept sum, not a new one
    _ROW_SUMS.pop(id(t))
    x = np.rint(t * 0.2)[None]
    assert dissimilarity(x, np.broadcast_to(t, x.shape)) == pytest.approx(dissimilarity(x, t[None].copy()), rel=0)
    key = id(t)
    del t, block
    assert key not in _ROW_SUMS  # gone with its row


def test_kept_row_sums_are_few():
    _ROW_SUMS.clear()
    rows = []
    for k in range(12):
        row = np.full(10, float(k))
        row.flags.writeable = False
        rows.append(row)
        assert _row_sums(np.broadcast_to(row, (1, 10)))[0] == 10 * k
    assert len(_ROW_SUMS) == 8 and id(rows[-1]) in _ROW_SUMS and id(rows[0]) not in _ROW_SUMS


def test_small_areas_at_differing_shares_are_drawn_exactly_by_inversion():
    """The large path's small areas at λ ≠ 0 (a share each): tabulated CDFs equal scipy's, the draws follow the
    binomial (chi-square), shares above ½ and the edges (t = 0, p = 0, p = 1) come out right, seeded."""
    from scipy import stats

    from spatial.indices.inference.inversion import TAIL, Inversion

    rng = np.random.default_rng(0)
    t, p = rng.integers(0, 3000, 6000), rng.uniform(0, 1, 6000)
    small = t * p * (1 - p) < 9
    t, p = t[small], p[small]
    order = np.lexsort((p, t))
    t, p = t[order], p[order]
    inv = Inversion(t, p)
    q = np.minimum(p, 1 - p)
    cdf = inv.cdf.reshape(-1, inv.width)[inv.row]
    exact = stats.binom.cdf(np.arange(inv.width), t[:, None], q[:, None])
    np.testing.assert_allclose(cdf[:, :-1], exact[:, :-1], rtol=0, atol=1e-13)
    assert (1 - exact[:, -2]).max() < 2 * TAIL and (cdf[:, -1] == 1).all()  # the last cell takes a negligible tail
    for tt, pp in ((80, 0.11), (23, 0.6), (4000, 0.0015), (12, 0.97)):
        draws = Inversion(np.array([tt]), np.array([pp])).draw(np.random.default_rng(tt), 100_000)[:, 0]
        lo, hi = stats.binom.ppf([1e-4, 1 - 1e-4], tt, pp)  # both tails pooled: every cell expects >= 10
        cells = np.clip(draws, lo, hi) - lo
        expected = np.diff(stats.binom.cdf(np.arange(lo - 1, hi + 1), tt, pp), prepend=0, append=1)[1:-1]
        expected[0], expected[-1] = stats.binom.cdf(lo, tt, pp), stats.binom.sf(hi - 1, tt, pp)
        observed = np.bincount(cells.astype(int), minlength=len(expected))
        assert stats.chisquare(observed, expected * len(draws) / expected.sum()).pvalue > 0.001, (tt, pp)
        assert abs(draws.mean() - tt * pp) < 5 * np.sqrt(tt * pp * (1 - pp) / len(draws)), (tt, pp)
    edges = Inversion(np.array([0, 50, 50, 7]), np.array([0.3, 0.0, 1.0, 0.999])).draw(np.random.default_rng(1), 4)
    assert (edges == [0, 0, 50, 7]).all()
    np.testing.assert_array_equal(inv.draw(np.random.default_rng(5), 3), inv.draw(np.random.default_rng(5), 3))


def test_the_large_path_sampler_uses_inversion_where_shares_differ():
    rng = np.random.default_rng(2)
    t = rng.integers(20, 400, 3000).astype(float)
    p = rng.uniform(0.01, 0.3, 3000)
    fast, plain = BinomialSampler(t, p, fast=True), BinomialSampler(t, p)
    assert fast.inversion is not None and plain.inversion is None and fast.tables is None
    a = fast.draw(np.random.default_rng(3), 2000)[:, fast.exact]
    b = plain.draw(np.random.default_rng(3), 2000)[:, plain.exact]  # numpy's binomial, the same areas
    order = np.argsort(fast.exact)
    a, b = a[:, order], b[:, np.argsort(plain.exact)]
    assert np.abs(a.mean(axis=0) - b.mean(axis=0)).max() < 0.5
    np.testing.assert_allclose(a.mean(), b.mean(), rtol=0.01)
    np.testing.assert_allclose(a.var(axis=0).mean(), b.var(axis=0).mean(), rtol=0.03)
