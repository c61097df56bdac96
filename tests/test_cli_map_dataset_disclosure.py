"""`segmap map --dataset`: a map of a registered dataset is made for publication, so it is drawn from the protected
table the service publishes (the dataset's own disclosure settings, app/deps.py load_source) and refused, like
every public read, when the stored dataset's areas overlap (app/overlap_guard.py)."""

from __future__ import annotations

import json
import math
import re

import geopandas as gpd
import numpy as np
import pytest
import shapely

import app.overlap_guard
import maps.static
from app.cli import main
from app.deps import load_source
from app.registry import Registry
from app.settings import Settings
from spatial.dataset import validate

CRS = "EPSG:3035"
X0, Y0 = 4_321_000.0, 3_210_000.0
TOTAL = 400
STORED = 20  # the dataset's own threshold, above the service default of 10
# 4×4 grid: counts below 10 (hidden at any threshold) and from 10 to 19 (hidden only at the dataset's own 20)
MIGRANTS = [3, 150, 12, 90, 120, 5, 200, 15, 80, 110, 60, 17, 130, 70, 95, 140]
SMALL = {f"a{i}": m for i, m in enumerate(MIGRANTS) if 1 <= m < STORED}
CLEAN, NESTED = "small-counts", "nested-old"


def _grid(boxes: dict[str, tuple], migrants: list[int]) -> gpd.GeoDataFrame:
    geoms = [shapely.box(X0 + x0, Y0 + y0, X0 + x1, Y0 + y1) for x0, y0, x1, y1 in boxes.values()]
    return gpd.GeoDataFrame(
        {"id": list(boxes), "total": [TOTAL] * len(boxes), "migrants": migrants}, geometry=geoms, crs=CRS
    )


def _dataset(gdf: gpd.GeoDataFrame, **kw):
    return validate(gdf, id_col="id", groups=["migrants"], total="total", **kw)


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("map-dataset")
    reg = Registry(root)
    boxes = {f"a{i}": (100 * (i % 4), 100 * (i // 4), 100 * (i % 4 + 1), 100 * (i // 4 + 1)) for i in range(16)}
    reg.put(CLEAN, _dataset(_grid(boxes, MIGRANTS)), disclosure={"threshold": STORED, "method": "suppress"})
    nested = {"west": (0, 0, 100, 200), "east": (100, 0, 200, 200), "all": (0, 0, 200, 200)}
    mp = pytest.MonkeyPatch()  # stored as before the overlap check existed: no refusal at put, no record of a check
    mp.setattr(app.overlap_guard, "before_put", lambda ds: None)
    mp.setattr(app.overlap_guard, "passed", lambda *a: None)
    try:
        reg.put(NESTED, _dataset(_grid(nested, [100, 100, 200]), overlaps=False))
    finally:
        mp.undo()
    return root


@pytest.fixture
def env(data_dir, monkeypatch):
    monkeypatch.setenv("SEGMAP_DATA_DIR", str(data_dir))
    return data_dir


def _published(data_dir) -> dict[str, float | None]:
    """The service's public migrants count per area (None: withheld), read independently of the CLI."""
    src = load_source(Registry(data_dir, sweep=False), Settings(data_dir=data_dir), CLEAN, owner=False)
    areas = src.data.areas
    return {str(i): (None if math.isnan(c) else float(c)) for i, c in zip(areas["id"], areas["migrants"])}


def _page_features(html: str) -> dict[str, dict]:
    (gj,) = [json.loads(g) for g in re.findall(r'_add\((\{"bbox".*?|\{"features".*?)\);\n', html)]
    return {f["properties"]["id"]: f["properties"] for f in gj["features"]}


def test_html_map_carries_the_published_counts_not_the_true_ones(env, tmp_path):
    out = tmp_path / "m.html"
    assert main(["map", "--dataset", CLEAN, "--group", "migrants", "-o", str(out)]) == 0
    props = _page_features(out.read_text())
    published = _published(env)
    assert set(props) == set(published) and len(props) == 16
    for ident, p in props.items():
        assert p["count"] == published[ident], (ident, p)
    for ident, true in SMALL.items():  # every count below the dataset's own threshold is withheld, with its share
        assert props[ident]["count"] is None and props[ident]["share"] is None, (ident, true, props[ident])
    shown = {p["count"] for p in props.values()} - {None}
    assert shown and not shown & set(SMALL.values())


def test_the_stored_threshold_is_honoured_not_the_service_default(env, tmp_path):
    out = tmp_path / "m.html"
    assert main(["map", "--dataset", CLEAN, "-o", str(out)]) == 0
    props = _page_features(out.read_text())
    between = {i: m for i, m in SMALL.items() if m >= Settings().disclosure_threshold}  # hidden only at 20
    assert between and all(props[i]["count"] is None for i in between), props
    refused = main(["map", "--dataset", CLEAN, "--disclosure-threshold", "2", "-o", str(tmp_path / "low.html")])
    assert refused == 2 and not (tmp_path / "low.html").exists()  # no lowering the dataset's own threshold


def test_png_is_drawn_from_the_protected_table(env, tmp_path, monkeypatch):
    drawn = []
    real = maps.static.render

    def spy(dataset, vd, *a, **kw):
        drawn.append(vd.frame.set_index("id")["count"])
        return real(dataset, vd, *a, **kw)

    monkeypatch.setattr(maps.static, "render", spy)
    out = tmp_path / "m.png"
    argv = ["map", "--dataset", CLEAN, "--width", "200", "--height", "150", "--dpi", "50", "-o", str(out)]
    assert main(argv) == 0 and out.stat().st_size > 0
    (counts,) = drawn
    assert all(np.isnan(counts[i]) for i in SMALL), counts
    assert not set(counts.dropna()) & set(SMALL.values())


def test_a_stored_dataset_with_overlapping_areas_is_refused_like_export(env, tmp_path, capsys):
    out = tmp_path / "m.html"
    assert main(["map", "--dataset", NESTED, "-o", str(out)]) == 2
    err = capsys.readouterr().err
    assert not out.exists() and not list(tmp_path.iterdir())
    assert "stored before overlapping areas were refused" in err
    assert main(["export", NESTED, "--pmtiles", str(tmp_path / "x.pmtiles")]) == 2
    said = capsys.readouterr().err
    assert err.split("\n", 1)[1] == said.split("\n", 1)[1]  # the same problem, in the same words, as export
