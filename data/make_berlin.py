"""Build the bundled Berlin series from ../shared/data/berlin (population register by LOR area, 31 Dec).

Run once (the outputs are committed): python data/make_berlin.py [SHARED_BERLIN_DIR]
Writes boundaries to data/boundaries/berlin_*.parquet (GeoParquet) and one count table per level and year to
data/census/berlin/, joined on `area_id`. data/README.md describes every derivation.
"""

from __future__ import annotations

import sys
from pathlib import Path

import geopandas as gpd
import pandas as pd
import shapely

HERE = Path(__file__).parent
SRC = Path(sys.argv[1]) if len(sys.argv) > 1 else HERE.parent.parent / "shared" / "data" / "berlin"
CRS = 25833  # ETRS89 / UTM 33N: Berlin's own projected CRS (metres)
SIMPLIFY_M = 2.0  # coverage simplification: shared edges simplified once, so neighbours still touch
GRID_M = 0.01  # coordinates snapped to 1 cm (identical inputs snap to identical outputs)

# t1 column -> bundled name. Groups that do not overlap: migration_background = foreigners + germans_with_mb.
T1 = {
    "inhabitants": "inhabitants",
    "inhabitants_with_migration_background": "migration_background",
    "inhabitants_foreigners": "foreigners",
    "inhabitants_germans_with_migration_background": "germans_with_migration_background",
    "inhabitants_germans_without_migration_background": "no_migration_background",
}
# t4 origin regions that do not overlap. The publisher's regions are nested (France in the EU, Russia in the former
# Soviet Union, Syria in the Arab countries) and "Islamic countries" also holds Kazakhstan and Bosnia, counted in
# the former Soviet Union and Yugoslavia: Turkey, Iran and the Arab countries are kept in its place.
T4 = ["european_union", "former_yugoslavia", "former_soviet_union", "turkey", "iran", "arabic_countries", "vietnam"]
T4 += ["united_states", "undefined"]
LEVELS = {"planning_areas": "planning-areas", "forecast_areas": "forecast-areas"}
PA_YEARS, FA_YEARS = range(2015, 2021), range(2015, 2025)
# 09041403 was carved out of 09041301 (Adlershof) at the end of 2019; before, its people were counted there.
SPLIT_2019 = ("09041403", "09041301")


def boundaries(name: str) -> gpd.GeoDataFrame:
    g = gpd.read_file(SRC / name)[["id", "name", "geometry"]].rename(columns={"id": "area_id"})
    g["area_id"] = g["area_id"].astype(str)
    if name.startswith("berlin-lor-planning-areas"):
        dup = g.index[g["area_id"] == "06010102"]
        regions = gpd.read_file(SRC / "berlin-lor-district-regions-until-2020.geojson")
        for i in dup:  # the README's quirk: the feature lying in district region 040304 is 04030417
            region = regions[regions.contains(g.geometry[i].representative_point())]
            if list(region["id"]) == ["040304"]:
                g.loc[i, "area_id"] = "04030417"
        assert not g["area_id"].duplicated().any(), "planning-area ids still duplicated"
    g = g.to_crs(CRS)
    g["geometry"] = shapely.set_precision(shapely.coverage_simplify(g.geometry.values, SIMPLIFY_M), GRID_M)
    return g.sort_values("area_id").reset_index(drop=True)


def merged_2015(g: gpd.GeoDataFrame) -> gpd.GeoDataFrame:
    """The 447 planning areas of 2015-2018: 09041403 dissolved back into 09041301."""
    new, old = SPLIT_2019
    out = g[g["area_id"] != new].copy()
    union = shapely.union(g.geometry[g["area_id"] == old].iloc[0], g.geometry[g["area_id"] == new].iloc[0])
    out.loc[out["area_id"] == old, "geometry"] = shapely.set_precision(union, GRID_M)
    return out.reset_index(drop=True)


def counts(level: str, year: int) -> pd.DataFrame:
    stem = SRC / "timeseries" / f"berlin-lor-population-{year}-02-t{{}}-{LEVELS[level]}.csv"
    t1 = pd.read_csv(str(stem).format(1), dtype={"id": str})
    t4 = pd.read_csv(str(stem).format(4), dtype={"id": str})
    out = t1[["id", *T1]].rename(columns={"id": "area_id", **T1})
    # t4 is published as floats with binary noise (28.000000000000004): counts, rounded.
    origin = t4.set_index("id")[[f"inhabitants_from_{r}" for r in T4]].round().astype(int)
    origin.columns = [f"origin_{r}" for r in T4]
    out = out.join(origin, on="area_id")
    if out[origin.columns].isna().any().any():
        raise SystemExit(f"{level} {year}: t4 lacks areas of t1")
    out[origin.columns] = out[origin.columns].astype(int)
    out.insert(1, "year", year)
    return out.sort_values("area_id").reset_index(drop=True)


def main() -> None:
    (HERE / "boundaries").mkdir(exist_ok=True)
    out_counts = HERE / "census" / "berlin"
    out_counts.mkdir(parents=True, exist_ok=True)
    pa = boundaries("berlin-lor-planning-areas-until-2020.geojson")
    layers = {
        "berlin_planning_areas_2019": pa,
        "berlin_planning_areas_2015": merged_2015(pa),
        "berlin_forecast_areas_2015": boundaries("berlin-lor-forecast-areas-until-2020.geojson"),
        "berlin_forecast_areas_2021": boundaries("berlin-lor-forecast-areas-from-2021.geojson"),
    }
    for name, g in layers.items():
        path = HERE / "boundaries" / f"{name}.parquet"
        g.to_parquet(path, index=False)
        print(f"{path.name}: {len(g)} areas, {path.stat().st_size / 1e3:.0f} kB")
    for level, years in (("planning_areas", PA_YEARS), ("forecast_areas", FA_YEARS)):
        for year in years:
            c = counts(level, year)
            geo = geography(level, year)
            missing = set(layers[geo]["area_id"]) ^ set(c["area_id"])
            if missing:
                raise SystemExit(f"{level} {year}: ids not in both boundaries and counts: {sorted(missing)}")
            c.to_csv(out_counts / f"{level}_{year}.csv", index=False)
            print(
                f"{level} {year}: {len(c)} areas, {c.inhabitants.sum():,} inhabitants, {c.foreigners.sum():,} foreign"
            )
            check(layers[geo], c)


def check(areas: gpd.GeoDataFrame, table: pd.DataFrame) -> None:
    """Every year passes segmap's own loader (app/bundled.py trusts the tables after the first year of a layer)."""
    from app.bundled import BERLIN_GROUPS
    from spatial.io import load_dataset

    load_dataset(areas, counts=table.drop(columns="year"), key="area_id", total="inhabitants", groups=BERLIN_GROUPS)


def geography(level: str, year: int) -> str:
    """The boundary layer (file stem) the counts of ``level`` at the end of ``year`` join."""
    if level == "planning_areas":
        return "berlin_planning_areas_2015" if year < 2019 else "berlin_planning_areas_2019"
    return "berlin_forecast_areas_2015" if year < 2021 else "berlin_forecast_areas_2021"


if __name__ == "__main__":
    main()
