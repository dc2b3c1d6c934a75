"""Stage 1: stream a delivered file into its landing table with COPY, recording the batch.

The file is read in batches of records (memory does not grow with the file), mapped from the
source's headers to canonical names (``readers``), admitted value by value against the
allow-list of its contract (``admit``: what does not conform is replaced by a marker before it
leaves this process) and sent through ``COPY ... FROM STDIN`` as CSV. Nothing is judged here
beyond what makes the file unreadable as a whole: GX and the rules judge rows next.
"""

from __future__ import annotations

import io
import os
import socket
import time
import uuid
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
from psycopg import sql

from safeguard.config import Settings
from safeguard.contracts import Contract
from safeguard.ingest.admit import Admission, shown_file_name
from safeguard.ingest.errors import FileRejected, SourceBusy
from safeguard.ingest.keys import check_pseudonym_key, hold_pseudonym_key
from safeguard.ingest.readers import NotSimple, RawBatch, file_facts, read_batches
from safeguard.ingest.tables import (
    LINEAGE,
    ensure_raw_table,
    landing_table,
    record_batch_issue,
    recreate_landing_table,
)
from safeguard.periods import DeclaredPeriod, declared_period
from safeguard.progress import Reporter, rows_expected
from safeguard.runs import BATCH, hold, is_held, run_by_default


@dataclass(frozen=True)
class LandedBatch:
    batch_id: str
    contract: str
    file_name: str
    rows_read: int
    duplicate_of: str | None = None  # set when the same content was loaded before
    timings: dict[str, float] = field(default_factory=dict)


def sha256_of(path: Path) -> tuple[str, int]:
    facts = file_facts(path)
    return facts.sha256, facts.size


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
                # the server's clock, as for finished_at: dbt's incremental models order
                # batches by these two, whichever machine loaded them
                conn.execute(
                    "insert into ops.batches (batch_id, source_name, source_kind, file_name, "
                    "file_sha256, file_bytes, status, run_by, started_at) "
                    "values (%s, %s, %s, %s, %s, %s, %s, %s, clock_timestamp())",
                    [batch_id, contract.name, contract.kind.name, shown_file_name(path.name),
                     digest, size, "duplicate" if earlier else "landing", run_by])
                return str(earlier[0]) if earlier else None
        if time.monotonic() > deadline:
            raise SourceBusy(f"{shown_file_name(path.name)}: {contract.name} is still loading "
                             f"{busy[1]} (batch {busy[0]}); try again when it has finished", None)
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
                 f"loaded from this batch (rule: run_completes)", batch_id])
            record_batch_issue(
                conn, batch_id, "run_completes",
                f"the run working on this batch stopped while it was {status}; nothing of it "
                f"was loaded: deliver the file again")
            # what it had landed goes with it (the table holds one batch: this one)
            if conn.execute("select to_regclass(%s)",
                            [f"landing.{contract.landing_table}"]).fetchone()[0]:
                conn.execute(sql.SQL("truncate {}").format(landing_table(contract)))


def source_lock_key(contract: Contract) -> int:
    return zlib.crc32(f"safeguard:{contract.name}".encode())


def land_file(settings: Settings, contract: Contract, path: Path, run_by: str | None = None,
              wait: float = 600, hold_with: psycopg.Connection | None = None,
              progress: Reporter | None = None) -> LandedBatch:
    """Land the file as a new batch. ``hold_with``: a connection the caller keeps open until
    it has loaded the batch (``ingest_file``); the batch stays held on it after landing, so a
    rerun knows at once when that caller is gone, instead of after ABANDONED_AFTER.
    ``progress``: told about how many records the file holds (from the lines counted as it is
    hashed: no pass of its own), then the records sent so far after each batch."""
    path = Path(path)
    started = time.perf_counter()
    facts = file_facts(path)
    if progress is not None:
        progress.expect(rows_expected(contract, facts.lines))
    name = shown_file_name(path.name)
    batch_id = str(uuid.uuid4())
    run_by = run_by or run_by_default()
    with psycopg.connect(settings.url("loader")) as conn:
        ensure_raw_table(conn, contract.kind)
        conn.commit()
        keys = settings.pseudonym_keys()
        check_pseudonym_key(conn, contract, keys)
        earlier = _open_batch(conn, contract, batch_id, path, facts.sha256, facts.size, run_by,
                              wait, hold_with)
        if earlier:
            _finish(conn, batch_id, "duplicate",
                    f"same content as batch {earlier}: not loaded again")
            return LandedBatch(batch_id, contract.name, name, 0, earlier)
        conn.commit()
        try:
            with conn.transaction():
                hold_pseudonym_key(conn, contract, keys)  # no rotation while this lands
                declared = declared_period(path.name)
                given = values_not_in_file(contract, name, declared)
                recreate_landing_table(conn, contract, batch_id, declared)
                admission = Admission(contract, keys)
                try:
                    with conn.transaction():  # a savepoint: the fast reader may give up
                        rows = copy_admitted(conn, contract, admission,
                                     read_batches(contract, path, facts), given,
                                     progress=progress)
                except NotSimple:
                    rows = copy_admitted(conn, contract, admission,
                                 read_batches(contract, path, facts, fast=False), given,
                                 progress=progress)
                conn.execute(
                    "update ops.batches set status = 'landed', rows_read = %s, "
                    "held_until_loaded = %s, message = %s where batch_id = %s",
                    [rows, hold_with is not None,
                     f"landed; held until loaded by {run_by} (pid {os.getpid()} on "
                     f"{socket.gethostname()})" if hold_with is not None else None, batch_id])
        except FileRejected as e:
            _finish(conn, batch_id, "rejected", str(e))
            _record_rejection(conn, batch_id, str(e))
            e.batch_id = batch_id
            raise
        except Exception as e:
            # whatever else broke (the server went away, a disk filled): the batch is marked
            # failed, never left looking as if it were still landing. The error's own text is
            # not repeated: a driver's message may quote data.
            conn.rollback()
            _finish(conn, batch_id, "failed", f"{name}: landing failed ({_kind_of(e)}); "
                                              f"nothing was loaded: run it again")
            raise
    return LandedBatch(batch_id, contract.name, name, rows,
                       timings={"land: read, admit, COPY": time.perf_counter() - started})


def _kind_of(e: BaseException) -> str:
    state = getattr(getattr(e, "diag", None), "sqlstate", None)
    return f"{type(e).__name__}" + (f", SQLSTATE {state}" if state else "")


def _record_rejection(conn: psycopg.Connection, batch_id: str, message: str) -> None:
    """A file rejected whole is counted with the rules like any row rule (rule: the one the
    message names), so Pipeline health's "rules that fail most" sees it."""
    import re

    rule = re.search(r"\(rule: (\w+)\)", message)
    try:
        record_batch_issue(conn, batch_id, rule.group(1) if rule else "file_readable", message)
        conn.commit()
    except psycopg.Error:
        pass


#: landing columns COPY fills (batch_id and the declared period are column defaults)
_COPIED = [c for c in LINEAGE if c != "batch_id"]


def values_not_in_file(contract: Contract, shown_name: str,
                       declared: DeclaredPeriod | None) -> dict[str, str]:
    """The values the contract gives columns the file does not hold: fixed (``value:``) or
    read from the file's name (``from_file_name: true``). Each goes through the same
    allow-list and rules as a delivered value would. A name that does not declare the one
    year (or month) asked for rejects the file (rule ``value_from_file_name``)."""
    out: dict[str, str] = {}
    for c in contract.columns:
        if c.fixed is not None:
            out[c.name] = c.fixed
        elif c.from_file_name:
            last = declared.end - timedelta(days=1) if declared else None
            if c.name == "year" and declared and declared.start.year == last.year:
                out[c.name] = str(declared.start.year)
            elif c.name == "month" and declared and (declared.start.year, declared.start.month
                                                     ) == (last.year, last.month):
                out[c.name] = str(declared.start.month)
            else:
                what = "one year (e.g. _2022)" if c.name == "year" else "one month (_2022-03)"
                raise FileRejected(
                    f"{shown_name}: the contract takes column {c.name!r} from the file name, "
                    f"which must declare {what}; it declares "
                    f"{'nothing' if declared is None else str(declared)} "
                    f"(rule: value_from_file_name)")
    return out


def copy_admitted(conn: psycopg.Connection, contract: Contract, admission: Admission,
          batches: Iterator[RawBatch], given: dict[str, str] | None = None,
          table: sql.Composable | None = None,
          progress: Callable[[int], None] | None = None) -> int:
    """Admit each batch of records and send it through COPY as CSV; return the records.
    ``progress``: called with the records sent so far after each batch (a progress bar; it
    starts again from 0 when the reference reader takes over from the fast one)."""
    import pyarrow as pa
    import pyarrow.csv as pcsv

    cols = list(contract.kind.types)
    copy_sql = sql.SQL("copy {} ({}) from stdin (format csv)").format(
        table if table is not None else landing_table(contract),
        sql.SQL(", ").join(map(sql.Identifier, [*_COPIED, *cols])))
    rows = 0
    options = pcsv.WriteOptions(include_header=False)
    stopped: Exception | None = None
    with conn.cursor().copy(copy_sql) as copy:
        # A file found unreadable half-way ends the COPY here, and is raised after it: an
        # exception inside the block would be sent to the server as the COPY's abort message,
        # which the server writes to its log (and refuses beyond 10,000 characters). The rows
        # sent so far go with the transaction the caller rolls back.
        try:
            for raw in batches:
                n = len(raw)
                delivered = raw.columns
                if given:
                    delivered = {**delivered, **{c: pa.repeat(pa.scalar(v, pa.string()), n)
                                                 for c, v in given.items()}}
                admitted = admission(delivered)
                absent = pa.nulls(n, pa.string())
                table = pa.table({
                    "source_row_number": pa.array(range(rows + 1, rows + n + 1), pa.int64()),
                    "source_row": raw.source_row, "source_column": raw.source_column,
                    "pii_findings": admitted.findings,
                    **{c: admitted.columns.get(c, absent) for c in cols}})
                buffer = io.BytesIO()
                pcsv.write_csv(table, buffer, options)
                copy.write(buffer.getbuffer())
                rows += n
                if progress is not None:
                    progress(rows)
        except Exception as e:
            stopped = e
    if stopped is not None:
        raise stopped
    return rows
