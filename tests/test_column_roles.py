"""Real columns in the wrong role (shapes, ids, text, undeclared counts as group / total / other / region) and
non-finite numbers get a clear 4xx naming the column and its role, from every endpoint (in process) and the CLI;
never a 500."""

from __future__ import annotations

import io

import geopandas as gpd
import numpy as np
import pytest
import shapely

from conftest import in_process
from spatial.dataset import validate
from spatial.errors import ValidationError

N = 16


def _grid() -> gpd.GeoDataFrame:
    rng = np.random.default_rng(3)
    total = rng.integers(1000, 2000, N)
    return gpd.GeoDataFrame(
        {
            "area_key": [f"a{i:02d}" for i in range(N)],
            "area_name": [f"Area {i}" for i in range(N)],
            "district": ["north" if i < N // 2 else "south" for i in range(N)],
            "total_population": total,
            "g1": (total * rng.uniform(0.05, 0.6, N)).round(),
            "g2": (total * rng.uniform(0.05, 0.3, N)).round(),
            "extra_num": rng.integers(100, 900, N),  # numeric but never declared
            "geometry": [
                shapely.box(0.05 * (i % 4), 0.05 * (i // 4), 0.05 * (i % 4 + 1), 0.05 * (i // 4 + 1)) for i in range(N)
            ],
        },
        crs=4326,
    )


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    with in_process(tmp_path_factory.mktemp("roles"), register_bundled=False) as client:
        grid = _grid().to_json().encode()
        r = client.post(
            "/v1/datasets",
            files={"boundaries": ("grid.geojson", grid, "application/geo+json")},
            data={
                "groups": "g1,g2",
                "total": "total_population",
                "key": "area_key",
                "name_col": "area_name",
                "id": "grid",
                "title": "Grid",
            },
        )
        assert r.status_code == 201, r.text
        yield client


def assert_role_problem(r, *words, status=422):
    assert r.status_code == status, (r.status_code, r.text[:300])
    assert r.headers["content-type"].startswith("application/problem+json")
    detail = r.json()["detail"]
    for w in words:
        assert w in detail, (w, detail)


D = "/v1/datasets/grid"


# -- HTTP: only declared columns, each in its role ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "params,words",
    [
        ({"group": "geometry"}, ["group 'geometry'"]),  # was a 500
        ({"group": "area_name"}, ["group 'area_name'"]),  # text as counts
        ({"group": "id"}, ["group 'id'"]),  # ids were summed as counts (200)
        ({"group": "extra_num"}, ["group 'extra_num'"]),  # never declared: not public
        ({"group": ["g1", "district"]}, ["group 'district'"]),
        ({"total": "area_name"}, ["total 'area_name'"]),
        ({"total": "geometry"}, ["total 'geometry'"]),
        ({"compare_group": "area_name"}, ["compare_group 'area_name'"]),  # was a 500
        ({"compare_group": "total_population"}, ["compare_group 'total_population'", "total, not a group"]),
        ({"region": "geometry"}, ["region 'geometry'", "no region column"]),
        ({"region": "district"}, ["region 'district'"]),
    ],
)
def test_indices_refuse_columns_in_the_wrong_role(server, params, words):
    assert_role_problem(server.get(f"{D}/indices", params=params), *words)


@pytest.mark.parametrize("value", ["nan", "inf", "-inf", "500,nan", "-5", "0", ","])
def test_multiscalar_must_be_finite_positive_metres(server, value):
    r = server.get(f"{D}/indices", params={"group": "g1", "index": "dissimilarity", "multiscalar": value})
    assert_role_problem(r, "multiscalar", "finite positive")  # nan was accepted with a 200


def test_multiscalar_still_works(server):
    r = server.get(f"{D}/indices", params={"group": "g1", "index": "dissimilarity", "multiscalar": "5000,10000"})
    assert r.status_code == 200, r.text
    assert set(r.json()["dissimilarity"]["multiscalar"]) == {"0", "5000", "10000"}


@pytest.mark.parametrize(
    "params,words",
    [
        ({"group": "geometry"}, ["group 'geometry'"]),  # was a 500
        ({"group": "area_name"}, ["group 'area_name'"]),
        ({"group": "id"}, ["group 'id'"]),
        ({"group": "extra_num", "format": "csv"}, ["group 'extra_num'"]),
        ({"total": "area_name"}, ["total 'area_name'"]),
        ({"total": "id"}, ["total 'id'"]),
        ({"statistic": "bivariate_lisa", "other": "geometry"}, ["other 'geometry'"]),  # was a 500
        ({"statistic": "bivariate_lisa", "other": "area_name"}, ["other 'area_name'"]),
        ({"statistic": "bivariate_lisa", "other": "total_population"}, ["other 'total_population'"]),
    ],
)
def test_local_refuses_columns_in_the_wrong_role(server, params, words):
    assert_role_problem(server.get(f"{D}/local", params={"permutations": 0, **params}), *words)


@pytest.mark.parametrize(
    "path",
    [
        f"{D}/tiles/0/0/0.mvt",
        f"{D}/tilejson.json",
        "/maps/grid",
        "/maps/grid/embed",
        "/maps/grid/download",
        "/maps/grid/download?tiles=on&view=lisa",
        "/maps/grid?tiles=on",
        "/maps/grid/data",
        f"{D}/map.png",
        f"{D}/tiles/0/0/0.mvt?statistic=lisa",
    ],
)
@pytest.mark.parametrize("group", ["geometry", "area_name", "extra_num", "total_population"])
def test_tiles_and_maps_take_declared_groups_only(server, path, group):
    r = server.get(path, params={"group": group})
    assert_role_problem(r, repr(group))
    assert "group" in r.json()["detail"].lower()


def test_ogc_has_no_collection_for_an_undeclared_group(server):
    r = server.get("/ogc/collections/grid~lisa~geometry/items")
    assert_role_problem(r, "grid~lisa~geometry", status=404)


def test_declared_columns_still_work(server):
    assert (
        server.get(
            f"{D}/indices",
            params={
                "group": ["g1", "g2"],
                "total": "total_population",
                "compare_group": "g2",
                "index": "dissimilarity",
            },
        ).status_code
        == 200
    )
    assert (
        server.get(
            f"{D}/local", params={"group": "g1", "statistic": "bivariate_lisa", "other": "g2", "permutations": 9}
        ).status_code
        == 200
    )


# -- uploads and the library: roles checked while validating ----------------------------------------------------------


@pytest.mark.parametrize(
    "form,words",
    [
        ({"groups": "geometry"}, ["group 'geometry'", "shapes"]),
        ({"groups": "g1", "total": "geometry"}, ["total 'geometry'"]),
        ({"groups": "g1", "name_col": "geometry"}, ["name column 'geometry'"]),
        ({"groups": "g1", "region_col": "geometry"}, ["region column 'geometry'"]),  # a RecursionError (500) before
        ({"groups": "g1,area_name"}, ["Group 'area_name'", "non-numeric"]),
        ({"groups": "g1", "total": "district"}, ["Total 'district'", "non-numeric"]),
    ],
)
def test_upload_refuses_columns_in_the_wrong_role(server, form, words):
    r = server.post(
        "/v1/datasets",
        files={"boundaries": ("g.geojson", _grid().to_json().encode(), "application/geo+json")},
        data={"key": "area_key", "total": "total_population", "title": "roles", **form},
    )
    assert_role_problem(r, *words)


def test_upload_with_an_infinite_count_says_so(server):
    g = _grid()
    table = g.drop(columns="geometry")
    table["g1"] = table["g1"].astype(object)
    table.loc[3, "g1"] = "inf"
    table.loc[5, "g1"] = "-inf"
    buf = io.StringIO()
    table.to_csv(buf, index=False)
    r = server.post(
        "/v1/datasets",
        files={
            "boundaries": ("b.geojson", g[["area_key", "geometry"]].to_json().encode(), "application/geo+json"),
            "counts": ("c.csv", buf.getvalue().encode(), "text/csv"),
        },
        data={"key": "area_key", "groups": "g1", "total": "total_population", "title": "inf"},
    )
    assert_role_problem(r, "Group 'g1'", "infinite or NaN", "a03", "a05")
    assert "larger than total" not in r.json()["detail"]  # -inf was also called negative, inf "larger than total"


@pytest.mark.parametrize(
    "raw,word",
    [
        (float("inf"), "infinite or NaN"),
        ("inf", "infinite or NaN"),
        ("NaN", "infinite or NaN"),
        (float("nan"), "missing"),
        ("", "missing"),
    ],
)
def test_validate_names_non_finite_counts(raw, word):
    g = _grid()
    g["g1"] = g["g1"].astype(object)
    g.loc[2, "g1"] = raw
    with pytest.raises(ValidationError) as err:
        validate(g, id_col="area_key", groups=["g1"], total="total_population")
    messages = [p.message for p in err.value.problems]
    assert len(messages) == 1 and "Group 'g1'" in messages[0] and word in messages[0] and "a02" in messages[0], messages


def test_library_column_refuses_text_with_a_message():
    ds = validate(_grid(), id_col="area_key", groups=["g1"], total="total_population", name_col="area_name")
    for name in ("area_name", "id", "geometry"):
        with pytest.raises(ValidationError, match=f"'{name}'.*not a count column"):
            ds.column(name)


# -- CLI -------------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def gpkg(tmp_path_factory):
    path = tmp_path_factory.mktemp("roles") / "grid.gpkg"
    _grid().to_file(path, driver="GPKG")
    return str(path)


@pytest.mark.parametrize(
    "argv,words",
    [
        (["indices", "--group", "geometry"], ["group 'geometry'"]),  # a TypeError (exit 1) before
        (["indices", "--group", "area_name"], ["Group 'area_name'", "non-numeric"]),
        (["indices", "--group", "g1", "--total", "district"], ["Total 'district'"]),
        (
            ["indices", "--group", "g1", "--region", "geometry", "--index", "mutual_information"],
            ["region column 'geometry'"],
        ),
        (["indices", "--group", "g1", "--compare-group", "area_name"], ["Group 'area_name'"]),
        (["local", "--group", "geometry", "--permutations", "0"], ["group 'geometry'"]),
        (["local", "--group", "g1", "--statistic", "bivariate_lisa", "--other", "area_name"], ["Group 'area_name'"]),
        (["local", "--group", "g1", "--name-col", "geometry", "--permutations", "0"], ["name column 'geometry'"]),
        (["map", "--group", "geometry"], ["group 'geometry'"]),
    ],
)
def test_cli_names_column_and_role(gpkg, tmp_path, capsys, argv, words):
    from app.cli import main

    extra = ["-o", str(tmp_path / "m.html")] if argv[0] == "map" else []
    code = main([argv[0], gpkg, "--key", "area_key", *argv[1:], *extra])
    err = capsys.readouterr().err
    assert code == 2, err
    for w in words:
        assert w in err, (w, err)


@pytest.mark.parametrize("value", ["nan", "inf", "0", "-500", "500,nan"])
def test_cli_multiscalar_must_be_finite_positive(gpkg, capsys, value):
    from app.cli import main

    with pytest.raises(SystemExit) as exit_:
        main(["indices", gpkg, "--key", "area_key", "--group", "g1", "--multiscalar", value])
    assert exit_.value.code == 2
    assert "finite positive" in capsys.readouterr().err
