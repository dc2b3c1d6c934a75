"""The embedded default: our own server on loopback, started and stopped on request."""

from __future__ import annotations

import psycopg

from conftest import safeguard_cli


def test_embedded_server_listens_on_loopback_with_password_auth(sg_settings):
    if sg_settings.external_url:
        return
    host, port = sg_settings.server_address()
    assert host == "127.0.0.1" and port == int(
        (sg_settings.pg_dir / "port").read_text())
    with psycopg.connect(sg_settings.admin_url()) as conn:
        assert conn.execute("show listen_addresses").fetchone()[0] == "127.0.0.1"
        assert conn.execute("select count(*) from pg_hba_file_rules where auth_method = 'trust'"
                            ).fetchone()[0] == 0
    try:
        psycopg.connect(f"postgresql://postgres:wrong@127.0.0.1:{port}/postgres").close()
        raise AssertionError("a wrong password was accepted")
    except psycopg.OperationalError as e:
        assert "password authentication failed" in str(e)


def test_db_url_prints_the_warehouse_url(sg_settings):
    url = safeguard_cli("db", "url", "--role", "viewer").stdout.strip()
    with psycopg.connect(url) as conn:
        assert conn.execute("select current_user, current_database()").fetchone() == (
            "safeguard_viewer", sg_settings.warehouse_db)


def test_bootstrap_is_idempotent(sg_settings):
    from safeguard.db.bootstrap import bootstrap

    bootstrap(sg_settings)
    bootstrap(sg_settings)
    with psycopg.connect(sg_settings.admin_url(sg_settings.warehouse_db)) as conn:
        schemas = {r[0] for r in conn.execute("select nspname from pg_namespace")}
        dbs = {r[0] for r in conn.execute("select datname from pg_database")}
    assert {"raw", "quarantine", "ops", "staging", "marts", "reporting"} <= schemas
    assert {sg_settings.warehouse_db, sg_settings.airflow_db, sg_settings.superset_db} <= dbs
