"""HTTP for change between two dates of a series: thin routes over spatial.change on the protected tables.

Each route's numbers equal a direct call of the library on the same tables (and pysal's DecomposeSegregation
for D); different areas at the two dates are a 422 that says to harmonise first."""

from __future__ import annotations

import io

import numpy as np
import pandas as pd
import pytest
from fastapi.testclient import TestClient

from app.main import create_app
from app.registry import Registry
from app.settings import Settings
from spatial.change import decompose_dissimilarity, harmonize, lisa_transitions, local_change, shapley_decomposition

SERIES = "/v1/series/berlin-forecast-areas"


@pytest.fixture(scope="module")
def client(tmp_path_factory):
    data_dir = tmp_path_factory.mktemp("series-change")
    with TestClient(create_app(Settings(data_dir=data_dir))) as c:
        c.registry = Registry(data_dir, sweep=False)
        yield c


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
