"""Pipeline health: every publication refresh (dbt build) recorded in ops.publication_runs, the
marts the data engineers' dashboard reads, and the "Pipeline health" dashboard in a browser.

Real PostgreSQL, dbt, Airflow (the pipeline fixture), Superset and Chromium. dbt fails here for
real (a selector it cannot parse), and the audit is made unwritable for real (a revoked grant),
to show that the audit never hides dbt's own outcome.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
import yaml
from playwright.sync_api import Page, expect
from psycopg import sql

import test_dashboard_browser as browser_tests
from conftest import ROOT, safeguard_cli
from safeguard.config import ROLES, Settings
from safeguard.superset.bundle import read_bundle
from safeguard.superset.client import SupersetClient
from safeguard.superset.server import SupersetServer
from test_dashboard_browser import browser, outside_requests, page, session  # noqa: F401

pytest_plugins = ["safeguard.superset.testing"]

SLUG = "pipeline-health"
ANALYST_DATABASE = "43ea0800-be41-40c2-aee3-3a095bae119b"
OPS_MODELS = {m["name"]: m for m in yaml.safe_load(
    (ROOT / "dbt/models/marts/ops/_ops__models.yml").read_text())["models"]}
PARTNER_HEADER = "month,country,channel,exploitation_type,grooming_stage,reporter_type,cases\n"
#: one good row and one with a negative count, for a month the sample does not cover
NEGATIVE_COUNT = (PARTNER_HEADER
                  + "2017-06,NL,gaming,online_enticement,trust_development,public,3\n"
                  + "2017-06,NL,gaming,sextortion,trust_development,public,-7\n")
BAD_SELECTOR = "no_such_method:xyz"  # dbt refuses it before running anything (exit 2)


@pytest.fixture()
def analyst(pipeline_done: Settings) -> Iterator[psycopg.Connection]:
    """The warehouse as the analyst role (and the dashboard's database) sees it."""
    with psycopg.connect(pipeline_done.url("analyst"), autocommit=True) as conn:
        yield conn


@pytest.fixture()
def run_by(warehouse: psycopg.Connection) -> Iterator[str]:
    """A run_by that marks this test's publication runs; they are removed afterwards."""
    marker = f"test:{uuid.uuid4()}"
    yield marker
    warehouse.execute("delete from ops.publication_runs where run_by = %s", [marker])


def _runs(warehouse: psycopg.Connection, run_by: str) -> list[dict]:
    cur = warehouse.execute(
        "select status, selection, models_built, tests_passed, tests_failed, message, "
        "started_at, finished_at from ops.publication_runs where run_by = %s "
        "order by started_at", [run_by])
    names = [d.name for d in cur.description]
    return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]


def _deliver_negative_count(tmp_path: Path) -> Path:
    """`safeguard ingest` of a partner file with a negative count: one row quarantined."""
    path = tmp_path / f"partner_negative_{uuid.uuid4().hex[:8]}_2017-06.csv"
    path.write_text(NEGATIVE_COUNT)
    proc = safeguard_cli("ingest", "--source", "sample_partner_aggregates", str(path),
                         check=False)
    assert proc.returncode == 1, f"expected rows quarantined:\n{proc.stdout}\n{proc.stderr}"
    return path


# --- ops.publication_runs: what transform.build() records ----------------------------------


def test_the_pipeline_s_dbt_build_is_recorded_with_dbt_s_counts(pipeline_done, warehouse,
                                                                 analyst):
    from safeguard.transform import dbt

    # the pipeline's full build (its load-triggered builds, with a selection, may come after)
    (run_by,) = warehouse.execute(
        "select run_by from ops.publication_runs where run_by like "
        "'airflow:safeguard_transform/%' and selection = 'all' "
        "order by started_at desc limit 1").fetchone()
    (run,) = _runs(warehouse, run_by)
    assert run["status"] == "success" and run["selection"] == "all", run
    assert run["finished_at"] > run["started_at"] and run["message"] is None
    # a full build builds every model (ephemeral ones are inlined, not built) and runs every
    # test: dbt's own list says how many
    models = dbt(pipeline_done, "ls", "--quiet", "--resource-type", "model",
                 "--exclude", "config.materialized:ephemeral", "--output", "name").split()
    tests = dbt(pipeline_done, "ls", "--quiet", "--resource-type", "test",
                "--resource-type", "unit_test", "--output", "name").split()
    assert run["models_built"] == len(models) > 0
    assert run["tests_passed"] == len(tests) > 0 and run["tests_failed"] == 0
    # the analysts' mart shows the same run
    shown = analyst.execute(
        "select run_status, models_built_count, tests_passed_count, is_full_build "
        "from marts.fct_publication_runs where run_by = %s", [run_by]).fetchone()
    assert shown == ("success", run["models_built"], run["tests_passed"], True)


def test_a_failed_dbt_build_is_recorded_as_failed_and_still_raises(pipeline_done, warehouse,
                                                                   analyst, run_by):
    from safeguard.transform import DbtFailed, build

    with pytest.raises(DbtFailed, match="not a valid method name"):
        build(pipeline_done, select=BAD_SELECTOR, run_by=run_by)
    (run,) = _runs(warehouse, run_by)
    assert run["status"] == "failed" and run["selection"] == BAD_SELECTOR
    assert run["finished_at"] is not None
    assert (run["models_built"], run["tests_passed"], run["tests_failed"]) == (0, 0, 0)
    assert "'no_such_method' is not a valid method name" in run["message"]
    shown = analyst.execute("select run_status, message from marts.fct_publication_runs "
                            "where run_by = %s", [run_by]).fetchone()
    assert shown == ("failed", run["message"])


def test_a_build_that_selects_nothing_says_so_and_an_abandoned_run_is_closed(
        pipeline_done, warehouse, run_by):
    """dbt 1.11 treats a selection that matches nothing as a warning (exit 0): recorded as a
    success that built nothing, and said. A run left 'running' by a process that is gone (no
    one holds its lock) is marked failed by the next build."""
    from safeguard.transform import build

    gone = str(uuid.uuid4())
    warehouse.execute(
        "insert into ops.publication_runs (run_id, started_at, status, selection, run_by) "
        "values (%s, now() - interval '1 minute', 'running', 'all', %s)", [gone, run_by])
    build(pipeline_done, select="nonexistent_model_xyz", run_by=run_by)
    runs = {r["selection"]: r for r in _runs(warehouse, run_by)}
    nothing = runs["nonexistent_model_xyz"]
    assert nothing["status"] == "success" and nothing["models_built"] == 0
    assert nothing["message"] == "dbt ran no node: nothing matched the selection"
    assert runs["all"]["status"] == "failed" and runs["all"]["finished_at"] is not None
    assert runs["all"]["message"].startswith("abandoned")


def test_an_audit_that_cannot_be_written_never_hides_dbt_s_outcome(pipeline_done, warehouse,
                                                                   run_by, capfd):
    from safeguard.transform import DbtFailed, build

    transformer = sql.Identifier(ROLES["transformer"])
    warehouse.execute(sql.SQL("revoke insert, update on ops.publication_runs from {}").format(
        transformer))
    try:
        with pytest.raises(DbtFailed, match="not a valid method name"):
            build(pipeline_done, select=BAD_SELECTOR, run_by=run_by)
        assert "could not record" in capfd.readouterr().err
        # and a build that works still works, and says it ('+': a view rebuilt alone would
        # drop the views on it, dbt-postgres drops the old relation with cascade)
        output = build(pipeline_done, select="stg_ops__publication_runs+", run_by=run_by)
        assert "Completed successfully" in output
        assert "could not record" in capfd.readouterr().err
    finally:
        warehouse.execute(sql.SQL("grant insert, update on ops.publication_runs to {}").format(
            transformer))
    assert _runs(warehouse, run_by) == []


# --- the pipeline-health marts ---------------------------------------------------------------


def test_a_quarantined_delivery_shows_in_the_pipeline_health_marts(pipeline_done, scratch,
                                                                   analyst, tmp_path):
    """Views over the audit trail: the delivery is there at once, without a dbt run; so is a
    rejected file, which no dbt run ever follows. Names, counts and rules; no values."""
    path = _deliver_negative_count(tmp_path)
    batch = analyst.execute(
        "select batch_id, batch_status, needs_attention, is_latest_for_source, rows_read_count,"
        " rows_loaded_count, rows_quarantined_count, error_count, error_rule_names, message,"
        " run_by, started_date from marts.fct_pipeline_batches where file_name = %s",
        [path.name]).fetchone()
    (batch_id, status, attention, latest, read, loaded, quarantined, errors, rules, message,
     by, day) = batch
    assert (status, attention, latest) == ("quarantined", True, True)
    assert (read, loaded, quarantined) == (2, 1, 1)
    assert (errors, rules) == (1, "count_is_whole_non_negative")
    assert f"{path.name}, row 3, column case_count: rule count_is_whole_non_negative" in message
    assert "-7" not in message  # metadata only: the row is named, its value never shown
    assert by.startswith("cli:")

    issues = analyst.execute(
        "select rule_name, column_name, severity, row_count, source_name "
        "from marts.fct_pipeline_batch_issues where batch_id = %s", [batch_id]).fetchall()
    assert issues == [("count_is_whole_non_negative", "case_count", "error", 1,
                       "sample_partner_aggregates")]
    (issue_message,) = analyst.execute(
        "select message from marts.fct_pipeline_batch_issues where batch_id = %s",
        [batch_id]).fetchone()
    assert "-7" not in issue_message

    empty = tmp_path / "partner_empty_2017-07.csv"
    empty.write_text("")
    proc = safeguard_cli("ingest", "--source", "sample_partner_aggregates", str(empty),
                         check=False)
    assert proc.returncode == 2, proc.stderr  # rejected whole
    assert analyst.execute(
        "select batch_status, needs_attention, is_latest_for_source from "
        "marts.fct_pipeline_batches where file_name = %s", [empty.name]).fetchone() == (
        "rejected", True, True)

    daily = analyst.execute(
        "select quarantined_batch_count, rejected_batch_count, needs_attention_batch_count, "
        "rows_read_count - rows_loaded_count - rows_quarantined_count "
        "from marts.fct_pipeline_batches_daily "
        "where batch_date = %s and source_name = 'sample_partner_aggregates'", [day]).fetchone()
    assert daily[0] >= 1 and daily[1] >= 1 and daily[2] >= 2
    assert daily[3] == 0  # read = loaded + quarantined, per day too


# --- the dashboard -----------------------------------------------------------------------------


def test_the_dashboard_reads_the_ops_marts_through_the_analyst_database():
    """Every chart of the dashboard reads a pipeline-health mart, through the analyst
    connection (never the viewer's, which reads the published layer only), with columns the
    dbt model declares; the dbt exposure names the same models."""
    bundle = read_bundle(ROOT / "dashboards")
    datasets = {str(c["uuid"]): c for n, c in bundle.items() if n.startswith("datasets/")}
    charts = {str(c["uuid"]): c for n, c in bundle.items() if n.startswith("charts/")}
    (dashboard,) = (c for n, c in bundle.items()
                    if n.startswith("dashboards/") and c["slug"] == SLUG)
    on_it = [item["meta"]["uuid"] for item in dashboard["position"].values()
             if isinstance(item, dict) and item.get("type") == "CHART"]
    tables = set()
    for chart_uuid in on_it:
        dataset = datasets[str(charts[chart_uuid]["dataset_uuid"])]
        assert str(dataset["database_uuid"]) == ANALYST_DATABASE, dataset["table_name"]
        assert dataset["schema"] == "marts" and dataset["sql"] is None
        model = OPS_MODELS[dataset["table_name"]]
        declared = {c["name"] for c in model["columns"]}
        physical = {c["column_name"] for c in dataset["columns"] if not c["expression"]}
        assert physical <= declared, physical - declared
        assert dataset["cache_timeout"] == -1  # live: never a cached, stale answer
        tables.add(dataset["table_name"])
    assert [f["id"] for f in dashboard["metadata"]["native_filter_configuration"]] == [
        "NATIVE_FILTER-ph-period", "NATIVE_FILTER-ph-source"]
    exposures = {e["name"]: e for e in yaml.safe_load(
        (ROOT / "dbt/models/exposures.yml").read_text())["exposures"]}
    assert set(exposures["pipeline_health"]["depends_on"]) == {f"ref('{t}')" for t in tables}


@pytest.mark.superset
@pytest.mark.browser
def test_the_pipeline_health_dashboard_draws_every_chart(
        pipeline_done, scratch, tmp_path, monkeypatch, superset_server: SupersetServer,
        superset_client: SupersetClient, page: Page,  # noqa: F811
        outside_requests: list[str]):  # noqa: F811
    """The browser test of the published dashboards, on this one, with a quarantined delivery
    so that every chart has something to draw; then the delivery is on the attention table
    with its message."""
    path = _deliver_negative_count(tmp_path)
    monkeypatch.setitem(browser_tests.FACE, SLUG,
                        ["Pipeline health — for data engineers", "Metadata only"])
    browser_tests.test_dashboard_renders_every_chart(SLUG, superset_server, superset_client,
                                                     page, outside_requests)
    table = page.locator('[data-test-chart-name="Deliveries needing attention, with their '
                         'message"]')
    table.scroll_into_view_if_needed()
    expect(table).to_contain_text(path.name)
    expect(table).to_contain_text("row 3, column case_count: rule count_is_whole_non_negative")
    latest = page.locator('[data-test-chart-name="Latest delivery per source"]')
    expect(latest).to_contain_text("quarantined")
