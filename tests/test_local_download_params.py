"""A local result's download takes every parameter of GET …/local (one list in app.params.LocalQuery), `total` too."""

from __future__ import annotations

import io

import pandas as pd

from conftest import BUNDLED

LOCAL = "/v1/datasets/georgia-1990/local"


def _csv(response) -> pd.DataFrame:
    assert response.status_code == 200, response.text[:300]
    return pd.read_csv(io.StringIO(response.text), dtype={"id": str}).set_index("id")


def test_local_download_takes_total_as_get_local_does(app_client):
    query = "group=black&total=not_black"
    download = _csv(app_client.get(f"{LOCAL}/lq/download.csv?{query}"))
    local = _csv(app_client.get(f"{LOCAL}?statistic=lq&format=csv&{query}"))
    pd.testing.assert_series_equal(download["value"], local["value"])
    # The denominator is the named total: the share is black / not_black by hand, not black / the population.
    raw = pd.read_csv(BUNDLED / "census" / "georgia_counties_1990.csv", dtype={"area_key": str}).set_index("area_key")
    shown = download["share"].dropna()
    assert len(shown) > 100
    expected = (raw["black"] / raw["not_black"]).loc[shown.index]
    pd.testing.assert_series_equal(shown, expected, check_names=False, rtol=1e-12)
    default = _csv(app_client.get(f"{LOCAL}/lq/download.csv?group=black"))
    assert not default["value"].equals(download["value"])


def test_local_download_refuses_an_undeclared_total_by_name(app_client):
    r = app_client.get(f"{LOCAL}/lq/download.gpkg?group=black&total=area_key")
    assert r.status_code == 422 and "total 'area_key'" in r.text
