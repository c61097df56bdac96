"""OGC API – Features Part 3: queryables, CQL2 text and JSON filters, sortby and properties.

Expected counts are computed here from the bundled CSV, independently of the service: shares by hand and the
withheld areas by the suppression rule (a declared count or a group's complement from 1 to 9). The attack test
uploads two copies of Georgia that differ only in three hidden counts (3 and 8) and checks that no filter, sort
or page can tell them apart.
"""

from __future__ import annotations

import io
import json
import re
import shutil
import subprocess

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
from fastapi.testclient import TestClient

from app.main import create_app
from app.settings import Settings
from conftest import BUNDLED, georgia_bundle

KEY = "owner-key"
GROUPS = ["foreign_born", "native_born", "black", "not_black", "rural"]
HIDDEN = ["13021", "13051", "13067"]  # Bibb, Chatham, Cobb: many foreign-born people, hidden count 3 or 8
ITEMS = "/ogc/collections/{}/items"


@pytest.fixture(scope="module")
def counts() -> pd.DataFrame:
    return pd.read_csv(BUNDLED / "census" / "georgia_counties_1990.csv", dtype={"area_key": str}).set_index("area_key")


def _withheld(counts: pd.DataFrame) -> set[str]:
    """The suppression rule by hand: any declared count, or total − group, from 1 to 9."""
    cells = [counts["total_population"], *(counts[g] for g in GROUPS)]
    cells += [counts["total_population"] - counts[g] for g in GROUPS]
    small = np.column_stack([(c > 0) & (c < 10) for c in cells]).any(axis=1)
    return set(counts.index[small])


def _files(hidden_count: int):
    gdf = gpd.read_file(BUNDLED / "boundaries" / "georgia_counties.gpkg")
    counts = pd.read_csv(BUNDLED / "census" / "georgia_counties_1990.csv", dtype={"area_key": str})
    rows = counts["area_key"].isin(HIDDEN)
    counts.loc[rows, "foreign_born"] = hidden_count
    counts.loc[rows, "native_born"] = counts.loc[rows, "total_population"] - hidden_count
    buf = io.BytesIO()
    gdf.to_file(buf, driver="GPKG")
    return {
        "boundaries": ("georgia.gpkg", buf.getvalue()),
        "counts": ("counts.csv", counts.to_csv(index=False).encode()),
    }


@pytest.fixture(scope="module")
def client(tmp_path_factory):
    settings = Settings(
        data_dir=tmp_path_factory.mktemp("cql2"),
        bundled_dir=georgia_bundle(tmp_path_factory.mktemp("bundled")),  # Georgia only, not every sample
        api_key=KEY,
        disclosure_threshold=10,
    )
    with TestClient(create_app(settings)) as c:
        for ident, value in (("var3", 3), ("var8", 8)):
            data = {"id": ident, "key": "area_key", "total": "total_population", "groups": ",".join(GROUPS)}
            r = c.post("/v1/datasets", files=_files(value), data=data, headers={"X-API-Key": KEY})
            assert r.status_code == 201, r.text
        yield c


def _ids(c: TestClient, collection: str, **params) -> list[str]:
    r = c.get(ITEMS.format(collection), params={"limit": 1000, **params})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["numberMatched"] == len(body["features"])
    return [f["id"] for f in body["features"]]


def test_queryables_are_json_schema_of_the_public_properties(client):
    r = client.get("/ogc/collections/georgia-1990/queryables")
    assert r.status_code == 200 and r.headers["content-type"] == "application/schema+json"
    schema = r.json()
    props = schema["properties"]
    assert schema["type"] == "object" and schema["$id"].endswith("/ogc/collections/georgia-1990/queryables")
    assert props["black_share"]["type"] == "number" and props["id"]["type"] == "string"
    assert props["geometry"]["format"] == "geometry-any"
    assert set(props) == {"id", "total_population", *GROUPS, *(f"{g}_share" for g in GROUPS), "geometry"}
    local = client.get("/ogc/collections/georgia-1990~lisa~black/queryables").json()["properties"]
    assert local["label"]["type"] == "string" and local["p_value"]["type"] == "number"
    assert local["significant_uncorrected"]["type"] == "boolean"
    links = client.get("/ogc/collections/georgia-1990").json()["links"]
    assert any(l["rel"].endswith("queryables") and l["href"].endswith("/queryables") for l in links)
    conformance = client.get("/ogc/conformance").json()["conformsTo"]
    assert "http://www.opengis.net/spec/cql2/1.0/conf/cql2-text" in conformance
    assert client.get("/ogc/collections/nope/queryables").status_code == 404


def test_text_and_json_filters_match_a_hand_computation(client, counts):
    shown = counts.drop(index=list(_withheld(counts)))
    share = shown["black"] / shown["total_population"]
    expected = set(shown.index[(share > 0.5) & (shown["foreign_born"] < 100)])
    assert 0 < len(expected) < 20
    text = _ids(client, "georgia-1990", filter="black_share > 0.5 AND foreign_born < 100")
    tree = {
        "op": "and",
        "args": [
            {"op": ">", "args": [{"property": "black_share"}, 0.5]},
            {"op": "<", "args": [{"property": "foreign_born"}, 100]},
        ],
    }
    as_json = _ids(client, "georgia-1990", **{"filter": json.dumps(tree), "filter-lang": "cql2-json"})
    assert set(text) == set(as_json) == expected
    # IN, BETWEEN, LIKE, arithmetic, spatial
    assert _ids(client, "georgia-1990", filter="id IN ('13121', '13089', 'nope')") == ["13089", "13121"]
    low = set(shown.index[shown["foreign_born"].between(50, 60)])
    assert set(_ids(client, "georgia-1990", filter="foreign_born BETWEEN 50 AND 60")) == low
    assert set(_ids(client, "georgia-1990", filter="id LIKE '1312_'")) == {i for i in counts.index if i[:4] == "1312"}
    doubled = set(shown.index[shown["black"] * 2 > shown["total_population"]])
    assert set(_ids(client, "georgia-1990", filter="black * 2 > total_population")) == doubled
    assert _ids(client, "georgia-1990", filter="S_INTERSECTS(geometry, POINT(-84.39 33.75))") == ["13121"]
    box = _ids(client, "georgia-1990", filter="S_INTERSECTS(geometry, BBOX(-84.5, 33.6, -84.2, 33.9))")
    assert "13121" in box and box == _ids(client, "georgia-1990", bbox="-84.5,33.6,-84.2,33.9")
    assert set(_ids(client, "georgia-1990", filter="foreign_born IS NULL")) == _withheld(counts)


def test_the_issues_example_on_a_local_collection(client):
    everything = client.get(ITEMS.format("georgia-1990~lisa~black"), params={"limit": 1000}).json()["features"]
    expected = [
        f["id"]
        for f in everything
        if f["properties"]["label"] == "high_high" and (f["properties"]["black_share"] or 0) > 0.3
    ]
    assert expected
    got = _ids(client, "georgia-1990~lisa~black", filter="black_share > 0.3 AND label = 'high_high'")
    assert got == expected
    # GeoJSON is CRS84: the outlines of withheld areas too (they come from the protected table's own CRS)
    coords = np.array([c for f in everything for c in f["geometry"]["coordinates"][0][0]])
    assert (coords[:, 0] > -86).all() and (coords[:, 0] < -80).all() and (coords[:, 1] > 30).all()


def test_local_geojson_is_in_degrees(client):
    r = client.get("/v1/datasets/georgia-1990/local", params={"group": "black", "permutations": 99})
    coords = np.array([c for f in r.json()["features"] for c in f["geometry"]["coordinates"][0][0]])
    assert (np.abs(coords[:, 0]) <= 180).all() and (np.abs(coords[:, 1]) <= 90).all()


def test_sortby_properties_and_paging(client, counts):
    params = {"filter": "black_share > 0.3", "sortby": "-black_share,id", "properties": "id,black_share"}
    first = client.get(ITEMS.format("georgia-1990"), params={**params, "limit": 10}).json()
    shares = [f["properties"]["black_share"] for f in first["features"]]
    assert shares == sorted(shares, reverse=True) and all(
        set(f["properties"]) == {"id", "black_share"} for f in first["features"]
    )
    nxt = next(l["href"] for l in first["links"] if l["rel"] == "next")
    assert "filter=" in nxt and "sortby=" in nxt
    second = client.get(nxt.replace("http://testserver", "")).json()
    assert second["features"][0]["properties"]["black_share"] <= shares[-1]
    assert not {f["id"] for f in first["features"]} & {f["id"] for f in second["features"]}
    # withheld areas (null) sort last both ways
    ordered = _ids(client, "georgia-1990", sortby="foreign_born")
    assert set(ordered[-len(_withheld(counts)) :]) == _withheld(counts)
    only_label = client.get(ITEMS.format("georgia-1990~lisa~black"), params={"properties": "label", "limit": 2}).json()
    assert set(only_label["features"][0]["properties"]) == {"label"} and only_label["features"][0]["id"]


@pytest.mark.parametrize(
    "params, code, needle",
    [
        ({"filter": "black_share > "}, "filter_syntax", "line 1, column 15"),
        ({"filter": "black_share >> 3 AND x"}, "filter_syntax", "line 1, column 14"),
        ({"filter": '{"op": ">", "args": [', "filter-lang": "cql2-json"}, "filter_syntax", "line 1, column 21"),
        ({"filter": "label = 'high_high'"}, "unknown_property", "black_share"),
        ({"sortby": "-nope"}, "unknown_property", "black_share"),
        ({"properties": "id,nope"}, "unknown_property", "black_share"),
        ({"filter": "black_share > '0.3'"}, "bad_filter", "number"),
        ({"filter": "id > 3"}, "bad_filter", "quote text"),
        ({"filter": "frob(id) = 1"}, "unsupported_operator", "frob"),
        ({"filter": "geometry = 'x'"}, "bad_filter", "S_INTERSECTS"),
        ({"filter": "S_INTERSECTS(geometry, POINT(1 2 3 4 5))"}, "filter_syntax", "column"),
        ({"filter": "id = '1'", "filter-lang": "sql"}, "bad_filter_lang", "cql2-text"),
        ({"filter": "id = '1'", "filter-crs": "EPSG:3857"}, "bad_filter_crs", "CRS84"),
        ({"filter": "(" * 3000 + "id = '1'" + ")" * 3000}, "bad_filter", "simplify"),
        ({"filter": "id = '" + "x" * 9000 + "'"}, "bad_filter", "at most"),
        ({"filter": "NOT " * 1000 + "id = '1'"}, "bad_filter", "simplify"),
        ({"filter": "'\\' = id OR " + "(" * 3000 + "id = '1'" + ")" * 3000}, "bad_filter", "simplify"),
        ({"filter": '{"op": "not", "args": []}', "filter-lang": "cql2-json"}, "bad_filter", "1 argument"),
        ({"filter": '{"op": "in", "args": [{"property": "id"}, 3]}', "filter-lang": "cql2-json"}, "bad_filter", "list"),
        ({"filter": "[1, 2]", "filter-lang": "cql2-json"}, "bad_filter", "condition"),
    ],
)
def test_bad_filters_are_400_saying_what_to_fix(client, params, code, needle):
    r = client.get(ITEMS.format("georgia-1990"), params=params)
    assert r.status_code == 400, r.text
    body = r.json()
    assert r.headers["content-type"] == "application/problem+json" and body["type"].endswith("/" + code)
    assert needle in body["detail"], body["detail"]
    if code == "filter_syntax":
        assert body["position"]["line"] == 1 and body["position"]["column"] > 0
    if code == "unknown_property":
        assert "black_share" in body["queryables"]


ATTACKS = [
    "foreign_born > 3",
    "foreign_born < 5",
    "foreign_born = 3",
    "foreign_born BETWEEN 1 AND 9",
    "NOT foreign_born > 3",
    "NOT (foreign_born < 5 OR foreign_born > 5)",
    "foreign_born * 2 > 7",
    "total_population - foreign_born > 100000",
    "foreign_born_share > 0.0001",
    "foreign_born IN (3, 8)",
    "foreign_born IS NULL",
    "NOT foreign_born IS NULL AND foreign_born < 9",
    "foreign_born > 3 OR id = '13021'",
]


def test_a_filter_cannot_tell_hidden_counts_apart(client):
    """The attacker filters, sorts and pages over a withheld count: every answer must be the same whether the
    hidden counts are 3 or 8, and a withheld area never matches a comparison on its hidden value."""
    for collection in ("{}", "{}~lisa~foreign_born"):
        for expr in ATTACKS:
            bodies = []
            for ident in ("var3", "var8"):
                r = client.get(
                    ITEMS.format(collection.format(ident)),
                    params={"filter": expr, "sortby": "-foreign_born", "limit": 1000},
                )
                assert r.status_code == 200, (expr, r.text)
                bodies.append(r.text.replace(ident, "ID"))
            assert bodies[0] == bodies[1], expr
            matched = {f["id"] for f in json.loads(bodies[0])["features"]}
            if "IS NULL" not in expr and "OR id" not in expr:
                assert not matched & set(HIDDEN), expr
    # The owner filters the true table: the same filter does tell them apart (so the test above can fail).
    owner = [_ids_owner(client, ident, "foreign_born > 3") for ident in ("var3", "var8")]
    assert set(HIDDEN) <= set(owner[1]) and not set(HIDDEN) & set(owner[0])


def _ids_owner(client, ident, expr):
    r = client.get(ITEMS.format(ident), params={"filter": expr, "limit": 1000}, headers={"X-API-Key": KEY})
    return [f["id"] for f in r.json()["features"]]


GDAL_CQL = ["--config", "OGR_OAPIF_ALLOW_CQL_TEXT", "YES", "--config", "CPL_CURL_VERBOSE", "YES"]


def _sent_filters(stderr: str) -> list[str]:
    return [
        line for line in stderr.splitlines() if re.search(r"GET /ogc/collections/georgia-1990/items\?.*filter=", line)
    ]


@pytest.mark.server
@pytest.mark.skipif(shutil.which("ogr2ogr") is None, reason="GDAL's ogr2ogr (Debian gdal-bin) is not installed")
def test_gdal_sends_its_where_clause_to_the_server(live_server, counts, tmp_path):
    """ogrinfo / ogr2ogr -where over OAPIF: GDAL's request carries the filter as CQL text and GDAL keeps the
    server's answer as it is (no "evaluated on client side"), so the count it reports is the server's filtering.
    GDAL 3.6 sends filters only with OGR_OAPIF_ALLOW_CQL_TEXT (its OpenAPI lookup misses the /ogc prefix);
    later versions read the CQL2 conformance classes."""
    shown = counts.drop(index=list(_withheld(counts)))
    share = shown["black"] / shown["total_population"]
    expected = set(shown.index[(share > 0.5) & (shown["foreign_born"] < 100)])
    where = "black_share > 0.5 AND foreign_born < 100"
    layer = [f"OAPIF:{live_server}/ogc", "georgia-1990"]
    info = subprocess.run(
        ["ogrinfo", "-ro", "-so", "-where", where, *GDAL_CQL, "--config", "CPL_DEBUG", "ON", *layer],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert info.returncode == 0, info.stderr[-2000:]
    assert f"Feature Count: {len(expected)}" in info.stdout
    sent = _sent_filters(info.stderr)
    assert sent and "black_share" in sent[-1] and "foreign_born" in sent[-1], info.stderr[-2000:]
    assert "evaluated on client side" not in info.stderr
    out = tmp_path / "filtered.gpkg"
    copy = subprocess.run(
        ["ogr2ogr", "-f", "GPKG", str(out), "-where", where, *GDAL_CQL, *layer],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert copy.returncode == 0 and _sent_filters(copy.stderr), copy.stderr[-2000:]
    assert set(gpd.read_file(out)["id"]) == expected
