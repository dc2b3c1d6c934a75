"""``safeguard``: the command line for data engineers. ``safeguard --help`` lists the verbs."""

from __future__ import annotations

import sys

import click

from safeguard.config import ROLES, settings


@click.group()
def main() -> None:
    """Safeguard: anonymized hotline and tipline data in, suppressed trends out."""


@main.group()
def db() -> None:
    """The PostgreSQL server: embedded by default, or the one in DATABASE_URL."""


@db.command("up")
def db_up() -> None:
    """Start the embedded server if needed and create roles, databases and schemas."""
    from safeguard.db.bootstrap import bootstrap

    s = settings()
    bootstrap(s)
    host, port = s.server_address()
    where = "DATABASE_URL" if s.external_url else f"embedded, data in {s.pg_dir}"
    click.echo(f"PostgreSQL ready on {host}:{port} ({where})")


@db.command("url")
@click.option("--role", type=click.Choice(["admin", *ROLES]), default="analyst",
              show_default=True, help="Whose connection URL to print.")
@click.option("--database", default=None, help="Database name (default: the warehouse).")
def db_url(role: str, database: str | None) -> None:
    """Print a connection URL for the warehouse (contains a password: do not paste it around)."""
    s = settings()
    click.echo(s.admin_url(database or s.warehouse_db) if role == "admin" else s.url(role, database))


@db.command("stop")
def db_stop() -> None:
    """Stop the embedded server (nothing to do with DATABASE_URL)."""
    s = settings()
    if s.external_url:
        click.echo("DATABASE_URL is set: the server is not ours to stop.")
        return
    from safeguard.db.embedded import EmbeddedPostgres

    EmbeddedPostgres(s).stop()
    click.echo("embedded PostgreSQL stopped")


@db.command("status")
def db_status() -> None:
    """Say whether the embedded server runs (exit 1 if not)."""
    s = settings()
    if s.external_url:
        click.echo("using DATABASE_URL")
        return
    from safeguard.db.embedded import EmbeddedPostgres

    pg = EmbeddedPostgres(s)
    running = pg.is_running()
    click.echo(f"embedded PostgreSQL {'running on 127.0.0.1:%d' % pg.port if running else 'stopped'}")
    sys.exit(0 if running else 1)


if __name__ == "__main__":
    main()
