"""dbt, as the transformer role, with the connection in the environment (``dbt/profiles.yml``).

A build reports its progress as it goes (see :class:`DbtProgress`): dbt writes its events as JSON
(``--log-format json``), and a line is printed per model, seed or snapshot done and per test
that did not pass, with how many of how many nodes are done; on a terminal, a bar.

Every ``dbt build`` is a publication refresh and leaves a row in ``ops.publication_runs``: who
ran it and on what selection, when, whether it worked, and dbt's own counts from
``run_results.json``. The audit is written beside dbt, never instead of it: a row that cannot
be written is reported on stderr and the build goes on, and a failed build raises dbt's own
error whether or not its row could be written.
"""

from __future__ import annotations

import json
import queue
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import psycopg

from safeguard.config import ROLES, Settings, child_env
from safeguard.progress import INTERVAL, StepProgress, duration
from safeguard.runs import PUBLICATION_RUN, hold, is_held, run_by_default


class DbtFailed(RuntimeError):
    pass


def dbt_log_file(settings: Settings) -> Path:
    """dbt's own log (JSON events, see ``dbt_env``): ``safeguard.watch`` follows builds in it."""
    return settings.home / "dbt" / "logs" / "dbt.log"


def dbt_env(settings: Settings) -> dict[str, str]:
    host, port = settings.server_address()
    return {
        **child_env(),
        "SAFEGUARD_DBT_HOST": host,
        "SAFEGUARD_DBT_PORT": str(port),
        "SAFEGUARD_DBT_USER": ROLES["transformer"],
        "SAFEGUARD_DBT_PASSWORD": settings.role_password("transformer"),
        "SAFEGUARD_DBT_DBNAME": settings.warehouse_db,
        **settings.libpq_env(),  # DATABASE_URL's TLS settings (dbt's profile has host and port)
        "DBT_PROFILES_DIR": str(settings.root / "dbt"),
        "DBT_PROJECT_DIR": str(settings.root / "dbt"),
        "DBT_TARGET_PATH": str(settings.home / "dbt" / "target"),
        "DBT_LOG_PATH": str(dbt_log_file(settings).parent),
        # dbt.log as JSON events: `safeguard run` and `demo` follow a build's progress in it
        "DBT_LOG_FORMAT_FILE": "json",
        "DBT_SEND_ANONYMOUS_USAGE_STATS": "false",
        "DBT_USE_COLORS": "false",
    }


def dbt(settings: Settings, *args: str) -> str:
    """Run one dbt command; raise DbtFailed with dbt's own output when it fails."""
    exe = Path(sys.executable).with_name("dbt")
    proc = subprocess.run([str(exe), *args], env=dbt_env(settings), cwd=settings.root / "dbt",
                          text=True, capture_output=True)
    print(proc.stdout, end="")
    if proc.returncode != 0:
        raise DbtFailed(f"dbt {' '.join(args)} failed (exit {proc.returncode}):\n"
                        f"{proc.stdout[-4000:]}{proc.stderr[-2000:]}")
    return proc.stdout


#: dbt's events for a node that finished (one each), and the one for a node that started
FINISHED_EVENTS = frozenset({
    "LogModelResult", "LogTestResult", "LogSeedResult", "LogSnapshotResult", "LogNodeResult",
    "LogNodeNoOpResult", "LogFunctionResult", "LogFreshnessResult", "SkippingDetails",
    "LogSkipBecauseError"})
STARTED_EVENT = "LogStartLine"
#: dbt's last event of a command: whatever it had started is over
ENDED_EVENT = "CommandCompleted"
TESTS = ("test", "unit_test")


class DbtProgress:
    """How far one dbt invocation is, from its JSON events (``feed``): nodes done of the total,
    and what runs now. Says a line per model, seed or snapshot done and per test that did not
    pass ("dbt 12/520 model fct_x success 1.2s"); passing tests only count (there are hundreds),
    and so do exposures (dbt "skips" them: they run nothing).
    ``tick`` says where it is when nothing was said for ``interval`` seconds (a long model)."""

    def __init__(self, interval: float = INTERVAL) -> None:
        self.interval = interval
        self._count_afresh(None)

    def _count_afresh(self, invocation: str | None) -> None:
        self.invocation = invocation
        self.done = 0
        self.total = 0
        self.running: dict[str, tuple[str, float]] = {}  # unique_id: (label, started)
        self.said_at = time.monotonic()

    def feed(self, event: dict) -> list[str]:
        info, data = event.get("info") or {}, event.get("data") or {}
        name = info.get("name")
        if info.get("invocation_id") and info.get("invocation_id") != self.invocation:
            self._count_afresh(info.get("invocation_id"))  # another dbt command
        node = data.get("node_info") or {}
        kind = node.get("resource_type") or data.get("resource_type") or "node"
        label = f"{kind} {node.get('node_name') or data.get('node_name') or data.get('relation')}"
        total = data.get("total") or data.get("num_models")
        if name == ENDED_EVENT:
            self.running.clear()
        if name not in FINISHED_EVENTS and name != STARTED_EVENT:
            return []
        self.total = max(self.total, int(total or 0))
        if name == STARTED_EVENT:
            self.running[node.get("unique_id") or label] = (label, time.monotonic())
            return []
        self.running.pop(node.get("unique_id") or label, None)
        self.done += 1
        # the node's outcome (success, error, pass, fail, warn); a model's own status is the
        # database's answer ("SELECT 312")
        status = str(node.get("node_status") or data.get("status") or "skipped").lower()
        if status == "none":
            status = str(data.get("status") or "skipped").lower()
        if (kind in TESTS and status in ("pass", "success")) or kind == "exposure":
            return []
        took = data.get("execution_time")
        return [self._said(f"dbt {self.done}/{self.total} {label} {status}"
                           + (f" {float(took):.1f}s" if took is not None else ""))]

    def now_running(self) -> str:
        """The longest-running model (or other node) not a test, else how many tests run."""
        if not self.running:
            return ""
        built = [(started, label) for label, started in self.running.values()
                 if label.split(" ", 1)[0] not in TESTS]
        if built:
            started, label = min(built)
            return f"{label} ({duration(time.monotonic() - started)})"
        return f"{len(self.running)} test{'s' if len(self.running) > 1 else ''}"

    def tick(self) -> list[str]:
        # nothing running (the build over, or between two dbt commands): nothing to say
        if (not self.total or not self.running or self.done >= self.total
                or time.monotonic() - self.said_at < self.interval):
            return []
        running = self.now_running()
        return [self._said(f"dbt {self.done}/{self.total} done"
                           + (f", running {running}" if running else ""))]

    def _said(self, line: str) -> str:
        self.said_at = time.monotonic()
        return line


def _follow(proc: subprocess.Popen, on_event: Callable[[dict | None], None]) -> list[str]:
    """dbt's output line by line: each JSON event to ``on_event`` as it comes (and ``None``
    every second without one, to let a long model be said), its text kept as dbt would have
    printed it ("12:00:01  message"), with any line that is not JSON kept as it is."""
    lines: queue.Queue[str | None] = queue.Queue()

    def read() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.put(line)
        lines.put(None)

    threading.Thread(target=read, daemon=True).start()
    text: list[str] = []
    while True:
        try:
            line = lines.get(timeout=1)
        except queue.Empty:
            on_event(None)
            continue
        if line is None:
            return text
        try:
            event = json.loads(line)
            info = event["info"]
        except (ValueError, KeyError, TypeError):
            text.append(line.rstrip("\n"))
            continue
        text.append(f"{str(info.get('ts', ''))[11:19]}  {info.get('msg', '')}")
        on_event(event)


def dbt_build(settings: Settings, *args: str) -> str:
    """``dbt build`` with its progress shown (:class:`DbtProgress`: a bar on a terminal, else
    timestamped lines on stdout, which in Airflow is the task log); return dbt's output as
    text, and raise DbtFailed with it when the build fails. dbt's own lines that are not about
    one node (its version, what it found, the summary) and every warning or error are printed
    too."""
    exe = Path(sys.executable).with_name("dbt")
    tracker = DbtProgress()
    with StepProgress("dbt build") as shown:
        def on_event(event: dict | None) -> None:
            said = tracker.feed(event) if event is not None else []
            if event is not None and not said:
                info = event["info"]
                msg = str(info.get("msg") or "").rstrip()
                about_node = bool((event.get("data") or {}).get("node_info"))
                if msg.strip() and (info.get("level") in ("warn", "error") or not about_node):
                    said = [msg]
            for line in said + (tracker.tick() if not shown.interactive else []):
                shown.log(line)
            shown.update(tracker.done, tracker.total, tracker.now_running())

        proc = subprocess.Popen([str(exe), *args], env={**dbt_env(settings),
                                                        "DBT_LOG_FORMAT": "json"},
                                cwd=settings.root / "dbt", text=True, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT)
        try:
            text = "\n".join(_follow(proc, on_event)) + "\n"
        finally:
            if proc.poll() is None:  # stopped (Ctrl-C): dbt goes with us
                proc.terminate()
            returncode = proc.wait()
    if returncode != 0:
        raise DbtFailed(f"dbt {' '.join(args)} failed (exit {returncode}):\n{text[-6000:]}")
    return text


def build(settings: Settings, select: str | None = None, run_by: str | None = None,
          full_refresh: bool = False) -> str:
    """``dbt build`` (seeds, models, tests, unit tests), optionally limited to a selection,
    recorded in ``ops.publication_runs`` (``run_by``: default :func:`run_by_default`).
    ``full_refresh``: incremental models rebuilt from scratch (after a key rotation)."""
    args = ["build", *(["--full-refresh"] if full_refresh else [])]
    if select:
        # tests run only when all the models they read are selected (a relationship test of a
        # selected fact against an unselected dimension waits for the run that builds both)
        args += ["--select", select, "--indirect-selection", "cautious"]
    run = PublicationRun.start(settings, (select or "all") + (" (full refresh)" if full_refresh
                                                              else ""), run_by or run_by_default())
    try:
        try:
            output = dbt_build(settings, *args)
        except DbtFailed as e:
            # two dbt threads swapping views that share dependents can deadlock in
            # PostgreSQL's catalog (seen in CI); the server undid the loser's work, and a build
            # is idempotent: run it once more, as PostgreSQL advises for deadlocks
            if "deadlock detected" not in str(e):
                raise
            print("safeguard: dbt hit a database deadlock; building again", file=sys.stderr,
                  flush=True)
            output = dbt_build(settings, *args)
    except BaseException as e:  # recorded, then raised as it came (Ctrl-C included)
        run.finish("failed", error=e)
        raise
    run.finish("success")
    return output


# --- the audit of publication refreshes (ops.publication_runs) --------------------------------

#: at most this much of a failure's text goes into ops.publication_runs.message
MAX_MESSAGE = 2000


def _warn(what: str, e: BaseException) -> None:
    print(f"safeguard: could not record {what} in ops.publication_runs: "
          f"{type(e).__name__}: {str(e).strip()[:300]}", file=sys.stderr, flush=True)


@dataclass
class RunCounts:
    """What dbt did, from ``run_results.json``: models built, tests passed or failed, and one
    line per node that failed (or warned), naming the node, never the rows."""

    nodes: int = 0
    models_built: int = 0
    tests_passed: int = 0
    tests_failed: int = 0
    problems: list[str] = field(default_factory=list)


def read_run_results(path: Path, since: datetime) -> RunCounts | None:
    """The counts of the dbt invocation that wrote ``path`` at or after ``since``; None when the
    file is older (dbt stopped before running anything: a bad selection, a parse error)."""
    try:
        if path.stat().st_mtime < since.timestamp():
            return None
        results = json.loads(path.read_text())["results"]
    except (OSError, ValueError, KeyError):
        return None
    counts = RunCounts(nodes=len(results))
    for r in results:
        resource, _, name = r["unique_id"].partition(".")
        name = name.split(".", 1)[-1]  # drop the project name
        status = r.get("status")
        if resource == "model" and status == "success":
            counts.models_built += 1
        elif resource in ("test", "unit_test"):
            if status in ("pass", "warn"):
                counts.tests_passed += 1
            elif status in ("fail", "error"):
                counts.tests_failed += 1
        if status in ("error", "fail", "warn"):
            # the first line only: "Database Error in model x (models/...)", "Got 3 results,
            # configured to fail if != 0"; the lines after it may quote values from the data
            first = (r.get("message") or "").strip().splitlines()[:1]
            counts.problems.append(f"{resource} {name}: {status}"
                                   + (f": {first[0][:200]}" if first else ""))
    return counts


def _failure_text(error: BaseException) -> str:
    """What a failure before or around dbt's nodes says: dbt's error lines (a selection, parse
    or compilation error names code, not data), else the exception's first line."""
    text = str(error)
    if isinstance(error, DbtFailed):
        lines = text.splitlines()
        start = next((i for i, line in enumerate(lines) if "Error" in line), None)
        if start is not None:
            return "\n".join(line.rstrip() for line in lines[start:start + 8] if line.strip())
    return f"{type(error).__name__}: {text.strip().splitlines()[0] if text.strip() else ''}"


class PublicationRun:
    """One row of ``ops.publication_runs``, written as the transformer. While the build runs,
    its connection holds an advisory lock on the run; a run left 'running' whose lock nobody
    holds (its process was killed, or lost its server) is marked failed by the next start."""

    def __init__(self, settings: Settings, selection: str, run_by: str) -> None:
        self.settings = settings
        self.run_id = str(uuid.uuid4())
        self.selection = selection
        self.run_by = run_by
        self.started_at = datetime.now(UTC)
        self.conn: psycopg.Connection | None = None

    @classmethod
    def start(cls, settings: Settings, selection: str, run_by: str) -> PublicationRun:
        run = cls(settings, selection, run_by)
        try:
            run.conn = psycopg.connect(settings.url("transformer"), autocommit=True,
                                       connect_timeout=10)
            hold(run.conn, PUBLICATION_RUN, run.run_id)
            run._release_abandoned()
            run.conn.execute(
                "insert into ops.publication_runs (run_id, started_at, status, selection, run_by)"
                " values (%s, %s, 'running', %s, %s)",
                [run.run_id, run.started_at, selection, run_by])
        except Exception as e:  # the audit never stops the build
            _warn("the start of this dbt build", e)
        return run

    def _release_abandoned(self) -> None:
        assert self.conn is not None
        for (run_id,) in self.conn.execute(
                "select run_id from ops.publication_runs where status = 'running'").fetchall():
            if not is_held(self.conn, PUBLICATION_RUN, str(run_id)):
                self.conn.execute(
                    "update ops.publication_runs set status = 'failed', finished_at = %s, "
                    "message = 'abandoned: the process running this dbt build ended before it "
                    "could record the outcome; see its log' where run_id = %s "
                    "and status = 'running'", [datetime.now(UTC), run_id])

    def finish(self, status: str, error: BaseException | None = None) -> None:
        """Record the outcome; never raises (the caller's own outcome comes first)."""
        try:
            target = Path(dbt_env(self.settings)["DBT_TARGET_PATH"])
            counts = read_run_results(target / "run_results.json", self.started_at)
            parts = list(counts.problems) if counts else []
            if error is not None and not (counts and counts.problems):
                parts.append(_failure_text(error))
            if error is None and not (counts and counts.nodes):
                parts.append("dbt ran no node: nothing matched the selection")
            message = "\n".join(parts)[:MAX_MESSAGE] or None
            values = [status, datetime.now(UTC),
                      counts.models_built if counts else 0,
                      counts.tests_passed if counts else 0,
                      counts.tests_failed if counts else 0, message]
            self._write(values)
        except Exception as e:
            _warn(f"the outcome ({status}) of this dbt build", e)
        finally:
            if self.conn is not None:
                self.conn.close()  # lets go of the run's lock
                self.conn = None

    def _write(self, values: list) -> None:
        # an upsert: the start may not have been recorded (the server was away for a moment)
        sql = ("insert into ops.publication_runs (run_id, started_at, selection, run_by, status,"
               " finished_at, models_built, tests_passed, tests_failed, message)"
               " values (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s)"
               " on conflict (run_id) do update set status = excluded.status,"
               " finished_at = excluded.finished_at, models_built = excluded.models_built,"
               " tests_passed = excluded.tests_passed, tests_failed = excluded.tests_failed,"
               " message = excluded.message")
        params = [self.run_id, self.started_at, self.selection, self.run_by, *values]
        if self.conn is not None and not self.conn.closed:
            try:
                self.conn.execute(sql, params)
                return
            except psycopg.OperationalError:
                pass  # the connection was lost during the build: try a new one
        with psycopg.connect(self.settings.url("transformer"), autocommit=True,
                             connect_timeout=10) as conn:
            conn.execute(sql, params)


def selection_or_all(settings: Settings, select: str | None) -> str | None:
    """``select``, or None (everything) while the release candidate lacks one of the published
    models: on a new warehouse, a build limited to what the first load touched would leave the
    others unbuilt, and a release publishes all of them or none (``release``)."""
    if select is None:
        return None
    from safeguard.release import missing_from_candidate, table_rules

    with psycopg.connect(settings.url("transformer"), connect_timeout=10) as conn:
        missing = missing_from_candidate(conn, table_rules(settings.root))
    if missing:
        print(f"safeguard: the release candidate lacks {len(missing)} published model(s) "
              f"({', '.join(missing[:5])}{', ...' if len(missing) > 5 else ''}): building "
              "everything, not only what the loads touched", flush=True)
        return None
    return select


def selection_for(raw_asset_uris: list[str]) -> str | None:
    """The dbt selection for a run triggered by loads into these raw tables: everything
    downstream of each table, with everything those models need (dbt's ``@``: on a fresh
    warehouse the parents may not be built yet, and unit tests read their parents' columns),
    the seeds, and the published data-quality notes. None (everything) when no table is named,
    e.g. a run started by hand."""
    tables = sorted({uri.rstrip("/").rsplit("/", 1)[-1] for uri in raw_asset_uris})
    if not tables:
        return None
    return " ".join(["resource_type:seed", "@source:ops.batch_issues",
                     *(f"@source:raw.{t}" for t in tables)])
