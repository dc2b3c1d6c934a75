"""Airflow on Celery (issue 15): with ``SAFEGUARD_EXECUTOR=celery``, ``safeguard cluster up``
starts the API server, scheduler, DAG processor, triggerer and Celery workers, each a process
of its own, on the project's Redis. The tests' cluster has three workers in the default
topology (``ingest``, ``dbt``, ``ingest``): two serve ``ingest`` from the start, so that a
load whose worker is killed has another to be retried on, with no restart of the workers. A
partner delivery goes through it: the ingest tasks run on the ``ingest`` queue (on an ingest
worker), the dbt build its load sets off on ``dbt`` (on the dbt worker); Airflow records for
each task the worker (its Celery hostname) and the queue, Celery's result backend (in
Airflow's metadata database) has each one's result, and both kinds of worker did work. The
cluster has
an Airflow metadata database of its own on the session's server, so it disturbs no other test,
and ``safeguard cluster down`` leaves no process behind, whatever happened.

The settings themselves (executor, broker, result backend, queues) are checked without a
service below."""

from __future__ import annotations

import json
import os
import signal
import time
import urllib.request
from pathlib import Path

import psycopg
import pytest

from conftest import ROOT, put_back_the_pipelines_release, safeguard_cli
from safeguard.airflow_env import (
    BROKER_DB,
    airflow,
    airflow_env,
    api_token,
    pools,
    trigger_run,
)
from safeguard.cluster import Cluster, machine, worker_queues
from safeguard.config import ROLES, Settings
from safeguard.dag_ids import DBT_POOL, TRANSFORM_DAG, ingest_dag_id, ingest_pool
from safeguard.services import Redis, stop_group

PARTNER = "sample_partner_aggregates"
HEADER = "month,country,channel,exploitation_type,grooming_stage,reporter_type,cases\n"
#: the cluster's own Airflow metadata database, on the session's server
CLUSTER_ENV = {"SAFEGUARD_EXECUTOR": "celery", "SAFEGUARD_CELERY_WORKERS": "3",
               "SAFEGUARD_AIRFLOW_DB": "safeguard_airflow_cluster",
               # a killed worker's task is failed after half a minute without a heartbeat
               # (sent every 5 s; checked every 10 s), not Airflow's five minutes
               "SAFEGUARD_TASK_HEARTBEAT_TIMEOUT": "30"}
#: settings of the caller's that would change the topology under test
NOT_OURS = ("REDIS_URL", "SAFEGUARD_CELERY_QUEUES", "SAFEGUARD_CELERY_CONCURRENCY",
            "SAFEGUARD_INGEST_POOL_SLOTS")


# --- the settings, no service ----------------------------------------------------------------

@pytest.fixture()
def bare_settings(tmp_path, monkeypatch) -> Settings:
    for name in (*CLUSTER_ENV, *NOT_OURS):
        monkeypatch.delenv(name, raising=False)
    return Settings(root=ROOT, home=tmp_path)


def test_the_default_stays_the_local_executor(bare_settings):
    env = airflow_env(bare_settings)
    assert env["AIRFLOW__CORE__EXECUTOR"] == "LocalExecutor"
    assert not [k for k in env if k.startswith("AIRFLOW__CELERY")]


def test_celery_settings(bare_settings, monkeypatch):
    monkeypatch.setenv("SAFEGUARD_EXECUTOR", "celery")
    env = airflow_env(bare_settings)
    assert env["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor"
    # results in Airflow's metadata database, as its own role
    assert env["AIRFLOW__CELERY__RESULT_BACKEND"] == (
        "db+" + env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"])
    assert env["AIRFLOW__CELERY__RESULT_BACKEND"].startswith("db+postgresql")
    # a task whose worker died is retried after Airflow's 300 s without a heartbeat
    assert env["AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT"] == "300"
    monkeypatch.setenv("SAFEGUARD_TASK_HEARTBEAT_TIMEOUT", "60")
    assert airflow_env(bare_settings)["AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT"] == "60"
    # no broker before the project's Redis has started (never Airflow's redis://redis:6379)
    assert "AIRFLOW__CELERY__BROKER_URL" not in env
    monkeypatch.setenv("REDIS_URL", "redis://:pw@redis.example.org:6379/5")
    assert airflow_env(bare_settings)["AIRFLOW__CELERY__BROKER_URL"] == (
        "redis://:pw@redis.example.org:6379/5")


def test_the_demo_refuses_celery(monkeypatch):
    """``airflow standalone`` starts no Celery worker: with the setting, its tasks would wait
    for ever. The demo says so and starts nothing."""
    from click.testing import CliRunner

    from safeguard.cli import main

    monkeypatch.setenv("SAFEGUARD_EXECUTOR", "celery")
    result = CliRunner().invoke(main, ["demo"])
    assert result.exit_code == 1 and "safeguard cluster up" in result.output, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)


def test_queues_per_worker(monkeypatch):
    monkeypatch.delenv("SAFEGUARD_CELERY_QUEUES", raising=False)
    assert worker_queues(1) == [["ingest", "dbt", "default"]]
    assert worker_queues(3) == [["ingest", "default"], ["dbt", "default"],
                                ["ingest", "default"]]
    monkeypatch.setenv("SAFEGUARD_CELERY_QUEUES", "ingest,dbt,default ingest")
    assert worker_queues(3) == [["ingest", "dbt", "default"], ["ingest"],
                                ["ingest", "dbt", "default"]]


def test_the_dags_name_their_queues():
    """Queues are set in the DAG files (LocalExecutor ignores them)."""
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(ROOT / "dags"))
    assert not bag.import_errors
    queues = {(dag_id, t.task_id): t.queue for dag_id, dag in bag.dags.items() for t in dag.tasks}
    assert {q for (d, _), q in queues.items() if d.startswith("ingest__")} == {"ingest"}
    assert {q for (d, _), q in queues.items() if d == TRANSFORM_DAG} == {"dbt"}
    assert {q for (d, _), q in queues.items()
            if not d.startswith("ingest__") and d != TRANSFORM_DAG} == {"default"}


def test_the_dags_take_their_pools(bare_settings, monkeypatch):
    """Every ingest task takes a slot of its source kind's pool, dbt's of ``dbt`` (one slot);
    the pools ``migrate`` creates (for either executor) are those, so no task waits on a pool
    that does not exist."""
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(ROOT / "dags"))
    used = {t.pool for dag in bag.dags.values() for t in dag.tasks}
    monkeypatch.setenv("SAFEGUARD_INGEST_POOL_SLOTS", "3")
    made = pools(Settings(root=ROOT, home=bare_settings.home))
    assert used - {"default_pool"} <= set(made), used - set(made)
    assert made[DBT_POOL]["slots"] == 1
    for dag_id, dag in bag.dags.items():
        if dag_id.startswith("ingest__"):
            assert dag.max_active_runs == 1 and dag.max_active_tasks == 2, dag_id
            kind = next(iter(t.pool for t in dag.tasks))
            assert {t.pool for t in dag.tasks} == {kind} and made[kind]["slots"] == 3
            assert kind.startswith("ingest_") and kind != "ingest_"
    transform = bag.dags[TRANSFORM_DAG]
    assert transform.max_active_runs == 1 and transform.max_active_tasks == 1
    assert {t.pool for t in transform.tasks} == {DBT_POOL}


@pytest.mark.service
def test_the_project_redis_stops_with_its_last_user(bare_settings):
    """Superset's reports and Airflow's Celery share one Redis: a stop of either leaves it
    running for the other."""
    from safeguard.services import Redis

    redis = Redis(bare_settings)
    redis.start("airflow-celery")
    try:
        redis.start("superset-reports")  # already running: only counted in
        pid = redis.pid()
        assert pid and redis.ping()
        assert redis.release("superset-reports") is False
        assert redis.pid() == pid and redis.ping()
        assert redis.release("airflow-celery") is True
        assert redis.pid() is None and not _running(pid)
    finally:
        redis.stop()


# --- the cluster, for real -------------------------------------------------------------------

def _pids(s: Settings) -> dict[str, int]:
    folder = s.home / "airflow" / "cluster"
    out = {p.stem: json.loads(p.read_text())["pid"] for p in folder.glob("*.json")}
    redis = s.home / "redis" / "redis.json"
    if redis.exists():
        out["redis"] = json.loads(redis.read_text())["pid"]
    return out


def _running(pid: int) -> bool:
    """Alive and not a zombie (one not yet reaped has finished)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def _logs(s: Settings) -> str:
    return "\n".join(f"--- {c.name}:\n{c.tail(1500)}" for c in Cluster(s).known())


@pytest.fixture(scope="module")
def cluster(pipeline_done: Settings):
    """The cluster on the session's server, with its own metadata database; every DAG but the
    partner ingest and the transform paused before the scheduler starts (their scheduled runs
    would only make the test slower). Stopped at the end, whatever happened."""
    s = pipeline_done
    with psycopg.connect(s.admin_url(s.warehouse_db)) as conn:
        (first_no,) = conn.execute("select max(release_no) from ops.releases").fetchone()
    saved = {k: os.environ.get(k) for k in (*CLUSTER_ENV, *NOT_OURS)}
    os.environ.update(CLUSTER_ENV)
    for name in NOT_OURS:
        os.environ.pop(name, None)
    started: dict[str, int] = {}
    # a Redis already running (Superset's reports, in this session) is not the cluster's to stop
    theirs = _pids(s).get("redis")
    try:
        # the API server first: the metadata database, the DAGs parsed, the project's Redis
        safeguard_cli("cluster", "up", "--only", "api-server")
        keep = f"{ingest_dag_id(PARTNER)}|{TRANSFORM_DAG}"
        airflow(s, "dags", "pause", "--treat-dag-id-as-regex", "-y", f"^(?!({keep})$)",
                capture=True)
        up = safeguard_cli("cluster", "up")
        started = _pids(s)
        yield s, up.stdout
    finally:
        down = safeguard_cli("cluster", "down", check=False)
        started |= _pids(s)
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
    # the deliveries' batches are gone (scratch): their builds and releases too
    put_back_the_pipelines_release(s, first_no, ["safeguard://warehouse/raw/partner_aggregates"],
                                   "test:cluster")
    assert down.returncode == 0, down.stderr
    time.sleep(1)
    # (restarted by a test, the Redis that Superset's reports still use is theirs all the same)
    shared = bool(Redis(s).users())
    left = {n: p for n, p in started.items()
            if _running(p) and p != theirs and not (n == "redis" and shared)}
    assert left == {}, f"still running after `safeguard cluster down`: {left}"


def _wait(conn: psycopg.Connection, query: str, params: list, what: str, timeout: float,
          s: Settings) -> tuple:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        row = conn.execute(query, params).fetchone()
        if row and row[0] in ("success", "failed"):
            return row
        time.sleep(3)
    raise AssertionError(f"{what} did not finish within {timeout:.0f}s:\n{_logs(s)}")


def _ingest_workers() -> set[str]:
    """The Celery hostnames of the workers that serve ``ingest`` (odd ones, by default)."""
    return {f"worker1@{machine()}", f"worker3@{machine()}"}


def test_a_delivery_runs_on_the_celery_workers(cluster, scratch, warehouse):
    s, up_output = cluster
    host = machine()
    ingest_workers, dbt_worker = _ingest_workers(), f"worker2@{host}"
    # every component a process of its own, with its own log under airflow/cluster/
    status = safeguard_cli("cluster", "status")
    for name in ("api-server", "scheduler", "dag-processor", "triggerer", "worker-1",
                 "worker-2", "worker-3"):
        assert f"{name} " in status.stdout and f"cluster/{name}.log" in status.stdout, status
    assert "not running" not in status.stdout
    pids = _pids(s)
    assert len({pids[n] for n in pids if n != "redis"}) == 7
    assert f"/{BROKER_DB}" in up_output  # Airflow's own database of the project's Redis

    # Celery's own view: the three workers, each on its queues (the default topology)
    listed = airflow(s, "celery", "list-workers", "-o", "json", capture=True).stdout
    workers = json.loads(listed[listed.index("["):listed.rindex("]") + 1])
    assert {w["worker_name"]: sorted(w["queues"]) for w in workers} == {
        f"worker1@{host}": ["default", "ingest"], dbt_worker: ["dbt", "default"],
        f"worker3@{host}": ["default", "ingest"]}

    # a partner's delivery for May 2023, through the ingest DAG; its load sets off dbt
    drop = s.drop_root / PARTNER
    delivery = drop / "partner_monthly_2023-05.csv"
    delivery.write_text(HEADER + "2023-05,NL,gaming,online_enticement,trust_development,"
                                 "public,29\n")
    run_id = f"cluster_test_{int(time.time())}"
    try:
        airflow(s, "dags", "trigger", ingest_dag_id(PARTNER), "-r", run_id,
                "-c", json.dumps({"file": delivery.name}), capture=True)
        with psycopg.connect(s.url("airflow", s.airflow_db), autocommit=True) as conn:
            ingest_state, started = _wait(
                conn, "select state, start_date from dag_run where dag_id = %s and run_id = %s",
                [ingest_dag_id(PARTNER), run_id], "the ingest run", 300, s)
            assert ingest_state == "success", _logs(s)
            transform_state, transform_run = _wait(
                conn, "select state, run_id from dag_run where dag_id = %s and "
                      "start_date >= %s order by start_date limit 1",
                [TRANSFORM_DAG, started], "the dbt run its load set off", 420, s)
            assert transform_state == "success", _logs(s)
            # the worker writes a task's result just after Airflow records it finished
            deadline = time.monotonic() + 60
            while True:
                ran = conn.execute(
                    "select ti.dag_id, ti.task_id, ti.state, ti.queue, ti.hostname, m.status "
                    "from task_instance ti left join celery_taskmeta m "
                    "on m.task_id = ti.external_executor_id "
                    "where (ti.dag_id, ti.run_id) in ((%s, %s), (%s, %s)) "
                    "order by ti.start_date",
                    [ingest_dag_id(PARTNER), run_id, TRANSFORM_DAG, transform_run]).fetchall()
                if all(r[5] == "SUCCESS" for r in ran) or time.monotonic() > deadline:
                    break
                time.sleep(2)
    finally:
        delivery.unlink()

    # each task: which worker (its Celery hostname) and which queue ran it; its result in the
    # result backend, Airflow's metadata database. (The release task skips itself when the
    # build left nothing new to publish, as the revision gate may for one late month.) Either
    # ingest worker may take an ingest task; the dbt worker never does, and only it runs dbt
    assert [r[2] for r in ran][:3] == ["success"] * 3 and ran[3][2] in ("success", "skipped"), ran
    assert [(d, t, q, m) for d, t, _, q, _, m in ran] == [
        (ingest_dag_id(PARTNER), "land", "ingest", "SUCCESS"),
        (ingest_dag_id(PARTNER), "validate_and_load", "ingest", "SUCCESS"),
        (TRANSFORM_DAG, "dbt_build", "dbt", "SUCCESS"),
        (TRANSFORM_DAG, "release", "dbt", "SUCCESS"),
    ], _logs(s)
    assert {r[4] for r in ran[:2]} <= ingest_workers, ran
    assert [r[4] for r in ran[2:]] == [dbt_worker, dbt_worker], ran  # both kinds did work

    # and the delivery is in the warehouse, once
    batches = warehouse.execute(
        "select status, rows_read, rows_loaded from ops.batches where file_name = %s",
        [delivery.name]).fetchall()
    assert batches == [("loaded", 1, 1)]


# --- many deliveries at once -----------------------------------------------------------------

#: deliveries arriving together: 50 (the issue's figure) takes ~9.5 min here, one source loading
#: one file at a time (~8 s each); the suite runs 12, `SAFEGUARD_TEST_BURST=50` the full burst
BURST = int(os.environ.get("SAFEGUARD_TEST_BURST") or 12)


def _until(check, what: str, timeout: float, s: Settings, every: float = 3):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = check()
        if result:
            return result
        time.sleep(every)
    raise AssertionError(f"{what} within {timeout:.0f}s:\n{_logs(s)}")


def test_fifty_deliveries_at_once(cluster, scratch, warehouse):
    """BURST partner deliveries (50 with SAFEGUARD_TEST_BURST=50) arrive together and are
    triggered at once (a DAG run each through the REST API): every one is loaded exactly once,
    one at a time per source (its DAG's
    ``max_active_runs=1``), each in its kind's pool; every batch's books balance (rows read =
    loaded + quarantined; a few files carry a row the gate quarantines, and their runs fail
    without a retry); and the dbt builds the loads set off never overlap (pool ``dbt``, one
    slot), as Airflow's own record of the task instances shows."""
    from safeguard.airflow_env import airflow_port
    from safeguard.contracts import get_contract

    s, _ = cluster
    _builds(s, on=True)
    contract = get_contract(s, PARTNER)
    pool = ingest_pool(contract.kind.name)
    stamp = int(time.time())
    drop = s.drop_root / PARTNER
    # distinct months of the sample's years from 2019 on, whose online enticement is also
    # published by channel (a delivery replaces its month: the sample's cells of the month go,
    # and the suppression must hold over what is left); every tenth file with a row the gate
    # quarantines
    months = [f"{2019 + i // 12}-{i % 12 + 1:02d}" for i in range(BURST)]
    files = {}
    for i, month in enumerate(months):
        # counts well above the publication threshold, so that no cell of ours is withheld
        rows = [f"{month},NL,gaming,online_enticement,trust_development,public,{40 + i}\n",
                f"{month},BE,gaming,online_enticement,trust_development,public,{60 + i}\n"][
            :1 + i % 2]
        if i % 10 == 9:
            rows.append(f"{month},NL,metaverse,online_enticement,trust_development,public,50\n")
        path = drop / f"burst_{stamp}_{month}.csv"
        path.write_text(HEADER + "".join(rows))
        files[path.name] = (len(rows), 1 + i % 2, i % 10 == 9)
    base = f"http://127.0.0.1:{airflow_port()}"
    prefix = f"burst_{stamp}_"
    dag_id = ingest_dag_id(PARTNER)
    t_start = time.monotonic()
    try:
        with psycopg.connect(s.url("airflow", s.airflow_db), autocommit=True) as conn:
            t0 = conn.execute("select now()").fetchone()[0]
            token = api_token(s, base)
            for i, name in enumerate(files):
                trigger_run(base, token, dag_id, f"{prefix}{i:02d}", {"file": name})

            def finished():
                states = conn.execute(
                    "select state, count(*) from dag_run where dag_id = %s and run_id like %s "
                    "group by state", [dag_id, prefix + "%"]).fetchall()
                done = sum(n for st, n in states if st in ("success", "failed"))
                return dict(states) if done == BURST else None

            runs = _until(finished, f"the {BURST} ingest runs did not finish", 900, s)
            loads_took = time.monotonic() - t_start

            # then the dbt runs the loads set off, until none is due or running
            def quiet():
                due = conn.execute(
                    "select (select count(*) from asset_dag_run_queue where target_dag_id = %s)"
                    " + (select count(*) from dag_run where dag_id = %s "
                    "    and state in ('queued', 'running'))",
                    [TRANSFORM_DAG, TRANSFORM_DAG]).fetchone()[0]
                return due == 0

            _until(lambda: quiet() and (time.sleep(10) or quiet()),
                   "the dbt runs the loads set off did not finish", 600, s)
            ingest_tis = conn.execute(
                "select ti.run_id, ti.task_id, ti.state, ti.pool, ti.queue, ti.try_number, "
                "ti.start_date, ti.end_date from task_instance ti "
                "where ti.dag_id = %s and ti.run_id like %s order by ti.start_date",
                [dag_id, prefix + "%"]).fetchall()
            dbt_tis = conn.execute(
                "select dr.run_id, ti.task_id, ti.state, ti.pool, ti.start_date, ti.end_date "
                "from task_instance ti join dag_run dr using (dag_id, run_id) "
                "where ti.dag_id = %s and dr.run_after >= %s and ti.start_date is not null "
                "order by ti.start_date", [TRANSFORM_DAG, t0]).fetchall()
            # every try of every task in pool dbt (earlier tries are in the history table)
            every_dbt = conn.execute(
                "select start_date, end_date from task_instance where dag_id = %s and "
                "pool = %s and start_date is not null union all "
                "select start_date, end_date from task_instance_history where dag_id = %s and "
                "pool = %s and start_date is not null order by 1",
                [TRANSFORM_DAG, DBT_POOL, TRANSFORM_DAG, DBT_POOL]).fetchall()
    finally:
        for name in files:
            (drop / name).unlink(missing_ok=True)
    took = time.monotonic() - t_start
    print(f"{BURST} deliveries loaded in {loads_took:.0f}s; with the dbt builds they set off "
          f"({len({r[0] for r in dbt_tis})} runs) {took:.0f}s")

    # the runs: the files whose row was quarantined fail (no retry), all others succeed
    assert runs == {"success": BURST - BURST // 10, "failed": BURST // 10}, runs
    assert len(ingest_tis) == 2 * BURST
    assert {(t[3], t[4]) for t in ingest_tis} == {(pool, "ingest")}, ingest_tis
    assert {t[5] for t in ingest_tis} == {1}, "a task was retried"
    lands = sorted((t[6], t[7]) for t in ingest_tis if t[1] == "land")
    loads = sorted((t[6], t[7]) for t in ingest_tis if t[1] == "validate_and_load")
    # one delivery of the source at a time: each land after the previous load ended
    for (_, load_end), (next_land, _) in zip(loads, lands[1:], strict=False):
        assert next_land >= load_end, "two deliveries of one source overlapped"

    # each file a batch, exactly once, its books balanced, its good rows in raw once
    batches = warehouse.execute(
        "select file_name, batch_id, status, rows_read, rows_loaded, rows_quarantined "
        "from ops.batches where file_name like %s", [prefix + "%"]).fetchall()
    assert sorted(b[0] for b in batches) == sorted(files), "not one batch per file"
    raw = dict(warehouse.execute(
        f"select batch_id::text, count(*) from raw.{contract.kind.raw_table} "
        f"where batch_id::text = any(%s) group by 1",
        [[str(b[1]) for b in batches]]).fetchall())
    for name, batch_id, status, read, loaded, quarantined in batches:
        rows, good, bad = files[name]
        assert read == loaded + quarantined, name
        assert (status, read, loaded, quarantined) == (
            ("quarantined", rows, good, 1) if bad else ("loaded", rows, good, 0)), name
        assert raw.get(str(batch_id), 0) == good, name

    # dbt: the loads set off builds, in pool dbt, every one succeeded (its privacy tests
    # included: a replaced month empties cells), and no two tries overlapped
    assert dbt_tis and {t[3] for t in dbt_tis} == {DBT_POOL}, dbt_tis
    builds = [t[2] for t in dbt_tis if t[1] == "dbt_build"]
    assert builds and set(builds) == {"success"}, dbt_tis
    for (_, end), (start, _) in zip(every_dbt, every_dbt[1:], strict=False):
        assert end is not None and start >= end, f"dbt tasks overlapped: {every_dbt}"


# --- faults: a worker killed mid-load (last), the broker restarted ---------------------------

def _kill_worker(s: Settings, hostname: str) -> list[int]:
    """SIGKILL the worker named ``hostname`` as a machine's loss would: its process group (the
    Celery worker and its pool) and every process below it (a task runs in a process group
    of its own). The pids killed."""
    from safeguard.cluster import _descendants

    index = int(hostname.split("@")[0].removeprefix("worker"))
    component = next(w for w in Cluster(s).workers if w.name == f"worker-{index}")
    pid = component.pid()
    assert pid, f"{component.name} is not running"
    family = [pid, *_descendants(pid)]
    os.killpg(pid, signal.SIGKILL)
    for p in family:
        try:
            os.kill(p, signal.SIGKILL)
        except ProcessLookupError:
            pass
    _until(lambda: not any(_running(p) for p in family), "the killed worker's processes "
           "are still there", 60, s, every=0.5)
    return family


def _builds(s: Settings, on: bool) -> None:
    """The dbt builds that loads set off, on or off (the transform DAG unpaused or paused):
    the fault tests are about loads, and a build they would set off takes minutes here.
    Through the REST API (``PATCH /api/v2/dags/{dag_id}``): the CLI's start costs seconds."""
    from safeguard.airflow_env import airflow_port

    base = f"http://127.0.0.1:{airflow_port()}"
    request = urllib.request.Request(
        f"{base}/api/v2/dags/{TRANSFORM_DAG}?update_mask=is_paused", method="PATCH",
        data=json.dumps({"is_paused": not on}).encode(),
        headers={"Content-Type": "application/json",
                 "Authorization": f"Bearer {api_token(s, base)}"})
    with urllib.request.urlopen(request, timeout=60) as r:
        assert json.load(r)["is_paused"] is (not on)


def test_a_retry_of_a_committed_load_loads_nothing_twice(sg_settings, scratch, warehouse,
                                                          tmp_path):
    """A worker lost after the load's commit, before Airflow heard of it: the retry finds the
    batch loaded and returns its result (the task succeeds, its Asset is updated), instead of
    loading it again or failing a run whose file is in."""
    from safeguard.contracts import get_contract
    from safeguard.ingest.landing import land_file
    from safeguard.ingest.load import validate_and_load

    contract = get_contract(sg_settings, PARTNER)
    path = tmp_path / "partner_retry_2021-08.csv"
    path.write_text(HEADER + "2021-08,NL,gaming,online_enticement,trust_development,public,44\n"
                             "2021-08,BE,gaming,online_enticement,trust_development,public,55\n")
    landed = land_file(sg_settings, contract, path, "test:retry")
    first = validate_and_load(sg_settings, contract, landed.batch_id)
    again = validate_and_load(sg_settings, contract, landed.batch_id)
    assert (first.status, first.rows_read, first.rows_loaded) == ("loaded", 2, 2)
    assert (again.status, again.rows_read, again.rows_loaded, again.rows_quarantined) == (
        "loaded", 2, 2, 0)
    assert "not loaded again" in again.message
    assert warehouse.execute(
        f"select count(*) from raw.{contract.kind.raw_table} where batch_id = %s",
        [landed.batch_id]).fetchone()[0] == 2


def test_the_broker_restarted_loses_nothing(cluster, scratch, warehouse):
    """Partner deliveries triggered together; the broker (the project's Redis) is restarted
    while one's task runs on a worker and the others wait their turn: every one still
    finishes, each file loaded exactly once. (Its append-only file keeps the queue across the
    restart; the workers and the scheduler reconnect.)"""
    from safeguard.airflow_env import airflow_port
    from safeguard.contracts import get_contract

    s, _ = cluster
    contract = get_contract(s, PARTNER)
    dag_id = ingest_dag_id(PARTNER)
    stamp = int(time.time())
    prefix = f"broker_{stamp}_"
    drop = s.drop_root / PARTNER
    files = []
    for i, month in enumerate(["2022-01", "2022-02", "2022-03", "2022-04"]):
        path = drop / f"{prefix}{month}.csv"
        path.write_text(HEADER + f"{month},NL,gaming,online_enticement,trust_development,"
                                 f"public,{45 + i}\n")
        files.append(path.name)
    base = f"http://127.0.0.1:{airflow_port()}"
    redis = Redis(s)
    _builds(s, on=False)
    try:
        with psycopg.connect(s.url("airflow", s.airflow_db), autocommit=True) as conn:
            token = api_token(s, base)
            for i, name in enumerate(files):
                trigger_run(base, token, dag_id, f"{prefix}{i}", {"file": name})
            # one delivery running on a worker, the others queued behind it
            _until(lambda: conn.execute(
                "select count(*) from task_instance where dag_id = %s and run_id like %s and "
                "state = 'running'", [dag_id, prefix + "%"]).fetchone()[0],
                "no delivery started", 300, s, every=0.5)
            # the broker's process restarted where its clients look for it (its port kept)
            before, port = redis.pid(), redis.port
            stop_group(before)
            redis.start("airflow-celery")
            assert redis.port == port
            assert redis.pid() not in (None, before) and redis.ping()

            def finished():
                states = dict(conn.execute(
                    "select state, count(*) from dag_run where dag_id = %s and run_id like %s "
                    "group by state", [dag_id, prefix + "%"]).fetchall())
                done = sum(n for st, n in states.items() if st in ("success", "failed"))
                return states if done == len(files) else None

            runs = _until(finished, "the deliveries did not all finish after the broker's "
                          "restart", 900, s)
    finally:
        for name in files:
            (drop / name).unlink(missing_ok=True)

    assert runs == {"success": len(files)}, _logs(s)
    batches = warehouse.execute(
        "select file_name, batch_id, status, rows_read, rows_loaded, rows_quarantined "
        "from ops.batches where file_name like %s", [prefix + "%"]).fetchall()
    assert sorted(b[0] for b in batches) == sorted(files), "not one batch per file"
    for name, batch_id, status, read, loaded, quarantined in batches:
        assert (status, read, loaded, quarantined) == ("loaded", 1, 1, 0), name
        assert warehouse.execute(
            f"select count(*) from raw.{contract.kind.raw_table} where batch_id = %s",
            [batch_id]).fetchone()[0] == 1, name


def test_a_worker_killed_mid_load(cluster, scratch, warehouse):
    """A delivery's load is running on one worker when that worker dies (SIGKILL to it and to
    the task it forked, as a lost machine): Airflow notices the missing heartbeat
    (``SAFEGUARD_TASK_HEARTBEAT_TIMEOUT``), retries the task on the other ingest worker, and
    the batch is loaded exactly once: one batch for the file, loaded, its rows in raw once, its
    books balanced, nothing left in landing.

    The load is caught in the middle by a lock: the test holds the raw table in SHARE mode,
    so the load's transaction (rule pass done, rows being placed) waits on its insert into raw
    until the worker is dead, whatever the machine's speed. Two of the cluster's workers serve
    ``ingest`` from the start, so nothing is restarted for the test; the killed worker stays
    down, as a lost machine would, which is why this test comes last in the module."""
    from safeguard.airflow_env import airflow_port
    from safeguard.contracts import get_contract

    s, _ = cluster
    contract = get_contract(s, PARTNER)
    dag_id = ingest_dag_id(PARTNER)
    workers = _ingest_workers()
    base = f"http://127.0.0.1:{airflow_port()}"
    delivery = s.drop_root / PARTNER / f"killed_worker_{int(time.time())}_2021-06.csv"
    delivery.write_text(HEADER + "".join(
        f"2021-06,{country},gaming,online_enticement,trust_development,public,{n}\n"
        for country, n in (("NL", 41), ("BE", 52), ("DE", 63))))
    run_id = f"killed_worker_{int(time.time())}"
    blocker = psycopg.connect(s.admin_url(s.warehouse_db))
    try:
        _builds(s, on=False)
        token = api_token(s, base)
        blocker.execute(f"lock table raw.{contract.kind.raw_table} in share mode")
        with psycopg.connect(s.url("airflow", s.airflow_db), autocommit=True) as conn:
            trigger_run(base, token, dag_id, run_id, {"file": delivery.name})

            def loading():
                """The load's hostname once it runs and waits, mid-transaction, on raw."""
                ti = conn.execute(
                    "select hostname, try_number from task_instance where dag_id = %s and "
                    "run_id = %s and task_id = 'validate_and_load' and state = 'running'",
                    [dag_id, run_id]).fetchone()
                waiting = warehouse.execute(
                    "select count(*) from pg_stat_activity where usename = %s and "
                    "wait_event_type = 'Lock' and query ilike %s",
                    [ROLES["loader"], f"insert into raw.%{contract.kind.raw_table}%"]
                ).fetchone()[0]
                return ti if ti and ti[0] and waiting else None

            hostname, first_try = _until(loading, "the load did not start", 420, s, every=0.5)
            assert hostname in workers and first_try == 1
            _kill_worker(s, hostname)
            blocker.rollback()  # the dead load's transaction now ends, rolled back

            state = _until(lambda: conn.execute(
                "select state from dag_run where dag_id = %s and run_id = %s and state in "
                "('success', 'failed')", [dag_id, run_id]).fetchone(),
                "the run did not finish after the worker was killed", 600, s)[0]
            tis = {t: (st, n, h) for t, st, n, h in conn.execute(
                "select task_id, state, try_number, hostname from task_instance "
                "where dag_id = %s and run_id = %s", [dag_id, run_id])}
            history = conn.execute(
                "select try_number, hostname, state from task_instance_history "
                "where dag_id = %s and run_id = %s and task_id = 'validate_and_load'",
                [dag_id, run_id]).fetchall()
    finally:
        blocker.close()
        delivery.unlink(missing_ok=True)

    # retried once, on the other ingest worker
    assert state == "success", _logs(s)
    (other,) = workers - {hostname}
    assert tis["land"][:2] == ("success", 1), tis
    assert tis["validate_and_load"] == ("success", 2, other), tis
    assert [(n, h) for n, h, _ in history] == [(1, hostname)], history

    # loaded exactly once: one batch, its books balanced, its rows in raw once, landing empty
    batches = warehouse.execute(
        "select batch_id, status, rows_read, rows_loaded, rows_quarantined from ops.batches "
        "where file_name = %s", [delivery.name]).fetchall()
    assert [b[1:] for b in batches] == [("loaded", 3, 3, 0)], batches
    batch_id = batches[0][0]
    raw = warehouse.execute(
        f"select count(*), count(distinct source_row_number) from raw.{contract.kind.raw_table}"
        f" where batch_id = %s", [batch_id]).fetchone()
    assert raw == (3, 3)
    assert warehouse.execute("select count(*) from quarantine.rows where batch_id = %s",
                             [batch_id]).fetchone()[0] == 0
    assert warehouse.execute(
        "select count(*) from ops.batches where source_name = %s and status in "
        "('landing', 'landed')", [PARTNER]).fetchone()[0] == 0
    assert warehouse.execute(
        f"select count(*) from landing.{contract.landing_table}").fetchone()[0] == 0
