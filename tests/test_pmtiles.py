"""PMTiles export: the archive holds the live service's public tiles byte for byte (same disclosure control),
from the HTTP route and the CLI; too large a zoom range is refused with its size; archives are served with
HTTP Range (206, and 416 outside the file)."""

from __future__ import annotations

import gzip
from urllib.parse import urlsplit

import mapbox_vector_tile
import pytest
from fastapi.testclient import TestClient
from pmtiles.reader import MemorySource, Reader
from tile_fixtures import georgia_only

from app.cli import main as cli
from app.main import create_app
from app.settings import Settings
from app.tiles import tiles_covering

KEY = "k"
ID = "georgia-1990"
EXPORT = f"/v1/datasets/{ID}/export.pmtiles"


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("pmtiles")


@pytest.fixture(scope="module")
def client(data_dir):
    bundle = georgia_only(data_dir.parent / f"{data_dir.name}-bundle")
    with TestClient(create_app(Settings(data_dir=data_dir, api_key=KEY, bundled_dir=bundle))) as c:
        yield c


@pytest.fixture(scope="module")
def archive(client) -> bytes:
    r = client.get(EXPORT, params={"maxzoom": 7})
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "application/vnd.pmtiles" and r.headers["accept-ranges"] == "bytes"
    return r.content


def _sample(client) -> list[tuple[int, int, int]]:
    """Every tile the bounds touch at zooms 0-4, and a spread of those at 5-7 (the archive's range)."""
    w, s, e, n = client.get(f"/v1/datasets/{ID}").json()["bounds"]
    from pyproj import Transformer

    minx, miny = Transformer.from_crs(4326, 3857, always_xy=True).transform(w, s)
    maxx, maxy = Transformer.from_crs(4326, 3857, always_xy=True).transform(e, n)
    tiles = []
    for z in range(8):
        level = tiles_covering((minx, miny, maxx, maxy), z)
        tiles += level if z < 5 else level[:: max(1, len(level) // 6)]
    return tiles


def _live(client, query: str = "", **headers) -> str:
    url = urlsplit(client.get(f"/v1/datasets/{ID}/tilejson.json?{query}").json()["tiles"][0])
    return url.path + (f"?{url.query}" if url.query else "")


def _read(reader: Reader, z, x, y) -> bytes:
    body = reader.get(z, x, y)
    return gzip.decompress(body) if body else b""


def test_archive_tiles_equal_the_live_public_tiles(client, archive):
    reader = Reader(MemorySource(archive))
    header, meta = reader.header(), reader.metadata()
    assert (header["min_zoom"], header["max_zoom"]) == (0, 7)
    assert meta["vector_layers"][0]["id"] == "areas" and "foreign_born_share" in meta["vector_layers"][0]["fields"]
    template = _live(client)
    sample = _sample(client)
    assert len(sample) > 15
    nonempty = 0
    for z, x, y in sample:
        live = client.get(template.format(z=z, x=x, y=y))
        assert live.status_code == 200
        assert _read(reader, z, x, y) == live.content, (z, x, y)
        nonempty += bool(live.content)
    assert nonempty > 12


def test_archive_carries_disclosure_control_not_true_counts(client, archive):
    reader = Reader(MemorySource(archive))
    hidden, true = {}, {}
    for z, x, y in [t for t in _sample(client) if t[0] == 7]:
        for f in mapbox_vector_tile.decode(_read(reader, z, x, y)).get("areas", {}).get("features", []):
            if "id" in f["properties"] and f["properties"].get("foreign_born") is None:
                hidden[f["properties"]["id"]] = (z, x, y)
    assert hidden, "Georgia has counties with 1-9 foreign-born residents: they must be withheld in the archive"
    for ident, (z, x, y) in hidden.items():
        owner = client.get(f"/v1/datasets/{ID}/tiles/{z}/{x}/{y}.mvt", headers={"X-API-Key": KEY}).content
        true.update(
            {f["properties"]["id"]: f["properties"] for f in mapbox_vector_tile.decode(owner)["areas"]["features"]}
        )
        p = true[ident]  # the owner's true counts: withheld for a small cell (a count or its complement)
        cells = [p[g] for g in ("foreign_born", "black")] + [
            p["total_population"] - p[g] for g in ("foreign_born", "black")
        ]
        assert any(1 <= c <= 9 for c in cells), p


def test_a_statistic_layer_is_exported_like_its_tiles(client):
    r = client.get(EXPORT, params={"maxzoom": 5, "group": "black", "statistic": "lq"})
    assert r.status_code == 200, r.text
    reader = Reader(MemorySource(r.content))
    template = _live(client, "group=black&statistic=lq")
    for z, x, y in [(0, 0, 0), (3, 2, 3), (5, 8, 12), (5, 8, 13)]:
        assert _read(reader, z, x, y) == client.get(template.format(z=z, x=x, y=y)).content


def test_cli_writes_the_same_archive(client, archive, data_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("SEGMAP_DATA_DIR", str(data_dir))
    out = tmp_path / "georgia.pmtiles"
    assert cli(["export", ID, "--pmtiles", str(out), "--maxzoom", "7"]) == 0
    mine, served = Reader(MemorySource(out.read_bytes())), Reader(MemorySource(archive))
    for z, x, y in _sample(client):
        assert _read(mine, z, x, y) == _read(served, z, x, y), (z, x, y)
    assert cli(["export", ID, "--pmtiles", str(tmp_path / "big.pmtiles"), "--maxzoom", "16"]) == 2
    assert not (tmp_path / "big.pmtiles").exists()
    assert cli(["export", "nope", "--pmtiles", str(out)]) == 2


def test_too_large_a_zoom_range_is_refused_with_its_size(client):
    r = client.get(EXPORT, params={"maxzoom": 16})
    assert r.status_code == 422 and r.headers["content-type"] == "application/problem+json"
    detail = r.json()["detail"]
    assert "tiles" in detail and "MB" in detail and "lower maxzoom" in detail
    tiles = int(detail.split("would make ")[1].split(" tiles")[0].replace(",", ""))
    assert tiles > 50_000
    assert client.get(EXPORT, params={"minzoom": 6, "maxzoom": 3}).status_code == 422


def test_range_requests(client, archive):
    r = client.get(EXPORT, params={"maxzoom": 7}, headers={"Range": "bytes=0-126"})
    assert r.status_code == 206 and r.content == archive[:127] and r.content.startswith(b"PMTiles")
    assert r.headers["content-range"] == f"bytes 0-126/{len(archive)}"
    tail = client.get(EXPORT, params={"maxzoom": 7}, headers={"Range": "bytes=-10"})
    assert tail.status_code == 206 and tail.content == archive[-10:]
    out = client.get(EXPORT, params={"maxzoom": 7}, headers={"Range": f"bytes={len(archive)}-{len(archive) + 99}"})
    assert out.status_code == 416 and out.headers["content-range"] == f"bytes */{len(archive)}"
    assert out.headers["content-type"] == "application/problem+json" and str(len(archive)) in out.json()["detail"]
