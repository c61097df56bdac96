"""Attacks on the series surfaces (trend, decomposition, change, harmonize, series page), as an attacker who reads
every public output, knows the formulas and solves equations between dates and geographies.

Two user-uploaded series (default disclosure threshold 10) are identical except at one date (2016), where three
areas hold small hidden counts: 3 people in one, 8 in the other (two of a group, one of the total). Each series has
three dates: 2011 and 2016 on a 1 km grid, 2021 on a coarser 2 km grid, so harmonisation (by area, and by population
through the 2016 layer whose counts are hidden) carries the withheld areas' neighbours onto the coarse areas. Every
series output must be byte-identical for both series: then no equation between them (target total minus the
visible pieces, differencing two dates, weights through a hidden layer) can recover a hidden count.
"""

from __future__ import annotations

import io
import re

import geopandas as gpd
import numpy as np
import pytest
from shapely.geometry import box

from conftest import in_process

KEY = "series-attack-key"
N = 8  # 8×8 fine grid at 2011 and 2016, 4×4 coarse grid at 2021
VARIANTS = {"hidden3": 3, "hidden8": 8}
HIDDEN_GROUP = [18, 27]  # fine cells whose group count is hidden (total unchanged)
HIDDEN_TOTAL = 45  # a fine cell whose total is hidden (group 0)
EVIL = '</script><img src=x onerror=alert(1)>"{{7*7}}'


def _grid(n: int, size: float, counts: dict, names: list[str]) -> bytes:
    cells = [box(x * size, y * size, (x + 1) * size, (y + 1) * size) for y in range(n) for x in range(n)]
    gdf = gpd.GeoDataFrame(
        {"key": [f"c{size:g}-{i:02d}" for i in range(n * n)], "name": names, **counts}, geometry=cells, crs=3035
    )
    return gdf.to_crs(4326).to_json().encode()


def _fine(seed: int, hidden: int | None) -> bytes:
    rng = np.random.default_rng(seed)
    pop = rng.integers(300, 900, N * N)
    migrants = np.rint(pop * np.linspace(0.1, 0.5, N * N)).astype(int)
    if hidden is not None:
        migrants[HIDDEN_GROUP] = hidden
        pop[HIDDEN_TOTAL], migrants[HIDDEN_TOTAL] = hidden, 0
    names = [f"{EVIL} {i}" if i % 3 else f"=HYPERLINK(\"http://x\",\"{i}\")" for i in range(N * N)]
    return _grid(N, 1000, {"pop": pop, "migrants": migrants}, names)


def _coarse(seed: int) -> bytes:
    rng = np.random.default_rng(seed)
    pop = rng.integers(1500, 3000, (N // 2) ** 2)
    migrants = np.rint(pop * np.linspace(0.1, 0.5, (N // 2) ** 2)).astype(int)
    return _grid(N // 2, 2000, {"pop": pop, "migrants": migrants}, [f"+cmd|' /C calc'!A{i}" for i in range(16)])


def _upload(c, series: str, date: str, body: bytes):
    form = {"groups": "migrants", "total": "pop", "key": "key", "name_col": "name", "series": series}
    form |= {"date": date, "id": f"{series}-{date}", "title": EVIL}
    return c.post("/v1/datasets", files={"boundaries": ("g.geojson", body)}, data=form, headers={"X-API-Key": KEY})


@pytest.fixture(scope="module")
def client(tmp_path_factory):
    with in_process(tmp_path_factory.mktemp("series-attacks"), register_bundled=False, api_key=KEY) as c:
        for series, hidden in VARIANTS.items():
            for date, body in (("2011", _fine(1, None)), ("2016", _fine(2, hidden)), ("2021", _coarse(3))):
                r = _upload(c, series, date, body)
                assert r.status_code == 201, r.text
        yield c


def _outputs(c, s: str) -> dict[str, str]:
    base = f"/v1/series/{s}"
    harm = "from=2016&to=2021&harmonize=area"
    pop = f"from=2016&to=2021&harmonize=population&weights={s}-2011"
    hidden_weights = f"from=2011&to=2021&harmonize=population&weights={s}-2016"  # refused: withheld cells leave holes
    urls = {
        "describe": base,
        "trend": f"{base}/indices?permutations=19",
        "trend_csv": f"{base}/indices?permutations=19&format=csv&baseline=2016",
        "trend_multi": f"{base}/indices?index=dissimilarity&index=gini&null=permutation&permutations=9",
        "decomp_M": f"{base}/decomposition?from=2011&to=2016&index=M&boot=9",
        "decomp_H": f"{base}/decomposition?from=2016&to=2011&index=H",
        "decomp_D": f"{base}/decomposition?from=2011&to=2016&index=D",
        "decomp_harm": f"{base}/decomposition?{harm}&index=D",
        "decomp_pop": f"{base}/decomposition?{pop}&index=M",
        "change": f"{base}/change?from=2011&to=2016&permutations=99",
        "change_geojson": f"{base}/change?from=2016&to=2011&permutations=99&format=geojson",
        "change_csv": f"{base}/change?from=2011&to=2016&permutations=99&format=csv&correction=none",
        "change_harm_csv": f"{base}/change?{harm}&permutations=99&format=csv",
        "change_pop": f"{base}/change?{pop}&permutations=99",
        "harmonize": f"{base}/harmonize?{harm}",
        "harmonize_csv": f"{base}/harmonize?{harm}&format=csv",
        "harmonize_pop": f"{base}/harmonize?{pop}",
        "harmonize_pop_csv": f"{base}/harmonize?{pop}&format=csv",
        "harmonize_back": f"{base}/harmonize?from=2021&to=2016",
        "harmonize_hidden_weights": f"{base}/harmonize?{hidden_weights}",
        "change_hidden_weights": f"{base}/change?{hidden_weights}&format=csv",
        "page": f"/maps/series/{s}",
        "areas_2016": f"/maps/series/{s}/areas?date=2016",
        "areas_2011": f"/maps/series/{s}/areas?date=2011",
    }
    out = {}
    for name, url in urls.items():
        r = c.get(url)
        assert r.status_code == (422 if "hidden_weights" in name else 200), (url, r.text[:400])
        out[name] = r.text
    return out


def _normalise(text: str, series: str) -> str:
    text = text.replace(series, "SERIES")
    text = re.sub(r"/tiles/[0-9a-f]{16}/", "/tiles/VERSION/", text)
    return re.sub(r'"version": ?"[0-9a-f]+"', '"version": ""', text)


@pytest.fixture(scope="module")
def outputs(client):
    return {s: _outputs(client, s) for s in VARIANTS}


def test_every_series_output_is_the_same_whatever_the_hidden_counts(client, outputs):
    a, b = (outputs[s] for s in VARIANTS)
    differ = [name for name in a if _normalise(a[name], "hidden3") != _normalise(b[name], "hidden8")]
    assert differ == []
    # ... while the owner sees the difference: the comparison can fail.
    owner = [
        client.get(f"/v1/series/{s}/indices?index=dissimilarity", headers={"X-API-Key": KEY}).json() for s in VARIANTS
    ]
    assert owner[0]["rows"] != owner[1]["rows"]


def test_harmonised_totals_leave_nothing_to_subtract(client):
    """Target area total minus the visible fine pieces: the withheld cells carry nothing (not their true counts)."""
    for s in VARIANTS:
        fine = client.get(f"/ogc/collections/{s}-2016/items?limit=100").json()["features"]
        shown = {f["properties"]["id"]: f["properties"] for f in fine}
        for cell in (*HIDDEN_GROUP, HIDDEN_TOTAL):
            assert shown[f"c1000-{cell:02d}"]["pop"] is None  # withheld
        carried = client.get(f"/v1/series/{s}/harmonize?from=2016&to=2021&harmonize=area").json()["areas"]
        visible = sum(p["pop"] for p in shown.values() if p["pop"] is not None)
        visible_group = sum(p["migrants"] for p in shown.values() if p["migrants"] is not None)
        # the carried totals are the visible pieces' totals: a remainder of 0, not the hidden count
        assert abs(sum(a["pop"] for a in carried) - visible) < 1e-6
        assert abs(sum(a["migrants"] for a in carried) - visible_group) < 1e-6


def test_differencing_two_dates_recovers_nothing(client):
    """A withheld area is left out of the change at both dates, so no per-area change names it."""
    for s in VARIANTS:
        rows = client.get(f"/v1/series/{s}/change?from=2011&to=2016&permutations=99").json()["areas"]
        ids = {r["id"] for r in rows}
        assert not ids & {f"c1000-{c:02d}" for c in (*HIDDEN_GROUP, HIDDEN_TOTAL)}


def test_series_page_and_csv_escape_hostile_names(client, outputs):
    for s in VARIANTS:
        out = outputs[s]
        assert "<img src=x" not in out["page"] and "</script><img" not in out["page"]
        assert "&lt;/script&gt;" in out["page"] or "\\u003c/script" in out["page"]
        assert "{{7*7}}" in out["page"]  # the title's template code shown as text, not run
        for name in ("change_csv", "harmonize_csv", "change_harm_csv", "trend_csv"):
            for line in out[name].splitlines()[1:]:
                for cell in line.split(","):
                    assert not cell.startswith(("=", "+", "@")), (name, line)
        assert "'=HYPERLINK" in out["change_csv"]
    r = client.get("/maps/series/hidden3")
    assert "script-src 'self'" in r.headers["content-security-policy"]


@pytest.mark.parametrize(
    "url",
    [
        "/v1/series/hidden3/indices?baseline=%0d%0aSet-Cookie:x",
        "/v1/series/hidden3/indices?group=%3Cscript%3E",
        "/v1/series/hidden3/indices?index=__class__",
        "/v1/series/hidden3/indices?permutations=-1",
        "/v1/series/hidden3/indices?permutations=100000000",
        "/v1/series/hidden3/indices?seed=-5",
        "/v1/series/hidden3/indices?format=xlsx",
        "/v1/series/hidden3/indices?null=nonsense",
        "/v1/series/hidden3/decomposition?from=2011&to=2011",
        "/v1/series/hidden3/decomposition?from=1900&to=2016",
        "/v1/series/hidden3/decomposition?from=2011&to=2016&index=X",
        "/v1/series/hidden3/decomposition?from=2011&to=2016&boot=100000",
        "/v1/series/hidden3/decomposition?from=2011&to=2021",
        "/v1/series/hidden3/decomposition?from=2011&to=2021&harmonize=population",
        "/v1/series/hidden3/change?from=2011&to=2021&harmonize=population&weights=nope",
        "/v1/series/hidden3/change?from=2011&to=2021&harmonize=population&weights=..%2F..%2Fetc",
        "/v1/series/hidden3/change?from=2011&to=2016&alpha=2",
        "/v1/series/hidden3/change?from=2011&to=2016&alpha=nan",
        "/v1/series/hidden3/change?from=2011&to=2016&format=html",
        "/v1/series/hidden3/change?from=2011&to=2016&total=migrants",
        "/v1/series/hidden3/decomposition?from=2011&to=2016&total=migrants",
        "/v1/series/hidden3/harmonize?from=2016&to=2021&total=migrants",
        "/v1/series/hidden3/indices?total=migrants&group=migrants",
        "/v1/series/hidden3/change?from=2011&to=2016&group=pop&group=name",
        "/v1/series/hidden3/harmonize?from=2016&to=2021&harmonize=bogus",
        "/v1/series/hidden3/harmonize?from=" + "9" * 5000,
        "/v1/series/%3Cscript%3E/indices",
        "/v1/series/hidden3%00/indices",
        "/maps/series/%22%3E%3Cimg%20onerror%3Dx%3E",
        "/maps/series/hidden3/areas?date=1800",
        "/maps/series/hidden3/areas?date=" + "1" * 41,
        "/maps/series/hidden3/areas?date=2016&group=key",
    ],
)
def test_hostile_series_parameters_are_clear_4xx(client, url):
    r = client.get(url)
    assert 400 <= r.status_code < 500, (url, r.status_code, r.text[:300])
    # a reflected name is data in a JSON problem the browser will not sniff as HTML
    assert r.headers["content-type"].startswith("application/problem+json"), r.headers["content-type"]
    assert r.headers["x-content-type-options"] == "nosniff"
    assert "\r\n" not in "".join(f"{k}{v}" for k, v in r.headers.items())


def test_refused_series_uploads_change_nothing(client):
    before = client.get("/v1/series").json(), client.get("/v1/datasets").json()
    for series, date in (("Bad Id", "2011"), ("hidden3", "2016"), ("hidden3", "2011-02-30"), ("x" * 70, "2011")):
        r = _upload(client, series, date, _fine(9, None))
        assert r.status_code == 422, (series, date, r.text)
    r = _upload(client, "hidden3", "2030\r\nX: y", _fine(9, None))
    assert r.status_code == 422
    assert (client.get("/v1/series").json(), client.get("/v1/datasets").json()) == before


def test_weights_through_someone_elses_hidden_layer_uses_its_protected_table(client):
    """A public caller may harmonise through another series' dataset: only its published areas weigh (here the
    withheld cells leave holes, and the refusal is the same whatever their counts)."""
    url = "/v1/series/hidden3/harmonize?from=2011&to=2021&harmonize=population&weights={}-2016"
    a, b = (client.get(url.format(s)) for s in VARIANTS)
    assert a.status_code == b.status_code == 422
    assert "weights_do_not_cover" in a.text
    assert a.json() == b.json()


def test_series_page_config_cannot_close_its_script(client):
    """The page's config is JSON made safe for <script>: the title's </script> cannot close the element."""
    page = client.get("/maps/series/hidden3").text
    scripts = re.findall(r"<script[^>]*>(.*?)</script>", page, flags=re.S)
    assert all("onerror" not in s for s in scripts)
    assert page.count("<img") == 0


def test_nested_geographies_of_one_date_do_not_difference_out_a_hidden_count(client):
    """The same date uploaded again on coarser nested areas (no series): the coarse areas around a withheld fine
    one are withheld too (tests/test_attacks_linked.py attacks the other shapes of this)."""
    fine = gpd.read_file(io.BytesIO(_fine(2, VARIANTS["hidden3"])))
    fine["coarse"] = [f"c2000-{(i // N // 2) * (N // 2) + (i % N) // 2:02d}" for i in range(N * N)]
    sums = fine.groupby("coarse")[["pop", "migrants"]].sum()
    cells = [box(x * 2000, y * 2000, (x + 1) * 2000, (y + 1) * 2000) for y in range(N // 2) for x in range(N // 2)]
    coarse = gpd.GeoDataFrame({"key": sums.index, "name": sums.index, **sums}, geometry=cells, crs=3035)
    form = {"groups": "migrants", "total": "pop", "key": "key", "name_col": "name", "id": "nested-2016"}
    form["date"] = "2016"
    r = client.post(
        "/v1/datasets",
        files={"boundaries": ("g.geojson", coarse.to_crs(4326).to_json().encode())},
        data=form,
        headers={"X-API-Key": KEY},
    )
    assert r.status_code == 201, r.text
    items = {
        f["properties"]["id"]: f["properties"]
        for ident in ("hidden3-2016", "nested-2016")
        for f in client.get(f"/ogc/collections/{ident}/items?limit=100").json()["features"]
    }
    target = fine.loc[HIDDEN_TOTAL, "coarse"]  # the coarse area around the cell whose total is hidden
    pieces = fine.loc[(fine["coarse"] == target) & (fine.index != HIDDEN_TOTAL), "key"]
    assert all(items[k]["pop"] is not None for k in pieces)  # the fine pieces are visible ...
    coarse_total = items[target]["pop"]  # ... so the coarse total must not be: nothing to subtract them from
    assert coarse_total is None or coarse_total - sum(items[k]["pop"] for k in pieces) != VARIANTS["hidden3"]
    assert coarse_total is None
    shown = [k for k, p in items.items() if k.startswith("c2000") and p["pop"] is not None]
    assert len(shown) == 14  # only the two coarse areas holding withheld fine ones are withheld


def test_an_owners_answer_is_never_served_to_the_public(client):
    url = "/v1/series/hidden3/change?from=2011&to=2016&permutations=19&format=csv&seed=7"
    owner = client.get(url, headers={"X-API-Key": KEY})
    public = client.get(url)
    again = client.get(url, headers={"If-None-Match": owner.headers.get("etag", "")})
    assert owner.status_code == public.status_code == again.status_code == 200
    assert owner.text != public.text and again.text == public.text
    assert "private" in owner.headers["cache-control"] and "private" not in public.headers["cache-control"]
