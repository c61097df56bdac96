"""The security review's upload attacks (issue 12, items 1, 4, 6 and the messages of 7), as tests.

Uploads must never make GDAL read a server file or the network, limits must hold whatever the file is
called and before decoding, coordinates must fit their CRS, and a refused upload must leave no trace.
Most run the app in-process; the network probe and the memory measurement run a real uvicorn.
"""

from __future__ import annotations

import functools
import http.server
import io
import json
import math
import sqlite3
import struct
import threading
import zipfile
from pathlib import Path

import geopandas as gpd
import httpx
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from fastapi.testclient import TestClient
from shapely.geometry import box

from conftest import BUNDLED, georgia_bundle
from server import LiveServer
from spatial.errors import ValidationError
from spatial.io import read_boundaries

KEY = "attack-key"
GEORGIA_GPKG = BUNDLED / "boundaries" / "georgia_counties.gpkg"
GEORGIA_CSV = BUNDLED / "census" / "georgia_counties_1990.csv"
GDAL_INTERNALS = ("vsimem", "pyogrio", "<DRIVER>", "prefixing", "GDAL", "OGR", "config")


# -- builders ----------------------------------------------------------------------------------------------------
def vrt(src: str, layer: str | None = None, wkt: str | None = None) -> bytes:
    """An OGR VRT: XML naming another data source, which GDAL opens when it sniffs the driver."""
    src_layer = f"<SrcLayer>{layer}</SrcLayer>" if layer else ""
    geom = f'<GeometryField encoding="WKT" field="{wkt}"/><LayerSRS>EPSG:32616</LayerSRS>' if wkt else ""
    return (
        f'<OGRVRTDataSource><OGRVRTLayer name="x"><SrcDataSource>{src}</SrcDataSource>{src_layer}{geom}'
        f"</OGRVRTLayer></OGRVRTDataSource>"
    ).encode()


def geojson(rings, crs: str | None = None, props=None) -> bytes:
    feats = [
        {
            "type": "Feature",
            "properties": {"code": f"a{i}", "pop": 100, "mig": 10, **(props or {})},
            "geometry": {"type": "Polygon", "coordinates": [ring]},
        }
        for i, ring in enumerate(rings)
    ]
    doc = {"type": "FeatureCollection", "features": feats}
    if crs:
        doc["crs"] = {"type": "name", "properties": {"name": crs}}
    return json.dumps(doc).encode()


def square(x, y, size):
    return [[x, y], [x + size, y], [x + size, y + size], [x, y + size], [x, y]]


def wkb_polygon(n: int, x: float = 500000.0, y: float = 4600000.0) -> bytes:
    """One ring of ``n`` identical vertices: compresses to almost nothing."""
    ring = np.empty((n, 2))
    ring[:] = (x, y)
    return struct.pack("<BIII", 1, 3, 1, n) + ring.tobytes()


GEO_META = {
    "version": "1.0.0",
    "primary_column": "geometry",
    "columns": {"geometry": {"encoding": "WKB", "geometry_types": ["Polygon"]}},
}


def geoparquet(table: pa.Table, **kw) -> bytes:
    buf = io.BytesIO()
    pq.write_table(
        table.replace_schema_metadata({"geo": json.dumps(GEO_META)}),
        buf,
        compression="zstd",
        write_statistics=False,
        **kw,
    )  # min/max of a 32 MB value take a second to compute
    return buf.getvalue()


@functools.cache
def parquet_dictionary_bomb(rows=20_000, vertices=1000) -> bytes:
    """~1.5 KB: one dictionary entry (a 16 KB polygon) repeated by run-length-coded indices -> 320 MB of WKB."""
    zeros = pa.array(np.zeros(rows, np.int32))
    return geoparquet(
        pa.table(
            {
                "code": pa.DictionaryArray.from_arrays(zeros, pa.array(["a"])),
                "pop": pa.array(np.full(rows, 100.0)),
                "mig": pa.array(np.full(rows, 10.0)),
                "geometry": pa.DictionaryArray.from_arrays(zeros, pa.array([wkb_polygon(vertices)], pa.binary())),
            }
        )
    )


@functools.cache
def parquet_page_bomb(vertices=2_000_000) -> bytes:
    """A single zstd page that decompresses to 32 MB (honest metadata): the page sizes are what counts."""
    return geoparquet(
        pa.table(
            {"code": ["a"], "pop": [100.0], "mig": [10.0], "geometry": pa.array([wkb_polygon(vertices)], pa.binary())}
        ),
        use_dictionary=False,
    )


@functools.cache
def zip_bomb(mb=100) -> bytes:
    """A ~0.5 MB zip holding a 100 MB GeoJSON (mostly blanks)."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as z, z.open("a.geojson", "w") as f:
        f.write(b'{"type":"FeatureCollection","features":[')
        chunk = b" " * (1 << 20)
        for _ in range(mb):
            f.write(chunk)
        f.write(b"]}")
    return buf.getvalue()


def zipped_shapefile(tmp_path: Path, compression=zipfile.ZIP_DEFLATED) -> bytes:
    g = gpd.GeoDataFrame(
        {"code": ["a0", "a1"], "pop": [100, 120], "mig": [10, 30]},
        geometry=[box(0, 0, 1000, 1000), box(1000, 0, 2000, 1000)],
        crs=32616,
    )
    g.to_file(tmp_path / "areas.shp")
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression) as z:
        for ext in (".shp", ".shx", ".dbf", ".prj"):
            z.write(tmp_path / f"areas{ext}", f"areas{ext}")
    return buf.getvalue()


def gpkg_with_view(tmp_path: Path) -> bytes:
    """A GeoPackage whose only layer is an SQL view that burns CPU on every read."""
    path = tmp_path / "view.gpkg"
    g = gpd.GeoDataFrame(
        {"code": [f"a{i}" for i in range(5)], "pop": [100] * 5, "mig": [10] * 5},
        geometry=[box(i * 1000, 0, i * 1000 + 1000, 1000) for i in range(5)],
        crs=32616,
    )
    g.to_file(path, layer="areas", driver="GPKG")
    con = sqlite3.connect(path)
    con.executescript("""
        CREATE VIEW slow AS SELECT a.* FROM areas a, (WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c
            WHERE x < 3000000) SELECT count(*) AS n FROM c) b WHERE b.n > 0;
        UPDATE gpkg_contents SET table_name = 'slow', identifier = 'slow' WHERE table_name = 'areas';
        UPDATE gpkg_geometry_columns SET table_name = 'slow' WHERE table_name = 'areas';
        DELETE FROM gpkg_ogr_contents;
    """)
    con.commit()
    con.close()
    return path.read_bytes()


# -- the app, in-process -----------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def app_client(tmp_path_factory):
    import app.main
    from app.settings import Settings

    data_dir = tmp_path_factory.mktemp("attacks")
    # Only the routers uploads and listings use: the map and statistics routers take ~10 s to import.
    settings = Settings(
        data_dir=data_dir,
        bundled_dir=georgia_bundle(tmp_path_factory.mktemp("bundled")),  # Georgia only, not every sample
        api_key=KEY,
        max_upload_mb=8,
        max_uncompressed_mb=50,
        max_vertices=200_000,
        cors_origins=[],
        statistics=False,
        maps=False,
    )
    application = app.main.create_app(settings)
    with TestClient(application, raise_server_exceptions=False) as client:
        client.data_dir = data_dir
        yield client


def upload(client, name, data, **form):
    form = {"groups": "mig", "total": "pop", "key": "code", **form}
    return client.post(
        "/v1/datasets",
        files={"boundaries": (name, data, "application/octet-stream")},
        data=form,
        headers={"X-API-Key": KEY},
    )


def state(client) -> tuple[set, set]:
    """The registry's ids and the dataset files on disk."""
    ids = {d["id"] for d in client.get("/v1/datasets").json()["datasets"]}
    return ids, {p.name for p in (client.data_dir / "datasets").iterdir()}


def assert_refused(r, *words):
    assert 400 <= r.status_code < 500, (r.status_code, r.text[:500])
    detail = r.json()["detail"]
    for w in words:
        assert w.lower() in detail.lower(), detail
    return detail


# -- item 1: uploads cannot read server files --------------------------------------------------------------------
@pytest.fixture(scope="module")
def secret_csv(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("server") / "secret.csv"
    path.write_text('code,pop,mig,WKT\nTOPSECRET-7731,100,10,"POLYGON((0 0,1000 0,1000 1000,0 1000,0 0))"\n')
    return path


@pytest.mark.parametrize("name", ["x.geojson", "x.json", "x.gpkg", "x.fgb"])
def test_vrt_cannot_read_server_files(app_client, secret_csv, name):
    before = state(app_client)
    sources = [vrt(f"CSV:{secret_csv}", "secret", wkt="WKT")]
    if Path("/etc/passwd").exists():
        sources.append(vrt("CSV:/etc/passwd", "passwd"))
    for body in sources:
        r = upload(app_client, name, body)
        assert_refused(r)
        assert "TOPSECRET" not in r.text and "root:" not in r.text
        r = app_client.post(
            "/v1/datasets/georgia-1990/informal",
            headers={"X-API-Key": KEY},
            files={"settlements": (name, body, "application/octet-stream")},
        )
        assert_refused(r)
        assert "TOPSECRET" not in r.text and "root:" not in r.text
    assert state(app_client) == before


def test_vrt_pointing_at_a_data_file_on_disk_is_not_registered(app_client):
    before = state(app_client)
    r = app_client.post(
        "/v1/datasets",
        headers={"X-API-Key": KEY},
        files={
            "boundaries": ("x.geojson", vrt(str(GEORGIA_GPKG), "counties"), "application/json"),
            "counts": ("c.csv", GEORGIA_CSV.read_bytes(), "text/csv"),
        },
        data={"groups": "black", "total": "total_population", "key": "area_key", "id": "stolen"},
    )
    detail = assert_refused(r, "xml")
    assert "not geojson" in detail.lower()
    assert state(app_client) == before and app_client.get("/v1/datasets/stolen").status_code == 404


def test_library_reader_refuses_vrt_whatever_the_name(secret_csv):
    for name in ("x.geojson", "x.gpkg", "x.fgb", "x.parquet", "x.zip"):
        with pytest.raises(ValidationError) as err:
            read_boundaries(vrt(f"CSV:{secret_csv}", "secret"), name)
        assert "TOPSECRET" not in str(err.value)


def test_gdal_keeps_only_the_drivers_segmap_reads():
    import pyogrio

    assert set(pyogrio.list_drivers()) <= {"GeoJSON", "GPKG", "ESRI Shapefile", "FlatGeobuf"}


# -- item 1 (GeoPackage): tables only ----------------------------------------------------------------------------
def test_gpkg_view_layer_is_refused_without_running_it(app_client, tmp_path):
    before = state(app_client)
    r = upload(app_client, "areas.gpkg", gpkg_with_view(tmp_path))
    assert_refused(r, "view", "slow")
    assert state(app_client) == before


def test_gpkg_computed_column_is_refused(tmp_path):
    path = tmp_path / "gen.gpkg"
    gpd.GeoDataFrame({"code": ["a"], "pop": [1]}, geometry=[box(0, 0, 1, 1)], crs=32616).to_file(path, layer="t")
    con = sqlite3.connect(path)
    con.execute("ALTER TABLE t ADD COLUMN heavy TEXT AS (printf('%.*c', 100000000, 'x'))")
    con.commit()
    con.close()
    with pytest.raises(ValidationError, match="computed"):
        read_boundaries(path.read_bytes(), "gen.gpkg")


# -- item 4: limits whatever the name, before decoding -----------------------------------------------------------
def test_zip_named_geojson_is_refused_before_unpacking(app_client):
    before = state(app_client)
    bomb = zip_bomb()
    assert len(bomb) < 2 << 20
    detail = assert_refused(upload(app_client, "areas.geojson", bomb), "zip")
    assert "available columns" not in detail
    assert state(app_client) == before


def test_zipped_shapefile_named_geojson_says_what_is_wrong(app_client, tmp_path):
    detail = assert_refused(upload(app_client, "areas.geojson", zipped_shapefile(tmp_path)), "zip", ".zip")
    assert "available columns" not in detail


def test_zip_members_must_be_deflated_or_stored(tmp_path):
    # bzip2 and lzma members can expand a few KB into gigabytes in one step, before any size check bites.
    with pytest.raises(ValidationError, match="(?i)bzip2"):
        read_boundaries(zipped_shapefile(tmp_path, zipfile.ZIP_BZIP2), "areas.zip")
    assert len(read_boundaries(zipped_shapefile(tmp_path), "areas.zip")) == 2


def test_zip_with_thousands_of_members_is_refused(tmp_path):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        for i in range(1500):
            z.writestr(f"f{i}.txt", b"")
    with pytest.raises(ValidationError, match="files"):
        read_boundaries(buf.getvalue(), "areas.zip")


def test_parquet_dictionary_bomb_is_refused_before_decoding(app_client):
    bomb = parquet_dictionary_bomb()
    assert len(bomb) < 4096
    before = state(app_client)
    r = upload(app_client, "areas.parquet", bomb)
    assert_refused(r, "MB", "SEGMAP_MAX_UNCOMPRESSED_MB")
    assert r.json()["problems"][0]["code"] == "too_large"
    assert state(app_client) == before


def test_parquet_page_bomb_is_refused_from_page_headers(monkeypatch):
    bomb = parquet_page_bomb()
    assert len(bomb) < 16384
    monkeypatch.setattr(gpd, "read_parquet", _never)
    with pytest.raises(ValidationError) as err:
        read_boundaries(bomb, "a.parquet", max_uncompressed_bytes=16 << 20)
    assert err.value.code == "too_large"


def _never(*a, **k):
    raise AssertionError("decoded although the limits were already exceeded")


def test_vertex_cap_is_checked_before_decoding_geojson(monkeypatch):
    import pyogrio

    ring = [[float(i % 100), float(i // 100)] for i in range(2000)] + [[0.0, 0.0]]
    data = geojson([ring])
    monkeypatch.setattr(pyogrio, "read_dataframe", _never)
    with pytest.raises(ValidationError) as err:
        read_boundaries(data, "a.geojson", max_vertices=1000)
    assert err.value.code == "too_complex" and "1,000" in str(err.value)


def test_vertex_cap_is_checked_before_decoding_geoparquet(monkeypatch):
    bomb = parquet_dictionary_bomb(rows=6000, vertices=1000)  # 6M vertices in 96 MB of WKB
    monkeypatch.setattr(gpd, "read_parquet", _never)
    with pytest.raises(ValidationError) as err:
        read_boundaries(bomb, "a.parquet", max_vertices=5_000_000, max_uncompressed_bytes=1 << 30)
    assert err.value.code == "too_complex" and "6,000,000" in str(err.value)


def test_counting_cannot_be_made_to_loop(monkeypatch):
    # Two million empty rings: no vertex to count, but a ring-by-ring walk (or GEOS) would take its time.
    wkb = struct.pack("<BII", 1, 3, 2_000_000) + bytes(4 * 2_000_000)
    data = geoparquet(
        pa.table({"code": ["a"], "pop": [100.0], "mig": [10.0], "geometry": pa.array([wkb])}), use_dictionary=False
    )
    monkeypatch.setattr(gpd, "read_parquet", _never)
    with pytest.raises(ValidationError) as err:
        read_boundaries(data, "a.parquet", max_vertices=100_000, max_uncompressed_bytes=1 << 30)
    assert err.value.code == "too_complex" and "rings" in str(err.value)


def test_vertex_cap_holds_for_every_format(tmp_path):
    g = gpd.GeoDataFrame({"code": ["a"], "pop": [1]}, geometry=[box(0, 0, 1, 1).segmentize(0.001)], crs=32616)
    g.to_file(tmp_path / "a.fgb", driver="FlatGeobuf")
    with pytest.raises(ValidationError, match="vertices"):
        read_boundaries((tmp_path / "a.fgb").read_bytes(), "a.fgb", max_vertices=1000)


# -- item 6: coordinates that fit the CRS; a refused upload leaves no trace --------------------------------------
def test_huge_coordinates_are_refused_and_never_stored(app_client):
    before = state(app_client)
    r = upload(app_client, "big.geojson", geojson([square(1e15, 1e15, 1000)], "urn:ogc:def:crs:EPSG::32616"))
    assert_refused(r, "32616")
    assert state(app_client) == before
    for path in ("/v1/datasets", "/ogc/collections", "/v1/datasets/georgia-1990"):
        assert app_client.get(path).status_code == 200, path


@pytest.mark.parametrize("how", ["geojson", "parquet"])
def test_nan_coordinates_are_refused(app_client, how):
    before = state(app_client)
    if how == "geojson":
        data = geojson([square(0, 0, 1)]).replace(b"[0, 0]", b"[NaN, 0]", 1)
    else:
        wkb = struct.pack("<BIII", 1, 3, 1, 5) + np.array(square(0, 0, 1), float).tobytes()
        wkb = wkb[:13] + struct.pack("<d", math.nan) + wkb[21:]
        data = geoparquet(pa.table({"code": ["a"], "pop": [100.0], "mig": [10.0], "geometry": pa.array([wkb])}))
    r = upload(app_client, f"nan.{how}", data)
    assert 400 <= r.status_code < 500, r.text
    assert "nan" in r.json()["detail"].lower() or "not a number" in r.json()["detail"].lower()
    assert state(app_client) == before


def test_degrees_labelled_as_metres_are_refused(app_client):
    chicago = [square(-87.7 + 0.01 * i, 41.8, 0.01) for i in range(3)]
    r = upload(app_client, "deg.geojson", geojson(chicago, "urn:ogc:def:crs:EPSG::32616"))
    assert_refused(r, "degrees", "EPSG:4326")


def test_metres_labelled_as_degrees_are_refused(app_client):
    utm = [square(440000 + 1000 * i, 4630000, 1000) for i in range(3)]
    r = upload(app_client, "m.geojson", geojson(utm))  # GeoJSON without a crs member is EPSG:4326
    assert_refused(r, "metres")


def test_listing_survives_a_stored_row_with_infinite_bounds(app_client):
    ok = upload(
        app_client, "fine.geojson", geojson([square(-87.7 + 0.01 * i, 41.8, 0.01) for i in range(3)]), id="fine"
    )
    assert ok.status_code == 201, ok.text
    con = sqlite3.connect(app_client.data_dir / "catalog.sqlite")
    con.execute("UPDATE datasets SET bounds = '[-Infinity, NaN, Infinity, 1e999]' WHERE id = 'fine'")
    con.commit()
    con.close()
    try:
        for path in ("/v1/datasets", "/ogc/collections", "/v1/datasets/fine"):
            r = app_client.get(path)
            assert r.status_code == 200, (path, r.text[:300])
        assert app_client.get("/v1/datasets/fine").json()["bounds"] is None
    finally:
        assert app_client.delete("/v1/datasets/fine", headers={"X-API-Key": KEY}).status_code == 204


# -- messages ------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "name,body",
    [
        ("x.geojson", b"hello world"),
        ("x.gpkg", b"hello"),
        ("x.geojson", b"{ this is not json"),
        ("x.fgb", b"fgb\x03" + bytes(64)),
    ],
)
def test_unreadable_files_get_a_clean_message(app_client, name, body):
    detail = assert_refused(upload(app_client, name, body), name)
    for word in GDAL_INTERNALS + ("out of bounds",):
        assert word not in detail, detail


# -- a real server: no outbound request, memory given back -------------------------------------------------------
class _Probe(http.server.BaseHTTPRequestHandler):
    hits: list = []

    def _hit(self):
        _Probe.hits.append(f"{self.command} {self.path}")
        self.send_response(404)
        self.end_headers()

    do_GET = do_HEAD = do_POST = _hit

    def log_message(self, *args):
        pass


LIVE_ENV = {"SEGMAP_API_KEY": KEY, "SEGMAP_MAX_UPLOAD_MB": "8", "SEGMAP_MAX_UNCOMPRESSED_MB": "20"}


@pytest.fixture(scope="module", autouse=True)
def _boot_live(request):
    """Start uvicorn with the module when a selected test needs it: it boots while the in-process app imports."""
    if not any("live" in item.fixturenames for item in request.session.items if item.module is request.module):
        yield None
        return
    server = LiveServer(env=LIVE_ENV, georgia_only=True)
    failure = []
    boot = threading.Thread(target=lambda: _start(server, failure), daemon=True)
    boot.start()
    yield server, boot, failure
    boot.join()
    server.__exit__(None, None, None)


def _start(server, failure):
    try:
        server.start()
    except Exception as exc:  # re-raised by the fixture that needs the server
        failure.append(exc)


@pytest.fixture(scope="module")
def live(_boot_live):
    server, boot, failure = _boot_live
    boot.join()
    if failure:
        raise failure[0]
    with httpx.Client(base_url=server.url, timeout=120, headers={"X-API-Key": KEY}) as client:
        client.pid = server.proc.pid
        yield client


def crs_link(url: str, spelling: str = "plain") -> bytes:
    """GeoJSON whose 'crs' links to a URL: GDAL fetches it (importFromUrl), whatever its network options."""
    doc = json.loads(geojson([square(440000, 4630000, 1000)]))
    link = {"type": "link", "properties": {"href": url, "type": "proj4"}}
    if spelling == "in a geometry":
        doc["features"][0]["geometry"]["crs"] = link
    else:
        doc["crs"] = link
    text = json.dumps(doc)
    if spelling == "escaped":  # GDAL compares keys and types case-insensitively, after JSON unescaping
        text = text.replace('"crs"', '"\\u0063Rs"').replace('"link"', '"LINK"')
    if spelling == "cut by a NUL":  # GDAL's C strings end at the NUL: this is "crs" to it
        text = text.replace('"crs"', '"crs\\u0000x"')
    return text.encode()


def test_uploads_make_no_outbound_request(live):
    probe = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Probe)
    threading.Thread(target=probe.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{probe.server_address[1]}"
    bodies = [
        vrt(src)
        for src in (
            f"/vsicurl/{base}/probe.csv",
            f"{base}/direct.geojson",
            f"/vsizip//vsicurl/{base}/p.zip",
            f"/vsicurl?url={base.replace(':', '%3A').replace('/', '%2F')}%2Fq.csv",
            f"WFS:{base}/wfs",
        )
    ]
    bodies += [crs_link(f"{base}/{how}.proj4", how) for how in ("plain", "escaped", "in a geometry")]
    try:
        for body in bodies:
            r = upload(live, "x.geojson", body)
            assert 400 <= r.status_code < 500, r.text
            r = live.post("/v1/datasets/georgia-1990/informal", files={"settlements": ("s.geojson", body)})
            assert 400 <= r.status_code < 500, r.text
    finally:
        probe.shutdown()
        probe.server_close()
    assert _Probe.hits == []


@pytest.mark.parametrize("spelling", ["plain", "escaped", "cut by a NUL", "in a geometry"])
def test_crs_link_is_refused_however_it_is_spelt(spelling):
    with pytest.raises(ValidationError, match="links to a URL"):
        read_boundaries(crs_link("http://127.0.0.1:9/never", spelling), "x.geojson")
    named = geojson([square(440000, 4630000, 1000)], "urn:ogc:def:crs:EPSG::32616")  # a named CRS is still read
    assert read_boundaries(named, "x.geojson").crs.to_epsg() == 32616


def _memory_mb(pid: int) -> dict:
    fields = dict(line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines() if ":" in line)
    return {k: int(fields[k].split()[0]) / 1024 for k in ("VmRSS", "VmHWM")}


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="needs /proc to read the server's memory")
def test_refused_bombs_take_no_memory(live, capsys):
    bombs = [("a.geojson", zip_bomb()), ("b.parquet", parquet_dictionary_bomb()), ("c.parquet", parquet_page_bomb())]
    upload(live, "warm.geojson", b"hello")  # the refusal path is loaded before measuring
    before = _memory_mb(live.pid)
    statuses = []

    def send(name, data):
        statuses.append(upload(live, name, data).status_code)

    threads = [threading.Thread(target=send, args=b) for b in bombs]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    after = _memory_mb(live.pid)
    with capsys.disabled():
        print(
            f"\nserver memory, three refused bombs at once: RSS {before['VmRSS']:.0f} -> {after['VmRSS']:.0f} MB, "
            f"peak {before['VmHWM']:.0f} -> {after['VmHWM']:.0f} MB"
        )
    assert sorted(statuses) == [422, 422, 422]
    assert after["VmHWM"] - before["VmHWM"] < 150  # nothing was decoded
    assert after["VmRSS"] - before["VmRSS"] < 100  # and what was read is given back
