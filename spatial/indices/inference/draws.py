"""Simulated counts: binomial draws with their set-up made once per set of shares and buffers reused
across blocks (a fresh process does not fault in a new block each time), the null models' draw functions,
and the block loop."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from ...cancel import checkpoint
from .inversion import Inversion

_BLOCK_BYTES = 64 * 2**20  # upper bound on one simulated block


def _block_size(n: int, k: int, requested: int | None) -> int:
    if requested:
        return max(1, int(requested))
    return int(max(1, min(1000, _BLOCK_BYTES // (8 * max(1, n) * max(1, k) * 4))))


def _simulate(evaluate: Callable, draw: Callable, count: int, block: int, progress, done0=0, total=None):
    out = np.empty(count)
    done = 0
    while done < count:
        b = min(block, count - done)
        checkpoint()
        out[done : done + b] = evaluate(*draw(b))
        done += b
        if progress:
            progress(done0 + done, total or count)
    return out


NORMAL_APPROX_MIN_VAR = (
    9.0  # t·p·(1−p) from which a binomial count is drawn from its normal approximation (the textbook rule)
)
TABLE_BITS = 16
_TABLE: list[np.ndarray] = []


def normal_table() -> np.ndarray:
    """The 2^16 quantiles Φ⁻¹((k + ½)/2^16) as float32, rescaled to variance 1 (symmetric, so mean 0)."""
    if not _TABLE:
        from scipy import stats

        q = stats.norm.ppf((np.arange(2**TABLE_BITS) + 0.5) / 2**TABLE_BITS)
        _TABLE.append((q / np.sqrt(np.mean(q**2))).astype(np.float32))
    return _TABLE[0]


TABLE_BOUND = 4.5  # above the table's largest |value| (4.33): no table normal reaches it


def table_normals(rng: np.random.Generator, out: np.ndarray) -> np.ndarray:
    """Fill ``out`` (float32) with standard normals looked up in :func:`normal_table` by 16 random bits each.

    Three times faster than numpy's ziggurat at a million areas (it dominated the simulations there). The
    normals are discrete (2^16 values) and bounded at ±4.33; the counts they make are rounded anyway, and a
    city-wide index sums over many areas. Used only at large n (``FAST_MIN_AREAS``), where its effect on the
    null distribution is checked against exact binomial draws (tests/test_calibration_fast.py).
    """
    if not out.flags.c_contiguous:
        raise ValueError("table_normals fills a contiguous array")
    block = out.reshape(len(out) if out.ndim > 1 else 1, -1)
    bits = _bits(rng, out.size).reshape(block.shape)
    idx = np.empty(min(TILE, out.size), np.intp)
    for rows, cols in _tiles(*block.shape):
        _lookup(bits[rows, cols], block[rows, cols], idx)
    return out


TILE = 32_768  # values per pass of a draw: its indices and counts stay in a core's L2 cache (512 KB here)


def _bits(rng: np.random.Generator, size: int) -> np.ndarray:
    """``size`` 16-bit words: the generator's next ``ceil(size / 4)`` 64-bit outputs cut in four."""
    return rng.bit_generator.random_raw(-(-size // 4)).view(np.uint16)[:size]


def _tiles(b: int, n: int):
    """(rows, columns) slices cutting a (b, n) block into contiguous pieces of about TILE values."""
    if n >= TILE:
        for r in range(b):
            for a in range(0, n, TILE):
                yield slice(r, r + 1), slice(a, min(n, a + TILE))
    else:
        step = max(1, TILE // max(n, 1))
        for r in range(0, b, step):
            yield slice(r, min(b, r + step)), slice(0, n)


def _lookup(bits: np.ndarray, out: np.ndarray, idx: np.ndarray) -> None:
    """``out`` = the normal table at ``bits``; np.take wants intp indices, made in ``idx`` (a tile, in cache),
    not in a new array of the block's size (8 bytes a value)."""
    i = idx[: bits.size].reshape(bits.shape)
    np.copyto(i, bits)
    np.take(normal_table(), i, out=out, mode="wrap")  # indices are < 2^16: no bounds check to pay


class BinomialSampler:
    """Blocks of Binomial(t_i, p_i) draws at one set of shares, as float32 (see :func:`binomial_counts`).

    What depends on the shares only (which areas are drawn exactly, the normal's mean and sd) is made once,
    not per block, and with ``reuse`` the block is written into one buffer kept across calls: the caller must
    be done with a block before asking for the next. Same generator calls in the same order as before, so
    the same seed gives the same numbers. With ``fast`` the normals come from :func:`table_normals` (large cities).

    Counts are made tile by tile (:func:`_tiles`): normal, scaled, shifted, rounded and clipped while the tile
    is in cache, instead of one pass over the whole block per step.
    """

    def __init__(self, t: np.ndarray, p: np.ndarray | float, reuse: bool = False, fast: bool = False):
        p = np.broadcast_to(np.asarray(p, dtype=float), t.shape)
        var = t * p * (1 - p)
        exact = np.flatnonzero(var < NORMAL_APPROX_MIN_VAR)
        # equal n (fast: equal n and p) side by side: numpy's binomial keeps its set-up from one draw to the next
        order = np.lexsort((p[exact], t[exact])) if fast else np.argsort(t[exact], kind="stable")
        self.exact = exact[order]
        self.trials = np.rint(t[self.exact]).astype(np.int64)
        self.p_exact = np.clip(p[self.exact], 0, 1)
        # Rounding to integers adds variance 1/12 (Sheppard); take it off so the counts' variance is t·p·(1−p).
        self.sd = np.sqrt(np.maximum(var - 1 / 12, 0.0)).astype(np.float32)
        self.mean = (t * p).astype(np.float32)
        self.top = t.astype(np.float32)
        self.reuse = reuse
        self._buffer = np.empty((0, len(t)), np.float32)
        self.fast = fast
        self.tables = self.inversion = None
        self.clip_low = self.clip_high = True
        if fast:  # table normals are bounded: only if those bounds can push an area outside [0, t] is it clipped
            reach = np.float32(TABLE_BOUND) * self.sd
            self.low = np.flatnonzero(self.mean - reach < 0)
            self.high = np.flatnonzero(self.mean + reach > self.top)
            self.clip_low, self.clip_high = len(self.low) > 0, len(self.high) > 0
            self.tables = _quantile_tables(self.trials, self.p_exact)
            if self.tables is None and len(self.exact):  # shares differ (λ ≠ 0): tabulated CDFs, not numpy's loop
                self.inversion = Inversion(self.trials, self.p_exact)

    def _out(self, b: int) -> np.ndarray:
        if not self.reuse:
            return np.empty((b, len(self.sd)), np.float32)
        if len(self._buffer) < b:
            self._buffer = np.empty((b, len(self.sd)), np.float32)
        return self._buffer[:b]

    def draw(self, rng: np.random.Generator, b: int) -> np.ndarray:
        out = self._out(b)
        if self.fast:
            self._affine(out, bits=_bits(rng, out.size).reshape(out.shape))
        else:
            rng.standard_normal(dtype=np.float32, out=out)
            self._affine(out, z=out)
        return self._exact_counts(rng, out)

    def from_normals(self, rng: np.random.Generator, z: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        """Counts from given standard normals ``z`` (b, n), written to ``out``: common random numbers across
        sets of shares. Areas drawn exactly still take their own binomial draws from ``rng``."""
        out = self._out(len(z)) if out is None else out
        self._affine(out, z=z)
        return self._exact_counts(rng, out)

    def _affine(self, out: np.ndarray, z: np.ndarray | None = None, bits: np.ndarray | None = None) -> None:
        """``out`` = rint(mean + sd·z) clipped to [0, t], with z given or looked up by ``bits``, tile by tile.
        Clipping every area gives what clipping only those that can leave [0, t] gives (the others stay inside)."""
        idx = np.empty(min(TILE, out.size), np.intp) if bits is not None else None
        zero = np.zeros(min(TILE, out.shape[-1]), np.float32)  # numpy's max against a scalar is ~4× slower
        for rows, cols in _tiles(*out.shape):
            o = out[rows, cols]
            if bits is not None:
                _lookup(bits[rows, cols], o, idx)
                np.multiply(o, self.sd[cols], out=o)
            else:
                np.multiply(z[rows, cols], self.sd[cols], out=o)
            o += self.mean[cols]
            np.rint(o, out=o)
            if self.clip_low:
                np.maximum(o, zero[: o.shape[-1]], out=o)  # np.clip's result, without its per-call overhead
            if self.clip_high:
                np.minimum(o, self.top[cols], out=o)

    def _exact_counts(self, rng, out: np.ndarray) -> np.ndarray:
        """The areas too small for the normal approximation, drawn after the others (the generator's order)."""
        if len(self.exact) and self.tables is not None:
            flat, offset = self.tables
            idx = _bits(rng, len(out) * len(offset)).reshape(len(out), -1).astype(np.intp)
            idx += offset
            out[:, self.exact] = np.take(flat, idx)
        elif self.inversion is not None:
            out[:, self.exact] = self.inversion.draw(rng, len(out))
        elif len(self.exact):
            out[:, self.exact] = rng.binomial(self.trials, self.p_exact, size=(len(out), len(self.exact)))
        return out


MAX_TABLES = 128  # distinct trial counts with a binomial quantile table each (64-256 KB apiece)


def _quantile_tables(trials: np.ndarray, p: np.ndarray):
    """(flat tables, each area's offset) of Binomial(t, p) at the 2^16 probabilities (k + ½)/2^16, one table per
    distinct t, where every small area shares one p (the null) and there are few distinct t; else None.

    Drawing is then one lookup by 16 random bits, ~30× faster than numpy's binomial, exact up to the 2^-16 steps
    of the probabilities (outcomes rarer than 1 in 65,536 are not drawn)."""
    if not len(trials) or np.ptp(p) > 0:
        return None
    distinct, row = np.unique(trials, return_inverse=True)
    if len(distinct) > MAX_TABLES:
        return None
    from scipy import stats

    u = (np.arange(2**TABLE_BITS) + 0.5) / 2**TABLE_BITS
    # counts stored in the narrowest integer that holds them: lookups at random stay in cache (a million areas:
    # 43 tables, 2.8 MB as bytes, not 11 MB as float32)
    dtype = np.uint8 if distinct[-1] <= 255 else np.uint16 if distinct[-1] <= 65535 else np.float32
    tables = np.empty((len(distinct), 2**TABLE_BITS), dtype)
    for j, n in enumerate(distinct):
        # the CDF up to just past the largest quantile looked up, not over all of 0..n (an area of 10^9 people)
        top = min(int(n), int(stats.binom.ppf(u[-1], n, p[0])) + 2)
        cdf = stats.binom.cdf(np.arange(top + 1), n, p[0])
        tables[j] = np.minimum(np.searchsorted(cdf, u, side="left"), n)
    return tables.ravel(), row.astype(np.intp) * 2**TABLE_BITS


def binomial_counts(rng: np.random.Generator, t: np.ndarray, p: np.ndarray | float, b: int) -> np.ndarray:
    """``b`` draws of Binomial(t_i, p_i) per area, shape (b, n), as float32.

    Areas whose variance t·p·(1−p) is at least 9 use the de Moivre–Laplace normal approximation,
    rounded and clipped to [0, t], its variance reduced by the 1/12 that rounding adds (Sheppard):
    float32 normals scaled in place cost ~9 ns a draw, numpy's exact sampler ~100 ns, which dominated
    simulations at 100,000 areas. Smaller areas are drawn exactly. tests/test_inference.py checks
    the null distribution of D against exact draws (KS).
    Counts below 2^24 are exact in float32.
    """
    return BinomialSampler(t, p).draw(rng, b)


def _binomial_rows(rng: np.random.Generator, t: np.ndarray, p: np.ndarray) -> np.ndarray:
    """One draw of Binomial(t_i, p_bi) for every row b of ``p`` (shape (b, n)), as :func:`binomial_counts`."""
    t = np.broadcast_to(t, p.shape)
    var = t * p * (1 - p)
    out = rng.standard_normal(p.shape, dtype=np.float32)
    out *= np.sqrt(np.clip(var - 1 / 12, 0, None)).astype(np.float32)
    out += (t * p).astype(np.float32)
    np.rint(out, out=out)
    np.maximum(out, np.float32(0), out=out)
    np.minimum(out, t.astype(np.float32), out=out)
    exact = var < NORMAL_APPROX_MIN_VAR
    if exact.any():
        out[exact] = rng.binomial(np.rint(t[exact]).astype(np.int64), np.clip(p[exact], 0, 1))
    return out


def null_sampler(data: Sequence[np.ndarray], fast: bool = False) -> tuple[BinomialSampler, np.ndarray]:
    """Two groups' random allocation: each area's population drawn to the group at the city-wide share."""
    x, t = (np.asarray(a, dtype=float) for a in data)
    P = x.sum() / t.sum()
    t32 = t.astype(np.float32)
    t32.flags.writeable = False  # constant: an index's evaluator may keep its sum (aspatial._row_sums)
    return BinomialSampler(np.rint(t).astype(np.int64).astype(float), P, reuse=True, fast=fast), t32


def _drawers(data: Sequence[np.ndarray], kind: str, rng: np.random.Generator, fast: bool = False):
    """Return (null draws by name, plain bootstrap draw at the observed compositions) for the observed data.

    ``fast``: two-group random allocation takes its normals from :func:`table_normals` (large cities)."""
    if kind == "two_group":
        x, t = (np.asarray(a, dtype=float) for a in data)
        sampler, t32 = null_sampler(data, fast)

        def random_allocation(b):
            return sampler.draw(rng, b), np.broadcast_to(t32, (b, len(t)))

        def permutation(b):
            idx = rng.permuted(np.broadcast_to(np.arange(len(t)), (b, len(t))), axis=1)
            return x[idx], t[idx]

        return {"random_allocation": random_allocation, "permutation": permutation}, _bootstrap(data, kind, rng)

    (X,) = data
    X = np.asarray(X, dtype=float)
    ti = np.rint(X).astype(np.int64).sum(axis=1)
    Pk = X.sum(axis=0) / X.sum()

    def random_allocation(b):
        return (rng.multinomial(np.broadcast_to(ti, (b, len(ti))), Pk).astype(float),)

    def permutation(b):
        idx = rng.permuted(np.broadcast_to(np.arange(len(ti)), (b, len(ti))), axis=1)
        return (X[idx],)

    return {"random_allocation": random_allocation, "permutation": permutation}, _bootstrap(data, kind, rng)


def _bootstrap(data, kind, rng):
    from .family import _Scaled  # the family draws with this module's samplers

    fam = _Scaled(data, kind)
    return fam.drawer(rng, fam.shares(1.0))


def _sequence(items: np.ndarray, make: Callable) -> Callable:
    """A draw function for :func:`_simulate` that hands out ``make(items[i:i + b])`` in turn."""
    state = {"at": 0}

    def draw(b):
        i = state["at"]
        state["at"] = i + b
        return make(items[i : i + b])

    return draw


def _stream(seed: int | None, which: int) -> np.random.Generator:
    """Independent generators derived from one seed (fresh entropy without one)."""
    return np.random.default_rng(None if seed is None else [int(seed), 17, which])
