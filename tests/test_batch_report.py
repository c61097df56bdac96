"""The batch comparison report: drawn in headless Chromium from file:// with no other request, hostile place names
shown as text; and the service's /v1/batch-results, which keeps only a valid table and serves the same page."""

from __future__ import annotations

import io
import os
from urllib.parse import urlparse

import numpy as np
import pandas as pd
import pytest

from maps.batch_report import render_report, write_report
from spatial.batch.table import COLUMNS, frame, read_table

CHROMIUM = "/usr/bin/chromium"
HOSTILE = '<img src=x onerror="window.__pwned=1">'
PLACES = ["Berlin", "Bern", "Hamburg", "Munich", HOSTILE]


def _table() -> pd.DataFrame:
    """Three dates × five places × two indices, estimates known; one failed job."""
    rows = []
    for d, date in enumerate(("2015", "2016", "2017")):
        for p, place in enumerate(PLACES):
            for index in ("dissimilarity", "isolation"):
                est = 0.1 * (p + 1) + 0.01 * d
                rows.append(
                    {"place": place, "date": date, "group": "foreign", "index": index, "value": est + 0.005,
                     "value_bias_corrected": est, "ci_low": est - 0.02, "ci_high": est + 0.02, "p_value": 0.01,
                     "n_areas": 50 + p, "population": 1000.0 * (p + 1), "status": "ok"}
                )  # fmt: skip
    rows.append({"place": "Broken </script><b>x</b>", "date": "2017", "status": "failed", "error": "file not found"})
    return frame(rows)


@pytest.fixture(scope="module")
def table():
    return _table()


@pytest.fixture(scope="module")
def page(table, tmp_path_factory):
    playwright_api = pytest.importorskip("playwright.sync_api", reason="playwright for Python is not installed")
    if not os.path.exists(CHROMIUM):
        pytest.skip("Debian chromium not installed at /usr/bin/chromium")
    path = tmp_path_factory.mktemp("report") / "report.html"
    write_report(table, path)
    with playwright_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=["--no-sandbox"])
        context = browser.new_context(viewport={"width": 1200, "height": 900})
        page = context.new_page()
        page.foreign, page.errors = [], []

        def route(r):
            if urlparse(r.request.url).scheme in ("file", "data", "about"):
                r.continue_()
            else:
                page.foreign.append(r.request.url)
                r.abort()

        context.route("**/*", route)
        page.on("console", lambda m: page.errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: page.errors.append(str(e)))
        page.goto(path.as_uri())
        page.wait_for_selector("html[data-segmap-ready]", timeout=15000)
        yield page
        browser.close()


def _ranking(page) -> list[str]:
    return page.eval_on_selector_all("#rank-svg g.row", "gs => gs.map(g => g.getAttribute('data-place'))")


def test_ranked_dot_plot_with_intervals(page):
    # Latest date, first index: every place, highest estimate first, one interval each.
    assert _ranking(page) == PLACES[::-1]
    assert page.locator("#rank-svg line.interval").count() == len(PLACES)
    title = page.locator("#rank-title").text_content()
    assert "dissimilarity" in title and "2017" in title
    page.select_option("#date", label="2015")
    assert "2015" in page.locator("#rank-title").text_content() and len(_ranking(page)) == len(PLACES)
    assert page.errors == [] and page.foreign == []


def test_search_and_trajectories(page):
    assert page.locator("#trend-svg path.line").count() == len(PLACES)  # one trajectory per place
    page.fill("#search", "ber")
    assert _ranking(page) == ["Bern", "Berlin"]
    assert sorted(page.eval_on_selector_all("#trend-svg path.line.match", "ps => ps.map(p => p.dataset.place)")) == [
        "Berlin",
        "Bern",
    ]
    # The matched places' values over time, as a table: 3 dates each.
    assert page.locator("#trend-table tr").count() == 1 + 2 * 3
    page.fill("#search", "nowhere")
    assert _ranking(page) == [] and page.locator("#empty").is_visible()
    page.fill("#search", "")
    page.locator("#rank-svg g.row").first.click()  # a click picks one place's trajectory
    assert page.locator("#trend-svg path.line.match").count() == 1


def test_hostile_names_are_text(page):
    page.fill("#search", "")
    assert page.evaluate("window.__pwned") is None
    assert page.locator("#rank-svg img").count() == 0 and page.locator("#failed b").count() == 0
    assert HOSTILE in _ranking(page)
    assert "Broken </script><b>x</b>" in page.locator("#failed").text_content()
    assert page.errors == [] and page.foreign == []


@pytest.fixture(scope="module")
def client(tmp_path_factory):
    from fastapi.testclient import TestClient

    from app.main import create_app
    from app.settings import Settings

    settings = Settings(data_dir=tmp_path_factory.mktemp("batch-api"), register_bundled=False)
    with TestClient(create_app(settings)) as c:
        yield c


def _parquet(df: pd.DataFrame) -> bytes:
    buf = io.BytesIO()
    df.to_parquet(buf, index=False)
    return buf.getvalue()


def test_service_keeps_a_valid_table_and_serves_the_same_report(client, table):
    r = client.post("/v1/batch-results", files={"table": ("results.parquet", _parquet(table))})
    assert r.status_code == 201, r.text
    body = r.json()
    assert body["rows"] == len(table) and body["jobs"] == 16
    again = client.post("/v1/batch-results", files={"table": ("results.parquet", _parquet(table))})
    assert again.json()["id"] == body["id"]  # the id is the content's
    page = client.get(f"/v1/batch-results/{body['id']}")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    expected = render_report(read_table(_parquet(table)), f"segmap batch report {body['id']}")
    assert page.text == expected
    assert "<img src=x" not in page.text and "</script><b>" not in page.text
    assert client.get(page.url, headers={"If-None-Match": page.headers["etag"]}).status_code == 304


@pytest.mark.parametrize(
    "upload, words",
    [
        (b"place,date\nA,2020\n", "not Parquet"),
        (_parquet(pd.DataFrame({"place": ["A"], "value": [1.0]})), "lacks columns"),
        (_parquet(_table().assign(status="evil")), "Unknown status"),
        (_parquet(_table().assign(value=np.inf)), "infinite"),
        (_parquet(_table().assign(value="text")), "wrong types"),
    ],
)
def test_service_refuses_what_is_not_a_result_table(client, upload, words):
    r = client.post("/v1/batch-results", files={"table": ("results.parquet", upload)})
    assert r.status_code == 422 and r.headers["content-type"].startswith("application/problem+json"), r.text
    assert words in r.text, r.text


def test_unknown_result_is_404(client):
    for ident in ("0123456789abcdef", "..%2F..%2Fetc", "x" * 64):
        r = client.get(f"/v1/batch-results/{ident}")
        assert r.status_code == 404, (ident, r.text)
    assert list(COLUMNS[:3]) == ["place", "date", "group"]
