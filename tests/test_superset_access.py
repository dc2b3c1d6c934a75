"""Least privilege in Superset, end to end: each kind of user logs in through the real login
(the API's JWT login, the web form, a browser) and gets what its role allows and no more.

The roles are defined in ``src/safeguard/superset/access.py`` and made at bootstrap; each
database of the bundle connects as its own warehouse role. Leadership reads the published
dashboards (the ``viewer`` connection: ``reporting`` only), Analyst also explores and runs
SQL Lab through the ``analyst`` connection, anonymous visitors get nothing. Needs the Superset
environment and the ``pipeline_done`` fixture, so every chart has data to return.
"""

from __future__ import annotations

import json
import re
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import psycopg
import pytest
from playwright.sync_api import Response, expect, sync_playwright

from safeguard.config import HEADLESS_CHROMIUM_ARGS, chromium_path
from safeguard.config import ROLES as WAREHOUSE_ROLES
from safeguard.superset.access import (
    DATABASE_ROLES,
    DEMO_USERS,
    ROLES,
    database_roles,
    grant_databases,
)
from safeguard.superset.bundle import dashboards_in_bundle, read_bundle
from safeguard.superset.client import SupersetClient
from safeguard.superset.server import ADMIN_USERNAME, SupersetError, SupersetServer

pytest_plugins = ["safeguard.superset.testing"]
pytestmark = pytest.mark.superset

ROOT = Path(__file__).resolve().parents[1]
SOURCE = ROOT / "dashboards"
BUNDLE = read_bundle(SOURCE)
DATABASE_ROLE = database_roles(SOURCE)  # {database uuid: warehouse role}
(VIEWER_DB,) = (u for u, r in DATABASE_ROLE.items() if r == "viewer")
ANALYST_DB = "43ea0800-be41-40c2-aee3-3a095bae119b"
DATASET_DB = {str(c["uuid"]): str(c["database_uuid"])
              for n, c in BUNDLE.items() if n.startswith("datasets/")}
CHART_DB = {str(c["uuid"]): DATASET_DB[str(c["dataset_uuid"])]
            for n, c in BUNDLE.items() if n.startswith("charts/")}
DASHBOARDS = {d["slug"]: d for d in dashboards_in_bundle(SOURCE)}


def _databases_of(slug: str) -> set[str]:
    return {CHART_DB[c["uuid"]] for c in DASHBOARDS[slug]["charts"]}


#: Dashboards on the published layer only: what Leadership is for.
PUBLISHED = sorted(s for s in DASHBOARDS if _databases_of(s) == {VIEWER_DB})
#: Dashboards with a chart on the analyst connection (e.g. "Pipeline health"): analysts only.
ANALYSTS_ONLY = sorted(s for s in DASHBOARDS if ANALYST_DB in _databases_of(s))

SELECT_MARTS = "select count(*) as n from marts.dim_channels"
WRITES = [
    "delete from marts.dim_channels",
    "update marts.dim_channels set channel_name = channel_name",
    "insert into marts.dim_channels select * from marts.dim_channels",
    "create table marts.copy_of_channels as select * from marts.dim_channels",
    "with gone as (delete from marts.dim_channels returning *) select count(*) from gone",
    "select 1; drop table marts.dim_channels",
]


# --- logging in ------------------------------------------------------------------------------
def _login(server: SupersetServer, username: str) -> SupersetClient:
    """JWT login through ``/api/v1/security/login`` (plus the CSRF token a POST needs)."""
    return SupersetClient(server.url, username, server.password(username))


@contextmanager
def _web_login(server: SupersetServer, username: str, password: str) -> Iterator[httpx.Client]:
    """The login form, as a browser submits it: the page's CSRF token, then the POST; the
    session cookie is the login."""
    with httpx.Client(base_url=server.url, timeout=120,
                      headers={"Referer": f"{server.url}/"}) as http:
        form = http.get("/login/")
        match = re.search(r'id="csrf_token"\s+value="([^"]+)"', form.text)
        assert match, "no CSRF token on the login page"
        http.post("/login/", data={"username": username, "password": password,
                                   "csrf_token": match.group(1)})
        yield http


def _logged_in(http: httpx.Client) -> bool:
    return http.get("/api/v1/me/").status_code == 200


@pytest.fixture(scope="module")
def admin(superset_server: SupersetServer) -> Iterator[SupersetClient]:
    with _login(superset_server, ADMIN_USERNAME) as client:
        yield client


@pytest.fixture(scope="module")
def leader(superset_server: SupersetServer) -> Iterator[SupersetClient]:
    with _login(superset_server, "leader") as client:
        yield client


@pytest.fixture(scope="module")
def analyst(superset_server: SupersetServer) -> Iterator[SupersetClient]:
    with _login(superset_server, "analyst") as client:
        yield client


@pytest.fixture(scope="module")
def db_ids(admin: SupersetClient) -> dict[str, int]:
    """``{database uuid: this server's id}``."""
    return {str(r["uuid"]): r["id"] for r in admin.list_all("database", ["id", "uuid"])}


@pytest.fixture(scope="module")
def chart_ids(admin: SupersetClient) -> dict[str, int]:
    return {str(r["uuid"]): r["id"] for r in admin.list_all("chart", ["id", "uuid"])}


@pytest.fixture()
def marts_dataset(admin: SupersetClient, db_ids: dict[str, int]) -> Iterator[int]:
    """A dataset on a marts table through the analyst connection, made for the test and
    deleted after it (the bundle's own analyst datasets may change; this one does not)."""
    r = admin.request("POST", "/api/v1/dataset/", json={
        "database": db_ids[ANALYST_DB], "schema": "marts", "table_name": "dim_channels"})
    dataset_id = r.json()["id"]
    try:
        yield dataset_id
    finally:
        admin.request("DELETE", f"/api/v1/dataset/{dataset_id}")


def _sql(client: SupersetClient, database_id: int, sql: str) -> httpx.Response:
    return client.http.post("/api/v1/sqllab/execute/", json={
        "database_id": database_id, "sql": sql, "runAsync": False, "schema": "marts"})


def _chart_data(client: SupersetClient, dataset_id: int) -> httpx.Response:
    """What explore posts for a table chart of the dataset's rows."""
    return client.http.post("/api/v1/chart/data", json={
        "datasource": {"id": dataset_id, "type": "table"},
        "queries": [{"columns": ["channel_name"], "metrics": [], "row_limit": 10}],
        "result_format": "json", "result_type": "full"})


def _role_permissions(admin: SupersetClient) -> dict[str, set[tuple[str, str]]]:
    roles = admin.get_json("/api/v1/security/roles/", params={"q": "(page_size:100)"})["result"]
    return {r["name"]: {(p["permission_name"], p["view_menu_name"]) for p in admin.get_json(
                f"/api/v1/security/roles/{r['id']}/permissions/")["result"]}
            for r in roles}


# --- roles and users as bootstrap made them --------------------------------------------------
#: What each role must not have, whatever the allow-lists in access.py come to say.
NEVER = {
    "Leadership": {("can_execute_sql_query", "SQLLab"), ("can_sqllab", "Superset"),
                   ("can_explore", "Superset"), ("can_read", "Explore"),
                   ("can_read", "Dataset"), ("can_read", "Database"), ("can_write", "Chart"),
                   ("can_write", "Dashboard"), ("can_csv", "Superset"),
                   ("can_export", "Dashboard"), ("can_samples", "Datasource")},
    "Analyst": {("can_write", "Dataset"), ("can_write", "Dashboard"), ("can_write", "Database"),
                ("can_upload", "Database"), ("can_csv", "Superset"),
                ("can_export_csv", "SQLLab"), ("can_export_streaming_csv", "SQLLab"),
                ("can_read", "security"), ("can_read", "User"), ("can_read", "Role"),
                ("all_database_access", "all_database_access"),
                ("all_datasource_access", "all_datasource_access"),
                ("all_query_access", "all_query_access")},
}


def test_roles_have_exactly_their_permissions_and_public_has_none(
        admin: SupersetClient, db_ids: dict[str, int]) -> None:
    perms = _role_permissions(admin)
    names = {str(r["uuid"]): r["database_name"]
             for r in admin.list_all("database", ["uuid", "database_name"])}

    def grant(uuid: str) -> tuple[str, str]:
        return ("database_access", f"[{names[uuid]}].(id:{db_ids[uuid]})")

    assert perms["Leadership"] == set(ROLES["Leadership"][0]) | {grant(VIEWER_DB)}
    assert perms["Analyst"] == set(ROLES["Analyst"][0]) | {grant(VIEWER_DB), grant(ANALYST_DB)}
    assert perms["Public"] == set(), "anonymous visitors must get nothing"
    for role, never in NEVER.items():
        assert perms[role] & never == set(), role
    # the database grants are idempotent: a second run changes nothing
    assert grant_databases(admin, SOURCE) == {
        "Leadership": ["Safeguard warehouse"],
        "Analyst": ["Safeguard warehouse", "Safeguard warehouse (analyst)"]}
    assert _role_permissions(admin) == perms


def test_demo_users_have_exactly_their_role(admin: SupersetClient) -> None:
    users = admin.get_json("/api/v1/security/users/", params={"q": "(page_size:100)"})["result"]
    roles = {u["username"]: sorted(r["name"] for r in u["roles"]) for u in users}
    assert roles[ADMIN_USERNAME] == ["Admin"]
    for username, (role, _) in DEMO_USERS.items():
        assert roles[username] == [role], username


def test_passwords_are_generated_into_secrets_env_and_never_in_git(
        superset_server: SupersetServer) -> None:
    settings = superset_server.settings
    stored = settings.secrets_file.read_text()
    assert oct(settings.secrets_file.stat().st_mode)[-3:] == "600"
    for name in ("SUPERSET_SECRET_KEY", "SUPERSET_ADMIN_PASSWORD", "SUPERSET_LEADER_PASSWORD",
                 "SUPERSET_ANALYST_PASSWORD"):
        value = settings.secret(name)
        assert f"{name}={value}\n" in stored
        found = subprocess.run(["git", "grep", "--untracked", "-l", "-F", "-e", value],
                               cwd=ROOT, capture_output=True, text=True)
        if found.returncode == 128 and "not a git repository" in found.stderr:
            pytest.skip("not a git checkout: nothing to search")
        # 1: no match in any tracked or untracked, not ignored, file
        assert found.returncode == 1 and not found.stdout, f"{name} found in {found.stdout}"


def test_wrong_password_gets_no_session(superset_server: SupersetServer) -> None:
    with pytest.raises(SupersetError, match="HTTP 401"):
        SupersetClient(superset_server.url, "leader", "not-the-password")
    with _web_login(superset_server, "leader", "not-the-password") as http:
        assert not _logged_in(http)


# --- Leadership: the published dashboards, nothing else --------------------------------------
def test_leader_sees_the_published_dashboards_only(leader: SupersetClient) -> None:
    listed = {d["slug"] for d in leader.list_all("dashboard", ["slug"])}
    assert listed == set(PUBLISHED)


@pytest.mark.parametrize("slug", PUBLISHED)
def test_leader_opens_dashboard_and_gets_every_charts_data(
        slug: str, leader: SupersetClient, chart_ids: dict[str, int],
        superset_server: SupersetServer) -> None:
    dashboard = leader.get_json(f"/api/v1/dashboard/{slug}")["result"]
    assert dashboard["published"]
    charts = leader.get_json(f"/api/v1/dashboard/{slug}/charts")["result"]
    assert {c["id"] for c in charts} == {chart_ids[c["uuid"]]
                                         for c in DASHBOARDS[slug]["charts"]}
    for chart in DASHBOARDS[slug]["charts"]:
        r = leader.http.get(f"/api/v1/chart/{chart_ids[chart['uuid']]}/data/")
        assert r.status_code == 200, (chart["name"], r.status_code, r.text[:300])
        assert r.json()["result"][0]["status"] == "success", chart["name"]
    # the page itself, through the login form
    with _web_login(superset_server, "leader", superset_server.password("leader")) as http:
        page = http.get(f"/superset/dashboard/{slug}/")
        assert page.status_code == 200, page.status_code
        assert DASHBOARDS[slug]["title"] in page.text


def test_leader_is_refused_sql_lab(leader: SupersetClient, db_ids: dict[str, int],
                                   superset_server: SupersetServer) -> None:
    for uuid in (VIEWER_DB, ANALYST_DB):
        r = _sql(leader, db_ids[uuid], "select 1 as n")
        assert r.status_code == 403, (uuid, r.status_code, r.text[:300])
    for path in ("/api/v1/sqllab/", "/api/v1/saved_query/", "/api/v1/query/"):
        assert leader.http.get(path).status_code == 403, path
    with _web_login(superset_server, "leader", superset_server.password("leader")) as http:
        assert _logged_in(http)
        for page in ("/sqllab/", "/explore/", "/tablemodelview/list/", "/users/"):
            assert http.get(page).status_code == 403, page


def test_leader_is_refused_datasets_and_databases(
        leader: SupersetClient, db_ids: dict[str, int]) -> None:
    for path in ("/api/v1/database/", f"/api/v1/database/{db_ids[ANALYST_DB]}",
                 f"/api/v1/database/{db_ids[ANALYST_DB]}/schemas/",
                 f"/api/v1/database/{db_ids[VIEWER_DB]}", "/api/v1/dataset/",
                 "/api/v1/security/users/", "/api/v1/security/roles/"):
        r = leader.http.get(path)
        assert r.status_code == 403, (path, r.status_code)


@pytest.mark.skipif(not ANALYSTS_ONLY, reason="no dashboard on the analyst connection yet")
@pytest.mark.parametrize("slug", ANALYSTS_ONLY)
def test_leader_cannot_open_analyst_dashboards(
        slug: str, leader: SupersetClient, analyst: SupersetClient,
        chart_ids: dict[str, int]) -> None:
    assert leader.http.get(f"/api/v1/dashboard/{slug}").status_code in (403, 404)
    assert analyst.http.get(f"/api/v1/dashboard/{slug}").status_code == 200
    for chart in DASHBOARDS[slug]["charts"]:
        if CHART_DB[chart["uuid"]] == ANALYST_DB:
            r = leader.http.get(f"/api/v1/chart/{chart_ids[chart['uuid']]}/data/")
            assert r.status_code in (403, 404), (chart["name"], r.status_code)


def test_leader_cannot_query_a_dataset_on_the_analyst_database(
        marts_dataset: int, leader: SupersetClient, analyst: SupersetClient) -> None:
    refused = _chart_data(leader, marts_dataset)
    assert refused.status_code == 403, (refused.status_code, refused.text[:300])
    assert "channel_name" not in refused.text
    allowed = _chart_data(analyst, marts_dataset)  # the same request, by an analyst
    assert allowed.status_code == 200, allowed.text[:300]
    assert allowed.json()["result"][0]["rowcount"] > 0


# --- Analyst: SQL Lab through the analyst connection, read only ------------------------------
def test_analyst_queries_marts_and_reporting_in_sql_lab(
        analyst: SupersetClient, db_ids: dict[str, int]) -> None:
    r = _sql(analyst, db_ids[ANALYST_DB], SELECT_MARTS)
    assert r.status_code == 200, r.text[:300]
    assert r.json()["data"][0]["n"] > 0
    r = _sql(analyst, db_ids[ANALYST_DB],
             "select count(*) as n from reporting.rpt_published_figures_yearly")
    assert r.status_code == 200 and r.json()["data"][0]["n"] > 0, r.text[:300]


@pytest.mark.parametrize("sql", WRITES)
def test_analyst_cannot_write(sql: str, analyst: SupersetClient, db_ids: dict[str, int],
                              warehouse: psycopg.Connection) -> None:
    before = warehouse.execute("select count(*) from marts.dim_channels").fetchone()
    r = _sql(analyst, db_ids[ANALYST_DB], sql)
    assert r.status_code != 200
    assert r.json()["errors"][0]["error_type"] == "DML_NOT_ALLOWED_ERROR", r.text[:300]
    assert warehouse.execute("select count(*) from marts.dim_channels").fetchone() == before
    assert warehouse.execute(
        "select to_regclass('marts.copy_of_channels')").fetchone() == (None,)


def test_sql_lab_offers_only_the_analyst_database(
        analyst: SupersetClient, superset_server: SupersetServer) -> None:
    # the query SQL Lab's database picker sends
    offered = analyst.get_json("/api/v1/database/", params={
        "q": "(filters:!((col:expose_in_sqllab,opr:eq,value:!t)),page_size:100)"})["result"]
    assert [str(d["uuid"]) for d in offered] == [ANALYST_DB]
    with _web_login(superset_server, "analyst", superset_server.password("analyst")) as http:
        assert http.get("/sqllab/").status_code == 200


@pytest.mark.parametrize("user", [ADMIN_USERNAME, "analyst"])
@pytest.mark.parametrize("schema", ["raw", "quarantine"])
def test_analyst_database_cannot_read_raw_or_quarantine(
        user: str, schema: str, superset_server: SupersetServer, db_ids: dict[str, int],
        warehouse: psycopg.Connection) -> None:
    """Not even the admin, whom Superset lets use every database: the analyst connection's
    PostgreSQL role has no access to these schemas."""
    (table,) = warehouse.execute(
        "select table_name from information_schema.tables where table_schema = %s "
        "order by table_name limit 1", [schema]).fetchone()
    with _login(superset_server, user) as client:
        r = _sql(client, db_ids[ANALYST_DB], f'select count(*) from {schema}."{table}"')
    assert r.status_code != 200
    assert f"permission denied for schema {schema}" in r.text, r.text[:300]


def test_analyst_connection_uses_the_analyst_role(
        admin: SupersetClient, db_ids: dict[str, int]) -> None:
    detail = admin.get_json(f"/api/v1/database/{db_ids[ANALYST_DB]}/connection")["result"]
    assert f"//{WAREHOUSE_ROLES['analyst']}:XXXXXXXXXX@" in detail["sqlalchemy_uri"]
    assert not (detail["allow_dml"] or detail["allow_ctas"] or detail["allow_cvas"]
                or detail["allow_file_upload"])
    assert detail["expose_in_sqllab"]
    viewer = admin.get_json(f"/api/v1/database/{db_ids[VIEWER_DB]}/connection")["result"]
    assert f"//{WAREHOUSE_ROLES['viewer']}:XXXXXXXXXX@" in viewer["sqlalchemy_uri"]
    assert not viewer["expose_in_sqllab"]


# --- nobody logged in ------------------------------------------------------------------------
def test_anonymous_gets_no_data(superset_server: SupersetServer,
                                chart_ids: dict[str, int], db_ids: dict[str, int]) -> None:
    chart = next(iter(chart_ids.values()))
    with httpx.Client(base_url=superset_server.url, timeout=60) as http:
        for path in ("/api/v1/dashboard/", "/api/v1/dashboard/leadership-overview",
                     "/api/v1/chart/", f"/api/v1/chart/{chart}/data/", "/api/v1/dataset/",
                     "/api/v1/database/", f"/api/v1/database/{db_ids[ANALYST_DB]}",
                     "/api/v1/sqllab/", "/api/v1/me/",
                     "/superset/explore_json/?form_data=" + json.dumps({"slice_id": chart})):
            r = http.get(path)
            assert r.status_code == 401, (path, r.status_code)
        for path, body in (("/api/v1/chart/data", {"datasource": {"id": 1, "type": "table"},
                                                   "queries": [{"columns": ["year"]}]}),
                           ("/api/v1/sqllab/execute/", {"database_id": db_ids[ANALYST_DB],
                                                        "sql": SELECT_MARTS})):
            r = http.post(path, json=body)
            assert r.status_code in (400, 401, 403), (path, r.status_code)
            assert '"data"' not in r.text, path
        # pages send an anonymous visitor to the login form
        for page in ("/superset/dashboard/leadership-overview/", "/sqllab/", "/explore/",
                     "/dashboard/list/", "/superset/welcome/"):
            r = http.get(page)
            assert r.status_code == 302, (page, r.status_code)
            assert urlsplit(r.headers["location"]).path == "/login/", page


# --- what a leader sees in a browser ---------------------------------------------------------
CHROMIUM = chromium_path()
CHROMIUM_ARGS = list(HEADLESS_CHROMIUM_ARGS)
TIMEOUT_MS = 90_000
#: The one request a dashboard page makes that Leadership is refused, by design: the UI tries
#: to save the dashboard's colour assignments, which only an editor may.
REFUSED_BY_DESIGN = re.compile(r"PUT /api/v1/dashboard/\d+/colors")


@pytest.mark.browser
def test_leader_sees_every_chart_in_a_browser(superset_server: SupersetServer) -> None:
    """Every permission a dashboard page needs is in the Leadership role: each published
    dashboard draws all its charts with no error box, and no request is refused but the
    colour save above. The browser logs in through the login form."""
    refused: list[str] = []

    def record(response: Response) -> None:
        if response.status >= 400:
            refused.append(f"{response.request.method} {urlsplit(response.url).path} "
                           f"-> {response.status}")

    with sync_playwright() as p:
        p.selectors.set_test_id_attribute("data-test")
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            context = browser.new_context(viewport={"width": 1400, "height": 1100})
            context.set_default_timeout(TIMEOUT_MS)
            expect.set_options(timeout=TIMEOUT_MS)
            page = context.new_page()
            page.on("response", record)
            page.goto(f"{superset_server.url}/login/")
            page.get_by_test_id("username-input").fill("leader")
            page.get_by_test_id("password-input").fill(superset_server.password("leader"))
            page.get_by_test_id("login-button").click()
            page.wait_for_url(re.compile(r"/superset/welcome/"))
            for slug in PUBLISHED:
                page.goto(f"{superset_server.url}/superset/dashboard/{slug}/")
                charts = DASHBOARDS[slug]["charts"]
                expect(page.get_by_test_id("chart-grid-component")).to_have_count(len(charts))
                for chart in charts:
                    holder = page.locator(f"[data-test-chart-name={json.dumps(chart['name'])}]")
                    holder.scroll_into_view_if_needed()
                    body = holder.locator(".dashboard-chart")
                    expect(body.get_by_test_id("loading-indicator")).to_have_count(0)
                    expect(body.locator("[role='alert']")).to_have_count(0)
        finally:
            browser.close()
    assert [r for r in refused if not REFUSED_BY_DESIGN.match(r)] == []


# --- the bundle's connections, as files ------------------------------------------------------
def test_every_database_file_has_a_read_only_role() -> None:
    """Each connection in git has a warehouse role in DATABASE_ROLES (its file names none: the
    import puts it in), and cannot write."""
    files = {n: c for n, c in BUNDLE.items() if n.startswith("databases/")}
    assert set(files) == set(DATABASE_ROLES)
    for name, config in files.items():
        assert DATABASE_ROLES[name] in WAREHOUSE_ROLES, name
        assert "//role-from-access-py:" in config["sqlalchemy_uri"], name
        assert not (config["allow_dml"] or config["allow_ctas"] or config["allow_cvas"]
                    or config["allow_csv_upload"]), name
    assert DATABASE_ROLE[VIEWER_DB] == "viewer" and DATABASE_ROLE[ANALYST_DB] == "analyst"
    assert files["databases/Safeguard_warehouse.yaml"]["expose_in_sqllab"] is False
    assert files["databases/Safeguard_warehouse_analyst.yaml"]["expose_in_sqllab"] is True


# --- Leadership: no custom SQL through the chart-data endpoints --------------------------------
#: SQL a reader could put in a chart-data request, each where Superset would run it as text
CUSTOM_SQL = {
    "adhoc metric": {"metrics": [{"expressionType": "SQL", "label": "n",
                                  "sqlExpression": "pg_relation_size('raw.hotline_cases')"}]},
    "adhoc column": {"columns": [{"expressionType": "SQL", "label": "n",
                                  "sqlExpression": "current_user"}],
                     "metrics": ["reports"]},
    "unknown column name": {"columns": ["version()"], "metrics": ["reports"]},
    "where": {"columns": ["publisher"], "metrics": ["reports"],
              "extras": {"where": "inet_server_port() > 0"}},
    "adhoc filter": {"columns": ["publisher"], "metrics": ["reports"],
                     "filters": [{"col": {"expressionType": "SQL", "label": "x",
                                          "sqlExpression": "inet_server_port()"},
                                  "op": "IS NOT NULL"}]},
}


@pytest.fixture(scope="module")
def published_dataset(admin: SupersetClient) -> int:
    rows = admin.list_all("dataset", ["id", "table_name"])
    return next(r["id"] for r in rows if r["table_name"] == "rpt_published_figures_yearly")


def _query(client: SupersetClient, dataset_id: int, query: dict) -> httpx.Response:
    return client.http.post("/api/v1/chart/data", json={
        "datasource": {"id": dataset_id, "type": "table"},
        "queries": [{"row_limit": 10, **query}],
        "result_format": "json", "result_type": "full"})


@pytest.mark.parametrize("what", CUSTOM_SQL)
def test_leader_cannot_send_custom_sql(what: str, leader: SupersetClient,
                                       analyst: SupersetClient, admin: SupersetClient,
                                       published_dataset: int) -> None:
    refused = _query(leader, published_dataset, CUSTOM_SQL[what])
    assert refused.status_code == 403, (refused.status_code, refused.text[:300])
    assert "custom SQL is for analysts" in refused.text
    # the same request from an author reaches the database (which may still refuse it: the
    # analyst connection reads no raw table either)
    assert _query(analyst, published_dataset, CUSTOM_SQL[what]).status_code != 403


def test_leader_can_still_query_the_dataset_by_its_own_names(
        leader: SupersetClient, published_dataset: int) -> None:
    r = _query(leader, published_dataset, {"columns": ["publisher"], "metrics": ["reports"]})
    assert r.status_code == 200, r.text[:300]
    assert r.json()["result"][0]["rowcount"] > 0


def test_leader_is_refused_custom_sql_through_legacy_explore_json(
        leader: SupersetClient, published_dataset: int) -> None:
    form_data = {"datasource": f"{published_dataset}__table", "viz_type": "world_map",
                 "entity": "iso3_code", "metric": {
                     "expressionType": "SQL", "label": "n",
                     "sqlExpression": "pg_database_size(current_database())"}}
    r = leader.http.post("/superset/explore_json/",
                         data={"form_data": json.dumps(form_data)})
    assert r.status_code == 403, (r.status_code, r.text[:300])
