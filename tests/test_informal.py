"""Informal settlements: Rio's favelas over its bairros, Cape Town's settlements over a generated grid."""

from __future__ import annotations

import warnings

import geopandas as gpd
import numpy as np
import pytest
from shapely.geometry import Point, box

from conftest import shared_path
from spatial.dataset import validate
from spatial.errors import ValidationError
from spatial.informal import overlay

warnings.filterwarnings("ignore")


@pytest.fixture(scope="module")
def rio():
    bairros = gpd.read_file(shared_path("rio", "Limite_de_Bairros.shp"))
    favelas = gpd.read_file(shared_path("rio", "Limite_Favelas.shp"))
    return bairros, favelas, overlay(bairros, favelas, population="pop_sabren", unit_key="codbnum", name_col="nome")


def test_rio_area_shares_and_population_are_conserved(rio):
    bairros, favelas, result = rio
    s = result.summary
    assert s["area_share_of_city"] == pytest.approx(0.040, abs=0.002)
    assert s["population_allocated"] + s["population_outside_units"] == pytest.approx(
        favelas["pop_sabren"].sum(), abs=1
    )
    areas = result.dataset.areas.set_index("nome")
    top = areas["informal_area_share"].sort_values(ascending=False)
    assert top.index[0] == "Complexo do Alemão" and top.iloc[0] == pytest.approx(0.58, abs=0.02)
    assert top.index[1] == "Rocinha" and top.iloc[1] == pytest.approx(0.56, abs=0.02)
    assert (areas["informal_area_share"] <= 1 + 1e-9).all()


def test_rio_downstream_statistics_survive_the_islands(rio):
    from spatial.local import local_statistic

    ds = rio[2].dataset
    ds.areas["area_share_pct"] = ds.areas["informal_area_share"] * 1000
    res = local_statistic(ds, "informal", "lisa", permutations=99, seed=1)
    assert len(res.weights["islands"]) == 2
    islands = np.isin(res.ids, res.weights["islands"])  # an island with no favela has no share: no_population
    assert set(res.labels[islands]) <= {"no_neighbours", "no_population"} and "no_neighbours" in res.labels[islands]


def test_cape_town_reprojection_and_conservation():
    sett = gpd.read_file(shared_path("capetown", "informal.shp"))
    assert sett.crs.to_epsg() == 3857
    utm = sett.to_crs(32734)
    minx, miny, maxx, maxy = utm.total_bounds
    step = 2000
    cells = [
        box(x, y, x + step, y + step)
        for x in np.arange(minx - step, maxx + step, step)
        for y in np.arange(miny - step, maxy + step, step)
    ]
    grid = gpd.GeoDataFrame({"cell": [f"g{i}" for i in range(len(cells))]}, geometry=cells, crs=32734)
    res = overlay(grid, sett, population="Popn", unit_key="cell")
    assert res.summary["settlements_outside"] == 0
    assert res.summary["population_allocated"] == pytest.approx(sett["Popn"].sum(), abs=1)
    # Area measured in an equal-area CRS, whichever CRS each layer came in.
    true_area = sett.to_crs(sett.estimate_utm_crs()).geometry.make_valid().union_all().area
    assert res.summary["informal_area_m2"] == pytest.approx(true_area, rel=0.01)


X0, Y0 = 500_000, 5_000_000  # on UTM 33N's central meridian, where UTM areas are nearly true


def b(x1, y1, x2, y2):
    return box(X0 + x1, Y0 + y1, X0 + x2, Y0 + y2)


def units(total=None):
    gdf = gpd.GeoDataFrame(
        {"id": ["a", "b"], "pop": [1000, 50] if total else [0, 0]},
        geometry=[b(0, 0, 100, 100), b(100, 0, 200, 100)],
        crs="EPSG:32633",
    )
    return validate(gdf, id_col="id", groups=["pop"], total="pop") if total else gdf


def test_split_overlap_points_outside_and_clipping():
    sett = gpd.GeoDataFrame(
        {"p": [100.0, 30.0, 7.0, 5.0]},
        geometry=[
            b(50, 0, 150, 100),  # spans both units half and half
            b(60, 0, 90, 100),  # overlaps the first: area not counted twice
            Point(X0 + 150, Y0 + 50),  # a point with population
            b(500, 500, 600, 600),  # outside every unit
        ],
        crs="EPSG:32633",
    )
    res = overlay(units(total=True), sett, population="p")
    a = res.dataset.areas.set_index("id")
    assert a.loc["a", "informal_area_m2"] == pytest.approx(50 * 100, rel=2e-3)
    assert a.loc["a", "informal"] == 80 and a.loc["b", "informal"] == 50  # 50+30 | 50+7 clipped to b's total 50
    assert any(n.code == "clipped" for n in res.notes) and res.summary["settlements_outside"] == 1
    assert res.summary["population_outside_units"] == 5
    assert a.loc["a", "n_settlements"] == 2 and a.loc["b", "n_settlements"] == 2
    assert "informal" in res.dataset.groups


def test_bad_settlement_inputs():
    sett = gpd.GeoDataFrame({"p": [-1.0]}, geometry=[box(0, 0, 1, 1)], crs="EPSG:32633")
    with pytest.raises(ValidationError, match="negative"):
        overlay(units(), sett, population="p", unit_key="id")
    with pytest.raises(ValidationError, match="No population column"):
        overlay(units(), sett, population="people", unit_key="id")
    with pytest.raises(ValidationError, match="no CRS"):
        overlay(units(), gpd.GeoDataFrame({"p": [1.0]}, geometry=[box(0, 0, 1, 1)]), population="p", unit_key="id")
