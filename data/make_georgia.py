"""Build the bundled sample data from libpysal's Georgia counties example (1990 US census).

Run once (the outputs are committed): python data/make_georgia.py
Boundaries and counts are written as separate files joined by `area_key` (county FIPS code).
"""

from pathlib import Path

import geopandas as gpd
import libpysal
import numpy as np

HERE = Path(__file__).parent
SRC = Path(libpysal.__file__).parent / "examples" / "georgia" / "G_utm.shp"

g = gpd.read_file(SRC)
# The shapefile has no .prj; its coordinates are UTM zone 16N (NAD83): reprojected centroids
# land within 0.05° of the file's own Latitude/Longitud columns (zone 17 misses by 6°).
g = g.set_crs(26916)
g["area_key"] = g["AreaKey"].astype(int).astype(str)
g = g.sort_values("area_key").reset_index(drop=True)

total = g["TotPop90"].astype(int)
census = g[["area_key"]].copy()
census["total_population"] = total
census["foreign_born"] = np.rint(total * g["PctFB"] / 100).astype(int)
census["native_born"] = total - census["foreign_born"]
census["black"] = np.rint(total * g["PctBlack"] / 100).astype(int)
census["not_black"] = total - census["black"]
census["rural"] = np.rint(total * g["PctRural"] / 100).astype(int)

(HERE / "boundaries").mkdir(exist_ok=True)
(HERE / "census").mkdir(exist_ok=True)
g[["area_key", "geometry"]].to_file(HERE / "boundaries" / "georgia_counties.gpkg", layer="counties", driver="GPKG")
census.to_csv(HERE / "census" / "georgia_counties_1990.csv", index=False)
print(f"{len(g)} counties, {census.total_population.sum():,} people, {census.foreign_born.sum():,} foreign-born")
