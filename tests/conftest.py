"""Shared fixtures: an isolated Safeguard home with its own embedded PostgreSQL, and the
pipeline run once through Airflow. Everything is real: no mocks of the tools."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

ROOT = Path(__file__).resolve().parents[1]
TEST_HOME = Path(os.environ.get("SAFEGUARD_TEST_HOME", ROOT / ".local" / "test"))

# Before anything imports safeguard.config: tests get their own home, server port and UIs,
# so they never touch a running demo.
os.environ["SAFEGUARD_HOME"] = str(TEST_HOME)
os.environ.setdefault("SAFEGUARD_PG_PORT", "55433")
os.environ.setdefault("SUPERSET_PORT", "8098")
os.environ.setdefault("AIRFLOW_PORT", "8091")
os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
os.environ["AIRFLOW__CORE__LOAD_EXAMPLES"] = "False"

from safeguard.config import Settings  # noqa: E402


def safeguard_cli(*args: str, check: bool = True,
                  env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """The CLI as an operator runs it; ``env``: another home or server than the tests' own."""
    exe = Path(sys.executable).with_name("safeguard")
    proc = subprocess.run([str(exe), *args], text=True, capture_output=True,
                          env=os.environ if env is None else env)
    if check and proc.returncode != 0:
        raise AssertionError(f"safeguard {' '.join(args)} exited {proc.returncode}:\n"
                             f"{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    return proc


def transform_after_loads(*raw_tables: str) -> subprocess.CompletedProcess:
    """`safeguard transform` as the transform DAG runs after loads into ``raw_tables``
    (``raw.<table>``): dbt builds what is downstream of them (``selection_for``, with what those
    models need), then a release. Superset's cache is emptied, not warmed (``--no-warm``): for
    tests that read the published tables as the viewer, or ask Superset past its cache."""
    from safeguard.transform import selection_for

    selection = selection_for([f"safeguard://warehouse/raw/{t}" for t in raw_tables])
    return safeguard_cli("transform", "--select", selection, "--release", "--no-warm")


@pytest.fixture(scope="session")
def sg_settings() -> Iterator[Settings]:
    """A fresh home (database, secrets, Airflow metadata) for this test session."""
    s = Settings.load()
    if not s.external_url:
        from safeguard.db.embedded import EmbeddedPostgres

        EmbeddedPostgres(s).stop()
        shutil.rmtree(TEST_HOME, ignore_errors=True)
    from safeguard.db.bootstrap import bootstrap

    bootstrap(s)
    yield s
    if not s.external_url:
        from safeguard.db.embedded import EmbeddedPostgres

        EmbeddedPostgres(s).stop()


@pytest.fixture(scope="session")
def pipeline_run_output(sg_settings: Settings) -> subprocess.CompletedProcess:
    """`safeguard run`, once, as `make run` runs it, with what it printed (test_progress reads
    it: a second run would cost minutes)."""
    return safeguard_cli("run")


@pytest.fixture(scope="session")
def pipeline_done(sg_settings: Settings, pipeline_run_output) -> Settings:
    """The main job, once, as `make run` runs it: Airflow runs the ingest and dbt DAGs."""
    return sg_settings


@pytest.fixture()
def warehouse(sg_settings: Settings) -> Iterator[psycopg.Connection]:
    """An administrator's connection to the warehouse, for assertions only."""
    with psycopg.connect(sg_settings.admin_url(sg_settings.warehouse_db), autocommit=True) as c:
        yield c


@pytest.fixture()
def scratch(sg_settings: Settings):
    """Batches a test loads are removed afterwards, so the shared warehouse keeps only the
    pipeline's own data for the tests that follow. (Its own connection: a test may restart the
    server under the others.)"""
    url = sg_settings.admin_url(sg_settings.warehouse_db)
    with psycopg.connect(url, autocommit=True) as conn:
        t0 = conn.execute("select clock_timestamp()").fetchone()[0]
    yield
    with psycopg.connect(url, autocommit=True) as warehouse:
        _remove_batches_since(warehouse, t0)


def _remove_batches_since(warehouse: psycopg.Connection, t0) -> None:
    batches = "select batch_id from ops.batches where started_at >= %s"
    tables = warehouse.execute(
        "select table_schema, table_name from information_schema.columns where column_name = "
        "'batch_id' and table_schema in ('raw', 'quarantine', 'ops') and table_name not in "
        "('batches') and table_name not like 'landing%%'").fetchall()
    for schema, table in tables:
        warehouse.execute(f'delete from "{schema}"."{table}" where batch_id in ({batches})',
                          [t0])
    warehouse.execute(f"delete from ops.batches where batch_id in ({batches})", [t0])


def put_back_the_pipelines_release(s: Settings, first_no: int, raw_uris: list[str],
                                   run_by: str) -> None:
    """After a test that loaded, built and released (its batches removed already): the models
    downstream of ``raw_uris`` rebuilt in full (the incremental case facts keep merged rows
    whose batch is gone), the releases after ``first_no`` removed, and reporting made release
    ``first_no`` again, so the tests that follow see the pipeline's own release.
    (Test scaffolding: ops.releases is append-only for every pipeline role.)"""
    from safeguard.transform import build, selection_for

    _forget_releases_after(s, first_no)
    build(s, selection_for(raw_uris), run_by=run_by, full_refresh=True)
    _publish_release_again(s, first_no)


def republish_the_pipelines_release(s: Settings, first_no: int) -> None:
    """After a test that released a change it made in ``publish_candidate`` itself (and put
    back there): no build to undo, only the releases after ``first_no`` removed and reporting
    made release ``first_no`` again."""
    _forget_releases_after(s, first_no)
    _publish_release_again(s, first_no)


def _forget_releases_after(s: Settings, first_no: int) -> None:
    with psycopg.connect(s.admin_url(s.warehouse_db), autocommit=True) as admin:
        admin.execute("delete from releases.release_rows where release_no > %s", [first_no])
        admin.execute("delete from ops.release_tables where release_no > %s", [first_no])
        admin.execute("delete from ops.releases where release_no > %s", [first_no])


def _publish_release_again(s: Settings, first_no: int) -> None:
    from safeguard.release import _publish_release_info, _publish_table

    with psycopg.connect(s.url("transformer")) as conn:
        for (t,) in conn.execute("select distinct table_name from releases.release_rows"
                                 " where release_no = %s", [first_no]).fetchall():
            _publish_table(conn, t, first_no)
        as_of, embargo = conn.execute("select as_of_date, embargo_days from ops.releases"
                                      " where release_no = %s", [first_no]).fetchone()
        _publish_release_info(conn, first_no, as_of, embargo)
    # a release through the CLI or Airflow warmed Superset's cache with the test's figures
    from safeguard.superset.server import SupersetServer

    server = SupersetServer.running(s)
    if server is not None:
        server.empty_data_cache()


#: fixtures that start or need a service (a database, Airflow, Superset, a browser)
SERVICE_FIXTURES = {"sg_settings", "pipeline_run_output", "pipeline_done", "warehouse", "scratch",
                    "superset_server"}


def pytest_collection_modifyitems(config, items):
    """Tiers from what a test uses: a test that needs no service fixture is ``unit`` (`make
    test-fast` runs those), unless it is marked as starting a service itself."""
    for item in items:
        if SERVICE_FIXTURES.isdisjoint(item.fixturenames) and not any(
                item.get_closest_marker(name) for name in ("superset", "browser", "service")):
            item.add_marker(pytest.mark.unit)
