"""Stage 3: move a validated batch from landing into ``raw`` and ``quarantine``, atomically.

One transaction per batch: the good rows into the kind's raw table (cast to their SQL types,
labels mapped to our codes), the failing rows into ``quarantine.rows`` with their reasons, and
the accounting on ``ops.batches`` (rows read = loaded + quarantined, enforced by a CHECK).
Either all of it commits or none of it does.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

import psycopg
from psycopg import sql
from psycopg.types.json import Jsonb

from safeguard.config import Settings
from safeguard.contracts import Column, Contract
from safeguard.contracts.predicates import (
    as_bigint,
    as_date,
    as_integer,
    as_month,
    as_timestamp,
    ident,
)
from safeguard.ingest.errors import IngestError, ValidationFailed
from safeguard.ingest.tables import (
    ensure_partitions,
    is_partitioned,
    landing_table,
    record_batch_issue,
)
from safeguard.ingest.validate import (
    FAILURES,
    MISMATCH_RULE,
    Rule,
    RuleFailure,
    compare,
    counted,
    find_failures,
    rules,
)

MAX_ROWS_IN_MESSAGE = 10
#: what GX counted per (rule, column); None when it could not count
GateCounts = list[tuple[str, str | None, int]] | None


@dataclass(frozen=True)
class BatchResult:
    batch_id: str
    status: str
    rows_read: int
    rows_loaded: int
    rows_quarantined: int
    message: str
    timings: dict[str, float] = field(default_factory=dict)


Location = tuple[int, str | None]  # the row in the file, and the header of an unpivoted cell


def _at(record: int, locations: dict[int, Location]) -> str:
    row, column = locations.get(record, (record, None))
    return f"{row} ({column!r})" if column else str(row)


def _where(f: RuleFailure, locations: dict[int, Location]) -> str:
    rows = f.rows[:MAX_ROWS_IN_MESSAGE]
    shown = ", ".join(_at(r, locations) for r in rows)
    extra = f.row_count - len(rows)
    more = f" (+{extra:,} more)" if extra > 0 else ""
    noun = "row" if f.row_count == 1 else "rows"
    return f"{noun} {shown}{more}" if rows else "whole file"


def describe_failures(file_name: str, failures: list[RuleFailure],
                      locations: dict[int, Location] | None = None) -> str:
    """One line per rule: file, the rows as numbered in the file, column, rule, message."""
    locations = locations or {}
    return "\n".join(
        f"{file_name}, {_where(f, locations)}, column {f.column or '-'}: rule {f.rule}: "
        f"{f.message}" for f in failures)


def _locations(conn: psycopg.Connection, landing: sql.Composable, records: list[int]
               ) -> dict[int, Location]:
    """Record number -> where it is in the file."""
    if not records:
        return {}
    return {n: (row, column) for n, row, column in conn.execute(
        sql.SQL("select source_row_number, source_row, source_column from {} "
                "where source_row_number = any(%s)").format(landing), [records])}


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
                        f"file of its own period", f.rows, f.count) if f.rule == PERIOD_RULE
            else f
            for f in failures]


def _mapping(c: Column) -> sql.Composable:
    """The column's label -> code mapping as a jsonb constant: one lookup per value."""
    return sql.SQL("{}::jsonb").format(sql.Literal(json.dumps(c.values)))


#: guarded casts (SQL over a landing column's text): a value that is not well formed becomes
#: null instead of an error, so no delivered value ever reaches the server as a failing cast
#: (whose message, and the server's log, would quote it). The gate has already set such rows
#: aside; the guard holds even if it had not.
_GUARDED = {
    "count": as_bigint, "integer": as_integer, "year": as_integer,
    "month": as_month, "date": as_date, "timestamp": as_timestamp,
    "pseudonym": lambda col: col,
}


def _insert_raw(conn: psycopg.Connection, contract: Contract, landing: sql.Composable) -> int:
    """Good rows (none that the rule pass set aside) into raw, each value cast to its type
    under a guard and each label mapped to our code."""
    kind = contract.kind
    target = [sql.Identifier(n) for n in
              ("batch_id", "source_row_number", "source_row", "source_column")]
    select: list[sql.Composable] = [sql.SQL("l.{}").format(t) for t in target]
    for name, value in contract.constants.items():
        target.append(sql.Identifier(name))
        select.append(sql.Literal(value))
    codes: dict[str, sql.Composable] = {}
    for c in contract.columns:
        col = sql.SQL("l.{}").format(sql.Identifier(c.name))
        sql_type = sql.SQL(kind.columns[c.name])
        if c.type in ("category", "country", "boolean"):
            codes[c.name] = sql.SQL("({} ->> {})").format(_mapping(c), col)
            value = sql.SQL("{}::{}").format(codes[c.name], sql_type)
        elif c.type == "category_list":
            # most lists hold one label: no unnest for those
            value = sql.SQL(
                "case when strpos({col}, {sep}) = 0 then array[{map} ->> trim({col})] "
                "else array(select distinct {map} ->> trim(e.v) "
                "from unnest(string_to_array({col}, {sep})) as e(v) order by 1) end").format(
                    col=col, sep=sql.Literal(c.separator), map=_mapping(c))
        else:
            value = sql.SQL(_GUARDED[c.type](f"l.{ident(c.name)}"))
        target.append(sql.Identifier(c.name))
        select.append(value)
        if c.name in kind.label_columns:
            target.append(sql.Identifier(kind.label_columns[c.name]))
            select.append(col)
        if c.name in kind.name_columns and c.names:
            target.append(sql.Identifier(kind.name_columns[c.name]))
            select.append(sql.SQL("({}::jsonb ->> {})").format(
                sql.Literal(json.dumps(c.names)), codes[c.name]))
    if contract.totals:
        target.append(sql.Identifier("is_total"))
        select.append(sql.SQL("coalesce({}, false)").format(sql.SQL(" and ").join(
            sql.SQL("{} = {}").format(codes[k], sql.Literal(v))
            for k, v in contract.totals.when.items())))
    good = sql.SQL("from {landing} as l where not exists (select from {failures} as f "
                   "where f.source_row_number = l.source_row_number)").format(
                       landing=landing, failures=FAILURES)
    if kind.partition_by and is_partitioned(conn, kind.raw_table):
        when = sql.SQL(_GUARDED["timestamp"](f"l.{ident(kind.partition_by)}"))
        months = [m for (m,) in conn.execute(sql.SQL(
            "select distinct date_trunc('month', {} at time zone 'UTC')::date {} "
            "and {} is not null").format(when, good, when)).fetchall()]
        ensure_partitions(conn, kind, months)
    return conn.execute(sql.SQL("insert into raw.{table} ({target}) select {select} {good}")
                        .format(table=sql.Identifier(kind.raw_table),
                                target=sql.SQL(", ").join(target),
                                select=sql.SQL(", ").join(select), good=good)).rowcount


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
    # the flag travels with the figures: every row of the batch is checked, and the rows of
    # a group whose total does not add up (the total and its parts) carry the warning
    conn.execute(sql.SQL("update {} set total_reconciles = true, reconcile_note = null "
                         "where batch_id = %s").format(table), [batch_id])
    for record, shown, total, parts, n in rows:
        failure = RuleFailure(
            rule="total_reconciles", column=t.sum_of, rows=[record],
            message=(f"published total {total:,} ({shown}) but its {n} parts sum "
                     f"to {parts:,} (difference {total - parts:+,}); loaded as published, "
                     f"check the source"))
        out.append(failure)
        conn.execute(sql.SQL("""
            update {table} as p set total_reconciles = false, reconcile_note = %(note)s
            from {table} as tot
            where tot.batch_id = %(batch)s and tot.source_row_number = %(record)s
                and p.batch_id = tot.batch_id
                and (p.source_row_number = tot.source_row_number or (not p.is_total and {on}))
            """).format(table=table, on=on),
            {"note": failure.message, "batch": batch_id, "record": record})
    return out


def _failures(conn: psycopg.Connection, batch_rules: list[Rule],
              labels: dict[str, str]) -> list[RuleFailure]:
    """The failures the rule pass found, per (rule, column): exact count, first rows, message."""
    messages = {(r.rule, r.column): r.message for r in batch_rules}
    out = []
    for rule, column, count, examples in conn.execute(sql.SQL("""
            with f as (select distinct source_row_number, rule, column_name from {failures}),
            ex as (select *, row_number() over (partition by rule, column_name
                                                order by source_row_number) as k from f)
            select rule, column_name, count(*),
                   array_agg(source_row_number order by source_row_number)
                       filter (where k <= %s)
            from ex group by rule, column_name
            order by min(source_row_number), rule, column_name""").format(failures=FAILURES),
            [MAX_ROWS_IN_MESSAGE]):
        if rule == "no_formula":
            message = (f"{labels.get(column, column)!r} starts like a spreadsheet formula "
                       f"(=, +, -, @): never loaded (the value is masked)")
        elif rule.startswith("pii_"):
            message = (f"{labels.get(column, column)!r} holds "
                       f"{rule.removeprefix('pii_').replace('_', ' ')}: identifying data is "
                       f"never loaded (the value is masked)")
        else:
            message = messages.get((rule, column), rule)
        out.append(RuleFailure(rule, column, message, list(examples), count))
    return out


def _reason_messages(conn: psycopg.Connection, failures: list[RuleFailure]) -> None:
    conn.execute("create temporary table gate_messages (rule text, column_name text, "
                 "message text) on commit drop")
    with conn.cursor().copy("copy gate_messages from stdin") as copy:
        for f in failures:
            copy.write_row([f.rule, f.column, f.message])


def load_batch(settings: Settings, contract: Contract, batch_id: str,
               gx_counts: GateCounts | Callable[[], GateCounts],
               batch_rules: list[Rule]) -> BatchResult:
    """Set aside every failing row and load the others, in one transaction; or, if that
    cannot be done, reject the batch whole and empty its landing table (never half a batch,
    never a value in the message). ``gx_counts``: what GX counted per rule (None when GX
    could not count: the batch is rejected, fail closed)."""
    landing = landing_table(contract)
    with psycopg.connect(settings.url("loader")) as conn:
        try:
            with conn.transaction():
                return _load(conn, contract, batch_id, landing, gx_counts, batch_rules)
        except IngestError:
            raise
        except Exception as e:
            # the error's text is not repeated: a server's message may quote a value
            state = getattr(getattr(e, "diag", None), "sqlstate", None)
            why = (f"the load stopped ({type(e).__name__}"
                   f"{f', SQLSTATE {state}' if state else ''}): nothing of the batch was "
                   f"loaded (rule: load_completes); deliver the file again")
            _fail_batch(conn, contract, batch_id, "load_completes", why)
            raise IngestError(f"{contract.name}: batch {batch_id}: {why}", batch_id) from None


def _fail_batch(conn: psycopg.Connection, contract: Contract, batch_id: str, rule: str,
                why: str) -> None:
    conn.rollback()
    with conn.transaction():
        conn.execute(
            "update ops.batches set status = 'failed', rows_read = 0, rows_loaded = 0, "
            "rows_quarantined = 0, message = %s, finished_at = %s where batch_id = %s",
            [why, datetime.now(UTC), batch_id])
        record_batch_issue(conn, batch_id, rule, why)
        conn.execute(sql.SQL("truncate {}").format(landing_table(contract)))


def _place_rows(conn: psycopg.Connection, contract: Contract, batch_id: str,
                landing: sql.Composable, failures: list[RuleFailure], reject_all: bool
                ) -> tuple[int, int, list[RuleFailure]]:
    """The failing rows (all rows, when ``reject_all``) into quarantine with their reasons,
    the others into raw: (rows quarantined, rows loaded, warnings)."""
    _reason_messages(conn, failures)
    # the batch's rows against the (often empty) failures: a hash anti-join, not a loop
    conn.execute("set local enable_nestloop = off")
    default_reason = None
    if reject_all:
        why = "batch rejected: " + "; ".join(
            f"{f.rule}{f' on {f.column}' if f.column else ''}" for f in failures)
        default_reason = [{"column": None, "rule": "batch_rejected", "message": why}]
    quarantined = conn.execute(sql.SQL("""
        insert into quarantine.rows (batch_id, source_name, source_row_number, reasons, record)
        select l.batch_id, %(source)s, l.source_row_number,
               coalesce(r.reasons, %(default)s::jsonb),
               jsonb_strip_nulls(to_jsonb(l) - 'batch_id' - 'source_row_number'
                                 - 'declared_from' - 'declared_before')
        from {landing} as l
        left join (
            select f.source_row_number,
                   jsonb_agg(jsonb_build_object('column', f.column_name, 'rule', f.rule,
                                                'message', m.message)
                             order by f.rule, f.column_name) as reasons
            from {failures} as f
            join gate_messages as m
                on m.rule = f.rule and m.column_name is not distinct from f.column_name
            group by f.source_row_number) as r on r.source_row_number = l.source_row_number
        where r.source_row_number is not null or %(reject_all)s
        """).format(landing=landing, failures=FAILURES), {
            "source": contract.name,
            "default": Jsonb(default_reason) if default_reason else None,
            "reject_all": reject_all}).rowcount
    loaded, warnings = 0, []
    if not reject_all:
        loaded = _insert_raw(conn, contract, landing)
        warnings = reconcile_totals(conn, contract, batch_id)
    return quarantined, loaded, warnings


#: a batch whose load committed: its rows are in raw and quarantine, its landing table emptied
FINISHED = ("loaded", "loaded_with_warnings", "quarantined", "rejected")


def _already_loaded(conn: psycopg.Connection, batch_id: str) -> BatchResult:
    """A retry of a load that had committed (its worker was lost after the commit, before
    Airflow heard of it): the batch's recorded result, not a second load nor a failure. (A
    load killed before its commit left nothing: the server rolled it back, and the row lock
    taken above waited for that.)"""
    status, read, loaded, quarantined, message = conn.execute(
        "select status, rows_read, rows_loaded, rows_quarantined, message from ops.batches "
        "where batch_id = %s", [batch_id]).fetchone()
    return BatchResult(batch_id, status, read, loaded, quarantined,
                       f"{message}\n(loaded by an earlier try of this run: not loaded again)")


def _load(conn: psycopg.Connection, contract: Contract, batch_id: str,
          landing: sql.Composable, gx_counts: GateCounts | Callable[[], GateCounts],
          batch_rules: list[Rule]) -> BatchResult:
    batch = conn.execute(
        "select file_name, status, rows_read from ops.batches where batch_id = %s for update",
        [batch_id]).fetchone()
    if batch is not None and batch[1] in FINISHED:
        return _already_loaded(conn, batch_id)
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
    find_failures(conn, contract, landing, batch_rules)
    failures = _declared(conn, landing, _failures(
        conn, batch_rules, {c.name: c.label for c in contract.columns}))
    # The rows are placed on the rule pass's findings while GX still counts (on its own
    # connection): in a savepoint, undone if GX's counts then differ, when the batch is
    # rejected whole instead (fail closed). Nothing commits before the counts are compared.
    reject_rows = bool(failures) and contract.on_row_failure == "reject_batch"
    with conn.transaction() as attempt:
        quarantined, loaded, warnings = _place_rows(conn, contract, batch_id, landing,
                                                    failures, reject_rows)
        if callable(gx_counts):  # GX counting beside the rule pass: its counts are needed now
            gx_counts = gx_counts()
        if gx_counts is None:
            disagree = ["GX could not count the rules of this batch"]
        else:
            disagree = compare(gx_counts, counted(conn))
        if disagree:
            raise psycopg.Rollback(attempt)
    if disagree:
        failures.append(RuleFailure(
            MISMATCH_RULE, None, "the gate's counts and the rows set aside differ, so the "
            "batch is rejected whole (fail closed): " + "; ".join(disagree), [], 0))
        quarantined, loaded, warnings = _place_rows(conn, contract, batch_id, landing,
                                                    failures, True)
    reject_all = bool(disagree) or reject_rows
    if rows_read == 0:
        warnings.append(RuleFailure("has_data_rows", None,
                                    "the file has a header but no data rows"))
    status = ("rejected" if reject_all else "quarantined" if quarantined
              else "loaded_with_warnings" if warnings else "loaded")
    locations = _locations(conn, landing, sorted(
        {r for f in [*failures, *warnings] for r in f.rows}))
    message = (describe_failures(file_name, failures, locations) if failures
               else f"{file_name}: {loaded} rows loaded")
    if warnings:
        message += "\n" + describe_failures(file_name, warnings, locations)
    for severity, issues in (("error", failures), ("warning", warnings)):
        for f in issues:
            rows = [locations.get(r, (r, None))[0] for r in f.rows[:MAX_ROWS_IN_MESSAGE]]
            conn.execute(
                "insert into ops.batch_issues (batch_id, rule, column_name, row_count, "
                "example_rows, severity, message) values (%s, %s, %s, %s, %s, %s, %s)",
                [batch_id, f.rule, f.column, f.row_count, rows, severity, f.message])
    # the server's clock (see fct_hotline_cases: increments take the batches finished since
    # the last merge, so the stamps of all loaders must come from one clock)
    conn.execute(
        "update ops.batches set status = %s, rows_loaded = %s, rows_quarantined = %s, "
        "message = %s, finished_at = clock_timestamp() where batch_id = %s",
        [status, loaded, quarantined, message, batch_id])
    conn.execute(sql.SQL("truncate {}").format(landing))
    return BatchResult(batch_id, status, rows_read, loaded, quarantined, message)


def validate_and_load(settings: Settings, contract: Contract, batch_id: str,
                      holder: psycopg.Connection | None = None) -> BatchResult:
    """GX gate + load. Raises ValidationFailed (after committing quarantine) if rules broke.
    ``holder``: the connection that already holds the batch (``ingest_file``), else one of
    its own takes it."""
    from concurrent.futures import ThreadPoolExecutor

    from safeguard.ingest.validate import GateError, run_gate
    from safeguard.runs import BATCH, hold

    timings: dict[str, float] = {}

    def count_with_gx() -> list[tuple[str, str | None, int]] | None:
        t = time.perf_counter()
        try:
            return run_gate(settings, contract, batch_rules)
        except GateError:
            return None
        finally:
            timings["GX gate (beside the rule pass)"] = time.perf_counter() - t

    with contextlib.ExitStack() as stack:
        if holder is None:
            holder = stack.enter_context(
                psycopg.connect(settings.url("loader"), autocommit=True))
            hold(holder, BATCH, batch_id)  # a competing run sees this batch is being worked on
        batch_rules = rules(contract)
        t = time.perf_counter()
        # GX counts on its own connection while the rule pass selects the failing rows on the
        # load's: the two read the same landing table, and the load waits for both
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="gx-gate") as pool:
            counting = pool.submit(count_with_gx)
            result = load_batch(settings, contract, batch_id, counting.result, batch_rules)
        timings["gate, rules and load"] = time.perf_counter() - t
    result = dataclasses.replace(result, timings=timings)
    if result.status in ("rejected", "quarantined"):
        raise ValidationFailed(
            f"{contract.name}: batch {batch_id} {result.status}: {result.rows_quarantined} of "
            f"{result.rows_read} rows quarantined, {result.rows_loaded} loaded.\n"
            f"{result.message}\nThe rows and reasons are in quarantine.rows "
            f"(batch_id = '{batch_id}'); fix the file and deliver it again.", batch_id,
            result)
    return result
