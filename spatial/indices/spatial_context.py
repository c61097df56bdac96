"""Geometry set-up for spatial indices, built once per dataset and reused by every evaluation.

Everything is in the dataset's metric CRS and sparse: contiguity as (row, col, weight) arrays,
distance decay as a scipy CSR matrix truncated, row by row, where the decay is negligible against the
row's own terms, with a rigorous bound on what the truncation can change. Never n × n dense.
"""

from __future__ import annotations

from functools import cached_property

import numpy as np
import scipy.sparse as sp
import shapely
from scipy.spatial import cKDTree

from ..dataset import AreaDataset
from ..weights import contiguity_pairs_of

DECAY_RELATIVE = 1e-12  # a row drops c_ij below DECAY_RELATIVE / n of its largest term (own or nearest)
GRID_WORK = 8_000_000  # areas × cells evaluated to tighten the bound where the pair budget applies (~1 s)
PAIR_BUDGET = 4_000_000  # at most this many proximity pairs (~100 MB); denser cities get a lower level, reported


class SpatialContext:
    def __init__(self, dataset: AreaDataset):
        self.dataset = dataset
        self.n = dataset.n
        self.pair_budget = PAIR_BUDGET

    @cached_property
    def geoms(self) -> np.ndarray:
        return np.asarray(self.dataset.metric.geometry.values, dtype=object)

    @cached_property
    def areas(self) -> np.ndarray:
        return shapely.area(self.geoms)

    @cached_property
    def centroids(self) -> np.ndarray:
        return shapely.get_coordinates(shapely.centroid(self.geoms))

    def _pairs(self, rook: bool) -> tuple[np.ndarray, np.ndarray]:
        return contiguity_pairs_of(self.dataset, rook=rook)  # shared with the dataset's weights

    @cached_property
    def queen(self) -> tuple[np.ndarray, np.ndarray]:
        """Both directions of every queen-contiguous pair (binary weights)."""
        return self._pairs(rook=False)

    @cached_property
    def boundary(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Rook pairs with the length of their shared boundary (metres)."""
        i, j = self._pairs(rook=True)
        return i, j, shapely.length(shapely.intersection(self.geoms[i], self.geoms[j]))

    @cached_property
    def decay(self) -> sp.csr_matrix:
        """Proximity c_ij = exp(−d_ij) with d in km between centroids; c_ii = exp(−√(0.6 a_i)), a_i in km².

        Massey & Denton (1988, p. 297) after White (1983). A pair is dropped only where its proximity is
        below DECAY_RELATIVE / n of the largest term of its row (the row's own c_ii or its nearest
        neighbour's c_ij, whichever is larger): a fixed floor would drop every pair between county-sized
        areas, whose own c_ii are ~1e-11. Where that would hold more than PAIR_BUDGET pairs (dense cities)
        the relative level is lowered to fit. Either way :meth:`decay_truncation` gives a rigorous bound on
        the error the dropped pairs can cause, reported with each index.
        """
        km = self.centroids / 1000.0
        n = self.n
        own = np.sqrt(0.6 * self.areas / 1e6)  # −ln c_ii
        tree = cKDTree(km)
        nearest = tree.query(km, k=2)[0][:, 1] if n > 1 else np.full(n, np.inf)
        top = np.minimum(own, nearest)  # −ln of the row's largest term
        level = -np.log(DECAY_RELATIVE / max(n, 1))
        fitted = self._fit_budget(tree, km, top, level)
        self.decay_budget_applied = fitted < level
        radius = top + fitted  # row i keeps every j with d_ij ≤ radius_i; all it drops has c_ij < exp(−radius_i)
        self.decay_radius = radius
        self.decay_threshold = np.exp(-radius)
        self.decay_cutoff_km = float(radius.min()) if n else 0.0
        i, j, d = _pairs_within(tree, km, radius)
        off = sp.csr_matrix((np.exp(-d), (i, j)), shape=(n, n))
        off = off.maximum(off.T).tocsr()  # a pair kept by either of its rows is kept in both
        return (off + sp.diags(np.exp(-own))).tocsr()

    def _fit_budget(self, tree: cKDTree, km: np.ndarray, top: np.ndarray, level: float) -> float:
        """The largest level ≤ ``level`` whose pairs fit PAIR_BUDGET, estimated on a sample of rows."""
        n = self.n
        if n * n <= 2 * self.pair_budget:
            return level
        rows = np.random.default_rng(0).choice(n, min(n, 2000), replace=False)
        target = 0.9 * 2 * self.pair_budget / n  # pairs per row, with room for the sample's error

        def per_row(lv):
            return tree.query_ball_point(km[rows], top[rows] + lv, return_length=True).mean()

        if per_row(level) <= target:
            return level
        lo, hi = 0.0, level
        for _ in range(16):
            mid = (lo + hi) / 2
            lo, hi = (mid, hi) if per_row(mid) <= target else (lo, mid)
        return lo

    def decay_truncation(self, name: str, x: np.ndarray, t: np.ndarray) -> dict:
        """A rigorous bound on how far the sparse value of decay index ``name`` can be from the dense formula.

        Every pair row i drops has c_ij < θ_i, so Σ_{dropped j} c_ij u_j ≤ b_i(u) (:meth:`_dropped`) for u ≥ 0.
        Each quadratic form Q(u) = uᵀCu then lies in [Q̃, Q̃ + Σ u_i b_i(u)], and each row's
        decay-weighted share Σ c_ij v_j / Σ c_ij t_j (an average of v_j/t_j in [0, 1]) moves by at most
        max(s̃_i, 1 − s̃_i) b_i(t) / (Σ̃ c_ij t_j + b_i(t)). Returns the largest absolute and relative error
        (relative is None where the index could be 0, i.e. no relative bound exists). Float rounding aside.
        """
        C = self.decay
        x, t = np.asarray(x, float), np.asarray(t, float)
        y = t - x
        limited = {"decay_pair_budget": self.pair_budget} if self.decay_budget_applied else {}
        key = (x.tobytes(), t.tobytes())
        if getattr(self, "_dropped_key", None) != key:  # the four indices share one computation
            self._dropped_key, self._dropped_xyt = key, self._dropped(np.column_stack([x, y, t]))
        dropped = dict(zip(("x", "y", "t"), self._dropped_xyt.T))

        def quad(u, name):
            return float(u @ (C @ u)), float(u @ dropped[name])

        with np.errstate(divide="ignore", invalid="ignore"):
            if name in ("spatial_proximity", "relative_clustering"):
                (qx, bx), (qy, by), (qt, bt) = quad(x, "x"), quad(y, "y"), quad(t, "t")
                rx, ry, rt = bx / qx, by / qy, bt / qt
                if name == "spatial_proximity":
                    X, Y, T = x.sum(), y.sum(), t.sum()
                    num = qx / X + qy / Y
                    rn = (bx / X + by / Y) / num
                    value = num / (qt / T)
                    rel = max(rn / (1 + rn), rt)
                    return {**_bounds(value * (1 + rn) * rel, rel), **limited}
                ratio = (qx / x.sum() ** 2) / (qy / y.sum() ** 2)
                err = ratio * max(rx, ry * (1 + rx))  # |R̃ − R| with R = Pxx/Pyy; RCL = R − 1
                return {**_bounds(err, err / (abs(ratio - 1) - err) if abs(ratio - 1) > err else None), **limited}
            v = x if name == "distance_decay_isolation" else y
            Ct, Cv, bt = C @ t, C @ v, dropped["t"]
            share = np.where(Ct > 0, Cv / np.where(Ct > 0, Ct, 1), 0.0)
            row = np.where(x > 0, np.maximum(share, 1 - share) * bt / (Ct + bt), 0.0)
            weight = x / x.sum()
            err, value = float((weight * row).sum()), float((weight * share).sum())
            return {**_bounds(err, err / (value - err) if value > err else None), **limited}

    def _dropped(self, U: np.ndarray) -> np.ndarray:
        """Per row and column u ≥ 0 of ``U``, an upper bound on Σ_{dropped j} c_ij u_j.

        θ_i (Σ u − Σ_{j ≤ radius_i} u_j): every dropped pair is farther than radius_i. Where the pair budget
        cut pairs that matter, that is tightened on a grid of cells: a cell's people are at least as far as
        its bounding box, so they add at most exp(−max(radius_i, box distance)) each.
        """
        C, theta, radius = self.decay, self.decay_threshold, self.decay_radius
        n = self.n
        rows = np.repeat(np.arange(n), np.diff(C.indptr))
        near = (C.data >= theta[rows]) | (C.indices == rows)  # pairs within radius_i (and i itself)
        kept = sp.csr_matrix((near.astype(float), C.indices, C.indptr), shape=C.shape) @ U
        simple = theta[:, None] * np.maximum(U.sum(axis=0) - kept, 0.0)
        if not self.decay_budget_applied:
            return simple
        km = self.centroids / 1000.0
        lo = km.min(axis=0)
        per_side = max(8.0, min(64.0, np.sqrt(GRID_WORK / n)))  # n × cells ≤ GRID_WORK
        side = max(radius.min() / 8, (km.max(axis=0) - lo).max() / per_side, 1e-9)
        cell = np.unique(np.floor((km - lo) / side).astype(np.int64) @ np.array([1, 1 << 20]), return_inverse=True)[1]
        g = cell.max() + 1
        box_lo = np.column_stack([np.full(g, np.inf), np.full(g, np.inf)])
        box_hi = -box_lo
        np.minimum.at(box_lo, cell, km)
        np.maximum.at(box_hi, cell, km)
        mass = np.zeros((g, U.shape[1]))
        np.add.at(mass, cell, U)
        far = np.empty_like(simple)
        step = max(1, 2_000_000 // g)
        for start in range(0, n, step):
            p = km[start : start + step, None, :]
            gap = np.maximum(np.maximum(box_lo[None] - p, p - box_hi[None]), 0.0)
            reach = np.maximum(radius[start : start + step, None], np.hypot(gap[..., 0], gap[..., 1]))
            far[start : start + step] = np.exp(-reach) @ mass
        # Cells within radius_i count their near people at θ_i too: take them out again.
        return np.minimum(simple, np.maximum(far - theta[:, None] * kept, 0.0))

    def centre_distance(self, centre: str = "mean") -> np.ndarray:
        xy = self.centroids
        if centre == "mean":
            c = xy.mean(axis=0)
        elif centre == "median":
            c = np.median(xy, axis=0)
        else:
            from ..errors import ValidationError, problem

            raise ValidationError(problem("bad_parameter", f"centre must be 'mean' or 'median', got {centre!r}"))
        return np.hypot(xy[:, 0] - c[0], xy[:, 1] - c[1])


def _pairs_within(tree: cKDTree, km: np.ndarray, radius: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(i, j, d_ij) for every i ≠ j with d_ij ≤ radius_i: rows grouped by similar radius, each group one KD query."""
    order = np.argsort(radius, kind="stable")
    r_sorted = radius[order]
    out_i, out_j, out_d = [], [], []
    start = 0
    while start < len(order):
        stop = int(np.searchsorted(r_sorted, r_sorted[start] * 1.1 + 1e-9, side="right"))
        stop = min(stop, start + 20_000)  # keeps each query's pair list small
        idx = order[start:stop]
        found = cKDTree(km[idx]).sparse_distance_matrix(tree, float(r_sorted[stop - 1]), output_type="ndarray")
        i = idx[found["i"]]
        keep = (found["v"] <= radius[i]) & (i != found["j"])
        out_i.append(i[keep])
        out_j.append(found["j"][keep])
        out_d.append(found["v"][keep])
        start = stop
    if not out_i:
        return np.empty(0, np.int64), np.empty(0, np.int64), np.empty(0)
    return np.concatenate(out_i), np.concatenate(out_j), np.concatenate(out_d)


def _round_up(v: float) -> float:
    """Two significant digits, rounded up (a bound must stay a bound)."""
    if v <= 0 or not np.isfinite(v):
        return float(v)
    exp = int(np.floor(np.log10(v))) - 1
    return float(f"{int(np.ceil(v / 10.0**exp))}e{exp}")


def _bounds(absolute: float, relative: float | None) -> dict:
    rel = None if relative is None or not np.isfinite(relative) else _round_up(relative)
    return {
        "decay_max_abs_error": _round_up(absolute) if np.isfinite(absolute) else None,
        "decay_max_relative_error": rel,
    }
