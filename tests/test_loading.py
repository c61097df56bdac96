"""Loading and validation: every supported format, and each input problem caught with a message that names ids."""

from __future__ import annotations

import io
import zipfile

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
from shapely.geometry import Polygon, box

from conftest import shared_path
from spatial import ValidationError, load_dataset, read_boundaries
from spatial.dataset import validate


def grid(n=3, crs="EPSG:4326", size=0.01):
    cells = [
        box(13 + i * size, 52 + j * size, 13 + (i + 1) * size, 52 + (j + 1) * size) for j in range(n) for i in range(n)
    ]
    ids = [f"A{k:02d}" for k in range(n * n)]
    return gpd.GeoDataFrame(
        {"code": ids, "pop": np.arange(n * n) * 10 + 10, "mig": np.arange(n * n) * 2}, geometry=cells, crs=crs
    )


def codes(err: ValidationError) -> set[str]:
    return {p.code for p in err.value.problems}


@pytest.mark.parametrize(
    "ext,driver", [(".gpkg", "GPKG"), (".geojson", "GeoJSON"), (".shp", "ESRI Shapefile"), (".fgb", "FlatGeobuf")]
)
def test_reads_each_vector_format_from_path(tmp_path, ext, driver):
    g = grid()
    path = tmp_path / f"areas{ext}"
    g.to_file(path, driver=driver)
    d = load_dataset(path, key="code", total="pop", groups=["mig"])
    assert d.n == 9 and sorted(d.ids) == list(g.code)  # FlatGeobuf reorders by its spatial index
    assert dict(zip(d.ids, d.column("mig"))) == dict(zip(g.code, g.mig.astype(float)))


def test_reads_geoparquet_and_zipped_shapefile_from_bytes(tmp_path):
    g = grid()
    g.to_parquet(tmp_path / "a.parquet")
    d = load_dataset(
        (tmp_path / "a.parquet").read_bytes(), boundaries_filename="a.parquet", key="code", total="pop", groups=["mig"]
    )
    assert d.n == 9
    (tmp_path / "shp").mkdir()
    g.to_file(tmp_path / "shp" / "areas.shp")
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for f in (tmp_path / "shp").iterdir():
            zf.write(f, f"nested/dir/{f.name}")
    d = load_dataset(buf.getvalue(), boundaries_filename="upload.zip", key="code", total="pop", groups=["mig"])
    assert d.n == 9 and d.areas.crs.to_epsg() == 4326


def test_counts_joined_from_csv_and_parquet_keep_leading_zeros(tmp_path):
    g = grid()
    g["code"] = [f"0{k}" for k in range(9)]
    g[["code", "geometry"]].to_file(tmp_path / "b.gpkg")
    table = pd.DataFrame({"code": g.code, "pop": g["pop"], "mig": g.mig})
    table.to_csv(tmp_path / "c.csv", index=False)
    table.to_parquet(tmp_path / "c.parquet")
    for counts in ("c.csv", "c.parquet"):
        d = load_dataset(tmp_path / "b.gpkg", counts=tmp_path / counts, key="code", total="pop", groups=["mig"])
        assert list(d.ids) == list(g.code)
        np.testing.assert_array_equal(d.column("pop"), g["pop"])


def test_unsupported_format_says_which_are_supported():
    with pytest.raises(ValidationError, match="Unsupported boundary format") as err:
        read_boundaries(b"x", filename="areas.xlsx")
    assert ".gpkg" in str(err.value)


def test_shapefile_missing_parts_is_explained(tmp_path):
    grid().to_file(tmp_path / "a.shp")
    (tmp_path / "a.dbf").unlink()
    with pytest.raises(ValidationError, match="missing") as err:
        read_boundaries(tmp_path / "a.shp")
    assert codes(err) == {"incomplete_shapefile"}


def test_missing_and_duplicate_ids_are_named():
    g = grid()
    g.loc[1, "code"] = "A00"
    g.loc[4, "code"] = None
    with pytest.raises(ValidationError) as err:
        validate(g, id_col="code", total="pop", groups=["mig"])
    assert codes(err) == {"duplicate_id", "missing_id"}
    dup = next(p for p in err.value.problems if p.code == "duplicate_id")
    assert dup.ids == ["A00"] and "A00" in dup.message


def test_berlin_2020_join_reports_both_sides_of_the_mismatch():
    areas = shared_path("berlin", "berlin-lor-planning-areas-until-2020.geojson")
    counts = shared_path("berlin", "berlin-lor-population-2020-02-t1-planning-areas.csv")
    with pytest.raises(ValidationError) as err:
        load_dataset(
            areas, counts=counts, key="id", total="inhabitants", groups=["inhabitants_with_migration_background"]
        )
    by_code = {p.code: p for p in err.value.problems}
    assert by_code["unmatched_key"].ids == ["04030417"]
    assert "1 keys in the count table have no polygon" in by_code["unmatched_key"].message
    # The real file labels two polygons 06010102: caught, not silently merged.
    assert by_code["duplicate_id"].ids == ["06010102"]


def test_keys_only_in_boundaries_are_counted_and_can_be_dropped(tmp_path):
    g = grid()
    g[["code", "geometry"]].to_file(tmp_path / "b.gpkg")
    pd.DataFrame({"code": g.code[:7], "pop": g["pop"][:7], "mig": g.mig[:7]}).to_csv(tmp_path / "c.csv", index=False)
    with pytest.raises(ValidationError, match="2 polygons have no row") as err:
        load_dataset(tmp_path / "b.gpkg", counts=tmp_path / "c.csv", key="code", total="pop", groups=["mig"])
    assert err.value.problems[0].ids == ["A07", "A08"]
    d = load_dataset(
        tmp_path / "b.gpkg", counts=tmp_path / "c.csv", key="code", total="pop", groups=["mig"], drop_unmatched=True
    )
    assert d.n == 7


def test_missing_join_key_column():
    with pytest.raises(ValidationError, match="Key column 'nope'"):
        load_dataset(
            grid(), counts=pd.DataFrame({"code": ["A00"], "pop": [1]}), key="code", boundary_key="nope", groups=["pop"]
        )


@pytest.mark.parametrize("value,code", [("12a", "non_numeric_count"), (-3, "negative_count"), (None, "missing_count")])
def test_bad_counts_are_named(value, code):
    g = grid()
    g["mig"] = g["mig"].astype(object)
    g.loc[2, "mig"] = value
    with pytest.raises(ValidationError) as err:
        validate(g, id_col="code", total="pop", groups=["mig"])
    assert codes(err) == {code}
    assert err.value.problems[0].ids == ["A02"]


def test_group_larger_than_total():
    g = grid()
    g.loc[3, "mig"] = g.loc[3, "pop"] + 1
    with pytest.raises(ValidationError, match="larger than total") as err:
        validate(g, id_col="code", total="pop", groups=["mig"])
    assert err.value.problems[0].ids == ["A03"]


def test_empty_geometry_and_no_crs():
    g = grid()
    g.loc[5, "geometry"] = Polygon()
    with pytest.raises(ValidationError) as err:
        validate(g, id_col="code", total="pop", groups=["mig"])
    assert codes(err) == {"empty_geometry"} and err.value.problems[0].ids == ["A05"]
    with pytest.raises(ValidationError, match="no CRS"):
        validate(grid().set_crs(None, allow_override=True), id_col="code", total="pop", groups=["mig"])


def test_unknown_column_lists_available_ones():
    with pytest.raises(ValidationError, match="available columns") as err:
        validate(grid(), id_col="code", total="pop", groups=["migrants"])
    assert "'mig'" in str(err.value)


def test_invalid_geometry_is_repaired_and_reported():
    g = grid()
    bowtie = Polygon([(13, 52), (13.01, 52.01), (13.01, 52), (13, 52.01), (13, 52)])
    g.loc[0, "geometry"] = bowtie
    d = validate(g, id_col="code", total="pop", groups=["mig"])
    assert d.areas.geometry.is_valid.all()
    assert d.repairs and d.repairs[0].code == "repaired_geometry" and d.repairs[0].ids == ["A00"]
    # make_valid keeps both triangles of the bow-tie (buffer(0) would silently drop one): half the cell.
    assert d.areas.geometry[0].area == pytest.approx(0.5 * 0.01 * 0.01)
    assert d.areas.geometry[0].geom_type == "MultiPolygon"


def test_zero_population_areas_are_legal_and_shares_finite():
    g = grid()
    g.loc[[0, 1], ["pop", "mig"]] = 0
    d = validate(g, id_col="code", total="pop", groups=["mig"])
    share = d.share("mig")
    assert np.isfinite(share).all() and share[0] == 0 and (share >= 0).all() and (share <= 1).all()


def test_total_defaults_to_sum_of_groups():
    g = grid()
    g["other"] = g["pop"] - g["mig"]
    d = validate(g, id_col="code", groups=["mig", "other"])
    np.testing.assert_array_equal(d.column(d.total), g["pop"])
    assert d.groups == ("mig", "other")


def test_geographic_coordinates_are_projected_to_utm_before_measuring():
    d = validate(grid(), id_col="code", total="pop", groups=["mig"])
    crs = d.metric.crs
    assert crs.is_projected and crs.to_epsg() == 32633  # Berlin longitude 13°E → UTM 33N
    assert d.metric.geometry.area.iloc[0] == pytest.approx(
        0.01 * 111_320 * np.cos(np.radians(52.005)) * 0.01 * 111_250, rel=0.01
    )


def test_projected_metric_input_is_kept_and_web_mercator_is_not_trusted():
    g = grid().to_crs(25833)
    assert validate(g, id_col="code", total="pop", groups=["mig"]).metric.crs.to_epsg() == 25833
    g = grid().to_crs(3857)
    assert validate(g, id_col="code", total="pop", groups=["mig"]).metric.crs.to_epsg() == 32633


def test_bundled_georgia_data_loads(georgia_paths):
    d = load_dataset(
        georgia_paths["boundaries"],
        counts=georgia_paths["counts"],
        key="area_key",
        total="total_population",
        groups=["foreign_born", "black"],
    )
    assert d.n == 159 and d.column("total_population").sum() == 6_478_216
    assert (d.column("foreign_born") <= d.column("total_population")).all()
