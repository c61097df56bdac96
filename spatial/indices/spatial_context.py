"""Geometry set-up for spatial indices, built once per dataset and reused by every evaluation.

Everything is in the dataset's metric CRS and sparse: contiguity as (row, col, weight) arrays,
distance decay as a scipy CSR matrix truncated where the decay is negligible. Never n × n dense.
"""
from __future__ import annotations

from functools import cached_property

import numpy as np
import scipy.sparse as sp
import shapely
from scipy.spatial import cKDTree

from ..dataset import AreaDataset
from ..weights import contiguity_pairs

DECAY_FLOOR = 1e-4  # exp(−d) below this is dropped: d > 9.2 km
PAIR_BUDGET = 4_000_000  # at most this many proximity pairs (~100 MB); denser cities get a shorter cutoff


class SpatialContext:
    def __init__(self, dataset: AreaDataset):
        self.dataset = dataset
        self.n = dataset.n

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
        return contiguity_pairs(self.geoms, rook=rook)

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

        Massey & Denton (1988, p. 297) after White (1983). Pairs with c < DECAY_FLOOR are dropped, and in
        a city so dense that more than PAIR_BUDGET pairs remain, the cutoff shrinks to fit (reported as
        ``decay_cutoff_km``): an approximation, stated, rather than an n × n matrix.
        """
        km = self.centroids / 1000.0
        tree = cKDTree(km)
        cutoff = -np.log(DECAY_FLOOR)
        if tree.count_neighbors(tree, cutoff) > 2 * PAIR_BUDGET:
            lo, hi = 0.0, cutoff  # bisect for the radius that fits the budget
            for _ in range(30):
                mid = (lo + hi) / 2
                lo, hi = (mid, hi) if tree.count_neighbors(tree, mid) <= 2 * PAIR_BUDGET else (lo, mid)
            cutoff = lo
        self.decay_cutoff_km = float(cutoff)
        pairs = tree.query_pairs(cutoff, output_type="ndarray")
        d = np.linalg.norm(km[pairs[:, 0]] - km[pairs[:, 1]], axis=1)
        c = np.exp(-d)
        diag = np.exp(-np.sqrt(0.6 * self.areas / 1e6))
        rows = np.concatenate([pairs[:, 0], pairs[:, 1], np.arange(self.n)])
        cols = np.concatenate([pairs[:, 1], pairs[:, 0], np.arange(self.n)])
        return sp.csr_matrix((np.concatenate([c, c, diag]), (rows, cols)), shape=(self.n, self.n))

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
