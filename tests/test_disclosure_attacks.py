"""Attacks on disclosure control, as an attacker who reads every public output and solves equations.

Two copies of the Georgia data differ only in a few counties' foreign-born counts: 3 in one, 8 in the
other (native-born adjusted, totals unchanged). An output from which a hidden count can be recovered
must differ between the copies. So the strongest test is that every public output is the same for
both; then no attack, known or not, can be within ±2 of both 3 and 8. The known attacks of the review
are also run one by one, and must find nothing to work with.
"""

from __future__ import annotations

import io
import json
import re

import geopandas as gpd
import mapbox_vector_tile
import numpy as np
import pandas as pd
import pytest
from fastapi.testclient import TestClient

from app.main import create_app
from app.settings import Settings
from conftest import BUNDLED

KEY = "owner-key"
HIDDEN = ["13021", "13051", "13067"]  # Bibb, Chatham, Cobb: counties with many foreign-born people
GROUPS = "foreign_born,native_born,black,not_black,rural"
VARIANTS = {"var3": 3, "var8": 8}


def _files(hidden_count: int, extra_column: bool = False):
    gdf = gpd.read_file(BUNDLED / "boundaries" / "georgia_counties.gpkg")
    counts = pd.read_csv(BUNDLED / "census" / "georgia_counties_1990.csv", dtype={"area_key": str})
    rows = counts["area_key"].isin(HIDDEN)
    assert rows.sum() == len(HIDDEN)
    counts.loc[rows, "foreign_born"] = hidden_count
    counts.loc[rows, "native_born"] = counts.loc[rows, "total_population"] - hidden_count
    if extra_column:  # an undeclared column in the boundary file
        gdf = gdf.merge(counts[["area_key", "native_born"]].rename(columns={"native_born": "NATIVE"}), on="area_key")
    buf = io.BytesIO()
    gdf.to_file(buf, driver="GPKG")
    return {
        "boundaries": ("georgia.gpkg", buf.getvalue()),
        "counts": ("counts.csv", counts.to_csv(index=False).encode()),
    }


@pytest.fixture(scope="module")
def client(tmp_path_factory):
    settings = Settings(
        data_dir=tmp_path_factory.mktemp("attacks"), register_bundled=False, api_key=KEY, disclosure_threshold=10
    )
    with TestClient(create_app(settings)) as c:
        for ident, value in VARIANTS.items():
            r = c.post(
                "/v1/datasets",
                files=_files(value),
                headers={"X-API-Key": KEY},
                data={
                    "id": ident,
                    "key": "area_key",
                    "total": "total_population",
                    "groups": GROUPS,
                    "title": "Georgia",
                },
            )
            assert r.status_code == 201, r.text
        yield c


def _tile_address(lon: float, lat: float, z: int) -> tuple[int, int, int]:
    n = 2**z
    x = int((lon + 180) / 360 * n)
    y = int((1 - np.arcsinh(np.tan(np.radians(lat))) / np.pi) / 2 * n)
    return z, x, y


def _public_outputs(c: TestClient, ident: str) -> dict[str, bytes]:
    """Every public output of a dataset that depends on its counts, by name."""
    base = f"/v1/datasets/{ident}"
    urls = {
        "info": base,
        "tilejson": f"{base}/tilejson.json",
        "indices": f"{base}/indices?group=foreign_born&permutations=19",
        "indices_spatial": f"{base}/indices?group=foreign_born&index=spatial_dissimilarity&index=spatial_proximity"
        "&index=relative_clustering&index=absolute_centralization&permutations=9",
        "indices_multigroup": f"{base}/indices?group=foreign_born&group=native_born&index=mutual_information"
        "&index=multigroup_dissimilarity",
        "ogc_items": f"/ogc/collections/{ident}/items?limit=1000",
        "ogc_lisa": f"/ogc/collections/{ident}~lisa~foreign_born/items?limit=1000",
        "ogc_gi": f"/ogc/collections/{ident}~gi_star~foreign_born/items?limit=1000",
        "ogc_filter": f"/ogc/collections/{ident}/items?limit=1000&filter=foreign_born%20%3E%203&sortby=-foreign_born",
        "ogc_queryables": f"/ogc/collections/{ident}~lisa~foreign_born/queryables",
        "style_lisa": f"{base}/style.json?view=lisa&group=foreign_born",
        "style_share": f"{base}/style.json?view=share&group=foreign_born",
        "download_csv": f"{base}/download.csv",
        "download_fgb": f"{base}/download.fgb",
        "download_local_csv": f"{base}/local/lisa/download.csv?group=foreign_born&permutations=99",
        "download_local_fgb": f"{base}/local/gi_star/download.fgb?group=foreign_born&permutations=99",
    }
    for statistic in ("lisa", "gi_star", "lq", "entropy"):
        urls[f"local_{statistic}"] = f"{base}/local?group=foreign_born&statistic={statistic}&permutations=99"
    urls["local_bivariate"] = f"{base}/local?group=foreign_born&statistic=bivariate_lisa&other=black&permutations=99"
    urls["local_black_csv"] = f"{base}/local?group=black&statistic=lisa&permutations=99&format=csv"
    for view in ("share", "lq", "lisa", "hotspots"):
        urls[f"map_{view}"] = f"/maps/{ident}?view={view}&group=foreign_born&permutations=99"
        urls[f"data_{view}"] = f"/maps/{ident}/data?view={view}&group=foreign_born&permutations=99&format=geojson"
    urls["map_vector"] = f"/maps/{ident}?tiles=on&view=lisa&permutations=99"
    urls["embed"] = f"/maps/{ident}/embed?view=hotspots&permutations=99"
    urls["download"] = f"/maps/{ident}/download?view=share"
    urls["png"] = f"{base}/map.png?view=share&width=300&height=300"
    # Tiles at every zoom from the whole state down to a county, plain and with each statistic.
    for z in range(0, 11, 2):
        zxy = _tile_address(-84.39, 33.75, z)  # Atlanta, where Cobb is
        for statistic in (None, "lisa", "gi_star", "lq"):
            q = f"?group=foreign_born&statistic={statistic}&permutations=99" if statistic else ""
            urls[f"tile_{z}_{statistic}"] = f"{base}/tiles/{zxy[0]}/{zxy[1]}/{zxy[2]}.mvt{q}"
    out = {}
    for name, url in urls.items():
        r = c.get(url)
        assert r.status_code == 200, (url, r.text[:300])
        out[name] = r.content
    return out


def _normalise(body: bytes, ident: str) -> bytes:
    body = body.replace(ident.encode(), b"DATASET")
    body = re.sub(rb"_[0-9a-f]{32}", b"_FOLIUM_ID", body)  # folium names its elements at random
    body = re.sub(rb"/tiles/[0-9a-f]{16}/", b"/tiles/VERSION/", body)  # versioned tile URLs carry the version
    return re.sub(rb'"version": ?"[0-9a-f]+"', b'"version": ""', body)


def test_every_public_output_is_the_same_whatever_the_hidden_counts(client):
    a, b = (_public_outputs(client, ident) for ident in VARIANTS)
    differ = [name for name in a if _normalise(a[name], "var3") != _normalise(b[name], "var8")]
    assert differ == []
    # ... while the owner, and the data themselves, do differ: the test can fail.
    owner = {
        i: client.get(f"/v1/datasets/{i}/indices?group=foreign_born", headers={"X-API-Key": KEY}).json()
        for i in VARIANTS
    }
    assert owner["var3"]["dissimilarity"]["value"] != owner["var8"]["dissimilarity"]["value"]


def _features(client, url):
    return {f["properties"]["id"]: f["properties"] for f in client.get(url).json()["features"]}


def _attacks(client, ident: str) -> dict[str, list[float | None]]:
    """Each known attack's estimate of the hidden counts (None where it has nothing to work with)."""
    base = f"/v1/datasets/{ident}"
    lisa = _features(client, f"{base}/local?group=foreign_born&statistic=lisa&permutations=99")
    entropy = _features(client, f"{base}/local?group=foreign_born&statistic=entropy")
    lq = client.get(f"{base}/local?group=foreign_born&statistic=lq").json()
    lq_props = {f["properties"]["id"]: f["properties"] for f in lq["features"]}
    items = {
        f["id"]: f["properties"] for f in client.get(f"/ogc/collections/{ident}/items?limit=1000").json()["features"]
    }
    out: dict[str, list[float | None]] = {k: [] for k in ("lisa", "entropy", "lq_p", "share", "margin", "total", "gi")}
    totals = [p["total_population"] for p in items.values() if p["total_population"] is not None]
    shown = [p["foreign_born"] for p in items.values() if p["foreign_born"] is not None]
    city_share = lq["segmap"]["summary"]["city_share"]
    for area in HIDDEN:
        p = lisa[area]
        t = items[area]["total_population"]
        # LISA value and lag give z, z gives the share, the share and total give the count.
        out["lisa"].append(
            None
            if p["value"] is None or p.get("z") is None or t is None
            else p["z"] * np.std([q["share"] for q in lisa.values() if q["share"] is not None]) * t
        )
        e = entropy[area]
        out["entropy"].append(None if e["value"] is None or t is None else e["value"] * t)
        q = lq_props[area]
        out["lq_p"].append(None if q["p_value"] is None or t is None else q["value"] * city_share * t)
        out["share"].append(None if p["share"] is None or t is None else p["share"] * t)
        out["total"].append(None if t is None else t)
    # City-wide margins: P · Σ totals − Σ shown counts leaves what is not shown (P from the LQ summary).
    out["margin"].append(city_share * sum(totals) - sum(shown))
    # Gi* of the hidden area and its neighbours, as a linear system on the published adjacency (tiles alone).
    z, x, y = _tile_address(-84.39, 33.75, 6)
    tile = client.get(f"{base}/tiles/{z}/{x}/{y}.mvt?group=foreign_born&statistic=gi_star&permutations=99")
    feats = mapbox_vector_tile.decode(tile.content)["areas"]["features"]
    values = {f["properties"].get("id"): f["properties"].get("value") for f in feats}
    out["gi"] = [values.get(area) for area in HIDDEN]
    return out


def test_known_attacks_find_nothing_to_work_with(client):
    for ident, truth in VARIANTS.items():
        estimates = _attacks(client, ident)
        for name in ("lisa", "entropy", "lq_p", "share", "total", "gi"):
            assert estimates[name] == [None] * len(HIDDEN), (ident, name, estimates[name])
        # The margin attack gets an answer, ~0 for 3 and for 8: the margins are those of the published areas.
        assert abs(estimates["margin"][0]) < 1e-3 and abs(estimates["margin"][0] - truth) > 2


def test_withheld_areas_are_the_same_in_every_output(client):
    ident = "var3"
    base = f"/v1/datasets/{ident}"
    hidden_by = {}
    for name, url in {
        "ogc": f"/ogc/collections/{ident}/items?limit=1000",
        "local_fb": f"{base}/local?group=foreign_born&statistic=lq",
        "local_black": f"{base}/local?group=black&statistic=lq",
        "local_rural": f"{base}/local?group=rural&statistic=lq",
        "map_data": f"/maps/{ident}/data?group=black&format=geojson",
    }.items():
        feats = client.get(url).json()["features"]
        key = "id"
        hidden_by[name] = sorted(
            str(f["properties"].get(key) or f.get("id"))
            for f in feats
            if f["properties"].get("total_population", f["properties"].get("total")) is None
        )
    first = hidden_by["ogc"]
    assert set(HIDDEN) <= set(first) and all(v == first for v in hidden_by.values()), hidden_by


def test_only_declared_columns_are_public(tmp_path):
    settings = Settings(data_dir=tmp_path, register_bundled=False, api_key=KEY)
    with TestClient(create_app(settings)) as c:
        r = c.post(
            "/v1/datasets",
            files=_files(50, extra_column=True),
            headers={"X-API-Key": KEY},
            data={"id": "extra", "key": "area_key", "total": "total_population", "groups": "foreign_born"},
        )
        assert r.status_code == 201, r.text
        props = c.get("/ogc/collections/extra/items?limit=5").json()["features"][0]["properties"]
        assert "NATIVE" not in props and "native_born" not in props
        for params in (
            {"group": "NATIVE"},
            {"group": "native_born"},
            {"group": "foreign_born", "total": "NATIVE"},
            {"statistic": "bivariate_lisa", "other": "NATIVE"},
        ):
            r = c.get("/v1/datasets/extra/local", params=params)
            assert 400 <= r.status_code < 500, (params, r.status_code)
        r = c.get("/v1/datasets/extra/indices", params={"group": "NATIVE"})
        assert 400 <= r.status_code < 500
        tile = c.get("/v1/datasets/extra/tiles/0/0/0.mvt")
        props = set().union(*(f["properties"] for f in mapbox_vector_tile.decode(tile.content)["areas"]["features"]))
        assert "NATIVE" not in props


def test_owner_sees_the_true_counts_privately(client):
    r = client.get("/v1/datasets/var3/local?group=foreign_born&statistic=lq", headers={"X-API-Key": KEY})
    props = {f["properties"]["id"]: f["properties"] for f in r.json()["features"]}
    assert [props[a]["foreign_born"] for a in HIDDEN] == [3, 3, 3]


def test_cell_key_publishes_no_small_count_and_the_same_value_everywhere(tmp_path):
    settings = Settings(data_dir=tmp_path, register_bundled=False, api_key=KEY)
    with TestClient(create_app(settings)) as c:
        r = c.post(
            "/v1/datasets",
            files=_files(3),
            headers={"X-API-Key": KEY},
            data={
                "id": "ckm",
                "key": "area_key",
                "total": "total_population",
                "groups": GROUPS,
                "disclosure_method": "cell_key",
            },
        )
        assert r.status_code == 201 and r.json()["disclosure_method"] == "cell_key", r.text
        items = {f["id"]: f["properties"] for f in c.get("/ogc/collections/ckm/items?limit=1000").json()["features"]}
        local = {
            f["properties"]["id"]: f["properties"]
            for f in c.get("/v1/datasets/ckm/local?group=foreign_born&statistic=lq").json()["features"]
        }
        true = pd.read_csv(BUNDLED / "census" / "georgia_counties_1990.csv", dtype={"area_key": str}).set_index(
            "area_key"
        )
        true.loc[HIDDEN, "foreign_born"] = 3
        published = np.array([items[a]["foreign_born"] for a in true.index], dtype=float)
        assert not ((published > 0) & (published < 10)).any()  # no count of 1..9 anywhere
        assert all(abs(items[a]["foreign_born"] - 3) > 2 for a in HIDDEN)  # 3 is published as 0 or 10
        assert all(local[a]["foreign_born"] == items[a]["foreign_born"] for a in items)  # one table, every output
        big = true["foreign_born"] >= 10
        moved = np.abs(published[big.to_numpy()] - true.loc[big, "foreign_born"].to_numpy())
        assert moved.max() <= 2 and moved.mean() > 0.3  # perturbed, a little
        # The indices are those of the published table.
        from spatial.indices.compute import compute_indices
        from spatial.io import load_dataset

        pub = pd.DataFrame(
            {
                "area_key": list(items),
                "foreign_born": [items[k]["foreign_born"] for k in items],
                "total_population": [items[k]["total_population"] for k in items],
            }
        )
        ds = load_dataset(
            BUNDLED / "boundaries" / "georgia_counties.gpkg",
            counts=pub,
            key="area_key",
            groups=["foreign_born"],
            total="total_population",
        )
        got = c.get("/v1/datasets/ckm/indices?group=foreign_born&index=dissimilarity").json()["dissimilarity"]["value"]
        assert got == pytest.approx(
            compute_indices(ds, group="foreign_born", indices=["dissimilarity"])["dissimilarity"].value, rel=1e-12
        )
        # Same cell, same value, after a replace: the key is the dataset's, not the upload's.
        assert json.dumps(items, sort_keys=True) == json.dumps(
            {f["id"]: f["properties"] for f in c.get("/ogc/collections/ckm/items?limit=1000").json()["features"]},
            sort_keys=True,
        )
