"""Survey estimates whose groups exceed the total by a person or two: refused by default, clipped and
reported with an explicit tolerance (library, CLI indices/local/map, upload field)."""

from __future__ import annotations

import geopandas as gpd
import numpy as np
import pytest
from shapely.geometry import box

from conftest import run_segmap, shared_path
from spatial.errors import ValidationError
from spatial.indices.compute import compute_indices
from spatial.io import load_dataset

RACE = ["WHITE", "HISP", "BLACK", "ASIAN", "OTHER"]
KEY = "s3cret"


@pytest.fixture(scope="module")
def chicago():
    path = shared_path("chicago", "Chicago_2020.geojson")
    raw = gpd.read_file(path)
    excess = raw[RACE].sum(axis=1) - raw["TOT_POP"]
    over = raw.loc[excess > 0, "GEOID"].astype(str)
    return path, raw, set(over), excess


def test_chicago_race_groups_are_refused_by_default_naming_27_areas(chicago):
    path, _, over, excess = chicago
    assert len(over) == 27 and excess.max() == 2  # the ACS file as published
    ds = load_dataset(path, groups=RACE, total="TOT_POP", key="GEOID")
    assert not [r for r in ds.repairs if r.code == "clipped_to_total"]
    with pytest.raises(ValidationError, match="in 27 areas") as err:
        compute_indices(ds, groups=RACE, total="TOT_POP", indices=["multigroup_dissimilarity"])
    assert "tolerance" in str(err.value)  # the refusal says how to accept survey noise


def test_tolerance_clips_every_touched_area_and_lists_it(chicago):
    path, raw, over, excess = chicago
    ds = load_dataset(path, groups=RACE, total="TOT_POP", key="GEOID", tolerance=2)
    (repair,) = [r for r in ds.repairs if r.code == "clipped_to_total"]
    assert set(repair.ids) == over and "27 areas" in repair.message and "at most 2" in repair.message
    clipped = ds.areas.set_index("id")
    before = raw.assign(id=raw["GEOID"].astype(str)).set_index("id")
    sums = clipped[RACE].sum(axis=1)
    assert (sums <= clipped["TOT_POP"]).all()
    assert (sums[list(over)] == clipped.loc[list(over), "TOT_POP"]).all()  # clipped exactly to the total
    untouched = sorted(set(clipped.index) - over)
    assert (clipped.loc[untouched, RACE] == before.loc[untouched, RACE]).all().all()
    # Only the largest group of each touched area lost the one or two people.
    loss = before.loc[list(over), RACE] - clipped.loc[list(over), RACE]
    by_id = excess.set_axis(raw["GEOID"].astype(str))
    assert (loss.sum(axis=1) == by_id[loss.index]).all()
    largest = before.loc[list(over), RACE].idxmax(axis=1)
    assert all(loss.loc[i, largest[i]] == loss.loc[i].sum() for i in loss.index)
    res = compute_indices(ds, groups=RACE, total="TOT_POP", indices=["multigroup_dissimilarity"])
    # Hand computation on the clipped counts (groups fill the total: no rest column).
    X = clipped[RACE].to_numpy(float)
    X = np.column_stack([X, clipped["TOT_POP"].to_numpy() - X.sum(axis=1)])
    X = X[:, X.sum(axis=0) > 0]
    t, T, P = X.sum(axis=1), X.sum(), X.sum(axis=0) / X.sum()
    expected = (t[:, None] * np.abs(X / t[:, None] - P)).sum() / (2 * T * (P * (1 - P)).sum())
    assert res["multigroup_dissimilarity"].value == pytest.approx(expected, rel=1e-12)


def test_a_tolerance_below_the_excess_still_refuses_the_rest(chicago):
    path, _, _, excess = chicago
    ds = load_dataset(path, groups=RACE, total="TOT_POP", key="GEOID", tolerance=1)
    (repair,) = [r for r in ds.repairs if r.code == "clipped_to_total"]
    assert len(repair.ids) == int((excess == 1).sum())
    with pytest.raises(ValidationError, match=f"in {int((excess == 2).sum())} areas"):
        compute_indices(ds, groups=RACE, total="TOT_POP", indices=["multigroup_dissimilarity"])


def small_city(tmp_path, over_by=1.0):
    gdf = gpd.GeoDataFrame(
        {"code": ["a", "b", "c", "d"], "pop": [10.0, 20, 30, 40], "mig": [3.0, 20 + over_by, 5, 9]},
        geometry=[box(500_000 + 100 * i, 5_000_000, 500_100 + 100 * i, 5_000_100) for i in range(4)],
        crs="EPSG:32633",
    )
    path = tmp_path / "city.gpkg"
    gdf.to_file(path)
    return path


def test_one_group_over_its_total(tmp_path):
    path = small_city(tmp_path)
    with pytest.raises(ValidationError, match="larger than total") as err:
        load_dataset(path, groups=["mig"], total="pop", key="code")
    assert err.value.problems[0].ids == ["b"] and "tolerance" in str(err.value)
    with pytest.raises(ValidationError, match="larger than total"):
        load_dataset(path, groups=["mig"], total="pop", key="code", tolerance=0.5)
    ds = load_dataset(path, groups=["mig"], total="pop", key="code", tolerance=1)
    assert ds.repairs[0].code == "clipped_to_total" and ds.repairs[0].ids == ["b"]
    assert ds.column("mig").tolist() == [3, 20, 5, 9]
    with pytest.raises(ValidationError, match="tolerance must be"):
        load_dataset(path, groups=["mig"], total="pop", key="code", tolerance=-1)


def segmap(*args):
    return run_segmap(*args, timeout=300)


def test_cli_indices_refuses_then_clips_with_tolerance(chicago):
    path, _, over, _ = chicago
    base = [
        "indices",
        path,
        "--key",
        "GEOID",
        "--total",
        "TOT_POP",
        *[a for g in RACE for a in ("--group", g)],
        "--index",
        "multigroup_dissimilarity",
        "--format",
        "json",
    ]
    refused = segmap(*base)
    assert refused.returncode != 0 and "27 areas" in refused.stderr and "--tolerance" in refused.stderr
    ok = segmap(*base, "--tolerance", "2")
    assert ok.returncode == 0, ok.stderr
    assert "clipped" in ok.stderr and all(i in ok.stderr for i in over)  # every touched area named
    assert '"multigroup_dissimilarity"' in ok.stdout


def test_cli_local_and_map_take_the_tolerance(tmp_path):
    path = small_city(tmp_path)
    refused = segmap("local", path, "--key", "code", "--total", "pop", "--group", "mig", "--statistic", "lq")
    assert refused.returncode != 0 and "larger than total" in refused.stderr
    ok = segmap(
        "local", path, "--key", "code", "--total", "pop", "--group", "mig", "--statistic", "lq", "--tolerance", "1"
    )
    assert ok.returncode == 0, ok.stderr
    assert "clipped" in ok.stderr and "ids: b" in ok.stderr
    out = tmp_path / "map.svg"
    refused = segmap("map", path, "--key", "code", "--total", "pop", "--group", "mig", "-o", out)
    assert refused.returncode != 0 and "larger than total" in refused.stderr and not out.exists()
    ok = segmap("map", path, "--key", "code", "--total", "pop", "--group", "mig", "--tolerance", "1", "-o", out)
    assert ok.returncode == 0, ok.stderr
    assert out.exists() and "ids: b" in ok.stderr


@pytest.fixture(scope="module")
def app_client(tmp_path_factory):
    from fastapi.testclient import TestClient

    import app.main
    from app.settings import Settings

    # Uploads only: the statistics and map routers are slow to import.
    settings = Settings(
        data_dir=tmp_path_factory.mktemp("tolerance"),
        register_bundled=False,  # its own uploads only
        api_key=KEY,
        cors_origins=[],
        statistics=False,
        maps=False,
    )
    application = app.main.create_app(settings)
    with TestClient(application, raise_server_exceptions=False) as client:
        yield client


def test_upload_field_tolerance_reports_the_clipped_areas(chicago, app_client):
    path, _, over, _ = chicago

    def upload(**form):
        return app_client.post(
            "/v1/datasets",
            files={"boundaries": ("Chicago_2020.geojson", path.read_bytes(), "application/geo+json")},
            data={"groups": ",".join(RACE), "total": "TOT_POP", "key": "GEOID", **form},
            headers={"X-API-Key": KEY},
        )

    r = upload(id="chicago-race", tolerance="2")
    assert r.status_code == 201, r.text
    (repair,) = [p for p in r.json()["repairs"] if p["code"] == "clipped_to_total"]
    assert repair["n_ids"] == 27 and set(repair["ids"]) == over
    bad = upload(id="chicago-bad", tolerance="-1")
    assert bad.status_code == 422 and "tolerance" in bad.text
    plain = upload(id="chicago-plain")
    assert plain.status_code == 201 and not [p for p in plain.json()["repairs"] if p["code"] == "clipped_to_total"]
