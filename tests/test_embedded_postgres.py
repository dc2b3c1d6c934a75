"""The embedded default: our own server on loopback, started and stopped on request."""

from __future__ import annotations

import psycopg
import pytest

from conftest import safeguard_cli
from safeguard.config import ROLES


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
            ROLES["viewer"], sg_settings.warehouse_db)


def test_bootstrap_is_idempotent(sg_settings):
    from safeguard.db.bootstrap import bootstrap

    bootstrap(sg_settings)
    bootstrap(sg_settings)
    with psycopg.connect(sg_settings.admin_url(sg_settings.warehouse_db)) as conn:
        schemas = {r[0] for r in conn.execute("select nspname from pg_namespace")}
        dbs = {r[0] for r in conn.execute("select datname from pg_database")}
    assert {"raw", "quarantine", "ops", "staging", "marts", "reporting"} <= schemas
    assert {sg_settings.warehouse_db, sg_settings.airflow_db, sg_settings.superset_db} <= dbs


def test_a_server_in_a_private_folder_still_starts(tmp_path, monkeypatch):
    """As root, in a clone under a 0700 home folder (here: pytest's own 0700 temp folder), the
    server's system user can reach neither the binaries nor the data: they are placed where it
    can, and the server runs. The binaries are the real ones, copied into the private folder."""
    import os
    import shutil
    import stat

    from safeguard.config import Settings
    from safeguard.db import embedded
    from safeguard.ports import free_port

    if os.geteuid() != 0:
        pytest.skip("only root runs the server as another user")
    private = tmp_path / "home-of-root"
    private.mkdir(mode=0o700)
    os.chmod(private, 0o700)
    assert not stat.S_IMODE(private.stat().st_mode) & 0o077
    site = private / "venv" / "site-packages"  # the wheel's layout: its RPATH is relative
    package = embedded._bin_dir().parent.parent
    shutil.copytree(package / "pginstall", site / package.name / "pginstall", symlinks=True)
    shutil.copytree(package.parent / f"{package.name}.libs", site / f"{package.name}.libs")
    install = site / package.name / "pginstall"
    monkeypatch.setattr(embedded, "_bin_dir", lambda: install / "bin")
    monkeypatch.delenv("DATABASE_URL", raising=False)
    monkeypatch.setenv("SAFEGUARD_PG_PORT", str(free_port()))
    s = Settings(root=private, home=private / "home")
    pg = embedded.EmbeddedPostgres(s)
    try:
        pg.start()
        assert pg.server_dir.is_relative_to(embedded.RELOCATED_BASE)
        assert pg.bin.is_relative_to(embedded.RELOCATED_BASE)
        # both recorded in the home, where `make clean` finds them
        assert (s.pg_dir / "relocated").read_text().strip() == str(pg.server_dir)
        assert pg.bin.is_relative_to((s.pg_dir / "binaries").read_text().strip())
        with psycopg.connect(s.admin_url(), connect_timeout=10) as conn:
            assert conn.execute("select 1").fetchone() == (1,)
        pg.stop()
        # a later run finds it again through the home
        again = embedded.EmbeddedPostgres(s)
        assert again.server_dir == pg.server_dir and again.initialised
        # a home deleted (secrets and all, as the tests' own setup does) starts afresh
        again.start()
        shutil.rmtree(s.home)
        fresh = Settings(root=private, home=private / "home")
        pg = embedded.EmbeddedPostgres(fresh)
        pg.start()
        with psycopg.connect(fresh.admin_url(), connect_timeout=10) as conn:
            assert conn.execute("select 1").fetchone() == (1,)
    finally:
        pg.stop()
        shutil.rmtree(pg.server_dir, ignore_errors=True)
        shutil.rmtree(pg.bin.parents[2], ignore_errors=True)
