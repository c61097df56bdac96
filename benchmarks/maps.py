"""Map page size and build time: segmap's pages vs a plain Folium map of the same areas.

Run: python -m benchmarks.maps   (synthetic square grids in EPSG:3857 plus the bundled Georgia counties)
The Folium anchor is what a user gets from ``folium.GeoJson(gdf).add_to(folium.Map())``: full-precision
coordinates, every column as a property, assets from CDNs.
"""

from __future__ import annotations

import folium
import geopandas as gpd
import numpy as np
from shapely.geometry import box

from benchmarks.common import QUICK, alternate, header, spread, table, timed, versions, write
from maps.views import PageOptions, render_page
from spatial.dataset import Metadata
from spatial.io import load_dataset


def grid(n: int):
    side = int(np.sqrt(n))
    cells = [box(x * 100, y * 100, x * 100 + 100, y * 100 + 100) for x in range(side) for y in range(side)]
    rng = np.random.default_rng(0)
    total = rng.integers(50, 500, len(cells))
    gdf = gpd.GeoDataFrame(
        {"id": [f"c{i}" for i in range(len(cells))], "total": total, "migrants": rng.binomial(total, 0.2)},
        geometry=cells,
        crs=3857,
    )
    return load_dataset(gdf, groups=["migrants"], total="total", key="id")


def folium_plain(ds):
    m = folium.Map(tiles=None)
    folium.GeoJson(ds.areas.to_crs(4326)).add_to(m)
    return m.get_root().render()


def _offline_page(ds) -> str:
    """What /maps/{id}/download builds above SEGMAP_MAX_DOWNLOAD_AREAS: the page with the app's tiles inside."""
    from app.tiles import TileIndex, offline_tiles
    from app.tileservice import Layer, area_properties
    from spatial.disclosure import as_public

    index = TileIndex(ds.areas)
    tiles, zooms = offline_tiles(index, area_properties(as_public(ds), Layer("migrants")))
    return render_page(
        ds,
        PageOptions(
            "x",
            "migrants",
            view="share",
            mode="download",
            vector_tiles=True,
            embedded_tiles=tiles,
            embedded_zooms=zooms,
        ),
    )[0]


def _row(name, ds, group, reps):
    """Embed page vs Folium plain on the same areas, alternating (Folium skipped above 20,000 areas)."""
    calls = {"ours": lambda: render_page(ds, PageOptions("x", group, view="share", mode="embed"))[0]}
    if ds.n <= 20_000:
        calls["ref"] = lambda: folium_plain(ds)
    times = alternate(calls, reps, warm=False)
    page = calls["ours"]()
    row = {"dataset": name, "areas": f"{ds.n:,}", "segmap embed KiB": len(page.encode()) / 1024}
    row["segmap"] = spread(times["ours"])
    if "ref" in calls:
        plain = calls["ref"]()
        size = len(plain.encode()) / 1024
        return {
            **row,
            "folium plain KiB": size,
            "folium": spread(times["ref"]),
            "size ratio": size / row["segmap embed KiB"],
        }
    return {**row, "folium plain KiB": "skipped", "folium": "", "size ratio": ""}


def main(quick: bool = QUICK) -> None:
    georgia = load_dataset(
        "data/boundaries/georgia_counties.gpkg",
        counts="data/census/georgia_counties_1990.csv",
        key="area_key",
        total="total_population",
        groups=["black"],
        meta=Metadata(name="Georgia"),
    )
    reps = 3 if quick else 5
    big = grid(100_000)
    rows = [
        _row("Georgia counties", georgia, "black", reps),
        _row("grid 2,500", grid(2_500), "migrants", reps),
        _row("grid 20,000", grid(20_000), "migrants", reps),
        _row("grid 100,000", big, "migrants", reps),
    ]
    full = render_page(big, PageOptions("x", "migrants", view="share", mode="page"))[0]
    t_full = alternate(
        {"page": lambda: render_page(big, PageOptions("x", "migrants", view="share", mode="page"))}, reps, warm=False
    )["page"]
    offline, t_offline = timed(lambda: _offline_page(big))
    anchors = (
        f"{versions('folium', 'geopandas')}: `folium.GeoJson(gdf)` on `folium.Map()`, one view, full-precision "
        "coordinates, every column a property, assets from CDNs (not interactive at 20,000+ areas), rendered to "
        f"HTML. Both sides timed in the same process, {reps} alternating runs each, the first included (no warm-up: "
        "a page is built once per request); sizes are of the HTML."
    )
    write(
        "maps",
        header("Map pages: size and build time, segmap vs a plain Folium map of the same areas", anchors)
        + table(rows)
        + "\n`segmap embed`: `/maps/{id}/embed` for the share view; below 3,000 areas all views are embedded as one "
        "simplified, rounded GeoJSON, above it the page draws vector tiles and carries no geometry. "
        f"Full page (`/maps/{{id}}` with the indices panel and a list of areas) at {big.n:,} areas: "
        f"{len(full.encode()) / 1024:.0f} KiB, built in {spread(t_full)}. Offline download at {big.n:,} areas, "
        f"carrying vector tiles instead of GeoJSON: {len(offline.encode()) / 2**20:.1f} MiB, built in {t_offline:.1f} s "
        "(one run, tile index included). segmap's build time at 2,500 areas is mostly the LISA and Gi* permutations "
        "(999 each) that folium plain does not do.\n",
    )


if __name__ == "__main__":
    main()
