"""No path runs more permutations than the server's SEGMAP_MAX_PERMUTATIONS: LISA's global permutation test
(999 by default, whatever permutations=0 said) is refused with a 422 naming the limit before any computation,
and the chosen (unset) permutations of a series change stay within it. Small app: Georgia and a 6×6 grid."""

from __future__ import annotations

import geopandas as gpd
import numpy as np
import pytest
from shapely.geometry import box

from conftest import georgia_bundle, in_process
from spatial.errors import ValidationError

LIMIT = 99
LOCAL = "/v1/datasets/georgia-1990/local"


def grid_city(seed: int) -> bytes:
    """36 squares of 1 km (EPSG:3035) with a share rising across the grid, as GeoJSON."""
    rng = np.random.default_rng(seed)
    pop = rng.integers(200, 2000, 36)
    migrants = np.rint(pop * np.linspace(0.05, 0.6, 36)).astype(int)
    cells = [box(x * 1000, y * 1000, (x + 1) * 1000, (y + 1) * 1000) for y in range(6) for x in range(6)]
    frame = gpd.GeoDataFrame(
        {"key": [f"a{i:02d}" for i in range(36)], "pop": pop, "migrants": migrants}, geometry=cells
    )
    return frame.set_crs(3035).to_crs(4326).to_json().encode()


@pytest.fixture(scope="module")
def client(tmp_path_factory):
    bundled = georgia_bundle(tmp_path_factory.mktemp("bundled"))
    with in_process(tmp_path_factory.mktemp("app"), bundled_dir=bundled, max_permutations=LIMIT) as c:
        yield c


@pytest.fixture
def runs(monkeypatch):
    """Counts every permutation run (local and global): a refused request must run none."""
    import spatial.local.statistics as statistics

    calls = []
    for name in ("conditional_permutation", "global_moran"):
        real = getattr(statistics, name)
        monkeypatch.setattr(statistics, name, lambda *a, _real=real, _name=name: calls.append(_name) or _real(*a))
    return calls


def assert_names_the_limit(r):
    assert r.status_code == 422, r.text
    detail = r.json()["detail"]
    assert "global_test=permutation" in detail and "999" in detail and f"limit of {LIMIT}" in detail
    assert "SEGMAP_MAX_PERMUTATIONS" in detail and "global_test=randomisation" in detail


@pytest.mark.parametrize("statistic", ["lisa", "moran"])
def test_global_permutation_test_above_the_limit_is_refused_before_any_permutation(client, runs, statistic):
    params = {"group": "black", "statistic": statistic, "permutations": 0, "global_test": "permutation"}
    assert_names_the_limit(client.get(LOCAL, params=params))
    assert runs == []


def test_local_download_is_refused_the_same_way(client, runs):
    params = {"group": "black", "permutations": 0, "global_test": "permutation"}
    assert_names_the_limit(client.get("/v1/datasets/georgia-1990/local/lisa/download.csv", params=params))
    assert runs == []


def test_within_the_limit_the_global_test_runs_as_many_as_the_local_one(client):
    for permutations in (LIMIT, None):  # given, or chosen (at most the limit)
        params = {"group": "black", "global_test": "permutation", "seed": 1}
        r = client.get(LOCAL, params=params if permutations is None else {**params, "permutations": permutations})
        assert r.status_code == 200, r.text
        g = r.json()["segmap"]["summary"]["global_moran"]
        assert g["test"] == "permutation" and g["permutations"] == LIMIT
    # the analytic test needs no permutation: permutations=0 stays allowed with it
    r = client.get(LOCAL, params={"group": "black", "permutations": 0, "global_test": "randomisation"})
    assert r.status_code == 200 and r.json()["segmap"]["summary"]["global_moran"]["test"] == "randomisation"


def test_permutations_above_the_limit_name_the_setting(client):
    r = client.get(LOCAL, params={"group": "black", "permutations": LIMIT + 1})
    assert r.status_code == 422 and f"limited to {LIMIT} (SEGMAP_MAX_PERMUTATIONS)" in r.json()["detail"]


def test_series_change_chooses_at_most_the_limit(client, monkeypatch):
    import spatial.local as local

    for year in ("2001", "2002"):
        form = {"groups": "migrants", "total": "pop", "key": "key", "series": "bound", "date": year, "id": f"b{year}"}
        r = client.post("/v1/datasets", files={"boundaries": ("g.geojson", grid_city(int(year)))}, data=form)
        assert r.status_code == 201, r.text
    used, real = [], local.local_statistic

    def spy(*args, **kwargs):
        res = real(*args, **kwargs)
        used.append(res.permutations)
        return res

    monkeypatch.setattr(local, "local_statistic", spy)
    r = client.get("/v1/series/bound/change", params={"from": "2001", "to": "2002"})
    assert r.status_code == 200, r.text
    assert len(used) == 2  # LISA at each date, permutations left to choose: 36 areas under FDR want 1,439
    assert used == [LIMIT, LIMIT], used


def test_library_guard_refuses_before_building_weights(georgia_paths, monkeypatch):
    import spatial.local.prologue as prologue
    from spatial.io import load_dataset
    from spatial.local import local_statistic

    p = georgia_paths
    ds = load_dataset(p["boundaries"], groups=["black"], total=p["total"], counts=p["counts"], key=p["key"])
    monkeypatch.setattr(prologue, "build_weights", lambda *a, **kw: pytest.fail("weights built before the check"))
    with pytest.raises(ValidationError, match="limit of 99 \\(max_permutations\\)"):
        local_statistic(ds, "black", "lisa", permutations=0, global_test="permutation", max_permutations=99)
    with pytest.raises(ValidationError, match="permutations=100 is above the limit of 99"):
        local_statistic(ds, "black", "gi_star", permutations=100, max_permutations=99)


def test_cli_refuses_permutations_above_the_librarys_limit(georgia_args, capsys):
    from app.cli import main

    argv = ["local", *georgia_args, "--group", "black", "--permutations", "100000"]
    assert main(argv) == 2
    assert "permutations=100,000 is above the limit of 99,999" in capsys.readouterr().err
