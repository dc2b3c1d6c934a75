"""The viewer (the dashboards' connection) learns nothing of the tables it may not read.

PostgreSQL shows every role every table's statistics: row estimates, page counts, sizes, rows
inserted, WAL positions, other sessions' locks. infra/sql/04_catalog.sql withholds them from
everyone but the pipeline's roles. The attacker here (``catalog_probe``) does not check that
list: it asks every catalog column and function the role may use, adds rows to a table the
role may not read, and asks again.
"""

from __future__ import annotations

import time

import psycopg
import pytest

from catalog_probe import changed, snapshot, targets

PROBE = "raw.isolation_probe"  # made by an administrator: no pipeline role may read it
UNREAD = [PROBE, "raw.hotline_cases", "quarantine.rows", "ops.batches"]


@pytest.fixture(scope="module")
def probe_table(sg_settings):
    admin = sg_settings.admin_url(sg_settings.warehouse_db)
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f"drop table if exists {PROBE}")
        conn.execute(f"create table {PROBE} (n int, filler text)")
    yield admin
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f"drop table {PROBE}")


def _add_rows(admin: str, n: int) -> None:
    """A load, as the attacker sees one: rows written, analysed and vacuumed; the session ends
    (which sends its statistics)."""
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f"insert into {PROBE} select i, repeat('x', 40) "
                     f"from generate_series(1, %s) i", [n])
        conn.execute(f"analyze {PROBE}")
        conn.execute(f"vacuum {PROBE}")
    time.sleep(1.2)  # statistics reach the shared counters at most once a second


@pytest.fixture(scope="module")
def differences(sg_settings, probe_table) -> dict[str, set[str]]:
    """role -> the probes whose answers changed when rows were added (HARMLESS ones aside)."""
    admin = probe_table
    oids, db = targets(admin, UNREAD)
    roles = ("viewer", "transformer")
    before = {r: snapshot(sg_settings.url(r), oids, db) for r in roles}
    _add_rows(admin, 20_000)
    after = {r: snapshot(sg_settings.url(r), oids, db) for r in roles}
    out = {r: changed(before[r], after[r]) for r in roles}
    for r in roles:
        print(f"\n{r}: {len(before[r])} probes, {len(out[r])} changed", end="")
    return out


def test_viewer_learns_nothing_from_the_catalog(differences):
    assert not differences["viewer"], (
        "the viewer saw these change when rows were added to a table it may not read: "
        + ", ".join(sorted(differences["viewer"])))


def test_the_attacker_finds_what_an_unrestricted_role_learns(differences):
    """The same attack as the transformer, which keeps the statistics (it reads the tables
    anyway) but may not read the probe table: it learns its size, so the attack has teeth."""
    found = differences["transformer"]
    for probe in (f"pg_catalog.pg_relation_size({PROBE})", "pg_catalog.pg_class.reltuples",
                  f"pg_catalog.pg_stat_get_live_tuples({PROBE})",
                  "pg_catalog.pg_stat_user_tables.n_tup_ins"):
        assert probe in found, sorted(found)


def test_viewer_is_refused_the_measuring_functions(sg_settings):
    """Named here so that a failure says which: each is refused, not merely unchanged."""
    with psycopg.connect(sg_settings.url("viewer"), autocommit=True) as conn:
        for query in ("select pg_relation_size('pg_class')", "select reltuples from pg_class",
                      "select n_live_tup from pg_stat_user_tables",
                      "select pg_database_size(current_database())",
                      "select pg_current_wal_lsn()", "select count(*) from pg_locks",
                      "select datfrozenxid from pg_database"):
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                conn.execute(query)


def test_viewer_still_reads_and_describes_the_published_tables(pipeline_done):
    sg_settings = pipeline_done
    """What the dashboards' connection needs: the published tables, and the catalog columns
    that SQLAlchemy's introspection reads to list them and their columns."""
    with psycopg.connect(sg_settings.url("viewer"), autocommit=True) as conn:
        tables = [r[0] for r in conn.execute(
            "select c.relname from pg_class c join pg_namespace n on n.oid = c.relnamespace "
            "where n.nspname = 'reporting' and c.relkind in ('r', 'v', 'm', 'p') "
            "and has_table_privilege(c.oid, 'select')")]
        assert tables, "no published table visible"
        conn.execute(f'select count(*) from reporting."{tables[0]}"').fetchone()
        assert conn.execute("select datname from pg_database where datname = "
                            "current_database()").fetchone()


def test_viewer_reaches_no_other_database(sg_settings):
    """Cluster-wide statistics could be read from any database the viewer may connect to."""
    if sg_settings.external_url:
        pytest.skip("a server of your own: the README says which databases to close")
    for db in ("postgres", "template1", sg_settings.airflow_db, sg_settings.superset_db):
        with pytest.raises(psycopg.OperationalError, match="permission denied"):
            psycopg.connect(sg_settings.url("viewer", database=db)).close()

