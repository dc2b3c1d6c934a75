"""TLS settings in ``DATABASE_URL`` reach every connection.

Each role's URL is built from the server's host and port; the ``sslmode``, ``sslrootcert``
and the like of ``DATABASE_URL`` must go with it to the loader, dbt, GX, Airflow and Superset,
or a server that requires TLS is reached without it (or not at all).
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import parse_qsl, urlsplit

import psycopg
import pytest

from safeguard.config import SECRET_NAMES, Settings

TLS = {"sslmode": "verify-full", "sslrootcert": "/etc/safeguard/ca.pem",
       "sslcert": "/etc/safeguard/client.pem", "sslkey": "/etc/safeguard/client.key"}


def _query(url: str) -> dict[str, str]:
    return dict(parse_qsl(urlsplit(url).query))


@pytest.fixture()
def external(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Settings:
    for name in SECRET_NAMES:
        monkeypatch.delenv(name, raising=False)
    query = "&".join(f"{k}={v}" for k, v in TLS.items())
    monkeypatch.setenv("DATABASE_URL", f"postgresql://admin:pw@db.example.org:6543/postgres?"
                                       f"{query}&application_name=not-carried")
    return Settings(root=Path(__file__).resolve().parents[1], home=tmp_path / "home")


def test_every_role_url_keeps_the_tls_settings(external: Settings) -> None:
    for role in ("loader", "transformer", "analyst", "viewer", "airflow", "superset"):
        for driver in ("postgresql", "postgresql+psycopg2"):
            assert _query(external.url(role, driver=driver)) == TLS, (role, driver)
    assert _query(external.admin_url("safeguard"))["sslmode"] == "verify-full"


def test_dbt_airflow_and_superset_get_them(external: Settings) -> None:
    from safeguard.airflow_env import airflow_env
    from safeguard.superset.bundle import database_uri
    from safeguard.superset.server import SupersetServer
    from safeguard.transform import dbt_env

    env = dbt_env(external)  # dbt's profile takes host and port: libpq's variables carry TLS
    assert {k: env[k] for k in ("PGSSLMODE", "PGSSLROOTCERT", "PGSSLCERT", "PGSSLKEY")} == {
        "PGSSLMODE": "verify-full", "PGSSLROOTCERT": TLS["sslrootcert"],
        "PGSSLCERT": TLS["sslcert"], "PGSSLKEY": TLS["sslkey"]}
    assert _query(airflow_env(external)["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"]) == TLS
    assert _query(SupersetServer(external).metadata_uri()) == TLS
    masked, _ = database_uri(external, "viewer")  # what the bundle's database files get
    assert _query(masked) == TLS


def test_the_embedded_server_needs_none(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DATABASE_URL", raising=False)
    s = Settings(root=tmp_path, home=tmp_path / "home")
    assert s.connection_params == {} and "?" not in s.url("viewer")


def test_libpq_honours_what_the_urls_carry(sg_settings: Settings,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    """Against the real server (no TLS): a role URL that requires TLS is refused, the same URL
    with TLS disabled connects. The setting reached libpq, not just a string."""
    if sg_settings.external_url:
        pytest.skip("the test server here is yours: its TLS is not ours to know")
    host, port = sg_settings.server_address()
    for mode, connects in (("require", False), ("disable", True)):
        monkeypatch.setenv("DATABASE_URL", f"postgresql://postgres@{host}:{port}/postgres"
                                           f"?sslmode={mode}")
        s = Settings(root=sg_settings.root, home=sg_settings.home)
        if connects:
            psycopg.connect(s.url("viewer"), connect_timeout=5).close()
        else:
            with pytest.raises(psycopg.OperationalError, match="SSL"):
                psycopg.connect(s.url("viewer"), connect_timeout=5)
