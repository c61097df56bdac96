"""Contiguity weights by hashing shared vertices and edges: equal to libpysal's Graph.build_contiguity on real
boundaries (Georgia, Berlin, Chicago) and on a grid; the hash's collision path; the Graph made on demand."""

from __future__ import annotations

import geopandas as gpd
import numpy as np
import pytest
from libpysal.graph import Graph
from shapely import box
from shapely.geometry import MultiPolygon, Polygon

import spatial.weights as weights
from conftest import BUNDLED, shared_path
from spatial.dataset import validate
from spatial.weights import build_weights, contiguity_matrix


def libpysal_matrix(geoms, rook):
    m = Graph.build_contiguity(gpd.GeoDataFrame(geometry=list(geoms)), rook=rook).sparse.tocsr()
    m.eliminate_zeros()  # libpysal's islands are zero self-loops
    return m


def real(name):
    if name == "georgia":
        return gpd.read_file(BUNDLED / "boundaries" / "georgia_counties.gpkg").geometry.to_numpy()
    path = {
        "berlin": ("berlin", "berlin-lor-planning-areas-until-2020.geojson"),
        "chicago": ("chicago", "Chicago_2020.geojson"),
    }[name]
    return gpd.read_file(shared_path(*path)).geometry.to_numpy()


def grid(side, cell=100.0):
    i, j = np.divmod(np.arange(side * side), side)
    return box(i * cell, j * cell, (i + 1) * cell, (j + 1) * cell)


@pytest.mark.parametrize("rook", [False, True], ids=["queen", "rook"])
@pytest.mark.parametrize("name", ["georgia", "berlin", "chicago"])
def test_contiguity_equals_libpysal_on_real_boundaries(name, rook):
    geoms = real(name)
    ours, ref = contiguity_matrix(geoms, rook), libpysal_matrix(geoms, rook)
    assert ref.nnz > 0 and (ours != ref).nnz == 0, name
    assert (ours.data == 1).all() and ours.has_sorted_indices


@pytest.mark.parametrize("rook", [False, True], ids=["queen", "rook"])
def test_contiguity_equals_libpysal_on_a_grid_with_holes_and_parts(rook):
    geoms = list(grid(12))
    geoms[5] = MultiPolygon([geoms[5], box(5000, 5000, 5100, 5100)])  # a far part of an area
    geoms.append(box(5100, 5000, 5200, 5100))  # touches only that part
    geoms.append(Polygon([(0, 2000), (400, 2000), (400, 2400), (0, 2400)], [[(100, 2100), (300, 2100), (300, 2300)]]))
    geoms.append(box(7000, 7000, 7100, 7100))  # an island
    geoms = np.array(geoms, dtype=object)
    ours, ref = contiguity_matrix(geoms, rook), libpysal_matrix(geoms, rook)
    assert (ours != ref).nnz == 0
    degree = np.diff(ours.indptr)
    assert degree[-1] == 0 and degree[0] == (3 if not rook else 2) and degree[13] == (8 if not rook else 4)


def test_hash_collisions_are_put_right(monkeypatch):
    """With every hash equal, the exact fallback must still group each vertex on its own."""
    geoms = np.r_[grid(9), real("georgia")[:40]]
    expected = contiguity_matrix(geoms, False), contiguity_matrix(geoms, True)
    monkeypatch.setattr(weights, "_MIX", (0, 0, 0, 0))
    for rook, want in zip((False, True), expected, strict=True):
        got = contiguity_matrix(geoms, rook)
        assert (got != want).nnz == 0 and (got != libpysal_matrix(geoms, rook)).nnz == 0


def test_build_weights_row_standardised_and_graph_on_demand():
    side = 6
    gdf = gpd.GeoDataFrame(
        {"id": [f"g{k}" for k in range(side * side + 1)], "t": 100, "x": 10},
        geometry=list(grid(side)) + [box(9000, 9000, 9100, 9100)],
        crs="EPSG:32633",
    )
    ds = validate(gdf, id_col="id", groups=["x"], total="t")
    w = build_weights(ds, "queen")
    assert w._graph is None  # not built until asked for
    ref = Graph.build_contiguity(ds.metric.set_index(ds.ids), rook=False).transform("r")
    np.testing.assert_allclose(w.sparse.toarray(), ref.sparse.toarray())
    assert list(w.graph.unique_ids) == list(ds.ids)
    np.testing.assert_allclose(w.graph.sparse.toarray(), ref.sparse.toarray())
    assert list(w.graph.isolates) == ["g36"] and w.describe()["islands"] == ["g36"]
    binary = build_weights(ds, "rook", row_standardise=False)
    assert set(binary.sparse.data) == {1.0} and binary.describe()["max_neighbours"] == 4
