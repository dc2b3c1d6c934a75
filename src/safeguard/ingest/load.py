"""Stage 3: move a validated batch from landing into ``raw`` and ``quarantine``, atomically.

One transaction per batch: the good rows into the kind's raw table (cast to their SQL types,
labels mapped to our codes), the failing rows into ``quarantine.rows`` with their reasons, and
the accounting on ``ops.batches`` (rows read = loaded + quarantined, enforced by a CHECK).
Either all of it commits or none of it does.
"""

from __future__ import annotations

import contextlib
import json
from dataclasses import dataclass
from datetime import UTC, datetime

import psycopg
from psycopg import sql
from psycopg.types.json import Jsonb

from safeguard.config import Settings
from safeguard.contracts import Column, Contract
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


Location = tuple[int, str | None]  # the row in the file, and the header of an unpivoted cell


def _at(record: int, locations: dict[int, Location]) -> str:
    row, column = locations.get(record, (record, None))
    return f"{row} ({column!r})" if column else str(row)


def _where(rows: list[int], locations: dict[int, Location]) -> str:
    shown = ", ".join(_at(r, locations) for r in rows[:MAX_ROWS_IN_MESSAGE])
    extra = len(rows) - MAX_ROWS_IN_MESSAGE
    more = f" (+{extra} more)" if extra > 0 else ""
    noun = "row" if len(rows) == 1 else "rows"
    return f"{noun} {shown}{more}" if rows else "whole file"


def describe_failures(file_name: str, failures: list[RuleFailure],
                      locations: dict[int, Location] | None = None) -> str:
    """One line per rule: file, the rows as numbered in the file, column, rule, message."""
    locations = locations or {}
    return "\n".join(
        f"{file_name}, {_where(f.rows, locations)}, column {f.column or '-'}: rule {f.rule}: "
        f"{f.message}" for f in failures)


def _row_reasons(failures: list[RuleFailure]) -> dict[int, list[dict[str, str | None]]]:
    reasons: dict[int, list[dict[str, str | None]]] = {}
    for f in failures:
        for row in f.rows:
            reasons.setdefault(row, []).append(
                {"column": f.column, "rule": f.rule, "message": f.message})
    return reasons


def _locations(conn: psycopg.Connection, landing: sql.Composable, records: list[int]
               ) -> dict[int, Location]:
    """Record number -> where it is in the file."""
    if not records:
        return {}
    return {n: (row, column) for n, row, column in conn.execute(
        sql.SQL("select source_row_number, source_row, source_column from {} "
                "where source_row_number = any(%s)").format(landing), [records])}


def _identifying(conn: psycopg.Connection, landing: sql.Composable, contract: Contract,
                 failures: list[RuleFailure]) -> list[RuleFailure]:
    """GX says which rows hold identifying data; the reader noted what and where (masked):
    one failure per column and kind of data (rule ``pii_<what>``), for the batch report."""
    if not any(f.rule == "no_identifying_data" for f in failures):
        return failures
    found: dict[tuple[str, str], list[int]] = {}
    for record, findings in conn.execute(sql.SQL(
            "select source_row_number, pii_findings from {} where pii_findings is not null "
            "order by 1").format(landing)):
        for item in findings.split("; "):
            column, _, what = item.partition(":")
            for w in what.split("+"):
                found.setdefault((column, w), []).append(record)
    labels = {c.name: c.label for c in contract.columns}
    def failure(column: str, what: str, rows: list[int]) -> RuleFailure:
        label = repr(labels.get(column, column))
        if what == "formula":
            return RuleFailure("no_formula", column, f"{label} starts like a spreadsheet formula "
                               f"(=, +, -, @): never loaded (the value is masked)", rows)
        return RuleFailure(f"pii_{what}", column, f"{label} holds {what.replace('_', ' ')}: "
                           f"identifying data is never loaded (the value is masked)", rows)

    return [f for f in failures if f.rule != "no_identifying_data"] + [
        failure(column, what, rows) for (column, what), rows in sorted(found.items())]


def _declared(conn: psycopg.Connection, landing: sql.Composable,
              failures: list[RuleFailure]) -> list[RuleFailure]:
    """The suite is the same for every file of a source; the period a failing row missed is
    this file's own: name it in the message."""
    from safeguard.ingest.validate import PERIOD_RULE
    from safeguard.periods import describe

    if not any(f.rule == PERIOD_RULE for f in failures):
        return failures
    bounds = conn.execute(sql.SQL("select declared_from, declared_before from {} "
                                  "where declared_from is not null limit 1").format(landing)
                          ).fetchone()
    if bounds is None:
        return failures
    period = describe(*bounds)
    return [RuleFailure(f.rule, f.column, f"{f.message} ({period}): deliver the row in the "
                        f"file of its own period", f.rows) if f.rule == PERIOD_RULE else f
            for f in failures]


def _mapping(c: Column) -> sql.Composable:
    return sql.SQL("(values {})").format(sql.SQL(", ").join(
        sql.SQL("({}, {})").format(sql.Literal(k), sql.Literal(v)) for k, v in c.values.items()))


def _insert_raw(conn: psycopg.Connection, contract: Contract, landing: sql.Composable,
                excluded: list[int]) -> int:
    """Good rows into raw, each value cast to its type and each label mapped to our code."""
    kind = contract.kind
    target = [sql.Identifier(n) for n in
              ("batch_id", "source_row_number", "source_row", "source_column")]
    select: list[sql.Composable] = [sql.SQL("l.{}").format(t) for t in target]
    for name, value in contract.constants.items():
        target.append(sql.Identifier(name))
        select.append(sql.Literal(value))
    joins = []
    codes: dict[str, sql.Composable] = {}
    for c in contract.columns:
        col = sql.SQL("l.{}").format(sql.Identifier(c.name))
        sql_type = sql.SQL(kind.columns[c.name])
        if c.type in ("category", "country", "boolean"):
            alias = sql.Identifier(f"map_{c.name}")
            joins.append(sql.SQL("left join {} as {}(label, code) on {}.label = {}").format(
                _mapping(c), alias, alias, col))
            codes[c.name] = sql.SQL("{}.code").format(alias)
            value = sql.SQL("{}.code::{}").format(alias, sql_type)
        elif c.type == "category_list":
            value = sql.SQL(
                "array(select distinct m.code from unnest(string_to_array({}, {})) as e(v) "
                "join {} as m(label, code) on m.label = trim(e.v) order by 1)").format(
                    col, sql.Literal(c.separator), _mapping(c))
        elif c.type == "month":
            value = sql.SQL("(left({}, 7) || '-01')::date").format(col)
        else:
            value = sql.SQL("{}::{}").format(col, sql_type)
        target.append(sql.Identifier(c.name))
        select.append(value)
        if c.name in kind.label_columns:
            target.append(sql.Identifier(kind.label_columns[c.name]))
            select.append(col)
    if contract.totals:
        target.append(sql.Identifier("is_total"))
        select.append(sql.SQL("coalesce({}, false)").format(sql.SQL(" and ").join(
            sql.SQL("{} = {}").format(codes[k], sql.Literal(v))
            for k, v in contract.totals.when.items())))
    return conn.execute(sql.SQL(
        "insert into raw.{table} ({target}) select {select} from {landing} as l {joins} "
        "where l.source_row_number <> all(%s)").format(
            table=sql.Identifier(kind.raw_table), target=sql.SQL(", ").join(target),
            select=sql.SQL(", ").join(select), landing=landing,
            joins=sql.SQL(" ").join(joins)), [excluded]).rowcount


def reconcile_totals(conn: psycopg.Connection, contract: Contract, batch_id: str
                     ) -> list[RuleFailure]:
    """Each published total row against the sum of its parts; a mismatch is a warning."""
    t = contract.totals
    if t is None:
        return []
    group = [g for g in contract.grain if g not in t.when]
    table = sql.Identifier("raw", contract.kind.raw_table)
    measure = sql.Identifier(t.sum_of)
    on = sql.SQL(" and ").join(sql.SQL("p.{0} is not distinct from tot.{0}").format(
        sql.Identifier(g)) for g in group) if group else sql.SQL("true")
    rows = conn.execute(sql.SQL("""
        select tot.source_row_number, {shown},
               tot.{measure}, coalesce(sum(p.{measure}), 0), count(p.*)
        from {table} as tot
        left join {table} as p on p.batch_id = tot.batch_id and not p.is_total and {on}
        where tot.batch_id = %(batch)s and tot.is_total
        group by tot.source_row_number, tot.{measure}{group}
        having abs(tot.{measure} - coalesce(sum(p.{measure}), 0)) > %(tolerance)s
        order by tot.source_row_number""").format(
            shown=sql.SQL("concat_ws(', ', {})").format(sql.SQL(", ").join(
                sql.SQL("{} || ' ' || tot.{}::text").format(sql.Literal(g), sql.Identifier(g))
                for g in group)) if group else sql.Literal(""),
            measure=measure, table=table, on=on,
            group=sql.SQL("").join(sql.SQL(", tot.{}").format(sql.Identifier(g)) for g in group)),
        {"batch": batch_id, "tolerance": t.tolerance}).fetchall()
    out = []
    for record, shown, total, parts, n in rows:
        out.append(RuleFailure(
            rule="total_reconciles", column=t.sum_of, rows=[record],
            message=(f"published total {total:,} ({shown}) but its {n} parts sum "
                     f"to {parts:,} (difference {total - parts:+,}); loaded as published, "
                     f"check the source")))
    return out


def load_batch(settings: Settings, contract: Contract, batch_id: str,
               failures: list[RuleFailure]) -> BatchResult:
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
        # times without an offset are in the source's time zone
        conn.execute("select set_config('timezone', %s, true)", [contract.file.timezone])
        failures = _identifying(conn, landing, contract, failures)
        failures = _declared(conn, landing, failures)
        reasons = _row_reasons(failures)
        locations = _locations(conn, landing, sorted({r for f in failures for r in f.rows}))
        unlocated = [f for f in failures if not f.rows]
        reject_all = bool(failures) and (contract.on_row_failure == "reject_batch"
                                         or bool(unlocated))
        if reject_all:
            why = "batch rejected: " + ("; ".join(f"{f.rule} on {f.column}" for f in failures))
            default_reason = [{"column": None, "rule": "batch_rejected", "message": why}]
        else:
            default_reason = None
        quarantined = conn.execute(sql.SQL("""
            insert into quarantine.rows (batch_id, source_name, source_row_number, reasons, record)
            select l.batch_id, %(source)s, l.source_row_number,
                   coalesce(r.reasons, %(default)s::jsonb),
                   jsonb_strip_nulls(to_jsonb(l) - 'batch_id' - 'source_row_number'
                                     - 'declared_from' - 'declared_before')
            from {landing} as l
            left join jsonb_to_recordset(%(reasons)s::jsonb) as r(row bigint, reasons jsonb)
                on r.row = l.source_row_number
            where r.row is not null or %(reject_all)s
            """).format(landing=landing), {
                "source": contract.name,
                "default": Jsonb(default_reason) if default_reason else None,
                "reasons": json.dumps([{"row": k, "reasons": v} for k, v in reasons.items()]),
                "reject_all": reject_all}).rowcount
        loaded, warnings = 0, []
        if not reject_all:
            loaded = _insert_raw(conn, contract, landing, list(reasons))
            warnings = reconcile_totals(conn, contract, batch_id)
        if rows_read == 0:
            warnings.append(RuleFailure("has_data_rows", None,
                                        "the file has a header but no data rows"))
        status = ("rejected" if reject_all else "quarantined" if quarantined
                  else "loaded_with_warnings" if warnings else "loaded")
        message = (describe_failures(file_name, failures, locations) if failures
                   else f"{file_name}: {loaded} rows loaded")
        if warnings:
            locations.update(_locations(conn, landing, [r for w in warnings for r in w.rows]))
            message += "\n" + describe_failures(file_name, warnings, locations)
        for severity, issues in (("error", failures), ("warning", warnings)):
            for f in issues:
                rows = [locations.get(r, (r, None))[0] for r in f.rows[:MAX_ROWS_IN_MESSAGE]]
                conn.execute(
                    "insert into ops.batch_issues (batch_id, rule, column_name, row_count, "
                    "example_rows, severity, message) values (%s, %s, %s, %s, %s, %s, %s)",
                    [batch_id, f.rule, f.column, len(f.rows), rows, severity, f.message])
        conn.execute(
            "update ops.batches set status = %s, rows_loaded = %s, rows_quarantined = %s, "
            "message = %s, finished_at = %s where batch_id = %s",
            [status, loaded, quarantined, message, datetime.now(UTC), batch_id])
        conn.execute(sql.SQL("truncate {}").format(landing))
    return BatchResult(batch_id, status, rows_read, loaded, quarantined, message)


def validate_and_load(settings: Settings, contract: Contract, batch_id: str,
                      holder: psycopg.Connection | None = None) -> BatchResult:
    """GX gate + load. Raises ValidationFailed (after committing quarantine) if rules broke.
    ``holder``: the connection that already holds the batch (``ingest_file``), else one of
    its own takes it."""
    from safeguard.ingest.validate import run_gate
    from safeguard.runs import BATCH, hold

    with contextlib.ExitStack() as stack:
        if holder is None:
            holder = stack.enter_context(
                psycopg.connect(settings.url("loader"), autocommit=True))
            hold(holder, BATCH, batch_id)  # a competing run sees this batch is being worked on
        failures = run_gate(settings, contract)
        result = load_batch(settings, contract, batch_id, failures)
    if failures:
        raise ValidationFailed(
            f"{contract.name}: batch {batch_id} {result.status}: {result.rows_quarantined} of "
            f"{result.rows_read} rows quarantined, {result.rows_loaded} loaded.\n"
            f"{result.message}\nThe rows and reasons are in quarantine.rows "
            f"(batch_id = '{batch_id}'); fix the file and deliver it again.", batch_id)
    return result
