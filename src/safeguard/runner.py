"""The main job, two ways: ``run`` once and headless through ``airflow dags test`` (for cron
and scripts), or ``demo`` with the Airflow scheduler and UI, Superset, until Ctrl-C. Both say
each DAG run's and task's state as it changes, and how far dbt is (``safeguard.watch``)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
import urllib.request
from contextlib import nullcontext
from datetime import UTC, datetime

import psycopg

from safeguard.airflow_env import airflow, airflow_env, airflow_exe, airflow_port, migrate
from safeguard.config import Settings, env
from safeguard.contracts import all_contracts
from safeguard.dag_ids import FACTSHEET_DAG, TRANSFORM_DAG, ingest_dag_id
from safeguard.db.bootstrap import bootstrap
from safeguard.transform import dbt_log_file
from safeguard.watch import Following, RestStates, Watch, last_run_id, metadata_db_states


class PipelineFailed(RuntimeError):
    pass


SAMPLE_SEED = 42


def ensure_generated_samples(s: Settings) -> None:
    """Synthetic sources (``generated_by`` in their contract) get their sample written into
    the drop folder once, when the folder has no file yet (``SAFEGUARD_SAMPLE_CASES`` cases,
    default 20,000; seeded, so every machine gets the same figures)."""
    from safeguard.generate import generate
    from safeguard.tasks import delivered_files, drop_dir

    missing = [c for c in all_contracts(s).values()
               if c.generated_by and not delivered_files(drop_dir(s, c))]
    if missing:
        cases = int(env("SAFEGUARD_SAMPLE_CASES", "20000"))
        for path in generate(drop_dir(s, missing[0]).parent, cases=cases, seed=SAMPLE_SEED):
            print(f"    generated synthetic sample {path}", flush=True)


def prepare(s: Settings) -> None:
    """Database, roles and schemas; synthetic samples; Airflow metadata; DAGs parsed."""
    bootstrap(s)
    ensure_generated_samples(s)
    migrate(s)
    result = airflow(s, "dags", "reserialize", check=False, capture=True)
    if result.returncode != 0:
        raise PipelineFailed(f"DAG files failed to parse:\n{result.stdout}\n{result.stderr}")


def _finished_runs(s: Settings, dag_id: str) -> list[str]:
    """States of the DAG's finished runs, oldest first, read from Airflow's metadata DB (the
    CLI's JSON output is interleaved with log lines)."""
    with psycopg.connect(s.url("airflow", s.airflow_db)) as conn:
        rows = conn.execute(
            "select state from dag_run where dag_id = %s and state in ('success', 'failed') "
            "order by coalesce(end_date, start_date), id", [dag_id]).fetchall()
    return [r[0] for r in rows]


def last_run_state(s: Settings, dag_id: str) -> str | None:
    runs = _finished_runs(s, dag_id)
    return runs[-1] if runs else None


def dags_test(s: Settings, dag_id: str, conf: dict | None = None,
              watch: Watch | None = None) -> str:
    """Run one DAG through Airflow's real task runner, in process; return the run's state.
    ``watch``: told the run's and its tasks' states while it runs (polled every second)."""
    args = ["dags", "test", dag_id]
    if conf:
        args += ["-c", json.dumps(conf)]
    with Following(watch) if watch is not None else nullcontext():
        airflow(s, *args, check=False, capture=True)
    return last_run_state(s, dag_id) or "none"


def headline(s: Settings) -> str:
    with psycopg.connect(s.url("viewer")) as conn:
        row = conn.execute(
            "select year, figure_value, previous_value, yoy_change_pct, source_name "
            "from reporting.rpt_published_figures_yearly "
            "where publisher = 'ncmec' and series = 'cybertipline_reports' "
            "and category_code = 'online_enticement' and period_type = 'year' "
            "and year = 2020 and country_code is null").fetchone()
    if not row:
        return "no 2020 online enticement figure in reporting"
    return (f"Online enticement reports {row[0] - 1} -> {row[0]}: {row[2]:,} -> {row[1]:,} "
            f"({row[3]:+.1f}%), source: {row[4]}")


def run_once(s: Settings) -> None:
    prepare(s)
    watch = Watch(metadata_db_states(s, last_run_id(s)), dbt_log_file(s))
    failed = []
    for name in all_contracts(s):
        state = dags_test(s, ingest_dag_id(name), watch=watch)
        print(f"{ingest_dag_id(name)}: {state}")
        if state != "success":
            failed.append(ingest_dag_id(name))
    if failed:
        raise PipelineFailed(f"ingest failed: {failed}; see `safeguard status` and the task "
                             f"logs in {s.home / 'airflow' / 'logs'}")
    state = dags_test(s, TRANSFORM_DAG, watch=watch)
    print(f"{TRANSFORM_DAG}: {state}")
    if state != "success":
        raise PipelineFailed(f"{TRANSFORM_DAG} failed; see the task logs")
    print(headline(s))
    # the scheduler runs it on the published tables' Asset; `dags test` has no scheduler
    state = dags_test(s, FACTSHEET_DAG, watch=watch)
    print(f"{FACTSHEET_DAG}: {state}")
    if state != "success":
        raise PipelineFailed(f"{FACTSHEET_DAG} failed (the release is published); see the task "
                             f"logs in {s.home / 'airflow' / 'logs'}")
    print(factsheet_line(s))


def _wait_http(url: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=5) as r:
                if r.status < 500:
                    return
        except Exception:
            time.sleep(2)
    raise PipelineFailed(f"{url} did not answer within {timeout:.0f}s")


def launch_airflow(s: Settings) -> subprocess.Popen:
    """``airflow standalone`` in its own process session, with SIGINT at its default so that
    stop_process_group can end it cleanly (SIGTERM to the group leaves hung children)."""
    log = (s.home / "airflow" / "standalone.log").open("ab")
    return subprocess.Popen([airflow_exe(), "standalone"], env=airflow_env(s), stdout=log,
                            stderr=subprocess.STDOUT, start_new_session=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))


def wait_for_airflow(proc: subprocess.Popen, timeout: float = 300) -> None:
    url = f"http://127.0.0.1:{airflow_port()}/api/v2/monitor/health"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise PipelineFailed("airflow standalone exited; see .local/airflow/standalone.log")
        try:
            _wait_http(url, 5)
            return
        except PipelineFailed:
            continue
    raise PipelineFailed(f"Airflow did not answer on {url} within {timeout:.0f}s")


def stop_process_group(proc: subprocess.Popen, timeout: float = 30) -> None:
    """SIGINT to the leader (it stops its own components), then SIGKILL to whatever of its
    process group is left, so that nothing outlives the demo."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            pass
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    if proc.poll() is None:
        proc.wait(10)


def wait_for_pipeline(s: Settings, ingest_dags: list[str], since: float,
                      timeout: float = 900, watch: Watch | None = None) -> str:
    """Wait until every ingest DAG has a run finished since ``since`` (epoch seconds), and a
    transform run has finished after the last of them; return the pipeline's state.
    ``watch``: told what changed, every 2 seconds."""
    deadline = time.monotonic() + timeout
    query = ("select dag_id, max(end_date), bool_and(state = 'success') from dag_run "
             "where dag_id = any(%s) and state in ('success', 'failed') "
             "and start_date >= to_timestamp(%s) group by dag_id")
    while time.monotonic() < deadline:
        with psycopg.connect(s.url("airflow", s.airflow_db)) as conn:
            ingest = {r[0]: r for r in conn.execute(query, [ingest_dags, since])}
            if len(ingest) == len(ingest_dags):
                if not all(r[2] for r in ingest.values()):
                    return "failed"
                last = max(r[1] for r in ingest.values())
                done = conn.execute(
                    "select state from dag_run where dag_id = %s and state in ('success', "
                    "'failed') and start_date >= %s order by end_date desc limit 1",
                    [TRANSFORM_DAG, last]).fetchone()
                if done:
                    if watch is not None:
                        watch.poll()
                    return done[0]
        for _ in range(3):
            if watch is not None:
                watch.poll()
            time.sleep(2)
    raise PipelineFailed(f"the pipeline did not finish within {timeout / 60:.0f} minutes")


def wait_for_run(s: Settings, dag_id: str, since: float, timeout: float = 300) -> str:
    """The state of the DAG's first run started since ``since`` (epoch seconds), once it has
    finished; "did not run within N minutes" when none finished within ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with psycopg.connect(s.url("airflow", s.airflow_db)) as conn:
            row = conn.execute(
                "select state from dag_run where dag_id = %s and start_date >= to_timestamp(%s)"
                " and state in ('success', 'failed') order by start_date limit 1",
                [dag_id, since]).fetchone()
        if row:
            return row[0]
        time.sleep(2)
    return f"did not run within {timeout / 60:.0f} minutes"


def _released_since(s: Settings, since: float) -> bool:
    with psycopg.connect(s.admin_url(s.warehouse_db)) as conn:
        return bool(conn.execute("select exists (select from ops.releases where released_at"
                                 " >= to_timestamp(%s))", [since]).fetchone()[0])


def factsheet_line(s: Settings) -> str:
    """Where the fact sheet is (the newest in the reports folder), for the demo and `run`."""
    sheets = sorted(s.reports_dir.glob("factsheet-*.pdf"), key=lambda p: p.stat().st_mtime)
    return f"fact sheet: {sheets[-1]} (and its .html)" if sheets else "no fact sheet written"


def demo(s: Settings) -> None:
    """Start everything, run the pipeline through the scheduler, then wait for Ctrl-C."""
    from safeguard.superset import bundle
    from safeguard.superset.cli import reports_line
    from safeguard.superset.server import SupersetServer
    from safeguard.superset.workers import missing_for_reports, reports_wanted

    def interrupt(*_):
        raise KeyboardInterrupt

    # Ctrl-C and `kill` both stop everything (SIGINT may arrive ignored from a parent shell)
    signal.signal(signal.SIGINT, interrupt)
    signal.signal(signal.SIGTERM, interrupt)
    print("1/5 PostgreSQL, roles, schemas, Airflow metadata ...", flush=True)
    prepare(s)
    # reports and alerts on by default in the demo (SAFEGUARD_REPORTS=0 turns them off)
    superset = SupersetServer(s, reports=reports_wanted(default=True))
    missing = missing_for_reports() if superset.reports else []
    if missing:
        print(f"    reports and alerts off: {', '.join(missing)} not installed (make setup)")
        superset.reports = False
    airflow_proc = None
    try:
        print("2/5 Superset: migrations, roles, admin, start ...", flush=True)
        superset.bootstrap(echo=print)
        superset.start()
        print("3/5 Airflow standalone (scheduler, API server, DAG processor) ...", flush=True)
        airflow_proc = launch_airflow(s)
        wait_for_airflow(airflow_proc)
        since = time.time()
        print("4/5 Running the pipeline through the scheduler ...", flush=True)
        for name in all_contracts(s):
            airflow(s, "dags", "unpause", ingest_dag_id(name), capture=True, check=False)
            airflow(s, "dags", "trigger", ingest_dag_id(name), capture=True)
        for dag_id in (TRANSFORM_DAG, FACTSHEET_DAG):
            airflow(s, "dags", "unpause", dag_id, capture=True, check=False)
        watch = Watch(RestStates(s, f"http://127.0.0.1:{airflow_port()}",
                                 datetime.fromtimestamp(since, UTC)), dbt_log_file(s),
                      say=lambda line: print(f"    {line}", flush=True))
        state = wait_for_pipeline(s, [ingest_dag_id(n) for n in all_contracts(s)], since,
                                  watch=watch)
        print(f"    pipeline: {state}. {headline(s) if state == 'success' else ''}")
        if state == "success":
            # written by the fact sheet DAG, on the Asset the release updated (no release in
            # this run, nothing new: the fact sheet of the last one stands)
            written = (wait_for_run(s, FACTSHEET_DAG, since) if _released_since(s, since)
                       else "success")
            said = (factsheet_line(s) if written == "success"
                    else f"fact sheet: {FACTSHEET_DAG} {written}; see its task log")
            print(f"    {said}", flush=True)
        print("5/5 Importing the dashboards ...", flush=True)
        bundle.publish(superset)
        boards = "\n".join(f"            {title:<30} {url}" for title, url in
                           bundle.dashboard_urls(superset.url, bundle.bundle_dir(s)))
        print(f"""
Safeguard is running. Ctrl-C stops everything.

  Airflow   http://localhost:{airflow_port()}    login admin / AIRFLOW_ADMIN_PASSWORD
  Superset  {superset.url}
            logins {superset.logins()}
{boards}
  Passwords are in {s.secrets_file}
  {reports_line(superset)}
  Warehouse {s.url('analyst').split('@')[1]}  (safeguard db url --role analyst)
""", flush=True)
        while airflow_proc.poll() is None and superset.pid():
            time.sleep(2)
        print("a service exited; stopping the rest (see logs under .local/)")
    except KeyboardInterrupt:
        print("\nstopping ...")
    finally:
        if airflow_proc:
            stop_process_group(airflow_proc)
        superset.stop()
        if not s.external_url:
            from safeguard.db.embedded import EmbeddedPostgres

            EmbeddedPostgres(s).stop()
        print("stopped.")
