"""What a database role can learn about tables it may not read: a differencing attacker.

It does not list the leaks it knows of; it asks everything. As the role under test, in one
read-only transaction, it reads

- every column the role may select of every relation in ``pg_catalog`` and
  ``information_schema`` (each column's values, as one digest per column), and
- the result of every function there that the role may execute and that takes no argument, or
  one of a type that names a table or a database (``regclass``, ``oid``, ``name``, ``text``),
  called with each of the given tables and the database.

Rows are then added to a table the role may not read, and everything is asked again. What
changed, and does not change when nothing happens (two snapshots back to back: timestamps, the
role's own activity), tells the role something about that table: its size, its growth, its
writes. The attacker reports those probes; a role isolated from the table gives none.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable

import psycopg
from psycopg import sql

#: argument types through which a function can be pointed at a table or a database
_TARGET_TYPES = ("regclass", "oid", "name", "text")
#: what the probes return is compared as text; these return nothing to compare
_NO_RESULT = ("void", "trigger", "event_trigger", "internal", "record", "anyelement",
              "language_handler", "fdw_handler", "index_am_handler", "table_am_handler",
              "tsm_handler")


#: answers that change by themselves, telling nothing of any table: the clock, random values,
#: and the asking session's own identity (each snapshot is a new connection)
HARMLESS = frozenset(f"pg_catalog.{f}()" for f in (
    "now", "clock_timestamp", "statement_timestamp", "transaction_timestamp", "timeofday",
    "random", "gen_random_uuid", "uuidv4", "uuidv7", "pg_backend_pid", "inet_client_port"))


def _functions(conn: psycopg.Connection) -> list[tuple[str, str | None]]:
    """(name, argument type or None) of every function the role may call with a target."""
    return conn.execute(
        """
        select format('%%I.%%I', n.nspname, p.proname),
               case when p.pronargs = 1 then format_type(p.proargtypes[0], null) end
        from pg_proc p join pg_namespace n on n.oid = p.pronamespace
        where n.nspname in ('pg_catalog', 'information_schema')
          and p.prokind = 'f' and not p.proretset
          and has_function_privilege(p.oid, 'execute')
          and format_type(p.prorettype, null) <> all(%s)
          and (p.pronargs = 0 or (p.pronargs = 1 and p.provariadic = 0
               and format_type(p.proargtypes[0], null) = any(%s)))
        order by 1, 2
        """, [list(_NO_RESULT), list(_TARGET_TYPES)]).fetchall()


def _relations(conn: psycopg.Connection) -> list[tuple[str, str, list[str]]]:
    """(schema, relation, the columns the role may read) of the catalog's relations."""
    return conn.execute(
        """
        select n.nspname, c.relname,
               array_agg(a.attname::text order by a.attnum)
        from pg_class c
        join pg_namespace n on n.oid = c.relnamespace
        join pg_attribute a on a.attrelid = c.oid and a.attnum > 0 and not a.attisdropped
        where n.nspname in ('pg_catalog', 'information_schema')
          and c.relkind in ('r', 'v', 'm', 'f', 'p')
          and has_column_privilege(c.oid, a.attnum, 'select')
        group by 1, 2 order by 1, 2
        """).fetchall()


def _digest(values: Iterable) -> str:
    h = hashlib.sha256()
    for v in sorted(repr(x) for x in values):
        h.update(v.encode())
    return h.hexdigest()


def targets(admin_url: str, tables: list[str]) -> tuple[dict[str, int], tuple[str, int]]:
    """The tables' oids, and the database's name and oid, looked up by an administrator (the
    role under test may not even resolve the names: the attacker is given them)."""
    with psycopg.connect(admin_url) as conn:
        oids = dict(conn.execute(
            "select t, t::regclass::oid::bigint from unnest(%s::text[]) t", [tables]).fetchall())
        db = conn.execute("select current_database()::text, oid::bigint from pg_database "
                          "where datname = current_database()").fetchone()
    return oids, db


def snapshot(url: str, oids: dict[str, int], db: tuple[str, int]) -> dict[str, str]:
    """Every probe's answer (a digest), as the role of ``url``, in one read-only transaction."""
    out: dict[str, str] = {}
    tables = list(oids)
    database, db_oid = db
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("set statement_timeout = '5s'")
        conn.execute("set lock_timeout = '1s'")
        functions, relations = _functions(conn), _relations(conn)
        with conn.transaction():
            conn.execute("set transaction read only")
            if ("pg_catalog.pg_stat_clear_snapshot", None) in functions:
                conn.execute("select pg_stat_clear_snapshot()")

            def ask(label: str, query: sql.Composable, params: list) -> None:
                try:
                    with conn.transaction():
                        rows = conn.execute(query, params).fetchall()
                    out[label] = _digest(rows)
                except psycopg.Error as e:
                    out[label] = f"error {e.sqlstate}"

            for schema, rel, columns in relations:
                for col in columns:
                    ask(f"{schema}.{rel}.{col}", sql.SQL("select {}::text from {}").format(
                        sql.Identifier(col), sql.Identifier(schema, rel)), [])
            for name, argtype in functions:
                fn = sql.SQL(name)  # already quoted by format('%I.%I')
                if argtype is None:
                    ask(f"{name}()", sql.SQL("select {}()::text").format(fn), [])
                    continue
                args: list[tuple[str, object]] = []
                if argtype in ("regclass", "oid"):
                    args += [(t, oids[t]) for t in tables]
                    if argtype == "oid":
                        args.append((database, db_oid))
                else:
                    args += [(t, t) for t in tables] + [(database, database)]
                for shown, value in args:
                    ask(f"{name}({shown})", sql.SQL("select {}(%s::{})::text").format(
                        fn, sql.SQL(argtype)), [value])
    return out


def changed(before: dict[str, str], after: dict[str, str]) -> set[str]:
    """The probes whose answers differ, but for those in :data:`HARMLESS`."""
    return {k for k in before.keys() | after.keys()
            if before.get(k) != after.get(k)} - HARMLESS
