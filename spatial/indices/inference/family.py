"""The one-parameter family of compositions the calibration simulates along (deviations from the city-wide
shares scaled by λ), with local empirical-Bayes shares for spatial indices and deconvolved shares for large
cities."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from . import deconvolve
from .draws import BinomialSampler, _binomial_rows, binomial_counts


def _neighbourhoods(n: int, neighbours: tuple[np.ndarray, np.ndarray]):
    """Sparse 0/1 matrix of each area's neighbourhood: itself and its neighbours."""
    import scipy.sparse as sp

    rows, cols = (np.asarray(a, dtype=np.int64) for a in neighbours)
    A = sp.csr_matrix((np.ones(len(rows) + n), (np.r_[rows, np.arange(n)], np.r_[cols, np.arange(n)])), shape=(n, n))
    A.data[:] = 1.0
    return A


def _local_eb(x: np.ndarray, t: np.ndarray, A) -> np.ndarray:
    """Local empirical-Bayes shares (Marshall 1991) of a batch of counts ``x`` (b, n).

    Each area's share is shrunk towards its neighbourhood's by the part of the neighbourhood's spread
    that binomial noise explains: not at all where neighbours differ for real, fully where they differ
    by noise only. Spatial indices compare neighbours, and the noise of small areas makes a smooth
    city look rough; simulating from raw shares would keep that roughness and mis-measure the bias.
    """
    tn = A @ t
    X = (A @ x.T).T
    with np.errstate(divide="ignore", invalid="ignore"):
        m = np.where(tn > 0, X / tn, 0.0)
        p = np.where(t > 0, x / np.where(t > 0, t, 1), m)
        spread = np.clip(((A @ (t * p**2).T).T - 2 * m * X + m**2 * tn) / tn, 0.0, None)
        noise = m * (1 - m)
        size = np.asarray(A.sum(axis=1)).ravel()
        signal = np.clip(spread - noise / (tn / size), 0.0, None)
        w = np.where((t > 0) & (signal + noise / np.where(t > 0, t, 1) > 0), signal / (signal + noise / t), 1.0)
    return np.where(tn > 0, m + w * (p - m), p)


class _Scaled:
    """Compositions with every area's deviation from the city-wide shares scaled by λ.

    Two groups: share ``P + λ·(p̂_i − P)`` clipped to [0, 1]; several: the same per group, clipped
    at 0 and renormalised (only needed for λ > 1, below it the shares are a mixture of p̂_i and P).
    Area populations stay as observed. ``rows`` versions take a batch of simulated cities, each
    with its own P and p̂ (for the nested re-estimation). With ``neighbours`` (spatial indices),
    p̂ is the local empirical-Bayes share (:func:`_local_eb`).
    """

    def __init__(self, data: Sequence[np.ndarray], kind: str, neighbours: tuple | None = None):
        self.kind = kind
        self.A = None
        if neighbours is not None and kind == "two_group":
            self.A = _neighbourhoods(len(data[0]), neighbours)
        if kind == "two_group":
            x, t = (np.asarray(a, dtype=float) for a in data)
            self.t = np.rint(t)
            self.base, self.dev = self._split(x[None], self.t)
        else:
            X = np.rint(np.asarray(data[0], dtype=float))
            self.t = X.sum(axis=1)
            self.base, self.dev = self._split(X[None], self.t)
        self.base, self.dev = self.base[0], self.dev[0]

    def _split(self, counts: np.ndarray, t: np.ndarray):
        """City-wide shares and each area's deviation from them, for a batch of counts."""
        T = t.sum()
        if self.kind == "two_group":
            P = counts.sum(axis=-1) / T
            if self.A is not None:
                return P, _local_eb(np.asarray(counts, dtype=float), t, self.A) - P[:, None]
            with np.errstate(divide="ignore", invalid="ignore"):
                p = np.where(t > 0, counts / np.where(t > 0, t, 1), P[:, None])
            return P, p - P[:, None]
        P = counts.sum(axis=-2) / T
        with np.errstate(divide="ignore", invalid="ignore"):
            p = np.where(t[:, None] > 0, counts / np.where(t > 0, t, 1)[:, None], P[:, None, :])
        return P, p - P[:, None, :]

    def shares(self, lam, base=None, dev=None) -> np.ndarray:
        """Shares at ``lam`` (a number, or one per row of a batch ``base``/``dev``)."""
        base = self.base if base is None else base
        dev = self.dev if dev is None else dev
        lam = np.asarray(lam, dtype=float)
        if self.kind == "two_group":
            return np.clip(np.expand_dims(base, -1) + lam[..., None] * dev, 0.0, 1.0)
        p = np.clip(np.expand_dims(base, -2) + lam[..., None, None] * dev, 0.0, None)
        return p / p.sum(axis=-1, keepdims=True)

    def fast_sampler(self, p: np.ndarray) -> BinomialSampler:
        """The large-city path's sampler at shares ``p`` (:func:`.asymptotic.simulate_grid`)."""
        return BinomialSampler(self.t, p, fast=True)

    def expected(self, p: np.ndarray) -> tuple:
        """The counts an area population would hold at shares ``p`` (the member's own index value)."""
        if self.kind == "two_group":
            return self.t * p, np.broadcast_to(self.t, p.shape)
        return (self.t[:, None] * p,)

    def drawer(self, rng: np.random.Generator, p: np.ndarray):
        """``b -> counts`` drawn at shares ``p`` (as :meth:`draw`), the set-up made once and the block buffer
        reused: each block must be used before the next is drawn."""
        if self.kind != "two_group":
            return lambda b: self.draw(rng, p, b)
        sampler = BinomialSampler(self.t, p, reuse=True)
        t32 = self.t.astype(np.float32)
        return lambda b: (sampler.draw(rng, b), np.broadcast_to(t32, (b, len(t32))))

    def draw(self, rng: np.random.Generator, p: np.ndarray, b: int | None = None) -> tuple:
        """Counts drawn at shares ``p``: ``b`` cities at one set of shares, or one per row of ``p``."""
        if self.kind == "two_group":
            x = binomial_counts(rng, self.t, p, b) if b is not None else _binomial_rows(rng, self.t, p)
            return x, np.broadcast_to(self.t.astype(np.float32), x.shape)
        rows = (b, *p.shape) if b is not None else p.shape
        ti = np.broadcast_to(self.t.astype(np.int64), rows[:-1])
        return (rng.multinomial(ti, np.broadcast_to(p, rows)).astype(float),)


class _SkewedSampler(BinomialSampler):
    """The large path's sampler with the normals skewed as the binomial is (Cornish-Fisher, first term):
    z + γ/6·(z² − 1), γ = (1 − 2p)/√(t·p·(1 − p)). The symmetric normal approximation lowers the mean of D by
    ~0.5 % of its noise bias at 200 people an area (exact binomial pmf vs rounded normal), a bias of its own once
    the family is right. Monotone in z for the areas drawn this way (γ ≤ 1/3, |z| ≤ 4.33), and it shifts a
    count towards its own side of t·p only, so no extra clipping is needed."""

    def __init__(self, t: np.ndarray, p: np.ndarray):
        super().__init__(t, p, fast=True)
        var = np.maximum(t * p * (1 - p), 1e-12)
        self.a = ((1 - 2 * p) / np.sqrt(var) / 6).astype(np.float32)

    def from_normals(self, rng: np.random.Generator, z: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        w = np.multiply(z, z)
        w -= np.float32(1)
        w *= self.a
        w += z
        return super().from_normals(rng, w, out)


class _Deconvolved(_Scaled):
    """Two groups, aspatial, large cities: deviations of deconvolved shares (:mod:`.deconvolve`) scaled by λ.

    λ = 1 is then close to the true compositions, not the noisier observed ones, so the simulated bias near
    the solution is the bias of cities shaped like the truth. ``deconvolved`` is False where there was nothing
    to deconvolve or the fit failed (the observed shares are scaled, as in :class:`_Scaled`)."""

    def __init__(self, data: Sequence[np.ndarray], kind: str):
        super().__init__(data, kind)
        q = deconvolve.shares(np.asarray(data[0], dtype=float), self.t)
        self.deconvolved = q is not None
        if q is not None:
            self.dev = q - np.sum(self.t * q) / self.t.sum()

    def fast_sampler(self, p: np.ndarray) -> BinomialSampler:
        return _SkewedSampler(self.t, p) if self.deconvolved else super().fast_sampler(p)


def family(data: Sequence[np.ndarray], kind: str, neighbours: tuple | None, fast: bool) -> _Scaled:
    """The calibration's family: deconvolved shares on the large-city path for aspatial two-group indices (from
    ``deconvolve.MIN_AREAS`` areas: fewer do not pin down a distribution), else the observed (or local
    empirical-Bayes) shares."""
    if fast and kind == "two_group" and neighbours is None and len(data[0]) >= deconvolve.MIN_AREAS:
        return _Deconvolved(data, kind)
    return _Scaled(data, kind, neighbours)


def family_name(fam: _Scaled) -> str:
    return "deconvolved" if getattr(fam, "deconvolved", False) else "scaled"
