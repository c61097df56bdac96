"""Exact binomial draws for the large-city path's small areas at shares that differ from area to area (λ ≠ 0).

numpy's binomial makes its set-up again whenever (n, p) changes and then walks its inversion loop, ~70 ns a draw
(2-5 ms a simulated city of a million areas, at each λ). The small areas (variance t·p·(1 − p) < 9) share a few
thousand distinct (t, p), so their CDFs are tabulated once per set of shares and each draw is one uniform, a
guide-table lookup (Chen & Asau 1974) and a step or two along the CDF: inversion, exact to double precision.
"""

from __future__ import annotations

import numpy as np

GUIDE = 16  # guide cells per distinct (t, p): the walk from a cell takes one or two steps
CAP = 128  # longest CDF computed: these areas have mean t·q <= 18 and sd < 3, so it ends far in the tail
TAIL = 1e-12  # a window ends where every CDF has reached 1 − TAIL; its last cell takes the rest


class Inversion:
    """Binomial(t_i, p_i) draws by inversion for areas given sorted so that equal (t, p) are side by side.

    Shares above ½ are drawn as t minus a draw at 1 − p, so every window starts at 0; it ends where all the CDFs
    are within ``TAIL`` of 1."""

    def __init__(self, trials: np.ndarray, p: np.ndarray):
        self.flip = p > 0.5
        q = np.where(self.flip, 1 - p, p)
        self.t = trials
        new = np.r_[True, (trials[1:] != trials[:-1]) | (p[1:] != p[:-1])] if len(trials) else np.zeros(0, bool)
        self.row = np.cumsum(new) - 1
        tp, qp = trials[new].astype(float), q[new]
        cap = int(min(tp.max(initial=0) + 1, CAP))
        pmf = np.empty((len(tp), cap))
        pmf[:, 0] = (1 - qp) ** tp
        odds = qp / np.where(qp < 1, 1 - qp, 1)
        for k in range(1, cap):  # the pmf's recurrence, all (t, q) at once
            pmf[:, k] = pmf[:, k - 1] * (np.maximum(tp - k + 1, 0) / k * odds)
        cdf = np.cumsum(pmf, axis=1)
        done = cdf >= 1 - TAIL
        ends = np.where(done.any(axis=1), done.argmax(axis=1), cap - 1)
        self.width = width = int(ends.max(initial=0)) + 1
        cdf = np.ascontiguousarray(cdf[:, :width])
        cdf[:, -1] = 1.0
        cdf[np.arange(width) >= tp[:, None]] = 1.0  # a sum short of 1 by rounding must not walk past t
        self.cdf = cdf.ravel()
        # the walk for u in [j/GUIDE, (j+1)/GUIDE) starts at the first k with cdf[k] >= j/GUIDE
        self.guide = np.stack([(cdf < j / GUIDE).sum(axis=1) for j in range(GUIDE)], axis=1).ravel()

    def draw(self, rng: np.random.Generator, b: int) -> np.ndarray:
        """(b, m) counts, one uniform each from ``rng``."""
        m = len(self.row)
        u = rng.random(b * m)
        row = np.tile(self.row, b)
        k = self.guide[row * GUIDE + (u * GUIDE).astype(np.intp)]
        at = row * self.width + k
        walking = np.flatnonzero(self.cdf[at] < u)
        while walking.size:  # ends: the window's last cell is 1
            k[walking] += 1
            at[walking] += 1
            walking = walking[self.cdf[at[walking]] < u[walking]]
        k = k.reshape(b, m)
        return np.where(self.flip, self.t - k, k)
