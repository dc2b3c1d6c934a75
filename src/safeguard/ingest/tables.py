"""DDL derived from contracts and kinds. Identifiers are always quoted by psycopg's ``sql``."""

from __future__ import annotations

from datetime import date

import psycopg
from psycopg import sql

from safeguard.contracts import Contract
from safeguard.contracts.kinds import Kind
from safeguard.periods import DeclaredPeriod, next_month

QUARANTINE_DDL = """
create table if not exists quarantine.rows (
    batch_id            uuid not null references ops.batches (batch_id),
    source_name         text not null,
    source_row_number   bigint not null,
    reasons             jsonb not null,    -- [{column, rule, message}]
    record              jsonb not null,    -- the row as delivered, canonical names
    primary key (batch_id, source_row_number)
)
"""


def ensure_raw_table(conn: psycopg.Connection, kind: Kind) -> None:
    """Create the kind's raw table, or add the columns a newer version of the kind has. A kind
    with ``partition_by`` gets a table partitioned by that column's month (its partitions
    come with the loads: ``ensure_partitions``); a table made unpartitioned before stays so."""
    table = sql.Identifier("raw", kind.raw_table)
    if kind.partition_by:
        # the partition key is in every unique key (PostgreSQL's rule); a row's time is fixed
        # by its source row, so the key stays (batch, row)
        key = sql.Identifier(kind.partition_by)
        conn.execute(sql.SQL(
            "create table if not exists {} (batch_id uuid not null, source_row_number bigint "
            "not null, {} {} not null, primary key (batch_id, source_row_number, {})) "
            "partition by range ({})").format(
                table, key, sql.SQL(kind.columns[kind.partition_by]), key, key))
    conn.execute(sql.SQL(
        "create table if not exists {} (batch_id uuid not null, source_row_number bigint not "
        "null, primary key (batch_id, source_row_number))").format(table))
    # no foreign key to ops.batches: it costs a lookup per row of a million-row load, and the
    # loader writes one batch id per load, the one it has just locked in ops.batches; the
    # staging models join every row to its batch (a row without one would not be published)
    fkey = f"{kind.raw_table}_batch_id_fkey"
    if conn.execute("select 1 from pg_constraint where conname = %s and conrelid = %s::regclass",
                    [fkey, f"raw.{kind.raw_table}"]).fetchone():
        conn.execute(sql.SQL("alter table {} drop constraint {}").format(
            table, sql.Identifier(fkey)))
    cols = [("source_row", "bigint"), ("source_column", "text")]
    cols += list(kind.all_constants.items())
    for name, typ in kind.columns.items():
        cols.append((name, typ))
        if name in kind.label_columns:
            cols.append((kind.label_columns[name], "text"))
        if name in kind.name_columns:
            cols.append((kind.name_columns[name], "text"))
    if kind.has_totals:
        cols.append(("is_total", "boolean not null default false"))
        # set on the rows of a group whose published total does not add up (null: no total
        # checked), with the warning's text: the flag travels with the figure to reporting
        cols.append(("total_reconciles", "boolean"))
        cols.append(("reconcile_note", "text"))
    have = {r[0] for r in conn.execute(
        "select column_name from information_schema.columns where table_schema = 'raw' "
        "and table_name = %s", [kind.raw_table])}
    for name, typ in cols:
        if name in have:  # ALTER locks the table even when it does nothing
            continue
        conn.execute(sql.SQL("alter table {} add column if not exists {} {}").format(
            table, sql.Identifier(name), sql.SQL(typ)))
    conn.execute(QUARANTINE_DDL)


#: landing lineage: record number (unique in the batch), the file row it came from, the
#: header of the cell an unpivot read it from, and the identifying data found (masked) in it
LINEAGE = ("batch_id", "source_row_number", "source_row", "source_column", "pii_findings")


#: the period the file's name declares, [from, before), the same on every row of the batch
#: (column defaults, so COPY sends nothing for them); null when the name declares none
DECLARED = ("declared_from", "declared_before")

#: the loader's own schema for batches being checked (see infra/sql/02_warehouse.sql)
LANDING_SCHEMA = "landing"


#: serialises the making of partitions (pg_advisory_xact_lock key: "safeguard partitions")
PARTITIONS_LOCK = 0x5AFE_0012


def partition_name(raw_table: str, month: date) -> str:
    """``hotline_cases_2019_03``: the partition of a month."""
    return f"{raw_table}_{month:%Y_%m}"


def partitions(conn: psycopg.Connection, raw_table: str) -> dict[str, date]:
    """The partitions of a raw table, name -> month ({} when it is not partitioned)."""
    rows = conn.execute(
        "select c.relname from pg_inherits i join pg_class c on c.oid = i.inhrelid "
        "where i.inhparent = to_regclass(%s)", [f"raw.{raw_table}"]).fetchall()
    prefix = f"{raw_table}_"
    return {name: date(int(name[-7:-3]), int(name[-2:]), 1) for (name,) in rows
            if name.startswith(prefix) and name[len(prefix):].replace("_", "").isdigit()}


def is_partitioned(conn: psycopg.Connection, raw_table: str) -> bool:
    return bool(conn.execute("select 1 from pg_partitioned_table where partrelid = "
                             "to_regclass(%s)", [f"raw.{raw_table}"]).fetchone())


def ensure_partitions(conn: psycopg.Connection, kind: Kind, months: list[date]) -> list[str]:
    """The month partitions of ``kind``'s raw table that ``months`` need, made where missing;
    returns the names made. Made and committed on a connection of their own, so that a load
    holds no lock on the parent for its whole transaction and other loads of the kind see
    them at once (an empty partition left by a load that then failed is harmless). Made as a
    table, then attached: attaching locks the parent against other attaches only, not against
    reads (dbt) or other loads' inserts, as ``CREATE TABLE ... PARTITION OF`` would. Two loads
    needing the same month take turns on an advisory lock; one needing none takes no lock."""
    if not months or not kind.partition_by:
        return []
    if not set(months) - set(partitions(conn, kind.raw_table).values()):
        return []
    parent = sql.Identifier("raw", kind.raw_table)
    with psycopg.connect(conn.info.dsn, password=conn.info.password) as own, \
            own.transaction():
        own.execute("select pg_advisory_xact_lock(%s)", [PARTITIONS_LOCK])
        missing = sorted(set(months) - set(partitions(own, kind.raw_table).values()))
        for month in missing:
            name = sql.Identifier("raw", partition_name(kind.raw_table, month))
            own.execute(sql.SQL("create table {} (like {} including all)").format(name, parent))
            own.execute(sql.SQL(
                "alter table {} attach partition {} for values from ({}) to ({})").format(
                    parent, name, sql.Literal(f"{month.isoformat()} 00:00:00+00"),
                    sql.Literal(f"{next_month(month).isoformat()} 00:00:00+00")))
    return [partition_name(kind.raw_table, m) for m in missing]


def detach_months_before(conn: psycopg.Connection, kind: Kind, before: date, drop: bool = False
                         ) -> list[tuple[str, int]]:
    """Detach the month partitions of ``kind``'s raw table before ``before`` (in the caller's
    transaction: all or none), and drop them with ``drop``; returns (partition, rows). A
    detached partition is an ordinary table in ``raw`` that no model reads: dump it, then
    drop it. The incremental case facts keep what they merged from it until a full refresh."""
    done = []
    parent = sql.Identifier("raw", kind.raw_table)
    for name, month in sorted(partitions(conn, kind.raw_table).items(), key=lambda p: p[1]):
        if month >= before:
            continue
        table = sql.Identifier("raw", name)
        (rows,) = conn.execute(sql.SQL("select count(*) from {}").format(table)).fetchone()
        conn.execute(sql.SQL("alter table {} detach partition {}").format(parent, table))
        if drop:
            conn.execute(sql.SQL("drop table {}").format(table))
        done.append((name, rows))
    return done


def landing_table(contract: Contract) -> sql.Composable:
    return sql.Identifier(LANDING_SCHEMA, contract.landing_table)


def recreate_landing_table(conn: psycopg.Connection, contract: Contract, batch_id: str,
                           declared: DeclaredPeriod | None = None,
                           table: sql.Composable | None = None) -> None:
    """Landing holds one batch at a time, for GX and the rules to check in place: each value
    as admitted (as delivered when it conforms to its column, a marker otherwise; see
    ``admit``), as text. Unlogged: it is never replayed from the WAL, and a crash empties it."""
    bounds = (declared.start, declared.end) if declared else (None, None)
    cols = [sql.SQL("batch_id uuid not null default {}").format(sql.Literal(batch_id)),
            sql.SQL("source_row_number bigint not null"),
            sql.SQL("source_row bigint not null"), sql.SQL("source_column text"),
            sql.SQL("pii_findings text")]
    cols += [sql.SQL("{} date default {}").format(sql.Identifier(name), sql.Literal(bound))
             for name, bound in zip(DECLARED, bounds, strict=True)]
    cols += [sql.SQL("{} text").format(sql.Identifier(c)) for c in contract.kind.types]
    if table is not None:  # a dry run's own table, gone with its session (sources check)
        conn.execute(sql.SQL("drop table if exists {}").format(table))
        conn.execute(sql.SQL("create temporary table {} ({})").format(
            table, sql.SQL(", ").join(cols)))
        return
    table = landing_table(contract)
    conn.execute(sql.SQL("drop table if exists {}").format(table))
    conn.execute(sql.SQL("create unlogged table {} ({})").format(table, sql.SQL(", ").join(cols)))


def record_batch_issue(conn: psycopg.Connection, batch_id: str, rule: str, message: str) -> None:
    """A rule the batch as a whole broke (no row to name): an error in ``ops.batch_issues``,
    where Pipeline health counts it with the row rules."""
    conn.execute(
        "insert into ops.batch_issues (batch_id, rule, column_name, row_count, example_rows, "
        "severity, message) values (%s, %s, null, 0, '{}', 'error', %s)",
        [batch_id, rule, message])
