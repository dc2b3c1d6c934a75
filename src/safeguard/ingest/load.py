"""Stage 3: move a validated batch from landing into ``raw`` and ``quarantine``, atomically.

One transaction per batch: the good rows into the kind's raw table (cast to their SQL types,
labels mapped to our codes), the failing rows into ``quarantine.rows`` with their reasons, and
the accounting on ``ops.batches`` (rows read = loaded + quarantined, enforced by a CHECK).
Either all of it commits or none of it does.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime

import psycopg
from psycopg import sql
from psycopg.types.json import Jsonb

from safeguard.config import Settings
from safeguard.contracts import Contract
from safeguard.ingest.errors import IngestError, ValidationFailed
from safeguard.ingest.validate import RuleFailure

MAX_ROWS_IN_MESSAGE = 10


@dataclass(frozen=True)
class BatchResult:
    batch_id: str
    status: str
    rows_read: int
    rows_loaded: int
    rows_quarantined: int
    message: str


def describe_failures(file_name: str, failures: list[RuleFailure]) -> str:
    lines = []
    for f in failures:
        rows = ", ".join(map(str, f.rows[:MAX_ROWS_IN_MESSAGE]))
        extra = len(f.rows) - MAX_ROWS_IN_MESSAGE
        more = f" (+{extra} more)" if extra > 0 else ""
        noun = "row" if len(f.rows) == 1 else "rows"
        where = f"{noun} {rows}{more}" if f.rows else "rows not identified"
        lines.append(f"{file_name}, {where}, column {f.column or '-'}: rule {f.rule}: {f.message}")
    return "\n".join(lines)


def _row_reasons(failures: list[RuleFailure]) -> dict[int, list[dict[str, str | None]]]:
    reasons: dict[int, list[dict[str, str | None]]] = {}
    for f in failures:
        for row in f.rows:
            reasons.setdefault(row, []).append(
                {"column": f.column, "rule": f.rule, "message": f.message})
    return reasons


def load_batch(settings: Settings, contract: Contract, batch_id: str,
               failures: list[RuleFailure]) -> BatchResult:
    kind = contract.kind
    landing = sql.Identifier("raw", contract.landing_table)
    with psycopg.connect(settings.url("loader")) as conn, conn.transaction():
        batch = conn.execute(
            "select file_name, status, rows_read from ops.batches where batch_id = %s for update",
            [batch_id]).fetchone()
        if batch is None or batch[1] != "landed":
            raise IngestError(f"batch {batch_id} is not waiting in landing (status: "
                              f"{batch[1] if batch else 'unknown'})", batch_id)
        file_name, _, rows_read = batch
        in_landing = conn.execute(sql.SQL(
            "select count(*), count(*) filter (where batch_id <> %s) from {}").format(landing),
            [batch_id]).fetchone()
        if in_landing[1] or in_landing[0] != rows_read:
            raise IngestError(f"landing table for {contract.name} no longer holds batch "
                              f"{batch_id} alone: another run replaced it; re-run this file",
                              batch_id)
        reasons = _row_reasons(failures)
        unlocated = [f for f in failures if not f.rows]
        reject_all = bool(failures) and (contract.on_row_failure == "reject_batch" or unlocated)
        if reject_all:
            why = "batch rejected: " + ("; ".join(f"{f.rule} on {f.column}" for f in failures))
            default_reason = [{"column": None, "rule": "batch_rejected", "message": why}]
        else:
            default_reason = None
        quarantined = conn.execute(sql.SQL("""
            insert into quarantine.rows (batch_id, source_name, source_row_number, reasons, record)
            select l.batch_id, %(source)s, l.source_row_number,
                   coalesce(r.reasons, %(default)s::jsonb),
                   to_jsonb(l) - 'batch_id' - 'source_row_number'
            from {landing} as l
            left join jsonb_to_recordset(%(reasons)s::jsonb) as r(row bigint, reasons jsonb)
                on r.row = l.source_row_number
            where r.row is not null or %(reject_all)s
            """).format(landing=landing), {
                "source": contract.name,
                "default": Jsonb(default_reason) if default_reason else None,
                "reasons": json.dumps([{"row": k, "reasons": v} for k, v in reasons.items()]),
                "reject_all": reject_all}).rowcount
        loaded = 0
        if not reject_all:
            target, select = [sql.Identifier("batch_id"), sql.Identifier("source_row_number")], [
                sql.SQL("l.batch_id"), sql.SQL("l.source_row_number")]
            for name, value in contract.constants.items():
                target.append(sql.Identifier(name))
                select.append(sql.Literal(value))
            joins = []
            for c in contract.columns:
                target.append(sql.Identifier(c.name))
                if c.type == "category":
                    alias = sql.Identifier(f"map_{c.name}")
                    mapping = sql.SQL(", ").join(
                        sql.SQL("({}, {})").format(sql.Literal(k), sql.Literal(v))
                        for k, v in c.values.items())
                    joins.append(sql.SQL("join (values {}) as {}(label, code) on {}.label = l.{}")
                                 .format(mapping, alias, alias, sql.Identifier(c.name)))
                    select.append(sql.SQL("{}.code").format(alias))
                    if c.name in kind.label_columns:
                        target.append(sql.Identifier(kind.label_columns[c.name]))
                        select.append(sql.SQL("l.{}").format(sql.Identifier(c.name)))
                else:
                    select.append(sql.SQL("l.{}::{}").format(
                        sql.Identifier(c.name), sql.SQL(kind.columns[c.name])))
            loaded = conn.execute(sql.SQL(
                "insert into raw.{table} ({target}) select {select} from {landing} as l {joins} "
                "where l.source_row_number <> all(%s)").format(
                    table=sql.Identifier(kind.raw_table), target=sql.SQL(", ").join(target),
                    select=sql.SQL(", ").join(select), landing=landing,
                    joins=sql.SQL(" ").join(joins)), [list(reasons)]).rowcount
        status = ("rejected" if reject_all else "quarantined" if quarantined else "loaded")
        message = (describe_failures(file_name, failures) if failures
                   else f"{file_name}: {loaded} rows loaded")
        for f in failures:
            conn.execute(
                "insert into ops.batch_issues (batch_id, rule, column_name, row_count, "
                "example_rows, severity, message) values (%s, %s, %s, %s, %s, 'error', %s)",
                [batch_id, f.rule, f.column, len(f.rows), f.rows[:MAX_ROWS_IN_MESSAGE],
                 f.message])
        conn.execute(
            "update ops.batches set status = %s, rows_loaded = %s, rows_quarantined = %s, "
            "message = %s, finished_at = %s where batch_id = %s",
            [status, loaded, quarantined, message, datetime.now(UTC), batch_id])
        conn.execute(sql.SQL("truncate {}").format(landing))
    return BatchResult(batch_id, status, rows_read, loaded, quarantined, message)


def validate_and_load(settings: Settings, contract: Contract, batch_id: str) -> BatchResult:
    """GX gate + load. Raises ValidationFailed (after committing quarantine) if rules broke."""
    from safeguard.ingest.validate import run_gate

    failures = run_gate(settings, contract)
    result = load_batch(settings, contract, batch_id, failures)
    if failures:
        raise ValidationFailed(
            f"{contract.name}: batch {batch_id} {result.status}: {result.rows_quarantined} of "
            f"{result.rows_read} rows quarantined, {result.rows_loaded} loaded.\n"
            f"{result.message}\nThe rows and reasons are in quarantine.rows "
            f"(batch_id = '{batch_id}'); fix the file and deliver it again.", batch_id)
    return result
