"""LISA's global Moran's I test chosen by the caller (issue 20): ``--global-test`` on the command line and
``global_test`` over HTTP, validated; the output names the test its p-value comes from, and the analytic
randomisation test agrees with 999 permutations on Berlin and on a grid without pattern."""

from __future__ import annotations

import warnings

import geopandas as gpd
import numpy as np
import pytest
from shapely import box

from conftest import shared_path
from spatial.dataset import validate
from spatial.local import local_statistic

warnings.filterwarnings("ignore")
LOCAL = "/v1/datasets/georgia-1990/local"


def test_cli_global_test(segmap, georgia_args, capsys):
    base = ["local", *georgia_args, "--group", "black", "--permutations", "99", "--seed", "1"]
    default = segmap(*base)
    assert default.returncode == 0, default.stderr
    assert "global Moran's I" in default.stderr and "(randomisation test, analytic moments)" in default.stderr
    perm = segmap(*base, "--global-test", "permutation")
    assert perm.returncode == 0, perm.stderr
    assert "(permutation test, 99 permutations; randomisation p" in perm.stderr  # as many as the local test
    from app.cli import build_parser

    with pytest.raises(SystemExit) as bad:
        build_parser().parse_args([*base, "--global-test", "bootstrap"])
    assert bad.value.code == 2 and "--global-test" in capsys.readouterr().err


def test_http_global_test(app_client):
    params = {"group": "black", "permutations": 99, "seed": 1}
    default = app_client.get(LOCAL, params=params)
    assert default.status_code == 200
    assert default.json()["segmap"]["summary"]["global_moran"]["test"] == "randomisation"
    perm = app_client.get(LOCAL, params={**params, "global_test": "permutation"})
    assert perm.status_code == 200 and perm.headers["etag"] != default.headers["etag"]
    g = perm.json()["segmap"]["summary"]["global_moran"]
    assert g["test"] == "permutation" and g["permutations"] == 99 and g["p_value"] == g["p_value_permutation"]
    bad = app_client.get(LOCAL, params={**params, "global_test": "bootstrap"})
    assert bad.status_code == 422 and "global_test" in bad.text and "permutation" in bad.text
    download = app_client.get(f"{LOCAL}/lisa/download.csv", params={**params, "global_test": "bootstrap"})
    assert download.status_code == 422 and "global_test" in download.text  # downloads share the query model


def agree(ds, group):
    """The permutation test's null moments and p-value against the analytic randomisation test's."""
    g = local_statistic(ds, group, "lisa", permutations=0, seed=3, global_test="permutation").summary["global_moran"]
    n_perm = g["permutations"]
    assert n_perm == 999 and g["test"] == "permutation"
    assert abs(g["expected_permutation"] - g["expected"]) < 4 * np.sqrt(g["variance"] / n_perm)
    assert g["variance_permutation"] == pytest.approx(g["variance"], rel=4 * np.sqrt(2 / (n_perm - 1)))
    p, p_rand = g["p_value_permutation"], g["p_value_randomisation"]
    se = np.sqrt(max(p, 2 / (n_perm + 1)) * (1 - p) / n_perm)
    smallest = 2 / (n_perm + 1)  # the permutation p-value cannot go lower
    assert abs(p - max(p_rand, smallest)) < 4 * se + 0.01
    return g


def test_analytic_p_agrees_with_permutations_on_berlin():
    from spatial.io import load_dataset

    gdf = gpd.read_file(shared_path("berlin", "berlin-lor-planning-areas-until-2020.geojson"))
    ds = load_dataset(
        gdf[~gdf["id"].duplicated(keep=False)],
        counts=shared_path("berlin", "berlin-lor-population-2020-02-t1-planning-areas.csv"),
        key="id",
        drop_unmatched=True,
        total="inhabitants",
        groups=["inhabitants_foreigners"],
    )
    g = agree(ds, "inhabitants_foreigners")
    assert g["p_value_permutation"] == 0.002 and g["p_value_randomisation"] < 1e-6  # strongly clustered


def test_analytic_p_agrees_with_permutations_without_pattern():
    side = 40
    rng = np.random.default_rng(8)
    i, j = np.divmod(np.arange(side * side), side)
    total = rng.integers(100, 900, side * side)
    gdf = gpd.GeoDataFrame(
        {"id": [f"c{k}" for k in range(side * side)], "total": total, "x": rng.binomial(total, 0.2)},
        geometry=box(i * 100.0, j * 100.0, (i + 1) * 100.0, (j + 1) * 100.0),
        crs="EPSG:32633",
    )
    g = agree(validate(gdf, id_col="id", groups=["x"], total="total"), "x")
    assert 0.05 < g["p_value_randomisation"] < 0.95  # a p-value away from the ends, where disagreement shows
