"""Stage 1: stream a delivered file into its landing table with COPY, recording the batch.

The file is read once, record by record (memory does not grow with the file), mapped from
the source's headers to canonical names (``readers``), and sent through ``COPY ... FROM
STDIN``. Nothing is
judged here beyond what makes the file unreadable as a whole: GX judges rows next.
"""

from __future__ import annotations

import hashlib
import os
import socket
import time
import uuid
import zlib
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
from psycopg import sql

from safeguard.config import Settings
from safeguard.contracts import Contract
from safeguard.ingest.errors import FileRejected, SourceBusy
from safeguard.ingest.readers import read_records
from safeguard.ingest.tables import LINEAGE, ensure_raw_table, recreate_landing_table
from safeguard.periods import declared_period
from safeguard.runs import BATCH, hold, is_held, run_by_default


@dataclass(frozen=True)
class LandedBatch:
    batch_id: str
    contract: str
    file_name: str
    rows_read: int
    duplicate_of: str | None = None  # set when the same content was loaded before


def sha256_of(path: Path) -> tuple[str, int]:
    digest, size = hashlib.sha256(), 0
    with path.open("rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
            size += len(chunk)
    return digest.hexdigest(), size


def _finish(conn: psycopg.Connection, batch_id: str, status: str, message: str) -> None:
    try:
        conn.execute(
            "update ops.batches set status = %s, rows_read = 0, rows_loaded = 0, "
            "rows_quarantined = 0, message = %s, finished_at = %s where batch_id = %s",
            [status, message, datetime.now(UTC), batch_id])
        conn.commit()
    except psycopg.Error:
        pass  # the connection itself is gone; `safeguard status` shows the batch as stuck


#: a batch still landing after this long was abandoned (its process died and was not retried)
ABANDONED_AFTER = timedelta(hours=1)


def _open_batch(conn: psycopg.Connection, contract: Contract, batch_id: str, path: Path,
                digest: str, size: int, run_by: str, wait: float,
                holder: psycopg.Connection | None = None) -> str | None:
    """Record the batch, as the source's only one in landing, held by ``holder`` (default:
    ``conn``); return the batch that already loaded this content, if any.

    A source's landing table holds one batch at a time, so a second run (a backfill next to a
    scheduled run, a CLI ingest next to the DAG) waits until the first has loaded, under an
    advisory lock so that two runs never both see the table free. Waiting longer than ``wait``
    seconds raises SourceBusy, which Airflow retries."""
    deadline = time.monotonic() + wait
    while True:
        with conn.transaction():
            conn.execute("select pg_advisory_xact_lock(%s)", [source_lock_key(contract)])
            _release_abandoned(conn, contract)
            busy = conn.execute(
                "select batch_id, file_name from ops.batches where source_name = %s "
                "and status in ('landing', 'landed')", [contract.name]).fetchone()
            if not busy:
                # held before anyone can see it: a rerun never finds it 'landing' and unheld
                hold(holder or conn, BATCH, batch_id)
                earlier = conn.execute(
                    "select batch_id from ops.batches where source_name = %s and "
                    "file_sha256 = %s and status in ('loaded', 'loaded_with_warnings', "
                    "'quarantined')", [contract.name, digest]).fetchone()
                conn.execute(
                    "insert into ops.batches (batch_id, source_name, source_kind, file_name, "
                    "file_sha256, file_bytes, status, run_by, started_at) "
                    "values (%s, %s, %s, %s, %s, %s, %s, %s, %s)",
                    [batch_id, contract.name, contract.kind.name, path.name, digest, size,
                     "duplicate" if earlier else "landing", run_by, datetime.now(UTC)])
                return str(earlier[0]) if earlier else None
        if time.monotonic() > deadline:
            raise SourceBusy(f"{path.name}: {contract.name} is still loading {busy[1]} (batch "
                             f"{busy[0]}); try again when it has finished", None)
        time.sleep(2)


def _release_abandoned(conn: psycopg.Connection, contract: Contract) -> None:
    """Batches of this source left in landing by a run that is gone are marked failed: one
    still 'landing' that no process holds (its process was killed, or the server restarted
    under it); one 'landed' by a run that held it until loading (the CLI, ``ingest_file``)
    and that no process holds any more; or one 'landed' and left for longer than
    ABANDONED_AFTER (landed by an Airflow task, whose load task runs in another process:
    it never came, or gave up)."""
    for batch_id, status, started, held_until_loaded in conn.execute(
            "select batch_id, status, started_at < now() - %s, held_until_loaded "
            "from ops.batches "
            "where source_name = %s and status in ('landing', 'landed')",
            [ABANDONED_AFTER, contract.name]).fetchall():
        if (status == "landing" or started or held_until_loaded) and not is_held(
                conn, BATCH, str(batch_id)):
            conn.execute(
                "update ops.batches set status = 'failed', finished_at = now(), rows_read = 0, "
                "rows_loaded = 0, rows_quarantined = 0, message = %s where batch_id = %s",
                [f"abandoned while {status}: the run working on it is gone; the file was not "
                 f"loaded from this batch", batch_id])


def source_lock_key(contract: Contract) -> int:
    return zlib.crc32(f"safeguard:{contract.name}".encode())


def land_file(settings: Settings, contract: Contract, path: Path, run_by: str | None = None,
              wait: float = 600, hold_with: psycopg.Connection | None = None) -> LandedBatch:
    """Land the file as a new batch. ``hold_with``: a connection the caller keeps open until
    it has loaded the batch (``ingest_file``); the batch stays held on it after landing, so a
    rerun knows at once when that caller is gone, instead of after ABANDONED_AFTER."""
    path = Path(path)
    digest, size = sha256_of(path)
    batch_id = str(uuid.uuid4())
    run_by = run_by or run_by_default()
    with psycopg.connect(settings.url("loader")) as conn:
        ensure_raw_table(conn, contract.kind)
        conn.commit()
        earlier = _open_batch(conn, contract, batch_id, path, digest, size, run_by, wait,
                              hold_with)
        if earlier:
            _finish(conn, batch_id, "duplicate",
                    f"same content as batch {earlier}: not loaded again")
            return LandedBatch(batch_id, contract.name, path.name, 0, earlier)
        conn.commit()
        try:
            with conn.transaction():
                recreate_landing_table(conn, contract, declared_period(path.name))
                cols = list(contract.kind.types)
                copy_sql = sql.SQL("copy raw.{} ({}) from stdin").format(
                    sql.Identifier(contract.landing_table),
                    sql.SQL(", ").join(map(sql.Identifier, [*LINEAGE, *cols])))
                rows = 0
                key = settings.secret("SAFEGUARD_PSEUDONYM_KEY")
                with conn.cursor().copy(copy_sql) as copy:
                    for rows, rec in enumerate(read_records(contract, path, key), start=1):
                        copy.write_row([batch_id, rows, rec.row, rec.column, rec.pii,
                                        *(rec.values.get(c) for c in cols)])
                conn.execute(
                    "update ops.batches set status = 'landed', rows_read = %s, "
                    "held_until_loaded = %s, message = %s where batch_id = %s",
                    [rows, hold_with is not None,
                     f"landed; held until loaded by {run_by} (pid {os.getpid()} on "
                     f"{socket.gethostname()})" if hold_with is not None else None, batch_id])
        except FileRejected as e:
            _finish(conn, batch_id, "rejected", str(e))
            e.batch_id = batch_id
            raise
        except Exception as e:
            # whatever else broke (the server went away, a disk filled): the batch is marked
            # failed, never left looking as if it were still landing
            conn.rollback()
            _finish(conn, batch_id, "failed", f"{path.name}: landing failed: {e}")
            raise
    return LandedBatch(batch_id, contract.name, path.name, rows)
