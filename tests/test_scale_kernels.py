"""What makes contiguity, spatial dissimilarity, Gi* and LISA fast at a million areas (issue 20) without changing
their numbers: one contiguity build per dataset, shared by the weights and the spatial indices."""

from __future__ import annotations

import geopandas as gpd
import numpy as np
import pytest
from shapely import box

import spatial.weights as weights
from spatial.dataset import validate
from spatial.indices.compute import compute_indices


def grid(side: int = 12, seed: int = 3):
    rng = np.random.default_rng(seed)
    i, j = np.divmod(np.arange(side * side), side)
    total = rng.integers(50, 900, side * side)
    gdf = gpd.GeoDataFrame(
        {"id": [f"g{k}" for k in range(side * side)], "total": total, "migrants": rng.binomial(total, 0.1 + i / 40)},
        geometry=box(i * 100.0, j * 100.0, (i + 1) * 100.0, (j + 1) * 100.0),
        crs="EPSG:32633",
    )
    return validate(gdf, id_col="id", groups=["migrants"], total="total")


def test_contiguity_built_once_for_weights_and_spatial_dissimilarity(monkeypatch):
    ds = grid()
    calls = []
    real = weights.contiguity_matrix
    monkeypatch.setattr(weights, "contiguity_matrix", lambda g, rook=False: calls.append(rook) or real(g, rook))
    rs = weights.build_weights(ds, "queen")
    sd = compute_indices(ds, group="migrants", indices=["spatial_dissimilarity"])
    binary = weights.build_weights(ds, "queen", row_standardise=False)
    assert calls == [False]  # one queen build for all three
    # the shared index arrays were not changed by row-standardising: binary weights are still all ones
    assert (binary.sparse.data == 1).all() and (rs.sparse != 0).nnz == binary.sparse.nnz
    np.testing.assert_allclose(rs.sparse.sum(axis=1), 1.0)
    sg = pytest.importorskip("segregation.singlegroup")
    ref = sg.SpatialDissim(ds.areas, "migrants", "total").statistic  # pysal builds its own queen weights
    assert sd["spatial_dissimilarity"].value == pytest.approx(ref, abs=1e-12)
