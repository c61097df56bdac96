"""Simulated counts: binomial draws with their set-up made once per set of shares and buffers reused
across blocks (a fresh process does not fault in a new block each time), the null models' draw functions,
and the block loop."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from ...cancel import checkpoint

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


class BinomialSampler:
    """Blocks of Binomial(t_i, p_i) draws at one set of shares, as float32 (see :func:`binomial_counts`).

    What depends on the shares only (which areas are drawn exactly, the normal's mean and sd) is made once,
    not per block, and with ``reuse`` the block is written into one buffer kept across calls: the caller must
    be done with a block before asking for the next. Same generator calls in the same order as before, so
    the same seed gives the same numbers.
    """

    def __init__(self, t: np.ndarray, p: np.ndarray | float, reuse: bool = False):
        p = np.broadcast_to(np.asarray(p, dtype=float), t.shape)
        var = t * p * (1 - p)
        exact = np.flatnonzero(var < NORMAL_APPROX_MIN_VAR)
        self.exact = exact[np.argsort(t[exact], kind="stable")]  # equal n side by side: the sampler reuses set-up
        self.trials = np.rint(t[self.exact]).astype(np.int64)
        self.p_exact = np.clip(p[self.exact], 0, 1)
        # Rounding to integers adds variance 1/12 (Sheppard); take it off so the counts' variance is t·p·(1−p).
        self.sd = np.sqrt(np.clip(var - 1 / 12, 0, None)).astype(np.float32)
        self.mean = (t * p).astype(np.float32)
        self.top = t.astype(np.float32)
        self.reuse = reuse
        self._buffer = np.empty((0, len(t)), np.float32)

    def draw(self, rng: np.random.Generator, b: int) -> np.ndarray:
        if not self.reuse:
            out = rng.standard_normal((b, len(self.sd)), dtype=np.float32)
        else:
            if len(self._buffer) < b:
                self._buffer = np.empty((b, len(self.sd)), np.float32)
            out = rng.standard_normal(dtype=np.float32, out=self._buffer[:b])
        out *= self.sd
        out += self.mean
        np.rint(out, out=out)
        np.maximum(out, np.float32(0), out=out)  # np.clip's result, without its per-call overhead
        np.minimum(out, self.top, out=out)
        if len(self.exact):
            out[:, self.exact] = rng.binomial(self.trials, self.p_exact, size=(b, len(self.exact)))
        return out


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


def _drawers(data: Sequence[np.ndarray], kind: str, rng: np.random.Generator):
    """Return (null draws by name, plain bootstrap draw at the observed compositions) for the observed data."""
    if kind == "two_group":
        x, t = (np.asarray(a, dtype=float) for a in data)
        ti = np.rint(t).astype(np.int64)
        t32 = t.astype(np.float32)
        P = x.sum() / t.sum()

        sampler = BinomialSampler(ti.astype(float), P, reuse=True)

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
