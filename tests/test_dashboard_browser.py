"""The dashboards as a person sees them: headless Chromium logs in, opens each dashboard and
waits for every chart.

A chart can import and still render an error box or nothing (a wrong viz param, a missing
metric, a CSP block); only a browser sees that. Every request that would leave this machine
is aborted and recorded, so the dashboards are shown to work offline (the world map draws
from the topology bundled with Superset, no tile server). Screenshots are kept under
``<home>/screenshots/`` for a human to look at.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from playwright.sync_api import Browser, BrowserContext, Page, Route, expect, sync_playwright

from safeguard.config import HEADLESS_CHROMIUM_ARGS, chromium_path
from safeguard.superset.bundle import dashboards_in_bundle, read_bundle
from safeguard.superset.client import SupersetClient
from safeguard.superset.server import ADMIN_USERNAME, SupersetServer

pytest_plugins = ["safeguard.superset.testing"]
pytestmark = [pytest.mark.superset, pytest.mark.browser]

CHROMIUM = chromium_path()
CHROMIUM_ARGS = list(HEADLESS_CHROMIUM_ARGS)
TIMEOUT_MS = 90_000

SOURCE = Path(__file__).resolve().parents[1] / "dashboards"
DASHBOARDS = {d["slug"]: d for d in dashboards_in_bundle(SOURCE)}
VIZ = {str(c["uuid"]): c["viz_type"] for n, c in read_bundle(SOURCE).items()
       if n.startswith("charts/")}

SYNTHETIC = "SYNTHETIC SAMPLE DATA — not real cases; do not cite"
ILLUSTRATIVE = "per-country values illustrative; totals as published by ICMEC"
#: What each dashboard must say on its face, and the sources it must name.
FACE = {
    "leadership-overview": [SYNTHETIC, "NCMEC CyberTipline data (published figures)",
                            "Model Legislation & Global Review"],
    "grooming-stages-channels": [SYNTHETIC, "sample_hotline_cases"],
    "global-legislation": [ILLUSTRATIVE, "Model Legislation & Global Review"],
    "hotline-operations": [SYNTHETIC, "sample_hotline_cases"],
    "published-figures": ["real, as published, each with its source",
                          "NCMEC CyberTipline data (published figures)", "IWF", "INHOPE",
                          "Cybertip.ca"],
}
#: Figures that must appear in a chart: published figures, exactly as published.
FIGURES = {
    "leadership-overview": {
        "Online enticement, change 2019 to 2020 (%)": ["+97.5"],
        "Published figures by year": ["80,524", "32,059,029",
                                      "Online enticement of children for sexual acts"],
        "Countries with dedicated grooming law, 1st edition": ["63"],
        "Countries with dedicated grooming law, 2nd edition": ["77"],
    },
    "published-figures": {
        # each publisher's figures, as published (IWF 2023, INHOPE 2023, Cybertip.ca 2022)
        "Published figures and their sources": ["392,665", "Internet Watch Foundation (IWF)"],
    },
    "global-legislation": {
        "Countries with dedicated grooming law, 1st edition": ["63"],
        "Countries with dedicated grooming law, 2nd edition": ["77"],
    },
}
#: How a drawn chart shows in the DOM, per viz type.
DRAWN = {
    "big_number_total": ".header-line",
    "table": "table",
    "world_map": "svg path.datamaps-subunit",
    "pie": "canvas, svg",
    "echarts_timeseries_bar": "canvas, svg",
    "echarts_timeseries_line": "canvas, svg",
}
#: Charts whose empty result is a good outcome (no warnings), shown as Superset's empty state.
MAY_BE_EMPTY = {"Data-quality notes on published sources"}
#: Superset's UI embeds a telemetry pixel (Scarf) on every page; our CSP blocks it and this
#: test aborts it. Nothing else may try to leave the machine.
TELEMETRY_HOSTS = {"apachesuperset.gateway.scarf.sh"}
LOOPBACK = {"127.0.0.1", "localhost", "::1", "[::1]"}


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


@pytest.fixture(scope="module")
def outside_requests() -> list[str]:
    return []


@pytest.fixture(scope="module")
def session(browser: Browser, superset_server: SupersetServer,
            outside_requests: list[str]) -> Iterator[BrowserContext]:
    """One logged-in browser session for all dashboards; requests off this machine are
    aborted and recorded."""
    context = browser.new_context(viewport={"width": 1400, "height": 1100})
    context.set_default_timeout(TIMEOUT_MS)

    def offline(route: Route) -> None:
        if urlsplit(route.request.url).hostname in LOOPBACK:
            route.continue_()
        else:
            outside_requests.append(route.request.url)
            route.abort()

    context.route(re.compile(r"^https?://"), offline)
    page = context.new_page()
    _log_in(page, superset_server)
    page.close()
    yield context
    context.close()


@pytest.fixture()
def page(session: BrowserContext) -> Iterator[Page]:
    page = session.new_page()
    expect.set_options(timeout=TIMEOUT_MS)  # a cold Superset takes a while on first render
    yield page
    page.close()


def _log_in(page: Page, server: SupersetServer) -> None:
    page.goto(f"{server.url}/login/")
    page.get_by_test_id("username-input").fill(ADMIN_USERNAME)
    page.get_by_test_id("password-input").fill(server.admin_password)
    page.get_by_test_id("login-button").click()
    page.wait_for_url(re.compile(r"/superset/welcome/|/dashboard/list/|/superset/"))


def _row_counts(client: SupersetClient, charts: list[dict[str, str]]) -> dict[str, int]:
    """How many rows each chart's query returns, to tell an empty state that is right from
    one that is a fault."""
    ids = {str(r["uuid"]): r["id"] for r in client.list_all("chart", ["id", "uuid"])}
    counts = {}
    for chart in charts:
        payload = client.get_json(f"/api/v1/chart/{ids[chart['uuid']]}/data/")
        counts[chart["name"]] = payload["result"][0]["rowcount"]
    return counts


@pytest.mark.parametrize("slug", sorted(FACE))
def test_dashboard_renders_every_chart(slug: str, superset_server: SupersetServer,
                                       superset_client: SupersetClient, page: Page,
                                       outside_requests: list[str]) -> None:
    dashboard = DASHBOARDS[slug]
    rows = _row_counts(superset_client, dashboard["charts"])
    page.goto(f"{superset_server.url}/superset/dashboard/{slug}/")

    expect(page.get_by_test_id("chart-grid-component")).to_have_count(len(dashboard["charts"]))
    for text in FACE[slug]:
        expect(page.get_by_text(text, exact=False).first).to_be_visible()
    # the native filters are on the filter bar
    filters = page.get_by_test_id("filter-bar").get_by_test_id("filter-control-name")
    expect(filters.first).to_be_visible()

    for chart in dashboard["charts"]:
        holder = page.locator(f"[data-test-chart-name={json.dumps(chart['name'])}]")
        holder.scroll_into_view_if_needed()  # charts below the fold may render on sight
        body = holder.locator(".dashboard-chart")
        expect(body.get_by_test_id("loading-indicator")).to_have_count(0)
        expect(body.locator("[role='alert']")).to_have_count(0)  # no error box
        if rows[chart["name"]] == 0:
            assert chart["name"] in MAY_BE_EMPTY, f"{chart['name']}: the query found no rows"
            expect(body).to_contain_text("No results")
            continue
        expect(body).not_to_contain_text("No results")
        expect(body.locator(DRAWN[VIZ[chart["uuid"]]]).first).to_be_visible()
        for text in FIGURES.get(slug, {}).get(chart["name"], []):
            expect(body.get_by_text(text, exact=True).first).to_be_visible()
        if VIZ[chart["uuid"]] == "world_map":
            # countries coloured by law status (two colours) besides the grey of "not reviewed"
            countries = body.locator("svg path.datamaps-subunit")
            assert countries.count() > 150
            fills = countries.evaluate_all(
                "els => [...new Set(els.map(e => getComputedStyle(e).fill))]")
            assert len(fills) >= 3, fills

    page.evaluate("window.scrollTo(0, 0)")  # or the sticky header lands mid-picture
    page.wait_for_timeout(1500)  # let echarts finish its entry animation for the picture
    shots = superset_server.settings.home / "screenshots"
    shots.mkdir(parents=True, exist_ok=True)
    shot = shots / f"{slug}.png"
    # a busy machine may catch the grid between two paints (blank, ~45 kB): look again
    for _ in range(3):
        page.screenshot(path=str(shot), full_page=True)
        if shot.stat().st_size > 50_000:
            break
        page.wait_for_timeout(3000)
    assert shot.stat().st_size > 50_000

    outside = {urlsplit(u).hostname for u in outside_requests}
    assert outside <= TELEMETRY_HOSTS, f"requests off this machine: {sorted(outside)}"
