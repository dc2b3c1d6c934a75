"""Airflow for this project: its environment, the headless run, and the standalone server.

Airflow's metadata lives in PostgreSQL (a database and role of its own), its home
under ``$SAFEGUARD_HOME/airflow``; secrets (JWT, API key, admin password) come from the
generated ``secrets.env``. Parallelism is kept low: the default starts ~32 workers (5+ GB).
``SAFEGUARD_EXECUTOR=celery`` turns on the CeleryExecutor (``safeguard cluster up`` starts its
components): broker in the project's Redis, results in Airflow's metadata database.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.request
from pathlib import Path

from safeguard.config import Settings, child_env, env, write_private
from safeguard.dag_ids import DBT_POOL, DEFAULT_QUEUE, ingest_pool
from safeguard.services import Redis, ServiceError

#: Airflow's Celery broker is database 2 of the project's Redis (Superset's reports use 0, 1)
BROKER_DB = 2
#: who Airflow's Celery starts the project's Redis for (see ``services.Redis.release``)
REDIS_USER = "airflow-celery"


def airflow_exe() -> str:
    return str(Path(sys.executable).with_name("airflow"))


def airflow_port() -> int:
    return int(env("AIRFLOW_PORT", "8080"))


def executor() -> str:
    """``SAFEGUARD_EXECUTOR``: ``local`` (the default: ``airflow standalone``, LocalExecutor) or
    ``celery`` (``safeguard cluster up``)."""
    return (env("SAFEGUARD_EXECUTOR") or "local").strip().lower()


def heartbeat_timeout() -> str:
    """``SAFEGUARD_TASK_HEARTBEAT_TIMEOUT``: seconds without a heartbeat before a running task
    counts as lost (its worker died) and is retried; default 300 (Airflow's). Shorter finds a
    dead worker sooner; too short, and a worker starved of CPU looks dead."""
    value = env("SAFEGUARD_TASK_HEARTBEAT_TIMEOUT", "300") or "300"
    if not value.isdigit() or int(value) < 15:
        raise ServiceError(f"SAFEGUARD_TASK_HEARTBEAT_TIMEOUT={value!r}: give seconds, 15 "
                           "or more (heartbeats come every 5 s)")
    return value


def celery_env(s: Settings) -> dict[str, str]:
    """What every Airflow component (on any machine) needs for the CeleryExecutor: the broker
    (the project's Redis, or ``REDIS_URL``; set once Redis has started), the result backend in
    Airflow's metadata database, and a worker's default size."""
    redis = Redis(s)
    out = {
        "AIRFLOW__CORE__EXECUTOR": "CeleryExecutor",
        "AIRFLOW__OPERATORS__DEFAULT_QUEUE": DEFAULT_QUEUE,
        "AIRFLOW__CELERY__RESULT_BACKEND": "db+" + s.url("airflow", s.airflow_db,
                                                         driver="postgresql+psycopg2"),
        # processes per worker (Airflow's default, 16, is 3+ GB per worker)
        "AIRFLOW__CELERY__WORKER_CONCURRENCY": env("SAFEGUARD_CELERY_CONCURRENCY", "2") or "2",
        # a dbt build at volume may take hours: redelivered only after 6 (Airflow's default 24).
        # A worker that dies leaves its message unacknowledged (acks_late) until then; the
        # scheduler has long retried the task by that time, under a new task instance id, so
        # a late redelivery is refused by the execution API and runs nothing twice
        "AIRFLOW__CELERY_BROKER_TRANSPORT_OPTIONS__VISIBILITY_TIMEOUT": "21600",
        # a worker lost mid-task is noticed by its task's missing heartbeat (sent every 5 s by
        # the worker's supervisor, whatever the task does): failed after this many seconds
        # and retried on another worker. Airflow's default, 300, unless said otherwise
        "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT": heartbeat_timeout(),
    }
    if redis.external_url or redis.port is not None:
        out["AIRFLOW__CELERY__BROKER_URL"] = redis.url(BROKER_DB)
    return out


def _passwords_file(s: Settings) -> Path:
    return s.home / "airflow" / "passwords.json"


def airflow_env(s: Settings) -> dict[str, str]:
    home = s.home / "airflow"
    home.mkdir(parents=True, exist_ok=True)
    port = airflow_port()
    venv_bin = str(Path(sys.executable).parent)
    out = {
        **child_env(),
        # `airflow standalone` starts its components as `airflow ...` from PATH
        "PATH": venv_bin + os.pathsep + (env("PATH") or ""),
        "SAFEGUARD_ROOT": str(s.root),
        "SAFEGUARD_HOME": str(s.home),
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(s.root / "dags"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
        "AIRFLOW__CORE__PARALLELISM": "4",
        "AIRFLOW__CORE__MAX_ACTIVE_TASKS_PER_DAG": "4",
        "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "False",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": "admin:admin",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(_passwords_file(s)),
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": s.url(
            "airflow", s.airflow_db, driver="postgresql+psycopg2"),
        "AIRFLOW__API__PORT": str(port),
        "AIRFLOW__API__HOST": "127.0.0.1",
        "AIRFLOW__API__BASE_URL": f"http://localhost:{port}",
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://localhost:{port}/execution/",
        "AIRFLOW__API_AUTH__JWT_SECRET": s.secret("AIRFLOW__API_AUTH__JWT_SECRET"),
        "AIRFLOW__API__SECRET_KEY": s.secret("AIRFLOW__API__SECRET_KEY"),
        "AIRFLOW__API__WORKERS": "1",
        "AIRFLOW__SCHEDULER__ENABLE_HEALTH_CHECK": "False",
        # "@monthly" means "each month's data": a run's data interval is the month it loads
        # (Airflow 3's default trigger timetable gives an empty interval)
        "AIRFLOW__SCHEDULER__CREATE_CRON_DATA_INTERVALS": "True",
        "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "30",
        "AIRFLOW__LOGGING__LOGGING_LEVEL": "INFO",
        "GX_ANALYTICS_ENABLED": "false",
        "NO_PROXY": "*",
    }
    if executor() == "celery":
        out |= celery_env(s)
    return out


def airflow(s: Settings, *args: str, check: bool = True, capture: bool = False
            ) -> subprocess.CompletedProcess:
    return subprocess.run([airflow_exe(), *args], env=airflow_env(s), check=check, text=True,
                          capture_output=capture)


def pools(s: Settings) -> dict[str, dict]:
    """The pools the DAGs' tasks take a slot of (``airflow pools import`` format): ``dbt``, one
    slot, so that no two dbt builds (or a build and a release) ever overlap, whatever started
    them; and one per source kind, ``SAFEGUARD_INGEST_POOL_SLOTS`` slots (default 2), so that
    many sources delivering at once load at most that many files into one raw table at a time
    and leave the workers room for the other kinds and for dbt. (Each source itself loads one
    delivery at a time: its DAG's ``max_active_runs=1``, its landing table's lock.)"""
    from safeguard.contracts import all_contracts

    value = env("SAFEGUARD_INGEST_POOL_SLOTS", "2") or "2"
    if not value.isdigit() or int(value) < 1:
        raise ValueError(f"SAFEGUARD_INGEST_POOL_SLOTS={value!r}: give a number, 1 or more")
    kinds = sorted({c.kind.name for c in all_contracts(s).values()})
    out = {ingest_pool(k): {"slots": int(value), "include_deferred": False,
                            "description": f"loads of {k} sources at once"} for k in kinds}
    out[DBT_POOL] = {"slots": 1, "include_deferred": False,
                     "description": "dbt builds and releases: one at a time"}
    return out


def migrate(s: Settings) -> None:
    """Airflow's metadata schema, the pools, and the admin login of the simple auth manager."""
    airflow(s, "db", "migrate", capture=True)
    pool_file = s.home / "airflow" / "pools.json"
    pool_file.write_text(json.dumps(pools(s), indent=2))
    airflow(s, "pools", "import", str(pool_file), capture=True)
    passwords = _passwords_file(s)
    write_private(passwords, json.dumps({"admin": s.secret("AIRFLOW_ADMIN_PASSWORD")}))


# --- the REST API, as a partner's delivery would set a run off -----------------------------

def api_token(s: Settings, base: str, timeout: float = 60) -> str:
    """A JWT for Airflow's REST API at ``base``, as its admin."""
    body = json.dumps({"username": "admin",
                       "password": s.secret("AIRFLOW_ADMIN_PASSWORD")}).encode()
    request = urllib.request.Request(f"{base}/auth/token", data=body,
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=timeout) as r:
        return json.load(r)["access_token"]


def trigger_run(base: str, token: str, dag_id: str, run_id: str, conf: dict) -> None:
    """A DAG run through Airflow's REST API (``POST /api/v2/dags/{dag_id}/dagRuns``)."""
    body = json.dumps({"dag_run_id": run_id, "logical_date": None, "conf": conf}).encode()
    request = urllib.request.Request(
        f"{base}/api/v2/dags/{dag_id}/dagRuns", data=body, method="POST",
        headers={"Content-Type": "application/json", "Authorization": f"Bearer {token}"})
    with urllib.request.urlopen(request, timeout=60) as r:
        r.read()
