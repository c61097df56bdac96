"""`segmap harmonize SOURCE --to TARGET [--method area|population] [--weights FINER_LAYER] -o OUT`."""

from __future__ import annotations

import os

import geopandas as gpd
import pandas as pd
import pytest
from shapely.geometry import box

from app.cli import main

CRS = "EPSG:3035"
X0, Y0 = 4_321_000, 3_210_000


def sq(x, y, w, h):
    return box(X0 + x, Y0 + y, X0 + x + w, Y0 + y + h)


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("harmonize")
    gpd.GeoDataFrame({"id": ["L", "R"]}, geometry=[sq(0, 0, 100, 100), sq(100, 0, 100, 100)], crs=CRS).to_file(
        d / "source.geojson"
    )
    pd.DataFrame({"id": ["L", "R"], "total": [1000, 400], "migrants": [300, 100]}).to_csv(d / "counts.csv", index=False)
    gpd.GeoDataFrame({"code": ["W", "E"]}, geometry=[sq(0, 0, 50, 100), sq(50, 0, 150, 100)], crs=CRS).to_file(
        d / "target.geojson"
    )
    gpd.GeoDataFrame(
        {"id": ["f1", "f2", "f3"], "n": [900, 100, 400], "total": [900, 100, 400], "migrants": [100, 200, 100]},
        geometry=[sq(0, 0, 25, 100), sq(25, 0, 75, 100), sq(100, 0, 100, 100)],
        crs=CRS,
    ).to_file(d / "fine.geojson")
    return d


def run(files, *extra, out="out.csv"):
    return main(
        [
            "harmonize", str(files / "source.geojson"), "--counts", str(files / "counts.csv"), "--key", "id",
            "--group", "migrants", "--total", "total", "--to", str(files / "target.geojson"),
            "--target-key", "code", "-o", str(files / out), *extra,
        ]
    )  # fmt: skip


def test_area_and_population_methods_write_integer_counts(files, capsys):
    assert run(files) == 0
    out = pd.read_csv(files / "out.csv").set_index("code")
    assert out["total"].to_dict() == {"W": 500, "E": 900}
    assert out["migrants"].sum() == 400
    assert "totals kept: migrants 400, total 1,400" in capsys.readouterr().err
    assert run(files, "--method", "population", "--weights", str(files / "fine.geojson"), "--weight-column", "n",
               out="pop.gpkg") == 0  # fmt: skip
    pop = gpd.read_file(files / "pop.gpkg").set_index("code")
    assert pop["total"].to_dict() == {"W": 933, "E": 467}
    assert pop["migrants"].to_dict() == {"W": 280, "E": 120}  # 300 · 933.3/1000 west: they follow everybody
    assert pop.crs == CRS


def test_by_group_each_count_follows_its_own_group(files):
    """The finer layer's migrants live 100 in the western quarter and 200 in the rest of the left square, so
    100 + 200 · 25/75 = 166.7 of its 300 are west of x = 50."""
    assert run(files, "--method", "population", "--weights", str(files / "fine.geojson"), "--by-group",
               out="groups.csv") == 0  # fmt: skip
    out = pd.read_csv(files / "groups.csv").set_index("code")
    assert out["migrants"].to_dict() == {"W": 167, "E": 233}
    assert out["total"].to_dict() == {"W": 933, "E": 467}


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--method", "population"], "--weights FINER_LAYER"),
        (["--weights", "x.geojson"], "only used with --method population"),
        (["--target-key", "nope"], "No id column 'nope'"),
    ],
)
def test_mistakes_exit_2_with_what_to_fix_and_write_nothing(files, capsys, extra, message):
    assert run(files, *extra, out="bad.csv") == 2
    assert message in capsys.readouterr().err
    assert not (files / "bad.csv").exists()
    assert not list(files.glob(".segmap-*"))


def test_outputs_get_the_umask_permissions_not_owner_only(files, monkeypatch):
    """Written beside the target then renamed: the temporary file is 0600, the report must not be."""
    old = os.umask(0o022)
    try:
        for out in ("perm.csv", "perm.gpkg"):
            assert run(files, out=out) == 0
            assert (files / out).stat().st_mode & 0o777 == 0o644
    finally:
        os.umask(old)
