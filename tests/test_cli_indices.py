"""`segmap indices` run as a real process: stdout carries only the result, errors go to stderr."""

from __future__ import annotations

import csv
import io
import json

import pytest

from conftest import run_segmap as segmap


def test_json_has_every_index_with_value(georgia_args):
    out = segmap("indices", *georgia_args, "--group", "foreign_born", "--format", "json")
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout)
    assert "dissimilarity" in data and "mutual_information" in data
    assert 0 < data["dissimilarity"]["value"] < 1
    assert "p_value" not in data["dissimilarity"]


def test_permutations_add_inference_fields_and_seed_reproduces(georgia_args):
    args = (
        "indices",
        *georgia_args,
        "--group",
        "black",
        "--index",
        "dissimilarity",
        "--index",
        "gini",
        "--permutations",
        "99",
        "--seed",
        "7",
        "--format",
        "json",
    )
    first, second = segmap(*args), segmap(*args)
    assert first.returncode == 0, first.stderr
    assert first.stdout == second.stdout
    d = json.loads(first.stdout)["dissimilarity"]
    assert d["ci_low"] <= d["value"] <= d["ci_high"]
    assert 0 < d["p_value"] <= 1 and d["expected"] < d["value"]


def test_csv_and_table_formats(georgia_args):
    out = segmap("indices", *georgia_args, "--group", "foreign_born", "--group", "native_born", "--format", "csv")
    rows = list(csv.DictReader(io.StringIO(out.stdout)))
    assert {r["index"] for r in rows} >= {"dissimilarity", "multigroup_dissimilarity"}
    table = segmap("indices", *georgia_args, "--group", "foreign_born")
    assert table.returncode == 0 and "dissimilarity" in table.stdout and "159 areas" in table.stdout


def test_compare_group_reports_a_difference(georgia_args):
    out = segmap(
        "indices",
        *georgia_args,
        "--group",
        "black",
        "--compare-group",
        "foreign_born",
        "--index",
        "dissimilarity",
        "--permutations",
        "99",
        "--seed",
        "1",
        "--format",
        "json",
    )
    cmp = json.loads(out.stdout)["dissimilarity"]["comparison"]
    assert cmp["difference"] == pytest.approx(cmp["value_a"] - cmp["value_b"])
    assert cmp["against"].endswith("foreign_born")


@pytest.mark.parametrize(
    "bad, message",
    [
        (["--group", "nope"], "not found"),
        (["--group", "black", "--index", "nope"], "Unknown index"),
    ],
)
def test_errors_go_to_stderr_with_nonzero_exit(georgia_args, bad, message):
    out = segmap("indices", *georgia_args, *bad)
    assert out.returncode == 2
    assert out.stdout == ""
    assert message in out.stderr


def test_missing_file_is_a_clear_error(tmp_path):
    out = segmap("indices", tmp_path / "missing.gpkg", "--group", "a")
    assert out.returncode == 2 and out.stdout == "" and "missing.gpkg" in out.stderr


def test_multiscalar_profile_in_json_and_table(georgia_args):
    out = segmap(
        "indices",
        *georgia_args,
        "--group",
        "foreign_born",
        "--index",
        "dissimilarity",
        "--format",
        "json",
        "--multiscalar",
        "20000,50000",
    )
    assert out.returncode == 0, out.stderr
    profile = json.loads(out.stdout)["dissimilarity"]["multiscalar"]
    assert list(profile) == ["0", "20000", "50000"] and profile["0"] > profile["50000"] > 0
    table = segmap(
        "indices", *georgia_args, "--group", "foreign_born", "--index", "dissimilarity", "--multiscalar", "20000"
    )
    assert "multiscalar: 0 m" in table.stdout
    bad = segmap("indices", *georgia_args, "--group", "foreign_born", "--multiscalar", "far")
    assert bad.returncode == 2 and "metres" in bad.stderr and bad.stdout == ""
