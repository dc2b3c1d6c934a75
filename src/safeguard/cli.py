"""``safeguard``: the command line for data engineers. ``safeguard --help`` lists the verbs."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from safeguard.config import ROLES, settings
from safeguard.dag_ids import TRANSFORM_DAG, ingest_dag_id
from safeguard.generate import generate_command
from safeguard.superset.cli import superset_cli


@click.group()
def main() -> None:
    """Safeguard: anonymized hotline and tipline data in, suppressed trends out."""


@main.group()
def db() -> None:
    """The PostgreSQL server: embedded by default, or the one in DATABASE_URL."""


@db.command("up")
def db_up() -> None:
    """Start the embedded server if needed and create roles, databases and schemas."""
    import psycopg

    from safeguard.db.bootstrap import bootstrap

    s = settings()
    try:
        bootstrap(s)
    except RuntimeError as e:
        raise click.ClickException(str(e)) from None
    except psycopg.OperationalError as e:  # libpq's own words: where, and why (TLS, auth)
        host, port = s.server_address()
        raise click.ClickException(f"cannot connect to PostgreSQL at {host}:{port}: "
                                   f"{str(e).strip().splitlines()[-1]}") from None
    host, port = s.server_address()
    if s.external_url:
        where = "DATABASE_URL"
    else:
        from safeguard.db.embedded import EmbeddedPostgres

        where = f"embedded, data in {EmbeddedPostgres(s).server_dir}"
    click.echo(f"PostgreSQL ready on {host}:{port} ({where})")


@db.command("url")
@click.option("--role", type=click.Choice(["admin", *ROLES]), default="analyst",
              show_default=True, help="Whose connection URL to print.")
@click.option("--database", default=None, help="Database name (default: the warehouse).")
def db_url(role: str, database: str | None) -> None:
    """Print a connection URL for the warehouse (contains a password: do not paste it around)."""
    s = settings()
    db_name = database or s.warehouse_db
    click.echo(s.admin_url(db_name) if role == "admin" else s.url(role, database))


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
    click.echo(f"embedded PostgreSQL {f'running on 127.0.0.1:{pg.port}' if running else 'stopped'}")
    sys.exit(0 if running else 1)


@db.command("detach")
@click.option("--before", required=True, metavar="YYYY-MM",
              help="Detach the months before this one.")
@click.option("--drop", is_flag=True, help="Drop them too (nothing kept: dump them first).")
def db_detach(before: str, drop: bool) -> None:
    """Take the case-level months before YYYY-MM out of the raw tables partitioned by month
    (raw.hotline_cases), as the loader that owns them: each month's partition detached, all
    at once, and kept as a table of its own in raw that nothing reads (or dropped)."""
    from datetime import date

    import psycopg

    from safeguard.contracts.kinds import KINDS
    from safeguard.ingest.tables import detach_months_before

    try:
        month = date(int(before[:4]), int(before[5:7]), 1)
        if len(before) != 7 or before[4] != "-":
            raise ValueError
    except ValueError:
        raise click.ClickException("--before: a month as YYYY-MM, e.g. 2019-01") from None
    s = settings()
    with psycopg.connect(s.url("loader")) as conn:
        done = [(kind.raw_table, name, rows) for kind in KINDS.values() if kind.partition_by
                for name, rows in detach_months_before(conn, kind, month, drop)]
    for table, name, rows in done:
        click.echo(f"raw.{table}: {'dropped' if drop else 'detached'} raw.{name} "
                   f"({rows:,} rows)")
    if not done:
        click.echo(f"no month before {before} in a partitioned raw table")


@main.group("sources", invoke_without_command=True)
@click.pass_context
def sources(ctx: click.Context) -> None:
    """List the source contracts in contracts/ (``sources check``: try a file on one)."""
    from safeguard.contracts import ContractError, all_contracts

    if ctx.invoked_subcommand is not None:
        return
    try:
        found = all_contracts(settings())
    except ContractError as e:
        click.echo(f"CONTRACT: {e}", err=True)
        sys.exit(EXIT_CONTRACT)
    for c in found.values():
        click.echo(f"{c.name:<28} {c.kind.name:<20} {c.path.relative_to(c.path.parents[1])}"
                   f"  {c.description}")


@sources.command("check")
@click.argument("contract")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
def sources_check(contract: str, file: Path) -> None:
    """What FILE would do under CONTRACT (a contract's name, or the path of a contract file
    being written), writing nothing: rows read, rows that would load, rows that would be set
    aside and why. Exit codes as for ``ingest``: 0 all would load, 1 rows would be set aside,
    2 the file would be rejected whole, 3 the contract is wrong, 4 the check could not run."""
    from safeguard.contracts import ContractError, get_contract, load_contract
    from safeguard.db.bootstrap import ensure_server
    from safeguard.ingest.check import check_file
    from safeguard.ingest.errors import FileRejected

    s = settings()
    try:
        path = Path(contract)
        chosen = (load_contract(path, s.root) if path.suffix in (".yml", ".yaml")
                  and path.is_file() else get_contract(s, contract))
        ensure_server(s)
        report = check_file(s, chosen, file)
    except ContractError as e:
        click.echo(f"CONTRACT: {e}", err=True)
        sys.exit(EXIT_CONTRACT)
    except FileRejected as e:
        click.echo(f"WOULD REJECT: {e}", err=True)
        sys.exit(EXIT_FILE_REJECTED)
    except Exception as e:  # never a traceback (a driver's message may quote a value)
        _stopped(e, file, "the check stopped", "nothing was written")
    would, loads, aside = report.outcome(chosen)
    click.echo(f"{report.file_name} under {chosen.name}: would {would}; read "
               f"{report.rows_read} = would load {loads} + set aside {aside} (nothing written)")
    if report.message:
        click.echo(report.message)
    sys.exit(EXIT_ROWS_FAILED if report.rows_set_aside else EXIT_LOADED)


def _stopped(e: Exception, file: Path, what: str, outcome: str) -> None:
    """Exit 4 with the kind of error only: a driver's message may quote a delivered value."""
    from safeguard.ingest.admit import shown_file_name

    state = getattr(getattr(e, "diag", None), "sqlstate", None)
    click.echo(f"ERROR: {shown_file_name(file.name)}: {what} ({type(e).__name__}"
               f"{f', SQLSTATE {state}' if state else ''}); {outcome}. Check that the "
               f"database is up (`safeguard db status`) and run it again.", err=True)
    sys.exit(EXIT_FAILED)


#: ``safeguard ingest`` exit codes (``--help`` says the same)
EXIT_LOADED, EXIT_ROWS_FAILED, EXIT_FILE_REJECTED, EXIT_CONTRACT, EXIT_FAILED = 0, 1, 2, 3, 4


@main.command("ingest")
@click.option("--source", "source", required=True, help="Contract name (see `safeguard sources`).")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
def ingest(source: str, file: Path) -> None:
    """Land, validate and load one FILE through SOURCE's contract (the DAG's code path).

    \b
    Exit codes:
      0  loaded (or already loaded)
      1  rows failed the rules: set aside in quarantine (or the batch rejected whole)
      2  the file was rejected as a whole (unreadable under its contract)
      3  the contract is wrong or unknown
      4  the run could not finish (e.g. the database is unreachable); nothing was loaded

    Messages name the file, row, column and rule, never a delivered value. On a terminal a
    progress bar shows the rows read, their rate and the time left; elsewhere (cron, CI) a
    timestamped line says the same every few seconds."""
    from safeguard.contracts import ContractError, get_contract
    from safeguard.db.bootstrap import ensure_server
    from safeguard.ingest.admit import shown_file_name
    from safeguard.ingest.errors import FileRejected, IngestError
    from safeguard.ingest.pipeline import ingest_file
    from safeguard.progress import RowProgress

    s = settings()
    try:
        ensure_server(s)
        contract = get_contract(s, source)
        with RowProgress(f"landing {shown_file_name(file.name)}") as progress:
            result = ingest_file(s, contract, file, progress=progress)
    except ContractError as e:
        click.echo(f"CONTRACT: {e}", err=True)
        sys.exit(EXIT_CONTRACT)
    except FileRejected as e:
        click.echo(f"REJECTED: {e}", err=True)
        sys.exit(EXIT_FILE_REJECTED)
    except IngestError as e:
        click.echo(f"FAILED: {e}", err=True)
        sys.exit(EXIT_ROWS_FAILED if e.result is not None else EXIT_FAILED)
    except Exception as e:  # never a traceback (a driver's message may quote a value)
        _stopped(e, file, "the run stopped", "nothing was loaded from it")
    click.echo(f"{result.status}: {result.message} (batch {result.batch_id}; read "
               f"{result.rows_read} = loaded {result.rows_loaded} + quarantined "
               f"{result.rows_quarantined})")


@main.command("rekey")
@click.option("--yes", is_flag=True, help="Rotate without asking.")
@click.option("--select", default=None,
              help="dbt selection to rebuild afterwards (default: everything).")
def rekey(yes: bool, select: str | None) -> None:
    """Rotate the pseudonym key (a planned rotation, e.g. after a suspected leak).

    \b
    Every stored pseudonym p becomes HMAC(new key, p) in one transaction, the new key joins
    secrets.env (the old ones stay, as SAFEGUARD_PSEUDONYM_KEY_PREVIOUS: deliveries are hashed
    through every key in turn, so re-delivered cases still merge with their history), and the
    dbt models are rebuilt from scratch. Loads wait while it runs. Back up secrets.env after.

    \b
    Exit codes: 0 rotated; 2 refused (nothing changed); 4 the key in use is not the
    warehouse's, or the run could not finish."""
    from safeguard.db.bootstrap import ensure_server
    from safeguard.ingest.keys import KeyMismatch, RekeyRefused
    from safeguard.ingest.keys import rekey as rotate
    from safeguard.transform import DbtFailed, build

    s = settings()
    if not yes:
        click.confirm("Rotate the pseudonym key and rebuild the models?", abort=True)
    try:
        ensure_server(s)
        done = rotate(s)
    except RekeyRefused as e:
        click.echo(f"REFUSED: {e}", err=True)
        sys.exit(EXIT_FILE_REJECTED)
    except KeyMismatch as e:
        click.echo(f"FAILED: {e}", err=True)
        sys.exit(EXIT_FAILED)
    except Exception as e:  # never a traceback
        click.echo(f"FAILED: the rotation stopped ({type(e).__name__}); nothing was changed: "
                   f"the warehouse and secrets.env still hold the old key", err=True)
        sys.exit(EXIT_FAILED)
    changed = ", ".join(f"{t} {n:,}" for t, n in done.rows.items() if n)
    click.echo(f"rotated: key fingerprint {done.old_fingerprint or '(none yet)'} -> "
               f"{done.new_fingerprint}; {done.pseudonyms:,} pseudonyms re-keyed"
               f"{' (' + changed + ' rows)' if changed else ''}; new keys in {s.secrets_file}: "
               f"back it up now")
    try:
        build(s, select, run_by="cli:rekey", full_refresh=True)
    except DbtFailed as e:
        raise click.ClickException(f"the key was rotated, but rebuilding the models failed: "
                                   f"run `safeguard transform` once it is fixed.\n{e}") from e
    click.echo("models rebuilt on the new pseudonyms")


@main.group()
def gx() -> None:
    """Great Expectations: the suites derived from the contracts, kept in git."""


@gx.command("sync")
def gx_sync() -> None:
    """Write each bundled contract's suite and checkpoint into expectations/gx (commit them
    with the contract). Runs never write there: they build the suite in memory."""
    from safeguard.contracts import all_contracts
    from safeguard.db.bootstrap import bootstrap
    from safeguard.ingest.validate import sync_suite

    s = settings()
    bootstrap(s)  # GX checks each landing table exists: roles and schemas first
    bundled = (s.root / "contracts").resolve()
    for contract in all_contracts(s).values():
        if not contract.path.resolve().is_relative_to(bundled):
            continue
        changed = sync_suite(s, contract)
        click.echo(f"{contract.name:<28} {'updated' if changed else 'unchanged'}")


@main.command("transform")
@click.option("--select", default=None, help="dbt selection (default: everything).")
@click.option("--release/--no-release", "then_release", default=None,
              help="Make a release of what was built, as the transform DAG does "
                   "(default: release after a full build, not after a --select).")
@click.option("--full-refresh", is_flag=True,
              help="Rebuild the incremental models from what raw holds now (e.g. after "
                   "`safeguard db detach`), not only what changed.")
@click.option("--warm/--no-warm", default=True,
              help="After a release, compute the published dashboards' charts again into "
                   "Superset's cache (default); --no-warm only empties the cache, and the "
                   "first readers compute the new figures.")
def transform(select: str | None, then_release: bool | None, full_refresh: bool,
              warm: bool) -> None:
    """Run `dbt build` as the transformer role (into the release candidate), then release.

    A partial build (--select) may leave the candidate without the published models, so it
    releases only when asked to with --release."""
    from safeguard.release import ReleaseFailed, release
    from safeguard.transform import DbtFailed, build

    if then_release is None:
        then_release = select is None
    try:
        build(settings(), select, full_refresh=full_refresh)
        released = release(settings()) if then_release else None
    except (DbtFailed, ReleaseFailed) as e:
        raise click.ClickException(str(e)) from e
    if released is not None:
        click.echo(released.summary())
        if released.release_no is not None:
            _warm_dashboards(warm)  # as after `safeguard release`


@main.command("release")
@click.option("--as-of", "as_of", type=click.DateTime(formats=["%Y-%m-%d"]), default=None,
              help="The date the embargo is counted to (default: today, UTC).")
@click.option("--embargo-days", type=click.IntRange(min=0), default=None,
              help="Days after a period ends before it is published (default: "
                   "SAFEGUARD_RELEASE_EMBARGO_DAYS, 14).")
@click.option("--warm/--no-warm", default=True,
              help="After a release, compute the published dashboards' charts again into "
                   "Superset's cache (default); --no-warm only empties the cache, and the "
                   "first readers compute the new figures.")
def release_command(as_of, embargo_days: int | None, warm: bool) -> None:
    """Publish the candidate built by dbt: a new numbered release of the reporting tables.

    Periods are published once ended and past the embargo; a revision of a published period
    goes out only when no published count changes by less than k and no count is withheld in
    one release and published in the other (else it is held, and the earlier values stay).
    Nothing new: no release (exit 0). Exit 1 when a release could not be made; then nothing
    changed."""
    import psycopg

    from safeguard.release import ReleaseFailed, release

    try:
        result = release(settings(), as_of=as_of.date() if as_of else None,
                         embargo_days=embargo_days)
    except (ReleaseFailed, OSError, psycopg.Error) as e:
        raise click.ClickException(str(e)) from e
    click.echo(result.summary())
    if result.release_no is not None:
        _warm_dashboards(warm)


def _warm_dashboards(warm: bool = True) -> None:
    """After a release by hand, what the fact sheet DAG does after Airflow's: Superset's
    chart-data cache emptied and the published dashboards' charts computed again (``warm``
    False: only emptied, so that no reader gets the previous release's figures)."""
    import httpx

    from safeguard.superset.errors import SupersetError
    from safeguard.superset.server import SupersetServer
    from safeguard.superset.warm import NothingToWarm, warm_after_release

    if not warm:
        server = SupersetServer.running(settings())
        if server is not None:
            click.echo(f"Superset's chart-data cache: {server.empty_data_cache()} cached "
                       "results deleted, not computed again (--no-warm)")
        return
    try:
        warmed = warm_after_release(settings())
    except NothingToWarm as e:
        click.echo(str(e))
        return
    except (SupersetError, httpx.HTTPError) as e:
        raise click.ClickException(f"released, but Superset's cache could not be warmed: "
                                   f"{e}") from None
    click.echo(warmed.summary())
    if warmed.failed:
        raise click.ClickException("released, but some dashboards' charts failed (above)")


@main.command("run")
def run() -> None:
    """The whole pipeline once, headless, through Airflow (`airflow dags test`); exit 0 on
    success. For cron and scripts."""
    from safeguard.runner import PipelineFailed, run_once

    try:
        run_once(settings())
    except PipelineFailed as e:
        raise click.ClickException(str(e)) from e


@main.command("status")
def status() -> None:
    """What Airflow runs now (which DAG runs, since when, at which task), the last batch and
    the last Airflow run of each source, and what needs attention (exit 1 if anything does)."""
    import psycopg

    from safeguard.contracts import all_contracts
    from safeguard.db.bootstrap import ensure_server

    s = settings()
    ensure_server(s)
    with psycopg.connect(s.url("loader")) as conn:
        rows = {r[0]: r for r in conn.execute(
            "select distinct on (source_name) source_name, status, file_name, rows_read,"
            " rows_loaded, rows_quarantined, finished_at, message,"
            " started_at < now() - interval '1 hour' as stale from ops.batches"
            " order by source_name, started_at desc")}
    runs: dict[str, tuple[str, object]] = {}
    try:
        with psycopg.connect(s.url("airflow", s.airflow_db), connect_timeout=5) as conn:
            runs = {r[0]: (r[1], r[2]) for r in conn.execute(
                "select distinct on (dag_id) dag_id, state, coalesce(end_date, start_date)"
                " from dag_run order by dag_id, coalesce(end_date, start_date) desc")}
        _say_running(s)
    except psycopg.Error:
        pass  # Airflow not set up here (yet): batches alone
    standing: dict[str, list[str]] = {}
    try:
        # warnings still true of what is published (rpt_batch_warnings retires one when a
        # later delivery of the same figures reconciles, or supersedes them): they stay here
        # whatever the source's latest batch was, a duplicate re-delivery included
        with psycopg.connect(s.url("viewer"), connect_timeout=5) as conn:
            for source, message in conn.execute(
                    "select source_name, message from reporting.rpt_batch_warnings "
                    "order by loaded_at, message"):
                standing.setdefault(source, []).append(message)
    except psycopg.Error:
        pass  # nothing published yet
    attention = False
    for name in sorted(set(all_contracts(s)) | set(rows)):
        run = runs.get(ingest_dag_id(name))
        run_text = f"  last run {run[0]} {run[1]:%Y-%m-%d %H:%M}Z" if run and run[1] else ""
        if name not in rows:
            click.echo(f"  {name:<26} never loaded{run_text}")
            continue
        _, st, file, read, loaded, quarantined, finished, message, stale = rows[name]
        stuck = st in ("landing", "landed") and stale
        flag = st in ("rejected", "failed", "quarantined", "loaded_with_warnings") or stuck \
            or bool(run and run[0] == "failed")
        attention |= flag
        mark = "!" if flag else " "
        if finished:
            click.echo(f"{mark} {name:<26} {st:<12} {file}  read {read} = loaded {loaded} + "
                       f"quarantined {quarantined}  at {finished:%Y-%m-%d %H:%M}Z{run_text}")
        else:
            click.echo(f"{mark} {name:<26} {st:<12} {file} "
                       f"({'stuck for over an hour: re-run the DAG' if stuck else 'running'})"
                       f"{run_text}")
        if flag and message:
            click.echo("    " + message.replace("\n", "\n    "))
        for warning in standing.get(name, []):
            attention = True
            click.echo(f"!   standing warning on published figures: {warning}")
    transform = runs.get(TRANSFORM_DAG)
    if transform:
        flag = transform[0] == "failed"
        attention |= flag
        click.echo(f"{'!' if flag else ' '} {f'dbt ({TRANSFORM_DAG})':<26} {transform[0]}"
                   + (f"  at {transform[1]:%Y-%m-%d %H:%M}Z" if transform[1] else ""))
    _say_points_to_check(s)
    # a point to check is not a failure (the figure may be right: a real event, a change of
    # counting): it never sets the exit code, which says whether the pipeline needs attention
    sys.exit(1 if attention else 0)


#: how far back `status` lists flagged points, in periods of each series
RECENT_MONTHS, RECENT_YEARS = 12, 3


def _say_points_to_check(s) -> None:
    """Flagged points of the latest periods of each published series, as the viewer reads
    them (reporting.rpt_anomaly_flags: computed from published values only)."""
    import psycopg

    try:
        with psycopg.connect(s.url("viewer"), connect_timeout=5) as conn:
            points = conn.execute(
                "with latest as (select series_key, max(period_start) as last_period"
                " from reporting.rpt_anomaly_flags group by series_key)"
                " select f.series_name, f.period_label, f.value, f.expected_value, f.robust_z"
                " from reporting.rpt_anomaly_flags f join latest using (series_key)"
                " where f.is_flagged and f.period_start > latest.last_period - case"
                " when f.series_kind = 'published_figures_yearly' then make_interval(years => %s)"
                " else make_interval(months => %s) end"
                " order by f.period_start desc, abs(f.robust_z) desc, f.series_name",
                [RECENT_YEARS, RECENT_MONTHS]).fetchall()
    except psycopg.Error:
        return  # nothing published yet
    if not points:
        click.echo("points to check: none in the latest periods of the published series")
        return
    click.echo(f"points to check ({len(points)}; far from their series' pattern, |z| > 3.5:"
               " check them, no figure was changed):")
    for name, period, value, expected, z in points:
        click.echo(f"?   {name}  {period}  value {value:,.0f}, expected {expected:,.1f}"
                   f"  z {z:+.1f}")


def _say_running(s) -> None:
    """The DAG runs Airflow has queued or running now, since when, at which task."""
    from datetime import UTC, datetime

    from safeguard.progress import duration
    from safeguard.watch import running_now

    now = datetime.now(UTC)
    running = running_now(s)
    click.echo("running now:" if running else "running now: nothing in Airflow")
    for run in running:
        since = (f" since {run.since:%Y-%m-%d %H:%M:%S}Z "
                 f"({duration((now - run.since).total_seconds())})" if run.since else "")
        tasks = ", ".join(f"{task} ({state}"
                          + (f" {duration((now - at).total_seconds())}" if at else "") + ")"
                          for task, state, at in run.tasks)
        click.echo(f"  {run.dag_id:<26} {run.state:<8} run {run.run_id}{since}"
                   + (f", at {tasks}" if tasks else ", between tasks"))


@main.group()
def cluster() -> None:
    """Airflow on Celery (SAFEGUARD_EXECUTOR=celery): API server, scheduler, DAG processor,
    triggerer and Celery workers, each a process of its own (logs in
    $SAFEGUARD_HOME/airflow/cluster/)."""


@cluster.command("up")
@click.option("--workers", type=click.IntRange(min=1), default=None,
              help="Celery workers to start (default: SAFEGUARD_CELERY_WORKERS, else 2).")
@click.option("--only", multiple=True, metavar="COMPONENT",
              help="Start only this (repeatable): api-server, scheduler, dag-processor, "
                   "triggerer, worker-<n>, or 'worker' for every worker (e.g. on another "
                   "machine, with the same settings and REDIS_URL).")
def cluster_up(workers: int | None, only: tuple[str, ...]) -> None:
    """Start the cluster on this machine (database and Airflow metadata first), and wait until
    the API server answers and every worker has joined the broker."""
    import psycopg

    from safeguard.airflow_env import airflow_port
    from safeguard.cluster import Cluster, require_celery
    from safeguard.runner import prepare

    s = settings()
    try:
        require_celery()
        group = Cluster(s, workers)
        if set(group.pick(only)) - set(group.workers):  # workers elsewhere need no set-up
            click.echo("PostgreSQL, roles, schemas, Airflow metadata ...")
            prepare(s)
        group.up(only, echo=click.echo)
    except psycopg.Error as e:
        raise click.ClickException(f"PostgreSQL: {str(e).strip().splitlines()[-1]}") from None
    except RuntimeError as e:  # ClusterError, the project's Redis, DAG files that fail to parse
        raise click.ClickException(f"{e}\n(`safeguard cluster down` stops what started)"
                                   ) from None
    click.echo(f"Airflow on Celery is up: http://localhost:{airflow_port()} (login admin / "
               f"AIRFLOW_ADMIN_PASSWORD in {s.secrets_file}); `safeguard cluster down` stops it")


@cluster.command("down")
def cluster_down() -> None:
    """Stop every component of the cluster, and the project's Redis unless Superset's reports
    still use it."""
    from safeguard.cluster import Cluster

    try:
        stopped = Cluster(settings(), workers=1).down()
    except RuntimeError as e:
        raise click.ClickException(str(e)) from None
    click.echo(f"stopped: {', '.join(stopped)}" if stopped else "nothing was running")


@cluster.command("status")
def cluster_status() -> None:
    """Each component, its pid and log (exit 1 if one is not running)."""
    from safeguard.cluster import Cluster

    try:
        rows = Cluster(settings()).status()
    except RuntimeError as e:
        raise click.ClickException(str(e)) from None
    for name, pid, log in rows:
        click.echo(f"{name:<14} {'running, pid ' + str(pid) if pid else 'not running':<22} "
                   f"{log}")
    if not all(pid for _, pid, _ in rows):
        sys.exit(1)


@main.command("demo")
def demo() -> None:
    """Everything, on your machine: database, Airflow (:8080) running the pipeline through its
    scheduler, Superset (:8088) with the dashboards. Ctrl-C stops all of it."""
    from safeguard.airflow_env import executor
    from safeguard.runner import demo as run_demo

    if executor() == "celery":  # airflow standalone starts no Celery worker: nothing would run
        raise click.ClickException("the demo runs Airflow standalone (LocalExecutor): unset "
                                   "SAFEGUARD_EXECUTOR, or start Airflow on Celery with "
                                   "`safeguard cluster up`")
    run_demo(settings())


@main.command("factsheet")
@click.option("--theme", type=click.Choice(["grooming"]), default="grooming", show_default=True,
              help="What the fact sheet is about.")
@click.option("--year", type=int, default=None,
              help="The year of the hotline trends (default: the latest with published data).")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Folder to write into (default: $SAFEGUARD_HOME/reports).")
def factsheet(theme: str, year: int | None, out: Path | None) -> None:
    """Write the advocacy fact sheet (HTML and PDF): headline figures, charts and the source of
    every figure, from the published tables only, read as the viewer role."""
    from safeguard.factsheet import FactSheetError, make_factsheet

    try:
        html, pdf = make_factsheet(settings(), theme=theme, year=year, out=out)
    except FactSheetError as e:
        raise click.ClickException(str(e)) from None
    click.echo(f"fact sheet (HTML): {html}")
    click.echo(f"fact sheet (PDF):  {pdf}")


main.add_command(superset_cli, "superset")
main.add_command(generate_command, "generate")


if __name__ == "__main__":
    main()
