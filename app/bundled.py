"""The bundled Berlin series (data/make_berlin.py, data/README.md), registered at the first start of a data directory."""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path

import pandas as pd

from spatial.dataset import ID, Metadata
from spatial.errors import ValidationError

from .registry import Registry

log = logging.getLogger("segmap")

# The bundled Berlin series (data/make_berlin.py): series id, dataset id prefix, level, years, boundary layer by year.
BERLIN = (
    ("berlin", "berlin", "planning_areas", range(2015, 2021), lambda y: 2015 if y < 2019 else 2019),
    ("berlin-forecast-areas", "berlin-fa", "forecast_areas", range(2015, 2025), lambda y: 2015 if y < 2021 else 2021),
)
BERLIN_GROUPS = (
    "foreigners",
    "migration_background",
    "germans_with_migration_background",
    "no_migration_background",
    "origin_european_union",
    "origin_former_yugoslavia",
    "origin_former_soviet_union",
    "origin_turkey",
    "origin_iran",
    "origin_arabic_countries",
    "origin_vietnam",
    "origin_united_states",
    "origin_undefined",
)


# The statistical office publishes these very counts, small cells included (its own rounding applied): withholding
# areas again would hide a third of the planning areas (any of the 13 groups under 10) and protect nothing.
PUBLISHED = {"threshold": 0}


def register_berlin(registry: Registry, bundled_dir: Path) -> None:
    """Register the bundled Berlin series once: planning areas 2015-2020, forecast areas 2015-2024.

    Each boundary layer is read and validated once; later years of it take their counts by a join on the
    area id (make_berlin.py checked every year's table against its layer), so a first start stays quick."""
    if not (bundled_dir / "census" / "berlin").is_dir() or not registry.claim("bundled:berlin"):
        return
    from spatial.io import load_dataset

    level_name = {"planning_areas": "planning areas", "forecast_areas": "forecast areas"}
    cols = ["inhabitants", *BERLIN_GROUPS]
    for series, prefix, level, years, layer in BERLIN:
        base = {}
        for year in years:
            counts = bundled_dir / "census" / "berlin" / f"{level}_{year}.csv"
            meta = Metadata(
                name=f"Berlin {level_name[level]}, 31 Dec {year}",
                source="Amt für Statistik Berlin-Brandenburg (population register), LOR boundaries by "
                "Senatsverwaltung für Stadtentwicklung, via the open-lifeworlds data product",
                year=year,
                licence="CC BY 4.0 (data product), CC BY 3.0 DE (source); see data/README.md",
            )
            if layer(year) not in base:
                base[layer(year)] = ds = load_dataset(
                    bundled_dir / "boundaries" / f"berlin_{level}_{layer(year)}.parquet",
                    counts=pd.read_csv(counts, dtype={"area_id": str}).drop(columns="year"),
                    key="area_id",
                    total="inhabitants",
                    groups=list(BERLIN_GROUPS),
                    name_col="name",
                )
            else:
                ds = base[layer(year)]
                table = pd.read_csv(counts, dtype={"area_id": str}).set_index("area_id")[cols].astype(float)
                areas = ds.areas.drop(columns=cols).join(table, on=ID)
                ds = dataclasses.replace(ds, areas=areas[ds.areas.columns])
            try:  # never over a user's dataset (an older data directory may hold the id or the series)
                registry.put(
                    f"{prefix}-{year}",
                    dataclasses.replace(ds, meta=meta),
                    disclosure=PUBLISHED,
                    series=series,
                    date=f"{year}-12-31",
                )
            except ValidationError as err:
                log.warning("bundled Berlin %s-%s not registered: %s", prefix, year, err)
