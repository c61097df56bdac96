"""How the service is wired: explicit routers switched by settings, limits from settings only (no global
mutation), one catalogue read per request, state owned by the app, commands without hidden side effects."""

from __future__ import annotations

import ast
import asyncio
import os
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from app.main import create_app
from app.settings import Settings
from conftest import georgia_bundle

APP = Path(__file__).resolve().parents[1] / "app"
TILE = "/v1/datasets/georgia-1990/tiles/6/17/25.mvt"
_georgia = georgia_bundle  # Georgia only: registering every bundled sample costs ~12 s of CPU per app


@pytest.fixture(scope="module")
def capped(tmp_path_factory):
    """The bundled Georgia sample behind a service that allows 50 permutations."""
    bundled = _georgia(tmp_path_factory.mktemp("g"))
    with TestClient(
        create_app(Settings(data_dir=tmp_path_factory.mktemp("house"), max_permutations=50, bundled_dir=bundled))
    ) as c:
        yield c


@pytest.mark.parametrize(
    "url",
    [
        "/v1/datasets/georgia-1990/indices",
        "/v1/datasets/georgia-1990/local",
        TILE,
        "/maps/georgia-1990",
        "/maps/georgia-1990/data",
        "/v1/datasets/georgia-1990/map.png",
    ],
)
def test_every_route_caps_permutations_at_the_setting(capped, url):
    r = capped.get(url, params={"permutations": 51})
    assert r.status_code == 422, (r.status_code, r.text[:300])
    assert "permutations is limited to 50" in r.json()["detail"]


def test_creating_an_app_changes_no_library_default(tmp_path):
    import spatial.io

    before = spatial.io.MAX_UNCOMPRESSED_BYTES
    create_app(Settings(data_dir=tmp_path, max_uncompressed_mb=1, register_bundled=False))
    assert spatial.io.MAX_UNCOMPRESSED_BYTES == before  # limits travel as parameters, never as module globals


def test_statistics_and_maps_are_switched_by_settings(tmp_path):
    settings = Settings(data_dir=tmp_path, statistics=False, maps=False, bundled_dir=_georgia(tmp_path / "g"))
    with TestClient(create_app(settings), raise_server_exceptions=False) as c:
        assert c.get("/v1/datasets/georgia-1990").status_code == 200
        assert c.get("/ogc/collections/georgia-1990/items?limit=1").status_code == 200
        for url in ("/v1/datasets/georgia-1990/indices", "/v1/datasets/georgia-1990/local", TILE, "/maps/georgia-1990"):
            assert c.get(url).status_code == 404, url
        paths = c.get("/openapi.json").json()["paths"]
        assert not any("/indices" in p or "/tiles/" in p or p.startswith("/maps") for p in paths), sorted(paths)


def test_a_cold_tile_request_reads_the_catalogue_once(tmp_path, monkeypatch):
    from app.registry import Registry

    with TestClient(create_app(Settings(data_dir=tmp_path, bundled_dir=_georgia(tmp_path / "g")))) as c:
        reads = []
        info = Registry.info
        monkeypatch.setattr(Registry, "info", lambda self, i: reads.append(i) or info(self, i))
        assert c.get(TILE).status_code == 200
        assert reads == ["georgia-1990"]
        reads.clear()
        # answered by the cached-tile layer before FastAPI: the catalogue's data_version stands for every row
        assert c.get(TILE).status_code == 200
        assert reads == []


def test_the_memory_tile_layer_revalidates_like_the_routes(tmp_path):
    """If-None-Match naming several ETags (or *) is a 304 whether the tile comes from memory or the route."""
    with TestClient(create_app(Settings(data_dir=tmp_path, bundled_dir=_georgia(tmp_path / "g")))) as c:
        etag = c.get(TILE).headers["etag"]
        assert c.get(TILE).status_code == 200  # now in memory
        for header in (f'"other", {etag}', "*"):
            r = c.get(TILE, headers={"If-None-Match": header})
            assert r.status_code == 304 and r.content == b"", header


def test_tile_state_belongs_to_the_app_and_closes_with_it(tmp_path):
    app = create_app(Settings(data_dir=tmp_path, bundled_dir=_georgia(tmp_path / "g")))
    with TestClient(app) as c:
        assert c.get(TILE).status_code == 200
        tiles = app.state.tiles
    with pytest.raises(RuntimeError):  # the encoder pool was shut down with the app
        asyncio.run(tiles.tile(_source(app, "georgia-1990"), 6, 17, 25, _layer(), key="after-close"))


def _source(app, dataset_id):
    from app.deps import load_source

    return load_source(app.state.registry, app.state.settings, dataset_id, owner=False)


def _layer():
    from app.tileservice import Layer

    return Layer()


def _module_state(tree: ast.Module) -> list[str]:
    """Module-level names bound to something mutable that is not a constant (UPPER_CASE)."""
    out = []
    for node in tree.body:
        targets = (
            node.targets if isinstance(node, ast.Assign) else [node.target] if isinstance(node, ast.AnnAssign) else []
        )
        value = getattr(node, "value", None)
        for t in targets:
            name = getattr(t, "id", "")
            if (
                name
                and name.lstrip("_") != name.lstrip("_").upper()
                and name != "router"
                and value is not None
                and isinstance(value, (ast.Call, ast.Dict, ast.List, ast.Set))
            ):
                out.append(name)
    return out


@pytest.mark.parametrize("path", sorted((APP / "routers").glob("*.py")), ids=lambda p: p.name)
def test_routers_hold_no_state_and_import_no_other_router(path):
    tree = ast.parse(path.read_text())
    assert _module_state(tree) == []
    siblings = {p.stem for p in (APP / "routers").glob("*.py")}
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            assert not (node.level == 1 and (node.module or "") in siblings | {""}), ast.unparse(node)
            assert "routers" not in (node.module or ""), ast.unparse(node)


def test_map_of_a_registered_dataset_changes_nothing(tmp_path, monkeypatch):
    """`segmap map --dataset` only reads: on an empty data directory it says what to do and writes nothing."""
    from app.cli import main

    data_dir = tmp_path / "var"
    monkeypatch.setenv("SEGMAP_DATA_DIR", str(data_dir))
    assert main(["map", "--dataset", "georgia-1990", "-o", str(tmp_path / "m.html")]) == 2
    assert not data_dir.exists() and not (tmp_path / "m.html").exists()


def test_serve_hands_the_data_directory_to_the_app_not_the_environment(tmp_path, monkeypatch):
    import uvicorn

    from app.cli import main

    monkeypatch.delenv("SEGMAP_DATA_DIR", raising=False)
    served = []
    monkeypatch.setattr(uvicorn, "run", lambda app, **kw: served.append((app, kw)))
    assert main(["serve", "--data-dir", str(tmp_path / "d"), "--port", "8765"]) == 0
    assert "SEGMAP_DATA_DIR" not in os.environ
    ((app, kw),) = served
    assert app.state.settings.data_dir == tmp_path / "d" and kw["port"] == 8765 and kw["host"] == "127.0.0.1"
