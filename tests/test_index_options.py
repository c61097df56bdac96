"""One validated options object for city-wide indices (issue 13, item 8): groups with the focal one first, every
field checked once where it is made, the same object from the library, the CLI and the router."""

from __future__ import annotations

import json

import geopandas as gpd
import pytest
from shapely.geometry import box

from spatial.dataset import validate
from spatial.errors import ValidationError
from spatial.indices.compute import IndexOptions, compute_indices


@pytest.fixture(scope="module")
def city():
    a, b, c = [9, 1, 5, 0, 7, 2], [1, 8, 3, 9, 2, 6], [4, 4, 4, 4, 4, 4]
    gdf = gpd.GeoDataFrame(
        {"id": [f"u{i}" for i in range(6)], "a": a, "b": b, "c": c},
        geometry=[box(i, 0, i + 1, 1) for i in range(6)],
        crs="EPSG:3857",
    )
    return validate(gdf, id_col="id", groups=["a", "b", "c"])


@pytest.mark.parametrize(
    "fields, words",
    [
        ({"permutations": -1}, "permutations"),
        ({"permutations": 2.5}, "permutations"),
        ({"seed": -3}, "seed"),
        ({"null": "magic"}, "null model 'magic'"),
        ({"ci_level": 1.5}, "ci_level"),
        ({"multiscalar": [500, float("nan")]}, "finite positive"),
        ({"multiscalar": ["far"]}, "metres"),
        ({"groups": ["a", 3]}, "groups"),
        ({"params": {"atkinson": 0.3}}, "params"),
        ({"total": ""}, "total"),
    ],
)
def test_every_field_is_checked_where_the_options_are_made(fields, words):
    with pytest.raises(ValidationError, match=words):
        IndexOptions(**fields)


def test_the_first_group_is_the_focal_one_and_group_is_the_older_form(city):
    assert IndexOptions.of(group="b", groups=["a", "b"]).groups == ("b", "a")
    assert IndexOptions(groups=("a", "b", "a")).groups == ("a", "b")  # a repeated name counts once
    new = compute_indices(city, IndexOptions(groups=("b", "a"), indices=("dissimilarity", "multigroup_dissimilarity")))
    old = compute_indices(city, group="b", groups=["b", "a"], indices=["dissimilarity", "multigroup_dissimilarity"])
    assert new["dissimilarity"].groups == ("b",) and new["multigroup_dissimilarity"].groups == ("b", "a")
    assert {k: r.to_dict() for k, r in new.items()} == {k: r.to_dict() for k, r in old.items()}
    # Without groups, the dataset's own, the first being the focal one.
    assert compute_indices(city, indices=["dissimilarity"])["dissimilarity"].groups == ("a",)


def test_options_or_keywords_not_both(city):
    with pytest.raises(TypeError, match="not both"):
        compute_indices(city, IndexOptions(groups=("a",)), permutations=9)


def test_a_comparison_reads_its_simulations_from_the_options(city):
    res = compute_indices(
        city, IndexOptions(groups=("a",), indices=("dissimilarity",), compare_group="b", permutations=19, seed=1)
    )
    cmp = res["dissimilarity"].extra["comparison"]
    assert cmp["against"].endswith(":b") and cmp["permutations"] == 19


def test_cli_groups_list_is_the_same_as_repeated_group(georgia_paths, capsys):
    from app.cli import main

    base = [
        "indices",
        str(georgia_paths["boundaries"]),
        "--counts",
        str(georgia_paths["counts"]),
        "--key",
        "area_key",
        "--format",
        "json",
        "--index",
        "dissimilarity",
        "--index",
        "multigroup_dissimilarity",
    ]
    assert main([*base, "--group", "black", "--group", "rural"]) == 0
    repeated = json.loads(capsys.readouterr().out)
    assert main([*base, "--groups", "black,rural"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert listed == repeated and listed["dissimilarity"]["groups"] == ["black"]
    assert main([*base]) == 2 and "--group COL" in capsys.readouterr().err  # no group: named, exit 2


def test_http_groups_list_is_the_same_as_repeated_group(app_client):
    base = "/v1/datasets/georgia-1990/indices?index=dissimilarity&index=multigroup_dissimilarity&permutations=0"
    repeated = app_client.get(f"{base}&group=foreign_born&group=black")
    listed = app_client.get(f"{base}&groups=foreign_born,black")
    swapped = app_client.get(f"{base}&groups=black,foreign_born")
    assert repeated.status_code == listed.status_code == 200
    assert repeated.json() == listed.json()
    assert repeated.json()["dissimilarity"]["groups"] == ["foreign_born"]
    assert swapped.json()["dissimilarity"]["groups"] == ["black"]  # the first listed group is the focal one
