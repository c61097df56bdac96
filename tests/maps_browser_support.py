"""Shared by the map pages' browser tests (linked views, URL state, accessibility): one Chromium per module (Debian's
/usr/bin/chromium), pages watched for requests to other hosts and for script errors, and where screenshots go."""

from __future__ import annotations

import os
from pathlib import Path
from urllib.parse import urlparse

import httpx
import pytest

CHROMIUM = "/usr/bin/chromium"
ROOT = Path(__file__).resolve().parents[1]
# Screenshots are test artefacts: SEGMAP_ARTIFACTS, else tests/artifacts/ (gitignored).
ARTIFACTS = Path(os.environ.get("SEGMAP_ARTIFACTS", ROOT / "tests" / "artifacts"))
AXE = ROOT / "tests" / "vendor" / "axe-core" / "axe.min.js"


def require_chromium():
    api = pytest.importorskip("playwright.sync_api", reason="playwright for Python is not installed")
    if not os.path.exists(CHROMIUM):
        pytest.skip("Debian chromium not installed at /usr/bin/chromium", allow_module_level=True)
    return api


@pytest.fixture(scope="module")
def browser():
    api = require_chromium()
    with api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=["--no-sandbox"])
        yield b
        b.close()


@pytest.fixture(scope="module")
def city(live_server):
    """The first dataset a new user sees (Berlin's planning areas once bundled, else Georgia) and a group of it."""
    rows = httpx.get(f"{live_server}/v1/datasets", timeout=60).json()
    ids = [r["id"] for r in (rows if isinstance(rows, list) else rows.get("datasets", rows))]
    for wanted, group in (("berlin-2020", "foreigners"), ("georgia-1990", "black")):
        if wanted in ids:
            return {"id": wanted, "group": group}
    pytest.skip(f"neither Berlin nor Georgia is registered: {ids[:5]}")


class Watch:
    """A page whose requests to other hosts are aborted and recorded, with console errors."""

    def __init__(self, browser, width: int = 1280, height: int = 800, locale: str = "en-GB", scale: float = 1):
        self.context = browser.new_context(
            viewport={"width": width, "height": height}, locale=locale, device_scale_factor=scale
        )
        self.page = self.context.new_page()
        self.foreign, self.errors = [], []

        def route(r):
            url = urlparse(r.request.url)
            if url.scheme in ("data", "blob", "about") or url.hostname == "127.0.0.1":
                r.continue_()
            else:
                self.foreign.append(r.request.url)
                r.abort()

        self.context.route("**/*", route)
        self.page.on("console", lambda m: self.errors.append(m.text) if m.type == "error" else None)
        self.page.on("pageerror", lambda e: self.errors.append(str(e)))

    def open(self, url: str):
        self.page.goto(url, timeout=300_000)
        self.page.wait_for_selector("html[data-segmap-ready]", timeout=300_000)
        return self.page

    def clean(self):
        assert self.foreign == [] and self.errors == [], (self.foreign, self.errors)

    def close(self):
        self.context.close()


def shot(page, name: str, tries: int = 30) -> Path:
    """A screenshot once painting has settled (two frames alike), taken from the compositor's surface: Playwright's
    own capture left parts of the scrolled side panel unpainted on a loaded machine."""
    import base64

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / name
    cdp = page.context.new_cdp_session(page)

    def capture() -> bytes:
        return base64.b64decode(cdp.send("Page.captureScreenshot", {"format": "png", "fromSurface": True})["data"])

    before = capture()
    for _ in range(tries):
        page.wait_for_timeout(300)
        now = capture()
        if now == before:
            break
        before = now
    cdp.detach()
    path.write_bytes(now)
    return path


def show_view(page, view: str) -> None:
    """Switch the embedded page to ``view`` with its layer control (the radio of the view's shown title)."""
    title = page.evaluate("v => Object.keys(window.segmap.cfg.names).find(k => window.segmap.cfg.names[k] === v)", view)
    page.get_by_role("radio", name=title).check()
    page.wait_for_function("v => window.segmap.page.view() === v", arg=view)
