"""Series (issue 14): upload fields, registry migration, GET /v1/series, the trend table over HTTP and the CLI.

The trend's per-date values are checked against a direct per-dataset computation and against pysal
`segregation`; public numbers must come from the protected tables, never the true counts. The change routes
(decomposition, local change, harmonisation) are thin: their numbers equal spatial.change on the same tables
(and pysal's DecomposeSegregation for D), and different areas at the two dates are a 422 saying harmonise first."""

from __future__ import annotations

import io
import json
import sqlite3

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
from fastapi.testclient import TestClient
from shapely.geometry import box

from app.main import create_app
from app.registry import Registry
from app.settings import Settings
from spatial.change import decompose_dissimilarity, harmonize, lisa_transitions, local_change, shapley_decomposition
from spatial.disclosure import protect
from spatial.indices.compute import compute_indices

KEY = "series-key"


def grid(counts: dict[str, np.ndarray], n: int = 6) -> bytes:
    """An n×n grid of 1 km squares (EPSG:3035) with the given count columns, as GeoJSON bytes."""
    cells = [box(x * 1000, y * 1000, (x + 1) * 1000, (y + 1) * 1000) for y in range(n) for x in range(n)]
    gdf = gpd.GeoDataFrame({"key": [f"a{i:02d}" for i in range(n * n)], **counts}, geometry=cells, crs=3035)
    return gdf.to_crs(4326).to_json().encode()


def city(seed: int, small: bool = False) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    total = rng.integers(20 if small else 200, 60 if small else 2000, 36)
    share = np.linspace(0.05, 0.6, 36) * rng.uniform(0.8, 1.2, 36)
    migrants = np.minimum(np.rint(total * share), total).astype(int)
    if small:
        migrants[:6] = np.arange(1, 7)  # counts under the disclosure threshold: those areas are withheld
    return {"pop": total, "migrants": migrants}


@pytest.fixture(scope="module")
def client(tmp_path_factory):
    data_dir = tmp_path_factory.mktemp("series")
    with TestClient(create_app(Settings(data_dir=data_dir, api_key=KEY))) as c:
        c.data_dir = data_dir
        c.registry = Registry(data_dir, sweep=False)
        yield c


def upload(c, body: bytes, **form):
    form = {"groups": "migrants", "total": "pop", "key": "key", **form}
    return c.post("/v1/datasets", files={"boundaries": ("g.geojson", body)}, data=form, headers={"X-API-Key": KEY})


def state(c):
    ids = sorted(d["id"] for d in c.get("/v1/datasets").json()["datasets"])
    return ids, sorted(p.name for p in (c.data_dir / "datasets").iterdir())


def test_berlin_is_listed_first_as_two_series(client):
    listed = client.get("/v1/datasets").json()["datasets"]
    assert listed[0]["id"] == "berlin-2015" and listed[0]["series"] == "berlin"
    assert "georgia-1990" in [d["id"] for d in listed]  # kept for the pysal cross-checks
    series = {s["id"]: s for s in client.get("/v1/series").json()["series"]}
    assert series["berlin"]["dates"] == [f"{y}-12-31" for y in range(2015, 2021)]
    assert series["berlin-forecast-areas"]["n_datasets"] == 10
    fa = client.get("/v1/series/berlin-forecast-areas").json()
    assert [d["n_areas"] for d in fa["datasets"]] == [60] * 6 + [58] * 4
    assert [(g["n_areas"], len(g["dates"])) for g in fa["geographies"]] == [(60, 6), (58, 4)]
    assert fa["geography_changes"] == [{"from": "2020-12-31", "to": "2021-12-31", "n_areas_from": 60, "n_areas_to": 58}]
    pa = client.get("/v1/series/berlin").json()
    assert [c["to"] for c in pa["geography_changes"]] == ["2019-12-31"]  # 09041403 split off 09041301


def test_upload_joins_a_series_and_a_duplicate_date_changes_nothing(client):
    r = upload(client, grid(city(1)), series="town", date="2011-05-09", id="town-2011")
    assert r.status_code == 201, r.text
    assert r.json()["series"] == "town" and r.json()["date"] == "2011-05-09"
    assert r.json()["links"]["series"].endswith("/v1/series/town")
    r = upload(client, grid(city(2)), series="town", year="2021", id="town-2021")
    assert r.status_code == 201 and r.json()["date"] == "2021"
    before = state(client)
    r = upload(client, grid(city(3)), series="town", date="2011-05-09", id="town-again")
    assert r.status_code == 422 and "already has a dataset dated 2011-05-09" in r.json()["detail"]
    assert "town-2011" in r.json()["detail"]
    assert state(client) == before
    for form, words in (
        ({"date": "2011-13-40"}, "must be a year"),
        ({"date": "2011", "year": "2012"}, "disagree"),
        ({}, "needs a `date` or a `year`"),
    ):
        r = upload(client, grid(city(4)), series="town", id="town-bad", **form)
        assert r.status_code == 422 and words in r.json()["detail"], r.text
    r = upload(client, grid(city(4)), id="no-series", date="<b>2011</b>")  # a date is checked without a series too
    assert r.status_code == 422 and "must be a year" in r.json()["detail"]
    assert state(client) == before
    listed = client.get("/v1/series/town").json()["datasets"]
    assert [d["id"] for d in listed] == ["town-2011", "town-2021"]  # time order
    assert listed[0]["geography"] == listed[1]["geography"]  # same grid, same fingerprint


def test_registry_adds_series_columns_to_an_old_catalogue(tmp_path, georgia_paths):
    from spatial.io import load_dataset

    old = (
        "CREATE TABLE datasets (id TEXT PRIMARY KEY, version TEXT NOT NULL, file TEXT NOT NULL, title TEXT, "
        "source TEXT, year INTEGER, crs TEXT, n_areas INTEGER, total TEXT, groups TEXT, name_col TEXT, "
        "region_col TEXT, bounds TEXT, licence TEXT, description TEXT, derived_from TEXT, owner_key TEXT, "
        "created REAL, disclosure TEXT)"
    )
    (tmp_path / "datasets").mkdir()
    with sqlite3.connect(tmp_path / "catalog.sqlite") as db:
        db.execute(old)
    ds = load_dataset(
        georgia_paths["boundaries"], counts=georgia_paths["counts"], key="area_key", groups=["foreign_born"]
    )
    reg = Registry(tmp_path)
    reg.put("a", ds, series="s", date="1990")
    assert reg.info("a")["series"] == "s" and reg.info("a")["geography"]
    with pytest.raises(Exception, match="already has a dataset dated 1990"):
        reg.put("b", ds, series="s", date="1990")
    assert [r["id"] for r in reg.list()] == ["a"] and len(list((tmp_path / "datasets").iterdir())) == 1
    Registry(tmp_path)  # a second start migrates nothing twice


def rows_of(body, kind="level"):
    return [r for r in body["rows"] if r["kind"] == kind]


def test_trend_values_match_each_dataset_and_pysal(client):
    from segregation.singlegroup import Dissim, Isolation

    params = {"group": "foreigners", "index": ["dissimilarity", "isolation"]}
    body = client.get("/v1/series/berlin-forecast-areas/indices", params=params).json()
    assert body["columns"][:7] == ["date", "group", "index", "value", "ci_low", "ci_high", "p_value"]
    levels = rows_of(body)
    assert len(levels) == 20 and len(rows_of(body, "change")) == 18
    reg = Registry(client.data_dir, sweep=False)
    for year in (2015, 2024):
        ds = reg.load(f"berlin-fa-{year}")
        direct = compute_indices(ds, groups=["foreigners"], indices=["dissimilarity", "isolation"])
        mine = {r["index"]: r["value"] for r in levels if r["date"] == f"{year}-12-31"}
        assert mine == pytest.approx({k: v.value for k, v in direct.items()}, abs=1e-12)
        df = pd.DataFrame({"x": ds.column("foreigners"), "t": ds.column("inhabitants")})
        assert mine["dissimilarity"] == pytest.approx(Dissim(df, "x", "t").statistic, abs=1e-9)
        assert mine["isolation"] == pytest.approx(Isolation(df, "x", "t").statistic, abs=1e-9)
    first = {r["index"]: r["value"] for r in levels if r["date"] == "2015-12-31"}
    change = [r for r in rows_of(body, "change") if r["date"] == "2024-12-31"]
    for r in change:
        assert r["from"] == "2015-12-31" and r["value"] == pytest.approx(
            next(x["value"] for x in levels if x["date"] == "2024-12-31" and x["index"] == r["index"])
            - first[r["index"]]
        )
    assert any("geography changed between 2015-12-31 and 2021-12-31" in n for n in body["notes"])


def test_trend_intervals_are_the_two_sample_comparison(client):
    params = {"group": "foreigners", "index": "dissimilarity", "permutations": 49, "seed": 3, "baseline": "2019"}
    body = client.get("/v1/series/berlin-forecast-areas/indices", params=params).json()
    reg = Registry(client.data_dir, sweep=False)
    base, later = reg.load("berlin-fa-2019"), reg.load("berlin-fa-2020")
    direct = compute_indices(
        later, groups=["foreigners"], indices=["dissimilarity"], permutations=49, seed=3, compare=base
    )["dissimilarity"]
    level = next(r for r in rows_of(body) if r["date"] == "2020-12-31")
    assert (level["value"], level["ci_low"], level["ci_high"], level["p_value"]) == pytest.approx(
        (direct.value, direct.ci_low, direct.ci_high, direct.p_value)
    )
    assert level["ci_low"] < level["value_bias_corrected"] < level["ci_high"]
    change = next(r for r in rows_of(body, "change") if r["date"] == "2020-12-31")
    cmp = direct.extra["comparison"]
    assert change["from"] == "2019-12-31"
    assert (change["value"], change["ci_low"], change["ci_high"], change["p_value"]) == pytest.approx(
        (cmp["difference"], cmp["ci_low"], cmp["ci_high"], cmp["p_value"])
    )
    earlier = [r for r in rows_of(body, "change") if r["date"] < "2019"]
    assert earlier and all(r["from"] == "2019-12-31" for r in earlier)  # changes before the baseline too
    csv_text = client.get("/v1/series/berlin-forecast-areas/indices", params={**params, "format": "csv"}).text
    table = pd.read_csv(pd.io.common.StringIO(csv_text), dtype={"date": str})
    assert list(table.columns[:7]) == ["date", "group", "index", "value", "ci_low", "ci_high", "p_value"]
    assert len(table) == len(body["rows"])


def test_trend_runs_on_the_protected_tables(client):
    from spatial.io import load_dataset

    bodies = {y: grid(city(10 + y, small=True)) for y in (1, 2)}
    for y, body in bodies.items():
        assert upload(client, body, series="small", date=f"200{y}", id=f"small-{y}").status_code == 201
    r = client.get("/v1/series/small/indices", params={"index": "dissimilarity"}).json()
    assert r["disclosure"]["small-1"]["withheld_areas"] > 0
    for y, body in bodies.items():
        true = load_dataset(body, groups=["migrants"], total="pop", key="key", boundaries_filename="g.geojson")
        public = compute_indices(protect(true, 10).dataset, groups=["migrants"], indices=["dissimilarity"])
        raw = compute_indices(true, groups=["migrants"], indices=["dissimilarity"])
        value = next(x["value"] for x in rows_of(r) if x["date"] == f"200{y}")
        assert value == pytest.approx(public["dissimilarity"].value, abs=1e-12)
        assert abs(value - raw["dissimilarity"].value) > 1e-6  # the true counts would give another number
    owner = client.get("/v1/series/small/indices", params={"index": "dissimilarity"}, headers={"X-API-Key": KEY})
    assert "disclosure" not in owner.json()


def test_renamed_group_and_bad_parameters_are_4xx_naming_the_date(client):
    c = city(20)
    assert upload(client, grid(c), series="renamed", date="2001", id="renamed-1").status_code == 201
    renamed = {"pop": c["pop"], "foreign": c["migrants"]}
    r = upload(client, grid(renamed), series="renamed", date="2002", id="renamed-2", groups="foreign")
    assert r.status_code == 201
    r = client.get("/v1/series/renamed/indices", params={"group": "migrants"})
    assert r.status_code == 422 and "missing at 2002" in r.json()["detail"] and "'foreign'" in r.json()["detail"]
    assert upload(client, grid(city(21)), series="checks", date="2001", id="checks-1").status_code == 201
    for params, words in (
        ({"baseline": "1999"}, "not a date of this series"),
        ({"index": "nope"}, "nope"),
        ({"format": "xml"}, "json or csv"),
        ({"total": "people"}, "Total 'people' is missing at 2001"),
    ):
        r = client.get("/v1/series/checks/indices", params=params)
        assert r.status_code == 422 and words in r.json()["detail"], r.text
    assert client.get("/v1/series/none-such").status_code == 404
    assert client.get("/v1/series/none-such/indices").status_code == 404


def test_cli_series_and_trend(client, capsys):
    from app.cli import main

    assert main(["series", "--data-dir", str(client.data_dir)]) == 0
    assert "berlin-forecast-areas" in capsys.readouterr().out
    assert main(["series", "show", "berlin", "--data-dir", str(client.data_dir), "--format", "json"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert [d["n_areas"] for d in shown["datasets"]] == [447] * 4 + [448] * 2
    args = ["trend", "berlin-forecast-areas", "--group", "foreigners", "--index", "dissimilarity", "--format", "csv"]
    assert main([*args, "--data-dir", str(client.data_dir)]) == 0
    out = capsys.readouterr().out
    http = client.get(
        "/v1/series/berlin-forecast-areas/indices",
        params={"group": "foreigners", "index": "dissimilarity", "format": "csv"},
    )
    assert out == http.text
    assert main(["trend", "renamed", "--group", "migrants", "--data-dir", str(client.data_dir)]) == 2
    assert "missing at 2002" in capsys.readouterr().err


SERIES = "/v1/series/berlin-forecast-areas"


def table(c, dataset_id: str, cols: list[str]) -> pd.DataFrame:
    return c.registry.load(dataset_id).areas.set_index("id")[cols].astype(float)


def test_shapley_and_d_decomposition_match_the_library_and_pysal(client):
    from segregation.decomposition import DecomposeSegregation
    from segregation.singlegroup import Dissim

    r = client.get(f"{SERIES}/decomposition", params={"from": "2015", "to": "2020", "group": "foreigners"})
    assert r.status_code == 200, r.text
    body = r.json()
    cols = ["foreigners", "inhabitants"]
    a, b = table(client, "berlin-fa-2015", cols), table(client, "berlin-fa-2020", cols)
    direct = shapley_decomposition(a, b.loc[a.index], "M", total="inhabitants").to_dict()
    assert body["parts"] == direct["parts"]
    parts = {p["stat"]: p["value"] for p in body["parts"]}
    assert parts["diff"] == pytest.approx(parts["value2"] - parts["value1"])
    r = client.get(
        f"{SERIES}/decomposition", params={"from": "2015", "to": "2020", "group": "foreigners", "index": "D"}
    )
    d = r.json()
    mine = decompose_dissimilarity(
        a["foreigners"], a["inhabitants"], b.loc[a.index, "foreigners"], b.loc[a.index, "inhabitants"]
    )
    assert d["spatial"] == pytest.approx(mine["spatial"], abs=1e-12) and d["diff"] == pytest.approx(mine["diff"])
    frames = [
        t.rename(columns={"foreigners": "x", "inhabitants": "t"}).reset_index(drop=True) for t in (a, b.loc[a.index])
    ]
    pysal = DecomposeSegregation(Dissim(frames[0], "x", "t"), Dissim(frames[1], "x", "t"))
    assert d["spatial"] == pytest.approx(-pysal.c_s, abs=1e-6) and d["attribute"] == pytest.approx(-pysal.c_a, abs=1e-6)


def test_different_areas_say_harmonise_first_and_harmonize_area_carries_them(client):
    params = {"from": "2020", "to": "2021", "group": "foreigners"}
    for path in ("decomposition", "change"):
        r = client.get(f"{SERIES}/{path}", params=params)
        assert r.status_code == 422, r.text
        assert "harmonise first" in r.json()["detail"] and "harmonize=area" in r.json()["detail"]
    r = client.get(f"{SERIES}/harmonize", params={**params, "harmonize": "area", "format": "csv"})
    assert r.status_code == 200, r.text
    carried = pd.read_csv(io.StringIO(r.text), dtype={"id": str}).set_index("id")
    src = client.registry.load("berlin-fa-2020").areas
    dst = client.registry.load("berlin-fa-2021").areas
    direct = harmonize(src, dst[["id", "geometry"]], ["foreigners", "inhabitants"], source_key="id", target_key="id")
    expect = direct.frame.set_index("id")
    assert len(carried) == 58 and (carried["foreigners"] == expect.loc[carried.index, "foreigners"]).all()
    assert carried["inhabitants"].sum() == src["inhabitants"].sum()  # integers conserved
    r = client.get(f"{SERIES}/decomposition", params={**params, "harmonize": "area"})
    assert r.status_code == 200 and r.json()["harmonized"]["method"] == "area" and r.json()["units"] == 58
    r = client.get(f"{SERIES}/decomposition", params={**params, "harmonize": "population"})
    assert r.status_code == 422 and "weights" in r.json()["detail"]


def test_local_change_and_transitions_match_the_library(client):
    params = {"from": "2015", "to": "2020", "group": "foreigners", "permutations": 199, "seed": 1}
    body = client.get(f"{SERIES}/change", params=params).json()
    rows = pd.DataFrame(body["areas"]).set_index("id")
    cols = ["foreigners", "inhabitants"]
    a, b = table(client, "berlin-fa-2015", cols), table(client, "berlin-fa-2020", cols)
    direct = local_change(a, b.loc[a.index], "foreigners", "inhabitants")
    assert np.allclose(rows.loc[direct.index, "change_pp"], direct["change_pp"])
    assert (rows.loc[direct.index, "direction"] == direct["direction"]).all()
    assert body["significant"]["increase"] > 40  # foreign nationals rose almost everywhere
    moved = lisa_transitions(rows["lisa_from"], rows["lisa_to"])
    assert body["transitions"]["counts"] == moved.counts.to_numpy().astype(int).tolist()
    assert sum(map(sum, body["transitions"]["counts"])) == 60
    geo = client.get(f"{SERIES}/change", params={**params, "format": "geojson"}).json()
    assert len(geo["features"]) == 60 and geo["segmap"]["group"] == "foreigners"
    assert client.get(f"{SERIES}/change", params={**params, "from": "2020", "to": "2020"}).status_code == 422


def test_change_permutations_are_capped_by_the_server_limit(tmp_path):
    from tile_fixtures import georgia_only

    with TestClient(
        create_app(Settings(data_dir=tmp_path / "d", max_permutations=99, bundled_dir=georgia_only(tmp_path / "b")))
    ) as c:
        for year in ("2001", "2002"):
            assert upload(c, grid(city(30)), series="cap", date=year, id=f"cap-{year}").status_code == 201
        r = c.get("/v1/series/cap/change", params={"from": "2001", "to": "2002", "permutations": 500})
        assert r.status_code == 422 and "limited to 99" in r.json()["detail"]
        assert (
            c.get("/v1/series/cap/change", params={"from": "2001", "to": "2002", "permutations": 99}).status_code == 200
        )
