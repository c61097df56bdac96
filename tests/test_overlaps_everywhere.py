"""Areas overlapping each other are refused on every path to publication (spatial/overlaps.py), checked once:

* in memory: :func:`spatial.dataset.validate` checks by default and marks the shapes it checked;
* storage: ``Registry.put`` refuses any dataset not so marked whose areas overlap (app/overlap_guard.py);
* stored before the check existed: withheld from callers without the key at their first read, once per version;
* harmonisation: the target layer, which receives the published counts (HTTP and CLI).
"""

from __future__ import annotations

import dataclasses
import io
import time

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import shapely

import app.overlap_guard
import spatial.overlaps
from app.cli import main
from conftest import in_process
from spatial.change import harmonize
from spatial.dataset import validate
from spatial.errors import ValidationError
from spatial.overlaps import check_dataset, is_checked

KEY = "everywhere-key"
CRS = "EPSG:3035"
X0, Y0 = 4_321_000.0, 3_210_000.0


def layer(boxes: dict[str, tuple], total: int = 400, group: int = 100) -> gpd.GeoDataFrame:
    ids = list(boxes)
    geoms = [shapely.box(X0 + x0, Y0 + y0, X0 + x1, Y0 + y1) for x0, y0, x1, y1 in boxes.values()]
    return gpd.GeoDataFrame(
        {"id": ids, "total": [total] * len(ids), "migrants": [group] * len(ids)}, geometry=geoms, crs=CRS
    )


GRID = {"a": (0, 0, 100, 100), "b": (100, 0, 200, 100), "c": (0, 100, 100, 200), "d": (100, 100, 200, 200)}
# halves and the whole: "all" minus "west" gives "east" (the nested-table attack within one layer)
NESTED = {"west": (0, 0, 100, 200), "east": (100, 0, 200, 200), "all": (0, 0, 200, 200)}


def as_dataset(boxes: dict, **kw):
    return validate(layer(boxes), id_col="id", groups=["migrants"], total="total", **kw)


@pytest.fixture
def counted(monkeypatch):
    """How many times the overlap measure runs."""
    calls = []
    real = spatial.overlaps.overlapping_pairs

    def counting(geoms, *a, **k):
        calls.append(len(geoms))
        return real(geoms, *a, **k)

    monkeypatch.setattr(spatial.overlaps, "overlapping_pairs", counting)
    return calls


# -- in memory --------------------------------------------------------------------------------------------------
def test_validate_in_memory_refuses_overlapping_areas_naming_them():
    with pytest.raises(ValidationError) as exc:
        as_dataset(NESTED)
    (p,) = [p for p in exc.value.problems if p.code == "overlapping_areas"]
    assert set(p.ids) == {"west", "east", "all"} and p.extra["n_pairs"] == 2  # all ⊃ west, all ⊃ east
    assert is_checked(as_dataset(GRID))


def test_the_mark_trusts_only_the_shapes_it_checked():
    ds = as_dataset(GRID)
    same = dataclasses.replace(ds, areas=ds.areas.iloc[::-1].reset_index(drop=True))  # reordered, counts joined
    assert is_checked(same) and is_checked(ds.subset(np.array([True, False, True, False])))
    moved = ds.areas.copy()
    moved.loc[3, "geometry"] = shapely.box(X0, Y0, X0 + 150, Y0 + 150)  # a new shape over a, b and c
    assert not is_checked(dataclasses.replace(ds, areas=moved))
    with pytest.raises(ValidationError, match="overlap"):
        check_dataset(dataclasses.replace(ds, areas=moved))
    twice = pd.concat([ds.areas, ds.areas.iloc[:1].assign(id="a2")], ignore_index=True)  # the same shape twice
    assert not is_checked(dataclasses.replace(ds, areas=gpd.GeoDataFrame(twice, crs=CRS)))
    unchecked = as_dataset(GRID, overlaps=False)
    assert not is_checked(unchecked)
    check_dataset(unchecked)  # measured now, then marked
    assert is_checked(unchecked)


# -- storage and stored datasets ----------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def client(tmp_path_factory):
    with in_process(tmp_path_factory.mktemp("everywhere"), register_bundled=False, api_key=KEY) as c:
        yield c


def store_unchecked(c, dataset_id: str, ds, monkeypatch, **kw) -> None:
    """Stored as before the check existed: no refusal at put, no record of a check."""
    with monkeypatch.context() as m:
        m.setattr(app.overlap_guard, "before_put", lambda ds: None)
        m.setattr(app.overlap_guard, "passed", lambda *a: None)
        c.app.state.registry.put(dataset_id, ds, **kw)


def test_put_refuses_an_unchecked_dataset_and_stores_nothing(client):
    reg = client.app.state.registry
    before = sorted(p.name for p in reg.files.iterdir())
    with pytest.raises(ValidationError) as exc:
        reg.put("nested-put", as_dataset(NESTED, overlaps=False))
    assert exc.value.problems[0].code == "overlapping_areas"
    assert reg.info("nested-put") is None and sorted(p.name for p in reg.files.iterdir()) == before


def test_an_upload_is_checked_once_from_validation_to_its_first_public_read(client, counted):
    buf = io.BytesIO()
    layer(GRID).to_parquet(buf, index=False)
    form = {"groups": "migrants", "total": "total", "key": "id", "id": "grid-once"}
    r = client.post("/v1/datasets", files={"boundaries": ("g.parquet", buf.getvalue())}, data=form,
                    headers={"X-API-Key": KEY})  # fmt: skip
    assert r.status_code in (200, 201), r.text
    assert client.get("/ogc/collections/grid-once/items").status_code == 200
    assert counted == [4]  # validation only: not again at put, nor at the first read


def test_a_dataset_stored_before_the_check_is_withheld_from_public_outputs(client, monkeypatch, counted):
    store_unchecked(client, "nested-old", as_dataset(NESTED, overlaps=False), monkeypatch)
    for path in ("/ogc/collections/nested-old/items", "/v1/datasets/nested-old/indices?group=migrants"):
        r = client.get(path)
        assert r.status_code == 422, r.text
        assert r.json()["problems"][0]["code"] == "overlapping_areas"
        assert "stored before overlapping areas were refused" in r.json()["detail"]
    assert counted == [3]  # measured once, then read from the catalogue
    app.overlap_guard._seen.pop((str(client.app.state.registry.root), "nested-old",
                                 client.app.state.registry.info("nested-old")["version"]))  # fmt: skip
    assert client.get("/ogc/collections/nested-old/items").status_code == 422 and counted == [3]  # another worker
    owner = client.get("/ogc/collections/nested-old/items", headers={"X-API-Key": KEY})
    assert owner.status_code == 200  # its owner still sees it (true counts are theirs) and can delete it
    assert client.get("/health").status_code == 200
    assert client.get("/v1/datasets").status_code == 200


def test_a_clean_dataset_stored_before_the_check_is_published_after_one_check(client, monkeypatch, counted):
    store_unchecked(client, "grid-old", as_dataset(GRID, overlaps=False), monkeypatch)
    assert client.get("/ogc/collections/grid-old/items").status_code == 200
    assert client.get("/ogc/collections/grid-old/items?limit=1").status_code == 200
    assert counted == [4]


# -- harmonisation: the target layer ------------------------------------------------------------------------------
def test_harmonize_refuses_a_target_whose_areas_overlap():
    source = layer(GRID)
    with pytest.raises(ValidationError) as exc:
        harmonize(source, layer(NESTED)[["id", "geometry"]], ["migrants", "total"])
    assert exc.value.problems[0].code == "overlapping_areas"
    assert "target areas overlap" in exc.value.problems[0].message
    ok = harmonize(source, layer({"west": NESTED["west"], "east": NESTED["east"]})[["id", "geometry"]], ["total"])
    assert ok.frame.set_index("id")["total"].to_dict() == {"west": 800, "east": 800}


def test_series_harmonize_over_http_refuses_an_overlapping_target(client, monkeypatch):
    buf = io.BytesIO()
    layer(GRID).to_parquet(buf, index=False)
    form = {"groups": "migrants", "total": "total", "key": "id", "id": "s-2000", "series": "s", "date": "2000"}
    r = client.post("/v1/datasets", files={"boundaries": ("g.parquet", buf.getvalue())}, data=form,
                    headers={"X-API-Key": KEY})  # fmt: skip
    assert r.status_code in (200, 201), r.text
    store_unchecked(client, "s-2001", as_dataset(NESTED, overlaps=False), monkeypatch, series="s", date="2001")
    params = {"from": "2000", "to": "2001", "group": "migrants", "harmonize": "area"}
    public = client.get("/v1/series/s/harmonize", params=params)
    assert public.status_code == 422 and public.json()["problems"][0]["code"] == "overlapping_areas", public.text
    owner = client.get("/v1/series/s/harmonize", params=params, headers={"X-API-Key": KEY})
    assert owner.status_code == 422 and "target areas overlap" in owner.json()["detail"], owner.text


def test_cli_harmonize_refuses_an_overlapping_target_and_writes_nothing(tmp_path, capsys):
    layer(GRID).to_file(tmp_path / "source.geojson")
    layer(NESTED)[["id", "geometry"]].to_file(tmp_path / "target.geojson")
    args = ["harmonize", str(tmp_path / "source.geojson"), "--group", "migrants", "--total", "total", "--to",
            str(tmp_path / "target.geojson"), "-o", str(tmp_path / "out.csv")]  # fmt: skip
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "target areas overlap" in err and "all" in err
    assert not (tmp_path / "out.csv").exists()


def test_large_stored_tiles_are_not_served_from_the_disk_cache_before_the_check(client, monkeypatch):
    """Tiles of a large version come from the disk cache before this worker reads the version (app.tilesource):
    a tile cached before the check existed must not be served once it does."""
    import app.tilesource

    store_unchecked(client, "nested-tiles", as_dataset(NESTED, overlaps=False), monkeypatch)
    url = "/v1/datasets/nested-tiles/tiles/12/2161/1352.mvt"
    with monkeypatch.context() as m:  # as before the check: tiles read and cached on disk
        m.setattr(app.overlap_guard, "refuse_stored", lambda *a: None)
        m.setattr(app.overlap_guard, "known_clean", lambda *a: True)
        old = client.get(url)
        assert old.status_code == 200 and old.headers.get("etag"), old.headers
        for _ in range(100):  # the disk write happens after the answer
            if client.app.state.tiles.cache.get(old.headers["etag"]) is not None:
                break
            time.sleep(0.05)
        else:
            pytest.fail("the tile never reached the disk cache")
    monkeypatch.setattr(app.tilesource, "LAZY_AREAS", 1)  # this version counts as large: tiles before reading it
    for query in ("?a=1", "?a=2"):  # past the memory cache in front (keyed by path and query), not the disk cache
        r = client.get(url + query)
        assert r.status_code == 422 and r.json()["problems"][0]["code"] == "overlapping_areas", r.status_code
