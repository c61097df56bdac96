"""Test helpers of the tile tests: a bundled-data folder holding only Georgia (159 counties), so a fresh app
registers one small dataset at start instead of every bundled sample."""

from __future__ import annotations

from pathlib import Path

from conftest import BUNDLED


def georgia_only(folder: Path) -> Path:
    for part in ("boundaries/georgia_counties.gpkg", "census/georgia_counties_1990.csv"):
        (folder / part).parent.mkdir(parents=True, exist_ok=True)
        (folder / part).symlink_to(BUNDLED / part)
    return folder
