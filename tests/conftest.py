"""Shared fixtures. Real public data lives in ../shared/data (next to the project root);
tests that need it skip with a clear reason when it is absent."""

from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = ROOT.parent / "shared" / "data"
BUNDLED = ROOT / "data"


def shared_path(*parts: str) -> Path:
    """Path to a file in ../shared/data, or skip the test if it is not there."""
    path = SHARED_DATA.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"shared dataset {path} not present (../shared/data is optional outside CI)")
    return path


@pytest.fixture(scope="session")
def georgia_paths() -> dict:
    return {
        "boundaries": BUNDLED / "boundaries" / "georgia_counties.gpkg",
        "counts": BUNDLED / "census" / "georgia_counties_1990.csv",
        "key": "area_key",
        "total": "total_population",
    }


@pytest.fixture(scope="session")
def live_server():
    """One real uvicorn server on 127.0.0.1 for the session, on a fresh data directory."""
    from server import LiveServer

    with LiveServer() as url:
        yield url
