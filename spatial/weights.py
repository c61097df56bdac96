"""Spatial weights built with libpysal's ``Graph`` on the metric geometry, cached per dataset.

Islands (areas with no neighbour) and disconnected components are reported, never an error:
local statistics label islands ``no_neighbours`` and give them no p-value.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import scipy.sparse as sp
from libpysal.graph import Graph

from .dataset import AreaDataset
from .errors import ValidationError, problem

KINDS = ("queen", "rook", "knn", "distance", "kernel")
_CACHE_ATTR = "_weights_cache"
_CACHE_SIZE = 8


@dataclass
class SpatialWeights:
    graph: Graph
    kind: str
    params: dict
    ids: np.ndarray
    row_standardised: bool = True
    sparse: sp.csr_matrix = field(init=False)

    def __post_init__(self):
        self.sparse = self.graph.sparse.tocsr()
        self.sparse.eliminate_zeros()  # Graph keeps islands as explicit zero self-loops

    @property
    def cardinalities(self) -> np.ndarray:
        return np.diff(self.sparse.indptr)

    @property
    def islands(self) -> np.ndarray:
        return self.ids[self.cardinalities == 0]

    @property
    def n_components(self) -> int:
        return int(sp.csgraph.connected_components(self.sparse, directed=False)[0])

    def describe(self) -> dict:
        card = self.cardinalities
        return {"kind": self.kind, **self.params, "row_standardised": self.row_standardised,
                "n_areas": int(len(self.ids)), "mean_neighbours": float(card.mean()) if len(card) else 0.0,
                "min_neighbours": int(card.min()) if len(card) else 0, "max_neighbours": int(card.max()) if len(card) else 0,
                "islands": [str(i) for i in self.islands], "n_components": self.n_components}


def build_weights(dataset: AreaDataset, kind: str = "queen", *, k: int | None = None, distance: float | None = None,
                  bandwidth: float | None = None, kernel: str | None = None, row_standardise: bool = True) -> SpatialWeights:
    """Weights of ``kind`` between the dataset's areas (distances in metres, in the metric CRS)."""
    if kind not in KINDS:
        raise ValidationError(problem("bad_parameter", f"Unknown weights {kind!r}; choose from {list(KINDS)}"))
    params: dict = {}
    if kind == "knn":
        params["k"] = int(k or 8)
        if not 1 <= params["k"] < dataset.n:
            raise ValidationError(problem("bad_parameter", f"k must be between 1 and {dataset.n - 1} (the number of other areas)"))
    if kind == "distance":
        if not distance or distance <= 0:
            raise ValidationError(problem("bad_parameter", "distance weights need a positive distance in metres"))
        params["distance"] = float(distance)
    if kind == "kernel":
        params["kernel"] = kernel or "gaussian"
        params["bandwidth"] = float(bandwidth or distance) if (bandwidth or distance) else None
        params["k"] = int(k or 8)
    key = (kind, tuple(sorted(params.items())), row_standardise)
    cache = dataset.__dict__.setdefault(_CACHE_ATTR, {})
    if key in cache:
        return cache[key]

    gdf = dataset.metric.set_index(dataset.areas["id"].to_numpy())
    if kind in ("queen", "rook"):
        graph = Graph.build_contiguity(gdf, rook=(kind == "rook"))
    else:
        points = gdf.geometry.representative_point() if kind != "knn" else gdf.geometry.centroid
        if kind == "knn":
            graph = Graph.build_knn(points, k=params["k"])
        elif kind == "distance":
            graph = Graph.build_distance_band(points, threshold=params["distance"], binary=True)
        else:
            graph = Graph.build_kernel(points, kernel=params["kernel"], bandwidth=params["bandwidth"], k=params["k"])
    if row_standardise:
        graph = graph.transform("r")
    weights = SpatialWeights(graph, kind, params, dataset.ids, row_standardise)
    if len(cache) >= _CACHE_SIZE:
        cache.pop(next(iter(cache)))
    cache[key] = weights
    return weights
