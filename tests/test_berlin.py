"""The bundled Berlin series (data/make_berlin.py): what the files hold, against the published source where
../shared is present, and that registration gives the same datasets as segmap's own loader."""

from __future__ import annotations

import dataclasses

import geopandas as gpd
import numpy as np
import pandas as pd

from app.bundled import BERLIN_GROUPS, register_berlin
from app.registry import Registry
from conftest import BUNDLED, shared_path

CENSUS = BUNDLED / "census" / "berlin"
LAYERS = {
    "berlin_planning_areas_2015": 447,
    "berlin_planning_areas_2019": 448,
    "berlin_forecast_areas_2015": 60,
    "berlin_forecast_areas_2021": 58,
}


def layer(name: str) -> gpd.GeoDataFrame:
    return gpd.read_parquet(BUNDLED / "boundaries" / f"{name}.parquet")


def test_layers_ids_and_totals():
    for name, n in LAYERS.items():
        g = layer(name)
        assert len(g) == n and g["area_id"].is_unique and g.is_valid.all() and g.crs.to_epsg() == 25833
        assert g["name"].notna().all()
    pa = layer("berlin_planning_areas_2019").set_index("area_id")
    assert pa.loc["04030417", "name"] == "Schloßstraße" and pa.loc["06010102", "name"] == "Schloßstraße"
    assert pa.loc["04030417"].geometry.distance(pa.loc["06010102"].geometry) > 1000  # two districts apart
    totals = {
        y: pd.read_csv(CENSUS / f"planning_areas_{y}.csv")[["inhabitants", "foreigners"]].sum() for y in (2015, 2020)
    }
    assert tuple(totals[2015]) == (3_610_156, 621_075) and tuple(totals[2020]) == (3_769_962, 789_076)
    fa24 = pd.read_csv(CENSUS / "forecast_areas_2024.csv")
    assert fa24["foreigners"].sum() == 971_878 and len(fa24) == 58
    for y in range(2015, 2021):  # the two levels of one year add up to the same city
        a, b = (pd.read_csv(CENSUS / f"{lv}_{y}.csv") for lv in ("planning_areas", "forecast_areas"))
        assert (a[list(BERLIN_GROUPS)].sum() == b[list(BERLIN_GROUPS)].sum()).all()
    size = sum(p.stat().st_size for p in (BUNDLED / "boundaries").glob("berlin_*")) + sum(
        p.stat().st_size for p in CENSUS.iterdir()
    )
    assert size < 2.5e6


def test_groups_do_not_overlap_as_documented():
    t = pd.read_csv(CENSUS / "planning_areas_2020.csv")
    assert (t["foreigners"] + t["germans_with_migration_background"] == t["migration_background"]).all()
    assert (t["migration_background"] + t["no_migration_background"] == t["inhabitants"]).all()
    origin = t[[c for c in t if c.startswith("origin_")]].sum(axis=1)
    assert (origin <= t["migration_background"]).all() and origin.sum() > 0.8 * t["migration_background"].sum()
    for y in range(2015, 2025):  # the publisher's rounding: at most 5 people over, in one area a year
        t = pd.read_csv(CENSUS / f"planning_areas_{y}.csv" if y < 2021 else CENSUS / f"forecast_areas_{y}.csv")
        over = t[[c for c in t if c.startswith("origin_")]].sum(axis=1) - t["migration_background"]
        assert over.max() <= 5 and (over > 0).sum() <= 1


def test_2015_layer_is_2019_with_the_split_dissolved():
    old, new = layer("berlin_planning_areas_2015").set_index("area_id"), layer("berlin_planning_areas_2019")
    new = new.set_index("area_id")
    assert set(new.index) - set(old.index) == {"09041403"}
    merged = new.loc["09041301"].geometry.union(new.loc["09041403"].geometry)
    assert old.loc["09041301"].geometry.symmetric_difference(merged).area < 1.0
    same = old.index.drop("09041301")
    assert old.loc[same].geometry.geom_equals_exact(new.loc[same].geometry, 0).all()


def test_simplified_layers_keep_every_neighbour_and_the_source_counts():
    from libpysal.weights import Queen

    src = shared_path("berlin")
    for name, path in (
        ("berlin_forecast_areas_2021", "berlin-lor-forecast-areas-from-2021.geojson"),
        ("berlin_planning_areas_2019", "berlin-lor-planning-areas-until-2020.geojson"),
    ):
        ours = layer(name).sort_values("area_id").reset_index(drop=True)
        theirs = gpd.read_file(src / path).to_crs(25833)
        theirs["area_id"] = theirs["id"].astype(str)
        if "06010102" in set(theirs["area_id"]):  # the relabelling of make_berlin.py, found independently
            regions = gpd.read_file(src / "berlin-lor-district-regions-until-2020.geojson").to_crs(25833)
            region = regions.loc[regions["id"] == "040304"].geometry.iloc[0]
            dup = theirs.index[(theirs["area_id"] == "06010102") & theirs.representative_point().within(region)]
            theirs.loc[dup, "area_id"] = "04030417"
        theirs = theirs.sort_values("area_id").reset_index(drop=True)
        assert list(ours["area_id"]) == list(theirs["area_id"])
        rel = np.abs(ours.area.to_numpy() / theirs.area.to_numpy() - 1)
        assert rel.max() < 1e-3
        w_ours, w_theirs = (Queen.from_dataframe(g, use_index=False, silence_warnings=True) for g in (ours, theirs))
        extra = {(i, j) for i, js in w_ours.neighbors.items() for j in js if j not in w_theirs.neighbors[i]}
        assert all(set(w_theirs.neighbors[i]) <= set(w_ours.neighbors[i]) for i in w_theirs.neighbors)
        assert len(extra) <= 2  # one pair whose corners nearly meet (make_berlin.py, data/README.md)
    for year in (2015, 2021, 2024):
        pub = pd.read_csv(
            src / "timeseries" / f"berlin-lor-population-{year}-02-t1-forecast-areas.csv", dtype={"id": str}
        )
        ours = pd.read_csv(CENSUS / f"forecast_areas_{year}.csv", dtype={"area_id": str}).set_index("area_id")
        pub = pub.set_index("id").loc[ours.index]
        assert (ours["foreigners"] == pub["inhabitants_foreigners"]).all()
        assert (ours["migration_background"] == pub["inhabitants_with_migration_background"]).all()


def test_registration_equals_segmap_loader(tmp_path):
    from spatial.io import load_dataset

    reg = Registry(tmp_path)
    register_berlin(reg, BUNDLED)
    assert [r["id"] for r in reg.series("berlin")] == [f"berlin-{y}" for y in range(2015, 2021)]
    assert reg.info("berlin-2016")["disclosure"] == {"threshold": 0}
    for dataset_id, level, year, geo in (
        ("berlin-2016", "planning_areas", 2016, 2015),
        ("berlin-fa-2023", "forecast_areas", 2023, 2021),
    ):
        stored = reg.load(dataset_id)
        direct = load_dataset(
            BUNDLED / "boundaries" / f"berlin_{level}_{geo}.parquet",
            counts=pd.read_csv(CENSUS / f"{level}_{year}.csv", dtype={"area_id": str}).drop(columns="year"),
            key="area_id",
            total="inhabitants",
            groups=list(BERLIN_GROUPS),
            name_col="name",
        )
        a = stored.areas.sort_values("id").reset_index(drop=True)
        b = direct.areas.sort_values("id").reset_index(drop=True)
        pd.testing.assert_frame_equal(
            pd.DataFrame(a.drop(columns="geometry")), pd.DataFrame(b.drop(columns="geometry"))
        )
        assert a.geometry.geom_equals_exact(b.geometry, 0).all()
        assert dataclasses.asdict(stored.meta)["year"] == year
    register_berlin(reg, BUNDLED)  # once per data directory
    assert len(reg.list()) == 16


def test_registration_never_replaces_a_users_dataset(tmp_path):
    reg = Registry(tmp_path)
    mine = reg.put("berlin-2016", _tiny(), series="berlin", date="2017-12-31")  # the id, and the 2017 date
    register_berlin(reg, BUNDLED)
    assert reg.info("berlin-2016")["version"] == mine["version"]
    assert reg.info("berlin-2017") is None  # its date is the user's dataset's in series berlin
    assert reg.info("berlin-2018")["series"] == "berlin"


def _tiny():
    from spatial.io import load_dataset

    gdf = layer("berlin_forecast_areas_2015").head(3)
    counts = pd.read_csv(CENSUS / "forecast_areas_2015.csv", dtype={"area_id": str}).head(3).drop(columns="year")
    return load_dataset(gdf, counts=counts, key="area_id", total="inhabitants", groups=["foreigners"])
