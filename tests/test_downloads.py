"""Downloads of a dataset and of a local result as GeoPackage, GeoParquet, FlatGeobuf and CSV.

Read back with GDAL (the ogrinfo command, and pyogrio), GeoParquet with pyarrow/geopandas. Disclosure: two uploads
differ only in three hidden foreign-born counts (3 and 8); every file must hold null for them, and the same
contents for both. The withheld areas are found by hand from the CSV (see test_cql2._withheld).
"""

from __future__ import annotations

import io
import json
import shutil
import subprocess

import geopandas as gpd
import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pyogrio
import pytest
from fastapi.testclient import TestClient
from test_cql2 import GROUPS, HIDDEN, KEY, _files, _withheld

from app.main import create_app
from app.settings import Settings
from conftest import BUNDLED

FORMATS = ("gpkg", "parquet", "fgb", "csv")
URLS = {
    "dataset": "/v1/datasets/{}/download.{}",
    "local": "/v1/datasets/{}/local/lisa/download.{}?group=foreign_born&permutations=99",
}
EVIL = "=HYPERLINK(\"http://example.invalid\",\"x\")"


@pytest.fixture(scope="module")
def client(tmp_path_factory):
    settings = Settings(
        data_dir=tmp_path_factory.mktemp("downloads"), register_bundled=False, api_key=KEY, disclosure_threshold=10
    )
    with TestClient(create_app(settings)) as c:
        for ident, value in (("var3", 3), ("var8", 8)):
            files = _files(value)
            gdf = gpd.read_file(io.BytesIO(files["boundaries"][1]))
            gdf["name"] = np.where(gdf["area_key"] == "13121", EVIL, "County " + gdf["area_key"])
            buf = io.BytesIO()
            gdf.to_file(buf, driver="GPKG")
            files["boundaries"] = ("georgia.gpkg", buf.getvalue())
            data = {"id": ident, "key": "area_key", "total": "total_population", "groups": ",".join(GROUPS)}
            r = c.post("/v1/datasets", files=files, data={**data, "name_col": "name"}, headers={"X-API-Key": KEY})
            assert r.status_code == 201, r.text
        yield c


@pytest.fixture(scope="module")
def files(client) -> dict:
    out = {}
    for kind, url in URLS.items():
        for fmt in FORMATS:
            for ident in ("var3", "var8"):
                r = client.get(url.format(ident, fmt))
                assert r.status_code == 200, (kind, fmt, r.text[:300])
                assert r.headers["content-disposition"].startswith("attachment")
                out[kind, fmt, ident] = r.content
    return out


def _read(content: bytes, fmt: str, tmp_path) -> pd.DataFrame:
    path = tmp_path / f"read.{fmt}"
    path.write_bytes(content)
    if fmt == "parquet":
        geo = json.loads(pq.read_metadata(path).metadata[b"geo"])  # GeoParquet metadata, 1.x
        assert geo["version"].startswith("1.") and geo["primary_column"] == "geometry"
        return gpd.read_parquet(path)
    if fmt == "csv":
        return pd.read_csv(path, dtype={"id": str})
    return pyogrio.read_dataframe(path)


@pytest.mark.parametrize("kind", URLS)
@pytest.mark.parametrize("fmt", FORMATS)
def test_every_format_reads_back_with_withheld_counts_null(files, kind, fmt, tmp_path):
    counts = pd.read_csv(BUNDLED / "census" / "georgia_counties_1990.csv", dtype={"area_key": str})
    withheld = _withheld(counts.set_index("area_key")) | set(HIDDEN)
    frames = [_read(files[kind, fmt, ident], fmt, tmp_path) for ident in ("var3", "var8")]
    df = frames[0]
    assert len(df) == 159 and set(df["id"].astype(str)) == set(counts["area_key"])
    hidden = df["id"].astype(str).isin(withheld).to_numpy()
    count_cols = ["foreign_born", "total_population"] + (
        ["native_born", "foreign_born_share"] if kind == "dataset" else []
    )
    for col in count_cols:
        assert df.loc[hidden, col].isna().all(), col
        assert df.loc[~hidden, col].notna().all(), col
    if kind == "local":
        assert (df.loc[hidden, "label"] == "suppressed").all() and df.loc[hidden, "value"].isna().all()
    # Published values are the true ones where shown (Fulton's black count from the CSV)
    fulton = df.loc[df["id"].astype(str) == "13089", "black" if kind == "dataset" else "foreign_born"].iloc[0]
    assert fulton == counts.set_index("area_key").loc["13089", "black" if kind == "dataset" else "foreign_born"]
    if fmt != "csv":
        assert df.crs is not None and df.crs.to_epsg() == 26916 and df.geometry.notna().all()
    # Nothing in any file depends on the hidden counts.
    pd.testing.assert_frame_equal(frames[0], frames[1])


@pytest.mark.parametrize("kind", URLS)
def test_csv_cells_cannot_run_as_formulas(files, kind, tmp_path):
    text = files[kind, "csv", "var3"].decode()
    assert "'" + EVIL.replace('"', '""') in text and "\n" + EVIL not in text and "," + EVIL not in text
    # The other formats are not spreadsheets: the name stays as it is.
    assert (_read(files[kind, "gpkg", "var3"], "gpkg", tmp_path)["name"] == EVIL).sum() == 1


@pytest.mark.skipif(shutil.which("ogrinfo") is None, reason="GDAL's ogrinfo (Debian gdal-bin) is not installed")
@pytest.mark.parametrize("fmt", FORMATS)
def test_gdal_opens_every_format(files, fmt, tmp_path):
    drivers = subprocess.run(["ogrinfo", "--formats"], capture_output=True, text=True).stdout
    if fmt == "parquet" and "Parquet" not in drivers:
        pytest.skip("this GDAL has no (Geo)Parquet driver (Debian's gdal-bin 3.6 is built without Arrow)")
    path = tmp_path / f"georgia.{fmt}"
    path.write_bytes(files["local", fmt, "var3"])
    out = subprocess.run(["ogrinfo", "-ro", "-so", "-al", str(path)], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert "Feature Count: 159" in out.stdout and "label: String" in out.stdout


def test_bad_downloads_say_what_to_fix(client):
    assert client.get("/v1/datasets/var3/download.shp").status_code == 422
    assert client.get("/v1/datasets/nope/download.gpkg").status_code == 404
    r = client.get("/v1/datasets/var3/local/median/download.csv?permutations=9")
    assert r.status_code == 422 and "lisa" in r.text
    r = client.get("/v1/datasets/var3/local/lisa/download.csv?group=NATIVE")
    assert r.status_code == 422 and "NATIVE" in r.text
    first = client.get("/v1/datasets/var3/download.csv")
    assert (
        client.get("/v1/datasets/var3/download.csv", headers={"If-None-Match": first.headers["etag"]}).status_code
        == 304
    )
