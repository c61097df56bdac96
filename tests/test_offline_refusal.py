"""An offline HTML file over the size limits is refused from the catalogue row, before the dataset is loaded:
at 1,000,000 areas loading it to count took 4-10 s before the 422. Georgia's 159 counties stand in for a
large city (the limits are settings)."""

from __future__ import annotations

import pytest


@pytest.fixture
def loads(app_client, monkeypatch):
    """The session app whose registry counts every dataset read and refuses it (a read here is the defect)."""
    registry, calls = app_client.app.state.registry, []

    def refuse(name):
        def read(*args, **kwargs):
            calls.append(name)
            raise AssertionError(f"registry.{name} called before the size check")

        return read

    for name in ("snapshot", "load", "_read", "public"):
        monkeypatch.setattr(registry, name, refuse(name))
    return calls


def test_over_the_offline_limit_refused_without_loading_the_dataset(app_client, loads, monkeypatch):
    monkeypatch.setattr(app_client.app.state.settings, "max_offline_areas", 100)
    r = app_client.get("/maps/georgia-1990/download", params={"view": "lisa"})
    assert r.status_code == 422, r.text
    assert loads == []
    body = r.json()
    assert body["problems"][0]["code"] == "too_many_areas"
    detail = body["detail"]
    assert "159 areas" in detail and "limit 100" in detail and "SEGMAP_MAX_OFFLINE_AREAS" in detail
    # the alternatives, with the default group (the catalogue's first) filled in
    assert "/v1/datasets/georgia-1990/export.pmtiles?group=foreign_born&statistic=lisa" in detail
    assert "/v1/datasets/georgia-1990/download.parquet" in detail and "/v1/datasets/georgia-1990/map.png" in detail
    assert "/maps/georgia-1990." in detail and "segmap export" in detail


def test_embedded_geojson_over_its_limit_refused_without_loading_the_dataset(app_client, loads, monkeypatch):
    monkeypatch.setattr(app_client.app.state.settings, "max_download_areas", 100)
    r = app_client.get("/maps/georgia-1990/download", params={"group": "black", "tiles": "off"})
    assert r.status_code == 422, r.text
    assert loads == []
    detail = r.json()["detail"]
    assert "159 areas" in detail and "SEGMAP_MAX_DOWNLOAD_AREAS" in detail
    assert "leave out tiles=off" in detail and "/maps/georgia-1990/data" in detail


def test_unknown_dataset_is_still_404_and_bad_parameters_still_422(app_client, loads):
    assert app_client.get("/maps/nowhere/download").status_code == 404
    r = app_client.get("/maps/georgia-1990/download", params={"view": "nope"})
    assert r.status_code == 422 and "Unknown view" in r.json()["detail"]
    assert loads == []
