"""DDL derived from contracts and kinds. Identifiers are always quoted by psycopg's ``sql``."""

from __future__ import annotations

import psycopg
from psycopg import sql

from safeguard.contracts import Contract
from safeguard.contracts.kinds import Kind

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
    cols = [sql.SQL("batch_id uuid not null references ops.batches (batch_id)"),
            sql.SQL("source_row_number bigint not null")]
    cols += [sql.SQL("{} {} not null").format(sql.Identifier(n), sql.SQL(t))
             for n, t in kind.constants.items()]
    for name, typ in kind.columns.items():
        cols.append(sql.SQL("{} {}").format(sql.Identifier(name), sql.SQL(typ)))
        if name in kind.label_columns:
            cols.append(sql.SQL("{} text").format(sql.Identifier(kind.label_columns[name])))
    cols.append(sql.SQL("primary key (batch_id, source_row_number)"))
    conn.execute(sql.SQL("create table if not exists raw.{} ({})").format(
        sql.Identifier(kind.raw_table), sql.SQL(", ").join(cols)))
    conn.execute(QUARANTINE_DDL)


def recreate_landing_table(conn: psycopg.Connection, contract: Contract) -> None:
    """Landing holds one batch at a time, as delivered (text), for GX to check in place."""
    cols = [sql.SQL("batch_id uuid not null"), sql.SQL("source_row_number bigint not null")]
    cols += [sql.SQL("{} text").format(sql.Identifier(c.name)) for c in contract.columns]
    table = sql.Identifier("raw", contract.landing_table)
    conn.execute(sql.SQL("drop table if exists {}").format(table))
    conn.execute(sql.SQL("create unlogged table {} ({})").format(table, sql.SQL(", ").join(cols)))
