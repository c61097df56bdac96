"""Shared fixtures. Real public data lives in ../shared/data (next to the project root);
tests that need it skip with a clear reason when it is absent."""

from __future__ import annotations

import os
import subprocess
import sys
from contextlib import contextmanager
from pathlib import Path

import pytest
from cli_process import Forks

# esda's permutation engine (the reference of the local statistics) is compiled by numba once a session: ~30 s of CPU
# at numba's default optimisation, ~18 s at 0. segmap itself compiles nothing with numba.
os.environ.setdefault("NUMBA_OPT", "0")

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
def georgia_args(georgia_paths) -> list[str]:
    """The bundled Georgia inputs as `segmap` arguments: BOUNDARIES --counts … --key … --total …"""
    p = georgia_paths
    return [str(p["boundaries"]), "--counts", str(p["counts"]), "--key", p["key"], "--total", p["total"]]


SEGMAP = [sys.executable, "-m", "app.cli"]


_FORKS = Forks()


def run_segmap(*args, timeout: float = 120) -> subprocess.CompletedProcess:
    """`segmap ARGS…` as a real process from the project root (text stdout and stderr captured): a fork of a
    helper that imported the command once (tests/cli_process.py), not a new interpreter each time."""
    return _FORKS.run([str(a) for a in args], timeout)


def pytest_sessionfinish(session):
    _FORKS.stop()


@pytest.fixture(scope="session")
def segmap():
    """The command line as a real process: ``segmap("indices", *georgia_args, "--group", "black")``."""
    return run_segmap


@contextmanager
def in_process(data_dir: Path, **settings):
    """The app in this process, over httpx's ASGI transport (fastapi's TestClient): no socket, no uvicorn.

    The lifespan runs (bundled data registered unless ``register_bundled=False``); ``settings`` are
    :class:`app.settings.Settings` fields, the same as the ``SEGMAP_*`` environment of a real server.
    """
    from fastapi.testclient import TestClient

    from app.main import create_app
    from app.settings import Settings

    with TestClient(create_app(Settings(data_dir=data_dir, **settings))) as client:
        yield client


def georgia_bundle(folder: Path) -> Path:
    """A bundled-data folder holding only Georgia: a fresh app registers one small dataset, not every sample."""
    from tile_fixtures import georgia_only

    return georgia_only(folder)


@pytest.fixture(scope="session")
def app_client(tmp_path_factory):
    """One in-process app with the default settings and bundled Georgia for the session, on a fresh data
    directory: for checks of requests and responses. Tests that need a socket, a worker process or a browser
    use ``live_server``."""
    bundled = georgia_bundle(tmp_path_factory.mktemp("bundled"))
    with in_process(tmp_path_factory.mktemp("app"), bundled_dir=bundled) as client:
        yield client


@pytest.fixture(scope="session")
def live_server():
    """One real uvicorn server on 127.0.0.1 for the session, on a fresh data directory."""
    from server import LiveServer

    with LiveServer() as url:
        yield url
