"""The HTTP service in process (ASGI, no socket): registry, indices, errors as problem+json, caching; a burst of
concurrent requests over a real socket."""

from __future__ import annotations

import io
import json
import zipfile

import geopandas as gpd
import httpx
import pytest

from conftest import georgia_bundle, in_process, shared_path

KEY = "s3cret"


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    with in_process(
        tmp_path_factory.mktemp("service"),
        bundled_dir=georgia_bundle(tmp_path_factory.mktemp("bundled")),
        api_key=KEY,
        max_upload_mb=8,
        max_uncompressed_mb=50,
        cors_origins=["https://city.example"],
        max_download_areas=100,
    ) as client:
        yield client


def ids(client):
    return sorted(d["id"] for d in client.get("/v1/datasets").json()["datasets"])


def upload(client, files, api_key=KEY, **form):
    headers = {"X-API-Key": api_key} if api_key else {}
    return client.post("/v1/datasets", files=files, data=form, headers=headers)


def assert_problem(r, status, text):
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/problem+json")
    body = r.json()
    assert body["status"] == status and text.lower() in body["detail"].lower(), body


def test_bundled_dataset_is_registered_at_first_start(server):
    info = server.get("/v1/datasets/georgia-1990").json()
    assert info["n_areas"] == 159 and info["crs"] == "EPSG:26916"
    assert info["total"] == "total_population" and "foreign_born" in info["groups"]
    assert server.get("/health").json()["status"] == "ok"


def test_indices_match_the_library_and_revalidate_with_304(server, georgia_paths):
    from spatial.indices.compute import compute_indices
    from spatial.io import load_dataset

    params = {"group": "black", "index": ["dissimilarity", "isolation"], "permutations": 49, "seed": 3}
    r = server.get("/v1/datasets/georgia-1990/indices", params=params)
    assert r.status_code == 200 and r.headers["cache-control"].startswith("public")
    body = r.json()
    from spatial.disclosure import protect

    ds = load_dataset(
        georgia_paths["boundaries"],
        counts=georgia_paths["counts"],
        key="area_key",
        groups=["foreign_born", "native_born", "black", "not_black", "rural"],
        total="total_population",
    )
    # The public gets indices of the protected table (areas with small counts withheld), the CLI's fields.
    public = protect(ds, 10).dataset
    assert public.n < ds.n
    local = compute_indices(public, group="black", indices=["dissimilarity", "isolation"], permutations=49, seed=3)
    for name, res in local.items():
        expected = json.loads(json.dumps(res.to_dict()))
        assert body[name].pop("disclosure")["published_areas"] == public.n
        assert body[name] == expected, name
    again = server.get("/v1/datasets/georgia-1990/indices", params=params, headers={"If-None-Match": r.headers["etag"]})
    assert again.status_code == 304 and again.content == b""


def test_chicago_flow_upload_index_compare_delete(server):
    path = shared_path("chicago", "Chicago_2020.geojson")
    before = ids(server)
    r = upload(
        server,
        {"boundaries": ("Chicago_2020.geojson", path.read_bytes(), "application/geo+json")},
        groups="FOR_BORN,HISP",
        total="TOT_POP",
        key="GEOID",
        title="Chicago 2020",
        year="2020",
    )
    assert r.status_code == 201, r.text
    info = r.json()
    assert info["id"] == "chicago-2020" and info["n_areas"] == 77 and r.headers["location"].endswith("/chicago-2020")
    res = server.get(
        "/v1/datasets/chicago-2020/indices",
        params={"group": "FOR_BORN", "index": "dissimilarity", "permutations": 19, "compare_to": "georgia-1990"},
    )
    assert res.status_code == 422 and "FOR_BORN" in res.text  # Georgia has no such column: said, not a 500
    res = server.get(
        "/v1/datasets/chicago-2020/indices",
        params={"group": "FOR_BORN", "compare_group": "HISP", "index": "dissimilarity", "permutations": 19},
    )
    cmp = res.json()["dissimilarity"]["comparison"]
    assert cmp["against"].endswith("HISP") and 0 < cmp["p_value"] <= 1
    assert server.delete("/v1/datasets/chicago-2020").status_code == 401  # writes need the key
    assert server.delete("/v1/datasets/chicago-2020", headers={"X-API-Key": KEY}).status_code == 204
    assert ids(server) == before
    assert_problem(server.get("/v1/datasets/chicago-2020"), 404, "no dataset")


def square_geojson(n=3, **cols):
    feats = []
    for i in range(n):
        props = {"code": f"a{i}", **{k: v[i] for k, v in cols.items()}}
        feats.append(
            {
                "type": "Feature",
                "properties": props,
                "geometry": {"type": "Polygon", "coordinates": [[[i, 0], [i + 1, 0], [i + 1, 1], [i, 1], [i, 0]]]},
            }
        )
    return json.dumps({"type": "FeatureCollection", "features": feats}).encode()


@pytest.mark.parametrize(
    "files, form, status, text",
    [
        (
            {"boundaries": ("x.geojson", square_geojson(pop=[10, 20, 30], mig=[5, -1, 3]), "application/json")},
            {"groups": "mig", "total": "pop", "key": "code"},
            422,
            "negative",
        ),
        (
            {"boundaries": ("x.geojson", square_geojson(pop=[10, 20, 30], mig=[5, 25, 3]), "application/json")},
            {"groups": "mig", "total": "pop", "key": "code"},
            422,
            "larger than",
        ),
        (
            {"boundaries": ("x.geojson", square_geojson(pop=[10, 20, 30], mig=["a", "2", "3"]), "application/json")},
            {"groups": "mig", "total": "pop", "key": "code"},
            422,
            "numeric",
        ),
        (
            {
                "boundaries": ("x.geojson", square_geojson(pop=[10, 20, 30], mig=[1, 2, 3]), "application/json"),
                "counts": ("c.csv", b"code,extra\nzz,1\n", "text/csv"),
            },
            {"groups": "mig", "total": "pop", "key": "code"},
            422,
            "no polygon",
        ),
        ({"boundaries": ("x.txt", b"hello", "text/plain")}, {"groups": "a"}, 422, "unsupported"),
        (
            {"boundaries": ("../../etc/passwd.geojson", b"{", "application/json")},
            {"groups": "a"},
            422,
            "could not read",
        ),
        (
            {
                "boundaries": (
                    "/vsicurl/http://example.com/x.geojson",
                    b"/vsicurl/http://example.com/x.geojson",
                    "text/plain",
                )
            },
            {"groups": "a"},
            422,
            "could not read",
        ),
        (
            {"boundaries": ("x.geojson", square_geojson(pop=[1, 2, 3]), "application/json")},
            {"groups": "pop", "id": "../evil"},
            422,
            "must be",
        ),
        (
            {"boundaries": ("x.zip", b"PK\x03\x04 not really", "application/zip")},
            {"groups": "a"},
            422,
            "could not read",
        ),
    ],
)
def test_bad_uploads_are_4xx_problems_and_leave_the_registry_unchanged(server, files, form, status, text):
    before = ids(server)
    assert_problem(upload(server, files, **form), status, text)
    assert ids(server) == before


def test_upload_limits(server, tmp_path):
    before = ids(server)
    big = b"x" * (9 * 2**20)
    assert_problem(
        upload(server, {"boundaries": ("big.geojson", big, "application/json")}, groups="a"), 413, "larger than"
    )
    # a zip bomb: small on the wire, huge when expanded
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for ext in (".shp", ".shx", ".dbf"):
            zf.writestr("layer" + ext, b"\0" * (200 * 2**20 if ext == ".shp" else 10))
    assert len(buf.getvalue()) < 2**20
    assert_problem(
        upload(server, {"boundaries": ("bomb.zip", buf.getvalue(), "application/zip")}, groups="a"), 422, "expands"
    )
    no_key = upload(
        server,
        {"boundaries": ("x.geojson", square_geojson(pop=[1, 2, 3]), "application/json")},
        api_key=None,
        groups="pop",
    )
    assert_problem(no_key, 401, "X-API-Key")
    assert ids(server) == before


def test_parameter_errors_are_problems(server):
    assert_problem(server.get("/v1/datasets/georgia-1990/indices", params={"index": "nope"}), 422, "unknown index")
    assert_problem(server.get("/v1/datasets/georgia-1990/indices", params={"permutations": 10**6}), 422, "limited")
    assert_problem(server.get("/v1/datasets/georgia-1990/indices", params={"permutations": -1}), 422, "permutations")
    assert_problem(
        server.get("/v1/datasets/georgia-1990/indices", params={"null": "magic", "permutations": 5}), 422, "null"
    )
    assert_problem(server.get("/v1/nowhere"), 404, "no route")


def test_cors_and_security_headers(server):
    r = server.get("/v1/datasets", headers={"Origin": "https://city.example"})
    assert r.headers["access-control-allow-origin"] == "https://city.example"
    r = server.get("/v1/datasets", headers={"Origin": "https://evil.example"})
    assert "access-control-allow-origin" not in r.headers
    assert r.headers["x-content-type-options"] == "nosniff"
    docs = server.get("/docs")
    assert docs.status_code == 200 and "cdn" not in docs.text.lower() and "content-security-policy" in docs.headers
    assert server.get("/static/swagger/swagger-ui-bundle.js").status_code == 200


def test_local_geojson_and_csv_with_disclosure(server):
    r = server.get("/v1/datasets/georgia-1990/local", params={"group": "foreign_born", "permutations": 199, "seed": 2})
    assert r.status_code == 200 and r.headers["content-type"] == "application/geo+json"
    body = r.json()
    assert len(body["features"]) == 159 and body["segmap"]["correction"] == "fdr"
    props = [f["properties"] for f in body["features"]]
    small = [p for p in props if p["foreign_born"] is None]
    report = body["segmap"]["disclosure"]
    assert report["withheld_areas"] == len(small) > 0  # counties with 1–9 foreign-born (or another small count)
    assert all(p["share"] is None and p["value"] is None and p["label"] == "suppressed" for p in small)
    raw = server.get(
        "/v1/datasets/georgia-1990/local",
        params={"group": "foreign_born", "permutations": 199, "seed": 2},
        headers={"X-API-Key": KEY},
    ).json()
    assert all(f["properties"]["foreign_born"] is not None for f in raw["features"])  # the owner sees raw counts
    assert "disclosure" not in raw["segmap"]
    csv_text = server.get(
        "/v1/datasets/georgia-1990/local",
        params={"group": "black", "statistic": "gi_star", "format": "csv", "permutations": 99},
    ).text
    assert csv_text.splitlines()[0].startswith("id,total_population,black,value,z,p_value,q_value,label")
    again = server.get(
        "/v1/datasets/georgia-1990/local",
        params={"group": "foreign_born", "permutations": 199, "seed": 2},
        headers={"If-None-Match": r.headers["etag"]},
    )
    assert again.status_code == 304


def test_local_parameter_errors(server):
    for params, text in (
        ({"statistic": "nope"}, "unknown local statistic"),
        ({"weights": "nope"}, "unknown weights"),
        ({"alpha": 3}, "alpha"),
        ({"format": "xml"}, "format"),
        ({"group": "zzz"}, "zzz"),
    ):
        assert_problem(server.get("/v1/datasets/georgia-1990/local", params=params), 422, text)


def test_informal_upload_creates_a_derived_dataset(server):
    import geopandas as gpd
    from shapely.geometry import box

    # Two settlements in central Atlanta (Fulton / DeKalb), sent as GeoJSON in WGS84.
    sett = gpd.GeoDataFrame(
        {"people": [4000, 2500]},
        geometry=[box(-84.42, 33.72, -84.36, 33.78), box(-84.30, 33.74, -84.26, 33.78)],
        crs=4326,
    )
    r = server.post(
        "/v1/datasets/georgia-1990/informal",
        headers={"X-API-Key": KEY},
        files={"settlements": ("../../informal.geojson", sett.to_json().encode(), "application/geo+json")},
        data={"population": "people"},
    )
    assert r.status_code == 201, r.text
    body = r.json()
    assert (
        body["id"] == "georgia-1990-informal"
        and body["derived_from"] == "georgia-1990"
        and "informal" in body["groups"]
    )
    assert body["summary"]["population_allocated"] == 6500
    idx = server.get(
        "/v1/datasets/georgia-1990-informal/indices", params={"group": "informal", "index": "dissimilarity"}
    )
    assert (
        idx.status_code == 200 and 0.7 < idx.json()["dissimilarity"]["value"] <= 1
    )  # ~1 − (pop of the 2–3 counties)/(state)
    dup = server.post(
        "/v1/datasets/georgia-1990/informal",
        headers={"X-API-Key": KEY},
        files={"settlements": ("s.geojson", sett.to_json().encode(), "application/geo+json")},
        data={"population": "people"},
    )
    assert_problem(dup, 422, "exists")
    assert server.delete("/v1/datasets/georgia-1990-informal", headers={"X-API-Key": KEY}).status_code == 204


def test_lq_does_not_leak_a_suppressed_count(server):
    body = server.get(
        "/v1/datasets/georgia-1990/local", params={"group": "foreign_born", "statistic": "location_quotient"}
    ).json()
    hidden = [f["properties"] for f in body["features"] if f["properties"]["foreign_born"] is None]
    assert hidden and all(p["value"] is None and p["share"] is None for p in hidden)
    lisa = server.get("/v1/datasets/georgia-1990/local", params={"group": "foreign_born", "permutations": 9}).json()
    assert all(f["properties"]["z"] is None for f in lisa["features"] if f["properties"]["foreign_born"] is None)


def test_cached_tiles_follow_a_replaced_dataset(server, georgia_paths):
    import mapbox_vector_tile

    gdf = gpd.read_file(georgia_paths["boundaries"]).head(20)
    counts = gpd.pd.read_csv(georgia_paths["counts"], dtype={"area_key": str}).head(20)

    def put(scale):
        c = counts.copy()
        c["total_population"] = c["total_population"] * scale
        buf = io.BytesIO()
        gdf.to_file(buf, driver="GPKG")
        r = upload(
            server,
            {"boundaries": ("g.gpkg", buf.getvalue()), "counts": ("c.csv", c.to_csv(index=False).encode())},
            key="area_key",
            total="total_population",
            groups="foreign_born",
            id="tile-cache-check",
        )
        assert r.status_code == 201, r.text

    def totals():
        r = server.get("/v1/datasets/tile-cache-check/tiles/0/0/0.mvt")
        assert r.status_code == 200 and r.headers["x-content-type-options"] == "nosniff"
        props = [f["properties"] for f in mapbox_vector_tile.decode(r.content)["areas"]["features"]]
        return sorted(p["total_population"] for p in props if p.get("total_population") is not None)

    put(1)
    first = totals()
    assert totals() == first  # now served from memory
    etag = server.get("/v1/datasets/tile-cache-check/tiles/0/0/0.mvt").headers["etag"]
    assert (
        server.get("/v1/datasets/tile-cache-check/tiles/0/0/0.mvt", headers={"If-None-Match": etag}).status_code == 304
    )
    assert server.delete("/v1/datasets/tile-cache-check", headers={"X-API-Key": KEY}).status_code == 204
    assert server.get("/v1/datasets/tile-cache-check/tiles/0/0/0.mvt").status_code == 404
    put(2)
    assert totals() == sorted(2 * t for t in first)
    assert server.delete("/v1/datasets/tile-cache-check", headers={"X-API-Key": KEY}).status_code == 204


@pytest.mark.server
def test_a_burst_of_identical_map_requests_is_computed_once_and_revalidates(live_server):
    import concurrent.futures

    with httpx.Client(base_url=live_server, timeout=120) as server:  # concurrent clients on a real socket
        url = "/maps/georgia-1990"
        params = {"group": "black", "view": "lisa", "permutations": 299, "seed": 7}
        # More requests than the queue would take if each were its own job.
        with concurrent.futures.ThreadPoolExecutor(24) as pool:
            statuses = list(pool.map(lambda _: server.get(url, params=params).status_code, range(24)))
        assert statuses == [200] * 24
        first = server.get(url, params=params)
        assert first.status_code == 200 and first.headers["etag"]
        assert server.get(url, params=params, headers={"If-None-Match": first.headers["etag"]}).status_code == 304
        assert server.get(url, params=params).text == first.text


def test_an_offline_map_of_a_large_city_carries_tiles_not_geojson(server):
    r = server.get("/maps/georgia-1990/download")  # 159 areas, over this server's GeoJSON limit of 100
    assert r.status_code == 200 and "segmap-embedded" in r.text and '"coordinates"' not in r.text
    refused = server.get("/maps/georgia-1990/download", params={"tiles": "off"})  # GeoJSON asked for explicitly
    assert_problem(refused, 422, "too many to embed as GeoJSON")
    assert "PNG" in refused.json()["detail"]


def test_multiscalar_profile_over_http_matches_the_library(server, georgia_paths):
    from spatial.indices.spatial_indices import multiscalar_profile
    from spatial.io import load_dataset

    r = server.get(
        "/v1/datasets/georgia-1990/indices",
        params={"group": "foreign_born", "index": "dissimilarity", "multiscalar": "20000,50000"},
        headers={"X-API-Key": KEY},
    )  # the owner: indices of the true counts
    assert r.status_code == 200, r.text
    got = r.json()["dissimilarity"]["multiscalar"]
    ds = load_dataset(
        georgia_paths["boundaries"],
        counts=georgia_paths["counts"],
        key="area_key",
        groups=["foreign_born"],
        total="total_population",
    )
    expected = multiscalar_profile(ds, "dissimilarity", "foreign_born", distances=(20000, 50000))
    assert list(got) == ["0", "20000", "50000"]
    assert [got[k] for k in got] == pytest.approx(list(expected.values()), rel=1e-9)
    assert_problem(server.get("/v1/datasets/georgia-1990/indices", params={"multiscalar": "far"}), 422, "metres")
    assert_problem(server.get("/v1/datasets/georgia-1990/indices", params={"multiscalar": "-5"}), 422, "positive")


def test_disclosure_threshold_is_set_per_dataset(server, georgia_paths):
    import mapbox_vector_tile

    def files():
        return {
            "boundaries": ("g.gpkg", georgia_paths["boundaries"].read_bytes()),
            "counts": ("c.csv", georgia_paths["counts"].read_bytes()),
        }

    form = {"key": "area_key", "total": "total_population", "groups": "foreign_born"}
    # two years apart: the same areas and counts in one year are linked tables, and an unprotected copy of a
    # protected table is refused (tests/test_attacks_linked.py)
    for ident, threshold, year in (("strict", 500, "2001"), ("open", 0, "2002")):
        r = upload(server, files(), id=ident, disclosure_threshold=threshold, date=year, **form)
        assert r.status_code == 201 and r.json()["disclosure_threshold"] == threshold, r.text
    assert server.get("/v1/datasets/georgia-1990").json()["disclosure_threshold"] == 10  # the service default

    def hidden(ident):
        body = server.get(f"/v1/datasets/{ident}/local", params={"group": "foreign_born", "permutations": 99}).json()
        return sum(f["properties"]["foreign_born"] is None for f in body["features"])

    default, strict, open_ = hidden("georgia-1990"), hidden("strict"), hidden("open")
    assert open_ == 0 < default < strict
    tile = mapbox_vector_tile.decode(server.get("/v1/datasets/strict/tiles/5/8/12.mvt").content)["areas"]["features"]
    assert any("foreign_born" not in f["properties"] for f in tile)
    items = server.get("/ogc/collections/open/items", params={"limit": 200}).json()["features"]
    assert all(f["properties"]["foreign_born"] is not None for f in items)
    assert_problem(upload(server, files(), id="neg", disclosure_threshold=-1, **form), 422, "disclosure_threshold")
    for ident in ("strict", "open"):
        assert server.delete(f"/v1/datasets/{ident}", headers={"X-API-Key": KEY}).status_code == 204
