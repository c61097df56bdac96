"""LISA's global Moran's I: analytic randomisation moments by default (equal to esda.Moran's), a permutation
test on request that agrees with esda's permutation p-value within Monte Carlo error."""

from __future__ import annotations

import warnings

import geopandas as gpd
import numpy as np
import pytest
from shapely import box

from conftest import shared_path
from spatial.dataset import validate
from spatial.errors import ValidationError
from spatial.local import local_statistic
from spatial.weights import build_weights

esda = pytest.importorskip("esda")
warnings.filterwarnings("ignore")


def grid(side: int, seed: int, trend: float) -> object:
    """side × side cells; shares with a weak west-to-east ``trend`` plus binomial noise."""
    rng = np.random.default_rng(seed)
    i, j = np.divmod(np.arange(side * side), side)
    total = rng.integers(100, 900, side * side)
    migrants = rng.binomial(total, 0.1 + trend * i / side)
    gdf = gpd.GeoDataFrame(
        {"id": [f"c{k}" for k in range(side * side)], "total": total, "migrants": migrants},
        geometry=box(i * 100.0, j * 100.0, (i + 1) * 100.0, (j + 1) * 100.0),
        crs="EPSG:32633",
    )
    return validate(gdf, id_col="id", groups=["migrants"], total="total")


@pytest.fixture(scope="module")
def berlin():
    gdf = gpd.read_file(shared_path("berlin", "berlin-lor-planning-areas-until-2020.geojson"))
    gdf = gdf[~gdf["id"].duplicated(keep=False)]
    from spatial.io import load_dataset

    return load_dataset(
        gdf,
        counts=shared_path("berlin", "berlin-lor-population-2020-02-t1-planning-areas.csv"),
        key="id",
        drop_unmatched=True,
        total="inhabitants",
        groups=["inhabitants_foreigners"],
    )


def check_moments(ds, group):
    ours = local_statistic(ds, group, "lisa", permutations=0).summary["global_moran"]
    ref = esda.Moran(ds.share(group), build_weights(ds, "queen").graph, permutations=0)
    assert ours["test"] == "randomisation"
    assert ours["moran_i"] == pytest.approx(ref.I, abs=1e-10)
    assert ours["expected"] == pytest.approx(ref.EI, abs=1e-12)
    assert ours["variance"] == pytest.approx(ref.VI_rand, rel=1e-10, abs=1e-14)
    assert ours["z"] == pytest.approx(ref.z_rand, rel=1e-10, abs=1e-10)
    assert ours["p_value"] == pytest.approx(ref.p_rand, rel=1e-10, abs=1e-14)  # two-sided
    assert ours["p_value_randomisation"] == ours["p_value"]


def test_randomisation_moments_equal_esda_on_berlin(berlin):
    check_moments(berlin, "inhabitants_foreigners")


def test_randomisation_moments_equal_esda_on_a_grid():
    check_moments(grid(30, seed=4, trend=0.02), "migrants")


def test_permutation_on_request_agrees_with_esda_and_with_the_moments():
    ds = grid(40, seed=11, trend=0.01)  # weak autocorrelation: p-values in the middle, where errors show
    with_perm = local_statistic(ds, "migrants", "lisa", permutations=999, seed=5, global_test="permutation")
    default = local_statistic(ds, "migrants", "lisa", permutations=999, seed=5)
    g = with_perm.summary["global_moran"]
    assert g["test"] == "permutation" and g["permutations"] == 999
    assert g["p_value"] == g["p_value_permutation"]
    # the global test draws after the local ones: local p-values do not depend on it
    np.testing.assert_array_equal(with_perm.p_value, default.p_value)
    assert default.summary["global_moran"]["test"] == "randomisation"
    ref = esda.Moran(ds.share("migrants"), build_weights(ds, "queen").graph, permutations=9999)
    p_esda = min(1.0, 2 * ref.p_sim)  # esda's p_sim is folded one-sided
    assert 0.02 < p_esda < 0.98, "the check needs a p-value away from the ends"
    se = np.sqrt(p_esda * (1 - p_esda) * (1 / 999 + 1 / 9999))
    assert abs(g["p_value"] - p_esda) < 4 * se
    # the analytic randomisation p-value is the permutation null's normal approximation
    assert abs(g["p_value_randomisation"] - p_esda) < 4 * se + 0.01
    assert g["moran_i"] == pytest.approx(ref.I, abs=1e-12)
    assert g["expected_permutation"] == pytest.approx(ref.EI, abs=4 * np.sqrt(ref.VI_rand / 999))


def test_unknown_global_test_is_a_clear_error():
    with pytest.raises(ValidationError, match="global_test"):
        local_statistic(grid(5, seed=1, trend=0.0), "migrants", "lisa", global_test="bootstrap")
