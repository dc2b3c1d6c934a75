"""The dashboard as a person sees it: headless Chromium logs in and waits for every chart.

A chart can import and still render an error box or nothing (a wrong viz param, a missing
metric, a CSP block); only a browser sees that. The screenshot is kept under
``<home>/screenshots/`` for a human to look at.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, expect, sync_playwright

from safeguard.superset.server import ADMIN_USERNAME, SupersetServer

pytest_plugins = ["safeguard.superset.testing"]
pytestmark = [pytest.mark.superset, pytest.mark.browser]

CHROMIUM = os.environ.get("SAFEGUARD_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--no-first-run",
]
CHART_COUNT = 3
TIMEOUT_MS = 90_000


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """Debian's Chromium, headless; Playwright gives each launch a fresh temporary profile."""
    if not Path(CHROMIUM).exists():
        pytest.fail(f"No Chromium at {CHROMIUM}: `apt-get install chromium` or set "
                    "SAFEGUARD_CHROMIUM (never `playwright install`: no downloads here).")
    with sync_playwright() as p:
        p.selectors.set_test_id_attribute("data-test")  # Superset's attribute, not data-testid
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture()
def page(browser: Browser) -> Iterator[Page]:
    page = browser.new_page(viewport={"width": 1400, "height": 1100})
    page.set_default_timeout(TIMEOUT_MS)
    expect.set_options(timeout=TIMEOUT_MS)  # a cold Superset takes a while on first render
    yield page
    page.close()


def _log_in(page: Page, server: SupersetServer) -> None:
    page.goto(f"{server.url}/login/")
    page.get_by_test_id("username-input").fill(ADMIN_USERNAME)
    page.get_by_test_id("password-input").fill(server.admin_password)
    page.get_by_test_id("login-button").click()
    page.wait_for_url(re.compile(r"/superset/welcome/|/dashboard/list/|/superset/"))


def test_dashboard_renders_charts(superset_server: SupersetServer, page: Page) -> None:
    _log_in(page, superset_server)
    page.goto(f"{superset_server.url}/superset/dashboard/online-enticement/")

    charts = page.get_by_test_id("chart-grid-component")
    expect(charts).to_have_count(CHART_COUNT)
    # each chart has drawn something: echarts a canvas/svg, Big Number and the table their text
    line = page.locator("[data-test-chart-name='Online enticement reports by year']")
    expect(line.locator("canvas, svg").first).to_be_visible()
    change = page.locator("[data-test-chart-name='Online enticement, change 2019 to 2020 (%)']")
    expect(change.get_by_text("+97.5", exact=True)).to_be_visible()
    table = page.locator("[data-test-chart-name='Published figures by year']")
    expect(table.locator("table").first).to_be_visible()  # header and body are two tables
    expect(table).to_contain_text("80,524")
    expect(table).to_contain_text("32,059,029")
    expect(table).to_contain_text("Online enticement of children for sexual acts")
    expect(page.get_by_text("published aggregates, not case data")).to_be_visible()
    expect(page.get_by_text("NCMEC CyberTipline published figures")).to_be_visible()
    # no chart ended in an error box, no spinner is left
    expect(page.get_by_test_id("loading-indicator")).to_have_count(0)
    expect(page.locator(".ant-alert-error, [role='alert']:has-text('error')")).to_have_count(0)

    shots = superset_server.settings.home / "screenshots"
    shots.mkdir(parents=True, exist_ok=True)
    page.wait_for_timeout(1000)  # let echarts finish its entry animation for the picture
    page.screenshot(path=str(shots / "online-enticement.png"), full_page=True)
    assert (shots / "online-enticement.png").stat().st_size > 20_000
