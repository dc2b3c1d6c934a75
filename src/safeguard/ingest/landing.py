"""Stage 1: stream a delivered file into its landing table with COPY, recording the batch.

The file is read once, record by record (memory does not grow with the file), mapped from
the source's headers to canonical names (``readers``), and sent through ``COPY ... FROM
STDIN``. Nothing is
judged here beyond what makes the file unreadable as a whole: GX judges rows next.
"""

from __future__ import annotations

import getpass
import hashlib
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import psycopg
from psycopg import sql

from safeguard.config import Settings
from safeguard.contracts import Contract
from safeguard.ingest.errors import FileRejected
from safeguard.ingest.readers import read_records
from safeguard.ingest.tables import LINEAGE, ensure_raw_table, recreate_landing_table


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


def run_by_default() -> str:
    return f"cli:{getpass.getuser()}"


def land_file(settings: Settings, contract: Contract, path: Path, run_by: str | None = None
              ) -> LandedBatch:
    path = Path(path)
    digest, size = sha256_of(path)
    batch_id = str(uuid.uuid4())
    run_by = run_by or run_by_default()
    with psycopg.connect(settings.url("loader")) as conn:
        ensure_raw_table(conn, contract.kind)
        conn.commit()
        earlier = conn.execute(
            "select batch_id from ops.batches where source_name = %s and file_sha256 = %s "
            "and status in ('loaded', 'loaded_with_warnings', 'quarantined')",
            [contract.name, digest],
        ).fetchone()
        conn.execute(
            "insert into ops.batches (batch_id, source_name, source_kind, file_name, file_sha256,"
            " file_bytes, status, run_by, started_at) values (%s,%s,%s,%s,%s,%s,%s,%s,%s)",
            [batch_id, contract.name, contract.kind.name, path.name, digest, size,
             "duplicate" if earlier else "landing", run_by, datetime.now(UTC)],
        )
        if earlier:
            conn.execute(
                "update ops.batches set rows_read = 0, rows_loaded = 0, rows_quarantined = 0,"
                " finished_at = %s, message = %s where batch_id = %s",
                [datetime.now(UTC), f"same content as batch {earlier[0]}: not loaded again",
                 batch_id],
            )
            conn.commit()
            return LandedBatch(batch_id, contract.name, path.name, 0, str(earlier[0]))
        conn.commit()
        try:
            with conn.transaction():
                recreate_landing_table(conn, contract)
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
                    "update ops.batches set status = 'landed', rows_read = %s where batch_id = %s",
                    [rows, batch_id])
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
