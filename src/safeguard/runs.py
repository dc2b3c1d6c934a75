"""Who is running what, for the audit trail (``ops.batches``, ``ops.publication_runs``).

A process working on a row of the audit trail (a batch it lands and loads, a dbt build) holds
a session-level advisory lock on it for as long as it works. A process that dies, or loses
its server, lets go of the lock with its connection, so the next run can tell an abandoned
row from one still in progress: :func:`is_held`.
"""

from __future__ import annotations

import getpass
import zlib

import psycopg

from safeguard.config import airflow_context

#: advisory-lock classes (two-key form; the loader's per-source locks use the one-key form,
#: whose keys are below 2**32, so they never meet these)
BATCH = 7  # a batch of ops.batches, while landing or loading
PUBLICATION_RUN = 8  # a dbt build of ops.publication_runs, while it runs


def run_by_default() -> str:
    """``airflow:<dag_id>/<run_id>`` inside an Airflow task (the task runner exports its context
    as ``AIRFLOW_CTX_*``), else ``cli:<user>``."""
    dag_id, run_id = airflow_context()
    if dag_id and run_id:
        return f"airflow:{dag_id}/{run_id}"
    return f"cli:{getpass.getuser()}"


def _key(lock_class: int, item_id: str) -> list[int]:
    return [lock_class, zlib.crc32(str(item_id).encode()) - 2**31]  # an int4


def hold(conn: psycopg.Connection, lock_class: int, item_id: str) -> None:
    """Say "I am working on this" for as long as ``conn`` lives."""
    conn.execute("select pg_advisory_lock(%s, %s)", _key(lock_class, item_id))


def is_held(conn: psycopg.Connection, lock_class: int, item_id: str) -> bool:
    """Whether some live connection (other than ``conn``) is working on it."""
    key = _key(lock_class, item_id)
    if conn.execute("select pg_try_advisory_lock(%s, %s)", key).fetchone()[0]:
        conn.execute("select pg_advisory_unlock(%s, %s)", key)
        return False
    return True
