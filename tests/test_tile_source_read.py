"""A dataset version's GeoParquet read in chunks (app/geoparquet_read.py), so a worker reading a million areas
keeps answering (and is not killed by uvicorn as hung): the same frame as geopandas.read_parquet."""

from __future__ import annotations

import geopandas as gpd
import numpy as np
import pytest
from geopandas.testing import assert_geodataframe_equal
from shapely.geometry import Polygon, box

from app.geoparquet_read import read_geoparquet


def _frame(n: int, crs) -> gpd.GeoDataFrame:
    rng = np.random.default_rng(n)
    geoms = [box(i, 0, i + 1, 1) if i % 3 else Polygon([(i, 0), (i + 1, 0), (i, 2)]) for i in range(n)]
    return gpd.GeoDataFrame(
        {"id": [f"a{i}" for i in range(n)], "total": rng.integers(0, 99, n), "share": rng.random(n)},
        geometry=geoms,
        crs=crs,
    )


@pytest.mark.parametrize("crs", ["EPSG:32633", "EPSG:4326", None])
def test_chunks_read_the_frame_geopandas_reads(tmp_path, crs):
    path = tmp_path / "a.parquet"
    _frame(103, crs).to_parquet(path)
    assert_geodataframe_equal(read_geoparquet(path, chunk=10), gpd.read_parquet(path))


def test_the_geometry_column_keeps_its_name_and_place(tmp_path):
    frame = _frame(50, "EPSG:3857").rename_geometry("shape")[["id", "shape", "total", "share"]]
    frame.to_parquet(tmp_path / "b.parquet")
    out = read_geoparquet(tmp_path / "b.parquet", chunk=7)
    assert list(out.columns) == ["id", "shape", "total", "share"] and out.geometry.name == "shape"
    assert_geodataframe_equal(out, gpd.read_parquet(tmp_path / "b.parquet"))


def test_geometries_are_decoded_a_chunk_at_a_time(tmp_path, monkeypatch):
    import shapely

    _frame(103, "EPSG:32633").to_parquet(tmp_path / "c.parquet")
    sizes, real = [], shapely.from_wkb
    monkeypatch.setattr(shapely, "from_wkb", lambda wkb, *a, **k: sizes.append(len(wkb)) or real(wkb, *a, **k))
    read_geoparquet(tmp_path / "c.parquet", chunk=25)
    assert sizes == [25, 25, 25, 25, 3]  # the GIL is free between them
