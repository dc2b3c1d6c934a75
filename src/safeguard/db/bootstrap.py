"""Bring a PostgreSQL server to the state the project needs: roles, databases, schemas, grants.

Runs the idempotent files of ``infra/sql`` in name order. They use psql's ``:"var"`` syntax for
identifiers (and ``:'var'`` for literals), so a DBA can also apply them by hand with
``psql -v warehouse_db=... -v loader=...`` (``sql_variables`` lists them).
"""

from __future__ import annotations

import re
import sys

import psycopg
from psycopg import sql

from safeguard.config import ROLES, Settings

#: psql's variable syntax: :"name" an identifier, :'name' a string literal (not after a colon:
#: that is a cast, ::"char")
_PSQL_VARIABLE = re.compile(r"(?<!:):([\"'])(\w+)\1")
#: pg_input_is_valid() (the loader's guarded casts) came with PostgreSQL 16
MIN_SERVER_VERSION = 160000


def ensure_server(settings: Settings) -> None:
    """Start the embedded server unless ``DATABASE_URL`` points at one."""
    if settings.external_url:
        return
    from safeguard.db.embedded import EmbeddedPostgres

    EmbeddedPostgres(settings).start()


def _render(text: str, variables: dict[str, str]) -> str:
    def value(m: re.Match) -> str:
        quote, name = m.groups()
        return quote + variables[name].replace(quote, quote * 2) + quote

    return _PSQL_VARIABLE.sub(value, text)


def sql_variables(settings: Settings) -> dict[str, str]:
    """What infra/sql's files take as psql variables: the warehouse's name and each role's
    (``:"viewer"``), so that the names are written once, in ``config.ROLES``. By hand:
    ``psql -v warehouse_db=safeguard -v viewer=... (one per role)``."""
    return {"warehouse_db": settings.warehouse_db, **ROLES}


def bootstrap(settings: Settings) -> None:
    ensure_server(settings)
    files = sorted((settings.root / "infra" / "sql").glob("*.sql"))
    variables = sql_variables(settings)
    owners = {
        settings.warehouse_db: None,
        settings.airflow_db: ROLES["airflow"],
        settings.superset_db: ROLES["superset"],
    }
    with psycopg.connect(settings.admin_url(), autocommit=True) as conn:
        version = conn.info.server_version
        if version < MIN_SERVER_VERSION:
            raise RuntimeError(
                f"PostgreSQL {version // 10000} at {conn.info.host}:{conn.info.port} is too old: "
                f"Safeguard needs 16 or later (its loader guards every cast with "
                f"pg_input_is_valid()). Upgrade the server, or unset DATABASE_URL to use the "
                f"embedded one.")
        roles_sql = [f for f in files if f.name.startswith("01_")]
        for f in roles_sql:
            conn.execute(_render(f.read_text(), variables))
        for role in ROLES:
            conn.execute(
                sql.SQL("alter role {} password {}").format(
                    sql.Identifier(ROLES[role]), sql.Literal(settings.role_password(role))
                )
            )
        for db, owner in owners.items():
            exists = conn.execute("select 1 from pg_database where datname = %s", [db]).fetchone()
            if not exists:
                conn.execute(sql.SQL("create database {}").format(sql.Identifier(db)))
            if owner:
                conn.execute(
                    sql.SQL("alter database {} owner to {}").format(
                        sql.Identifier(db), sql.Identifier(owner)
                    )
                )
                conn.execute(
                    sql.SQL("revoke all on database {} from public").format(sql.Identifier(db))
                )
        if not settings.external_url:
            # The server's own databases: a role that could connect to them could read the
            # cluster-wide statistics there (rows inserted per database) that 04_catalog.sql
            # withholds in the warehouse. On a server of your own, see the README.
            conn.execute("revoke connect on database postgres, template1 from public")
    with psycopg.connect(settings.admin_url(settings.warehouse_db), autocommit=True) as conn:
        for f in files:
            if not f.name.startswith("01_"):
                conn.execute(_render(f.read_text(), variables))
        if conn.execute("select has_function_privilege(%s, 'pg_relation_size(regclass)', "
                        "'execute')", [ROLES["viewer"]]).fetchone()[0]:
            print("warning: the viewer role can read table statistics (sizes, rows inserted): "
                  "infra/sql/04_catalog.sql needs a superuser to apply; see the README, "
                  "'Using your own PostgreSQL'.", file=sys.stderr)
    # every kind's raw table exists from the start, as the loader's: the models read them
    # (empty until a first load) whatever arrives first
    from safeguard.contracts.kinds import KINDS
    from safeguard.ingest.tables import ensure_raw_table

    with psycopg.connect(settings.url("loader")) as conn:
        for kind in KINDS.values():
            ensure_raw_table(conn, kind)
        conn.commit()
    for db, owner in owners.items():
        if owner:  # PG15+: the public schema belongs to pg_database_owner; make it usable
            with psycopg.connect(settings.admin_url(db), autocommit=True) as conn:
                conn.execute(
                    sql.SQL("grant all on schema public to {}").format(sql.Identifier(owner))
                )
