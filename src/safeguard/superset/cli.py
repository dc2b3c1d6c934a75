"""``safeguard superset``: run the local Superset and load the dashboards kept in git.

Registered in the main CLI with ``main.add_command(superset_cli, "superset")``.
"""

from __future__ import annotations

import signal
import sys
import time
from typing import TYPE_CHECKING

import click

from safeguard.config import settings

if TYPE_CHECKING:
    from safeguard.superset.server import SupersetServer


def _server(port: int | None, reports: bool | None = None) -> SupersetServer:
    # imported here: keeps `--help` fast (httpx, yaml)
    from safeguard.superset.server import SupersetServer

    return SupersetServer(settings(), port=port, reports=reports)


def _import(server: SupersetServer, prune: bool) -> None:
    from safeguard.superset import bundle

    deleted = bundle.publish(server, prune)
    click.echo(f"imported {bundle.bundle_dir(server.settings)} (overwrite by UUID)")
    for what in deleted:
        click.echo(f"deleted {what}: no longer in the bundle")


_port_option = click.option(
    "--port", type=int, default=None, envvar="SUPERSET_PORT",
    help="Port on 127.0.0.1 [env SUPERSET_PORT; default 8088].",
)


@click.group("superset")
def superset_cli() -> None:
    """Apache Superset on 127.0.0.1, with the dashboards in dashboards/."""


@superset_cli.command("up")
@_port_option
@click.option("--foreground", is_flag=True,
              help="Stay attached; Ctrl-C stops Superset and all its workers.")
@click.option("--reports/--no-reports", default=None,
              help="Alerts & Reports: Redis, Celery worker and beat, the schedules of "
                   "dashboards/reports/ [env SAFEGUARD_REPORTS; default off].")
def up(port: int | None, foreground: bool, reports: bool | None) -> None:
    """Bootstrap (database, migrations, roles, admin), start the server and import the bundle.

    Safe to repeat: every step is idempotent."""
    from safeguard.db.bootstrap import bootstrap as db_bootstrap
    from safeguard.superset.errors import SupersetError

    server = _server(port, reports)
    try:
        click.echo("PostgreSQL: roles, databases, schemas")
        db_bootstrap(server.settings)
        server.bootstrap(echo=click.echo)
        click.echo(f"Superset: starting on {server.url} (log: {server.log})")
        server.start()
        _import(server, prune=True)
    except SupersetError as exc:
        if foreground:
            server.stop()
        raise click.ClickException(str(exc)) from exc
    from safeguard.superset.bundle import bundle_dir, dashboard_urls

    links = "".join(f"  {title:<30} {url}\n"
                    for title, url in dashboard_urls(server.url, bundle_dir(server.settings)))
    click.echo(
        f"\nSuperset is up: {server.url}\n{links}"
        f"  logins: {server.logins()}\n  passwords in {server.settings.secrets_file}\n"
        f"  {reports_line(server)}\n"
        + ("  Ctrl-C stops it." if foreground else "  stop it with: safeguard superset stop")
    )
    if foreground:
        # explicit: a shell that started us in the background may have set SIGINT to ignore
        signal.signal(signal.SIGINT, signal.default_int_handler)
        signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
        try:
            while server.pid():
                time.sleep(1)
            raise click.ClickException(f"Superset exited; see {server.log}")
        except (KeyboardInterrupt, SystemExit):
            click.echo("stopping Superset")
        finally:
            server.stop()


def reports_line(server: SupersetServer) -> str:
    """Where the report schedules are, and whether mail can leave (``up`` and the demo)."""
    if not server.reports:
        return "reports and alerts: off (SAFEGUARD_REPORTS=1 turns them on)"
    from safeguard.config import env
    from safeguard.superset.bundle import REPORTS_FOLDER, bundle_dir
    from safeguard.superset.reports import where

    line = f"reports and alerts: {where(server.url, bundle_dir(server.settings) / REPORTS_FOLDER)}"
    if not env("SAFEGUARD_SMTP_HOST"):
        line += ("\n    no mail server configured: schedules run, but mail needs "
                 "SAFEGUARD_SMTP_HOST (and _PORT, _USER, _PASSWORD, _FROM) set")
    return line


@superset_cli.command("import")
@_port_option
@click.option("--prune/--no-prune", default=True, show_default=True,
              help="Delete bundle-managed objects whose UUID left dashboards/.")
def import_(port: int | None, prune: bool) -> None:
    """Import dashboards/ into the running Superset (overwrite by UUID, no duplicates)."""
    from safeguard.superset.errors import SupersetError

    server = _server(port)
    if not server.is_healthy():
        raise click.ClickException(
            f"No Superset answers on {server.url}: run `safeguard superset up` first.")
    try:
        _import(server, prune)
    except SupersetError as exc:
        raise click.ClickException(str(exc)) from exc


@superset_cli.command("export")
@_port_option
def export(port: int | None) -> None:
    """Write what was changed or made in the running Superset into dashboards/ (a chart
    designed in the UI, an edited filter), ready to review and commit. Files the server did
    not change are left as they are; no host, port or password is ever written."""
    from safeguard.superset.bundle import bundle_dir, export_assets, export_bundle
    from safeguard.superset.client import SupersetClient
    from safeguard.superset.errors import SupersetError

    server = _server(port)
    if not server.is_healthy():
        raise click.ClickException(
            f"No Superset answers on {server.url}: run `safeguard superset up` first.")
    try:
        with SupersetClient.for_server(server) as client:
            written = export_bundle(server.settings, export_assets(client))
    except (SupersetError, ValueError) as exc:
        raise click.ClickException(str(exc)) from exc
    target = bundle_dir(server.settings)
    click.echo("".join(f"  wrote {target.name}/{n}\n" for n in written)
               + (f"{len(written)} file(s) changed: review with `git diff {target.name}`"
                  if written else "nothing changed on the server"))


@superset_cli.command("stop")
def stop() -> None:
    """Stop the Superset started by `up` (the whole process group), with the reports'
    Celery worker, beat and Redis."""
    server = _server(None)
    click.echo("Superset stopped" if server.stop() else "Superset was not running")
