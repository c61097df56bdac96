"""Spatial weights on the metric geometry, cached per dataset: contiguity by hashing shared vertices or edges,
the others with libpysal's ``Graph``.

Islands (areas with no neighbour) and disconnected components are reported, never an error:
local statistics label islands ``no_neighbours`` and give them no p-value.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import scipy.sparse as sp
import shapely
from libpysal.graph import Graph

from .cancel import checkpoint
from .dataset import AreaDataset
from .errors import ValidationError, problem

KINDS = ("queen", "rook", "knn", "distance", "kernel")


@dataclass
class SpatialWeights:
    """Weights as a CSR matrix (rows in the dataset's order); libpysal's ``Graph`` is made on first use only
    (building it costs ~100 s at 1,000,000 areas, the matrix a second)."""

    sparse: sp.csr_matrix
    kind: str
    params: dict
    ids: np.ndarray
    row_standardised: bool = True
    _graph: Graph | None = field(default=None, repr=False)
    _components: int | None = field(default=None, repr=False)

    def __post_init__(self):
        self.sparse = self.sparse.tocsr()
        if not self.sparse.data.all():  # Graph keeps islands as explicit zero self-loops
            self.sparse.eliminate_zeros()

    @property
    def graph(self) -> Graph:
        if self._graph is None:
            graph = Graph.from_sparse(self.sparse, ids=self.ids)
            self._graph = graph.transform("r") if self.row_standardised else graph
        return self._graph

    @property
    def cardinalities(self) -> np.ndarray:
        return np.diff(self.sparse.indptr)

    @property
    def islands(self) -> np.ndarray:
        return self.ids[self.cardinalities == 0]

    @property
    def n_components(self) -> int:
        if self._components is None:  # once per weights: 0.2 s at 1,000,000 areas, asked by every statistic
            self._components = int(sp.csgraph.connected_components(self.sparse, directed=False)[0])
        return self._components

    def describe(self) -> dict:
        card = self.cardinalities
        return {
            "kind": self.kind,
            **self.params,
            "row_standardised": self.row_standardised,
            "n_areas": int(len(self.ids)),
            "mean_neighbours": float(card.mean()) if len(card) else 0.0,
            "min_neighbours": int(card.min()) if len(card) else 0,
            "max_neighbours": int(card.max()) if len(card) else 0,
            "islands": [str(i) for i in self.islands],
            "n_components": self.n_components,
        }


_MIX = (0x9E3779B97F4A7C15, 0xBF58476D1CE4E5B9, 0x94D049BB133111EB, 0xD6E8FEB86659FD93)


def _hash_sort(cols: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray, list[np.ndarray]]:
    """(order, whether each row in that order has the next one's hash, the columns in that order).

    One sort of (hash of the bit patterns, row) packed in 64 bits, ~5x faster than an argsort or a lexsort of
    the columns at 5,000,000 rows (-0.0 hashes as 0.0)."""
    m = len(cols[0])
    shift = np.uint64(max(1, (m - 1).bit_length()))
    h = np.zeros(m, np.uint64)
    with np.errstate(over="ignore"):
        for c, k in zip(cols, _MIX, strict=False):
            h ^= np.ascontiguousarray(c + 0.0).view(np.uint64) * np.uint64(k)
            h ^= h >> np.uint64(31)
            h *= np.uint64(_MIX[1])
    packed = np.sort((h >> shift << shift) | np.arange(m, dtype=np.uint64))
    order = (packed & ((np.uint64(1) << shift) - np.uint64(1))).astype(np.int64)
    packed >>= shift
    return order, packed[1:] == packed[:-1], [c[order] for c in cols]


def _group_equal(cols: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """(order, start of each run in that order, then the row count) grouping rows whose float columns are all
    bitwise equal (-0.0 as 0.0). The few hash runs where two different keys share a hash are re-sorted exactly,
    touching only their rows (a million Voronoi cells have a couple)."""
    m = len(cols[0])
    order, same_hash, ordered = _hash_sort(cols)
    same = same_hash.copy()
    for c in ordered:
        same &= c[1:] == c[:-1]
    bad = np.flatnonzero(same != same_hash)
    if len(bad):
        starts = np.r_[0, np.flatnonzero(~same_hash) + 1, m]
        runs = np.unique(np.searchsorted(starts, bad, side="right") - 1)
        lo, hi = starts[runs], starts[runs + 1]
        pos = np.concatenate([np.arange(a, b) for a, b in zip(lo, hi, strict=True)])
        sub = np.lexsort([c[pos] for c in ordered[::-1]] + [np.repeat(np.arange(len(runs)), hi - lo)])
        order[pos] = order[pos][sub]
        inner = pos[:-1][np.diff(pos) == 1]  # neighbours within a re-sorted run
        same[inner] = True
        for c in ordered:
            c[pos] = c[pos][sub]
            same[inner] &= c[inner + 1] == c[inner]
    return order, np.r_[0, np.flatnonzero(~same) + 1, m]


def _shared_keys(geoms: np.ndarray, rook: bool) -> tuple[list[np.ndarray], np.ndarray]:
    """The keys two polygons must share (vertices for queen, undirected ring edges for rook) and their owners.

    A ring's closing vertex repeats its first and is left out (a fifth fewer keys, and no self-pairs)."""
    simple = (shapely.get_type_id(geoms) == 3) & (shapely.get_num_interior_rings(geoms) == 0)
    if simple.all():  # one ring per polygon: no ring objects to make (most of the time at 1,000,000 areas)
        xy, ring_of = shapely.get_coordinates(geoms, return_index=True)
        ring_owner = None
    else:
        parts, part_owner = shapely.get_parts(geoms, return_index=True)
        rings = shapely.get_rings(parts)  # per part: exterior, then its holes
        xy, ring_of = shapely.get_coordinates(rings, return_index=True)
        ring_owner = np.repeat(part_owner, shapely.get_num_interior_rings(parts) + 1)
    at = np.flatnonzero(ring_of[:-1] == ring_of[1:])  # every vertex but a ring's closing one
    owner = ring_of[at] if ring_owner is None else ring_owner[ring_of[at]]
    x, y = xy[:, 0], xy[:, 1]
    if not rook:
        return [x[at], y[at]], owner
    ax, ay, bx, by = x[at], y[at], x[at + 1], y[at + 1]  # 1-D columns: ~2x the (m, 2) arrays' speed
    swap = (ax > bx) | ((ax == bx) & (ay > by))
    return [np.where(swap, bx, ax), np.where(swap, by, ay), np.where(swap, ax, bx), np.where(swap, ay, by)], owner


def _run_pairs(owner: np.ndarray, starts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(lo, hi) with lo < hi for every two different owners in a run (repeats kept): runs of one size at a time,
    one pair of positions at a time, so only half the ordered pairs are made."""
    size = np.diff(starts)
    lows, highs = [], []
    present = np.flatnonzero(np.bincount(size))  # the run sizes (np.unique hashes: slower)
    for k in present[present >= 2]:
        first = starts[:-1][size == k]
        members = [owner[first + i] for i in range(k)]
        for a in range(k):
            for b in range(a + 1, k):
                lo, hi = np.minimum(members[a], members[b]), np.maximum(members[a], members[b])
                keep = lo != hi  # a polygon touching itself (multipolygon parts, a hole's vertex)
                lows.append(lo if keep.all() else lo[keep])
                highs.append(hi if keep.all() else hi[keep])
    if not lows:
        return np.empty(0, np.int64), np.empty(0, np.int64)
    return np.concatenate(lows), np.concatenate(highs)


def _symmetric(lo: np.ndarray, hi: np.ndarray, n: int) -> sp.csr_matrix:
    """Binary CSR with both directions of each distinct (lo, hi), indices sorted: one sort of the upper pairs;
    the lower triangle is their transpose (a counting sort, scipy's tocsc), put before each row's upper part."""
    key = _sorted_unique(lo.astype(np.int64) * n + hi)
    lo, hi = key // n, key % n
    up = np.bincount(lo, minlength=n)
    down = np.bincount(hi, minlength=n)
    up_ptr, down_ptr = np.r_[0, np.cumsum(up)], np.r_[0, np.cumsum(down)]
    lower = sp.csr_matrix((np.ones(len(key)), hi, up_ptr), shape=(n, n)).tocsc()  # per hi: its lo's, sorted
    index_type = np.int32 if n < 2**31 else np.int64
    indices = np.empty(2 * len(key), index_type)
    k = np.arange(len(key))
    indices[k + np.repeat(down_ptr[1:], up)] = hi  # row lo: after its down entries (all columns below lo)
    indices[k + np.repeat(up_ptr[:-1], down)] = lower.indices
    return sp.csr_matrix((np.ones(len(indices)), indices, up_ptr + down_ptr), shape=(n, n))


def contiguity_matrix(geoms: np.ndarray, rook: bool = False) -> sp.csr_matrix:
    """Binary CSR matrix of polygons sharing a vertex (queen) or an edge (rook), no self-pairs.

    The rule of libpysal's ``Graph.build_contiguity`` (vertex-set intersection, exact coordinates), done with
    sorts of packed integers instead of a Python dict per vertex (benchmarks/scale.py: 1,000,000 cells in about
    2 s of CPU). Edges are taken within rings, so unlike libpysal no phantom edge joins an exterior ring to its hole.
    """
    n = len(geoms)
    cols, owner = _shared_keys(geoms, rook)
    if len(owner) == 0:
        return sp.csr_matrix((n, n))
    order, starts = _group_equal(cols)
    return _symmetric(*_run_pairs(owner[order], starts), n)


def contiguity_pairs(geoms: np.ndarray, rook: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Both directions of every pair of polygons sharing a vertex (queen) or an edge (rook), sorted by focal
    then neighbour (:func:`contiguity_matrix` as index arrays)."""
    return _as_pairs(contiguity_matrix(geoms, rook))


def _as_pairs(m: sp.csr_matrix) -> tuple[np.ndarray, np.ndarray]:
    return np.repeat(np.arange(m.shape[0]), np.diff(m.indptr)), m.indices.astype(np.int64)


def contiguity(dataset: AreaDataset, rook: bool = False) -> sp.csr_matrix:
    """:func:`contiguity_matrix` of the dataset's areas, built once per dataset: weights and spatial indices share
    it (at 1,000,000 areas a second build costs ~2 s). Each call gets its own data array of ones; the index arrays
    are shared, so callers must not change them in place."""
    key = ("contiguity", rook)
    pattern = dataset.weights_cache.get(key)
    if pattern is None:
        m = contiguity_matrix(np.asarray(dataset.metric.geometry.values), rook)
        pattern = (m.indices, m.indptr)
        dataset.weights_cache.put(key, pattern)
    n = dataset.n
    return sp.csr_matrix((np.ones(len(pattern[0])), *pattern), shape=(n, n), copy=False)


def contiguity_pairs_of(dataset: AreaDataset, rook: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """:func:`contiguity_pairs` of the dataset's areas, from the shared :func:`contiguity`."""
    return _as_pairs(contiguity(dataset, rook))


def _contiguity_graph(gdf, rook: bool) -> Graph:
    """libpysal's Graph of :func:`contiguity_matrix` (islands as zero self-loops, as libpysal encodes them)."""
    return Graph.from_sparse(contiguity_matrix(np.asarray(gdf.geometry.values), rook), ids=gdf.index.to_numpy())


def _sorted_unique(a: np.ndarray) -> np.ndarray:
    """np.unique by sorting: numpy 2's hash-based unique is ~5x slower on these int64 keys."""
    a = np.sort(a)
    return a[np.r_[True, a[1:] != a[:-1]]] if len(a) else a


def _row_standardise(m: sp.csr_matrix) -> sp.csr_matrix:
    """Rows of a binary matrix divided by their counts, in place."""
    card = np.diff(m.indptr)
    m.data /= np.repeat(np.where(card > 0, card, 1), card)
    return m


def build_weights(
    dataset: AreaDataset,
    kind: str = "queen",
    *,
    k: int | None = None,
    distance: float | None = None,
    bandwidth: float | None = None,
    kernel: str | None = None,
    row_standardise: bool = True,
) -> SpatialWeights:
    """Weights of ``kind`` between the dataset's areas (distances in metres, in the metric CRS)."""
    if kind not in KINDS:
        raise ValidationError(problem("bad_parameter", f"Unknown weights {kind!r}; choose from {list(KINDS)}"))
    params: dict = {}
    if kind == "knn":
        params["k"] = int(k or 8)
        if not 1 <= params["k"] < dataset.n:
            raise ValidationError(
                problem("bad_parameter", f"k must be between 1 and {dataset.n - 1} (the number of other areas)")
            )
    if kind == "distance":
        if not distance or distance <= 0:
            raise ValidationError(problem("bad_parameter", "distance weights need a positive distance in metres"))
        params["distance"] = float(distance)
    if kind == "kernel":
        params["kernel"] = kernel or "gaussian"
        params["bandwidth"] = float(bandwidth or distance) if (bandwidth or distance) else None
        params["k"] = int(k or 8)
    key = (kind, tuple(sorted(params.items())), row_standardise)
    cached = dataset.weights_cache.get(key)
    if cached is not None:
        return cached

    checkpoint()
    if kind in ("queen", "rook"):
        sparse = contiguity(dataset, rook=(kind == "rook"))
        sparse = _row_standardise(sparse) if row_standardise else sparse  # binary: rows divided by their counts
        weights = SpatialWeights(sparse, kind, params, dataset.ids, row_standardise)
    else:
        gdf = dataset.metric.set_index(dataset.areas["id"].to_numpy())
        points = gdf.geometry.representative_point() if kind != "knn" else gdf.geometry.centroid
        if kind == "knn":
            graph = Graph.build_knn(points, k=params["k"])
        elif kind == "distance":
            graph = Graph.build_distance_band(points, threshold=params["distance"], binary=True)
        else:
            graph = Graph.build_kernel(points, kernel=params["kernel"], bandwidth=params["bandwidth"], k=params["k"])
        if row_standardise:
            graph = graph.transform("r")
        weights = SpatialWeights(graph.sparse, kind, params, dataset.ids, row_standardise, graph)
    checkpoint()
    dataset.weights_cache.put(key, weights)
    return weights
