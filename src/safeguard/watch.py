"""What Airflow is doing while ``safeguard run`` or ``safeguard demo`` waits on it: a line per
DAG run and task state change (queued, running, success, failed, skipped, up_for_retry, ...)
with the time since the wait began and how long a finished one took, and the progress of a
dbt build ("dbt 12/520 model fct_x success 1.2s"), read from dbt's own log, ``dbt.log`` in
the home, which ``transform.dbt_env`` has dbt write as JSON events.

The states come from Airflow's REST API when its API server runs (the demo), and otherwise
from its metadata database: ``airflow dags test`` runs a DAG in its own process without an API
server, so while it runs a thread reads ``dag_run`` and ``task_instance`` about every second
(:class:`Following`). A state held for less than a poll can go unseen; the lines say what was
seen, and the last state of every run and task is always seen.
"""

from __future__ import annotations

import json
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import psycopg

from safeguard.airflow_env import api_token
from safeguard.config import Settings
from safeguard.progress import duration
from safeguard.transform import DbtProgress

#: states after which a run or task does nothing more
FINISHED = frozenset({"success", "failed", "skipped", "upstream_failed", "removed"})
#: states of a task instance that is not finished, and not waiting for its upstream
ACTIVE = ("queued", "running", "up_for_retry", "up_for_reschedule", "deferred", "restarting")


@dataclass(frozen=True)
class State:
    """A DAG run's state (``task_id`` None) or one of its task instances'."""

    dag_id: str
    run_id: str
    task_id: str | None
    state: str
    start: datetime | None = None
    end: datetime | None = None
    try_number: int = 0

    @property
    def reached(self) -> datetime:
        at = self.end if self.state in FINISHED else self.start
        return at or datetime.max.replace(tzinfo=UTC)


# --- where the states come from ----------------------------------------------------------------

def last_run_id(s: Settings) -> int:
    """The newest DAG run's id in the metadata database: runs after it are the ones to follow."""
    with psycopg.connect(s.url("airflow", s.airflow_db), connect_timeout=10) as conn:
        return conn.execute("select coalesce(max(id), 0) from dag_run").fetchone()[0]


def metadata_db_states(s: Settings, after_run_id: int) -> Callable[[], list[State]]:
    """The runs made after ``after_run_id`` and their task instances, read from Airflow's
    metadata database (the headless run: ``airflow dags test`` serves no API)."""
    url = s.url("airflow", s.airflow_db)
    query = (
        "select r.dag_id, r.run_id, null, r.state, r.start_date, r.end_date, 0 from dag_run r "
        "where r.id > %(after)s union all "
        "select ti.dag_id, ti.run_id, ti.task_id, ti.state, ti.start_date, ti.end_date, "
        "ti.try_number from task_instance ti join dag_run r "
        "on r.dag_id = ti.dag_id and r.run_id = ti.run_id "
        "where r.id > %(after)s and ti.state is not null")

    def read() -> list[State]:
        with psycopg.connect(url, connect_timeout=5) as conn:
            return [State(*row) for row in conn.execute(query, {"after": after_run_id})]

    return read


class RestStates:
    """The runs triggered from ``since`` on and their task instances, from Airflow's REST API
    (the demo's ``airflow standalone``), as its admin."""

    def __init__(self, s: Settings, base_url: str, since: datetime) -> None:
        self.s = s
        self.base_url = base_url.rstrip("/")
        self.since = since.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        self.token: str | None = None

    def _get(self, path: str) -> dict:
        if self.token is None:
            self.token = api_token(self.s, self.base_url, timeout=10)
        request = urllib.request.Request(f"{self.base_url}/api/v2/{path}",
                                         headers={"Authorization": f"Bearer {self.token}"})
        try:
            with urllib.request.urlopen(request, timeout=10) as r:
                return json.load(r)
        except urllib.error.HTTPError as e:
            if e.code in (401, 403):
                self.token = None  # expired: a new one next time
            raise

    def __call__(self) -> list[State]:
        since = f"run_after_gte={self.since}&limit=100"
        runs = self._get(f"dags/~/dagRuns?{since}")["dag_runs"]
        tasks = self._get(f"dags/~/dagRuns/~/taskInstances?{since}")["task_instances"]
        return ([State(r["dag_id"], r["dag_run_id"], None, r["state"], _when(r["start_date"]),
                       _when(r["end_date"])) for r in runs]
                + [State(t["dag_id"], t["dag_run_id"], t["task_id"], t["state"],
                         _when(t["start_date"]), _when(t["end_date"]), t.get("try_number") or 0)
                   for t in tasks if t.get("state")])


def _when(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


class DbtLog:
    """dbt's events written to ``dbt.log`` (JSON lines) since this was made. dbt starts a new
    file when the log grows large (10 MB; the old one is renamed ``dbt.log.1``): then it reads
    what was added to the old one since the last read, then the new one from its start, so no
    event is lost at the turn (a node's end lost there would leave it "running" for ever)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.inode, self.offset = self._where()
        self.partial = b""

    def _where(self) -> tuple[int | None, int]:
        try:
            stat = self.path.stat()
        except FileNotFoundError:
            return None, 0
        return stat.st_ino, stat.st_size

    def events(self) -> list[dict]:
        inode, size = self._where()
        if inode is None:
            return []
        chunk = b""
        if inode != self.inode or size < self.offset:
            chunk = self._rest_of_rotated()
            self.inode, self.offset = inode, 0
        if size > self.offset:
            with self.path.open("rb") as f:
                f.seek(self.offset)
                read = f.read(size - self.offset)
            chunk += read
            self.offset += len(read)
        if not chunk:
            return []
        *complete, self.partial = (self.partial + chunk).split(b"\n")
        out = []
        for line in complete:
            try:
                out.append(json.loads(line))
            except ValueError:
                continue  # a line written as text (before the switch to JSON)
        return out

    def _rest_of_rotated(self) -> bytes:
        """What dbt wrote since the last read to the files it has turned since (the one read
        is now ``dbt.log.<k>``, newer ones ``.<k-1>`` ... ``.1``). dbt turns a file between two
        events, so each ends with a whole line."""
        turned = [self.path.with_name(f"{self.path.name}.{k}") for k in range(1, 10)]
        inodes = []
        for path in turned:
            try:
                inodes.append(path.stat().st_ino)
            except FileNotFoundError:
                break
        if self.inode not in inodes:  # gone (more turns than dbt keeps): lost with it
            self.partial = b""
            return b""
        k = inodes.index(self.inode)
        with turned[k].open("rb") as f:
            f.seek(self.offset)
            out = f.read()
        return out + b"".join(path.read_bytes() for path in reversed(turned[:k]))


# --- saying it ---------------------------------------------------------------------------------

class Watch:
    """Says each change it sees, from ``states`` (one of the sources above) and from dbt's log,
    as lines prefixed with the time since it was made ("[02:15] ...")."""

    def __init__(self, states: Callable[[], list[State]], dbt_log: Path | None = None,
                 say: Callable[[str], None] | None = None) -> None:
        self.states = states
        self.dbt_log = DbtLog(dbt_log) if dbt_log is not None else None
        self.dbt = DbtProgress()
        self.say = say or (lambda line: print(line, flush=True))
        self.started = time.monotonic()
        self.seen: dict[tuple[str, str, str | None], tuple[str, int]] = {}

    def _line(self, text: str) -> None:
        elapsed = int(time.monotonic() - self.started)
        self.say(f"[{elapsed // 60:02d}:{elapsed % 60:02d}] {text}")

    def poll(self) -> None:
        try:
            states = self.states()
        except Exception:  # a moment without the database or the API: the next poll sees it
            states = []
        changed = [st for st in states if self.seen.get((st.dag_id, st.run_id, st.task_id))
                   != (st.state, st.try_number)]
        said = []
        for st in sorted(changed, key=lambda st: (st.reached, st.task_id is None)):
            before = self.seen.get((st.dag_id, st.run_id, st.task_id))
            self.seen[(st.dag_id, st.run_id, st.task_id)] = (st.state, st.try_number)
            said.append((st.state in FINISHED, describe(
                st, first=before is None,
                retried=before is not None and before[1] != st.try_number)))
        # dbt's log is read after the states: what it says came before any task seen finished
        # (dbt ends before its task does), and after any seen running
        for _, line in (s for s in said if not s[0]):
            self._line(line)
        if self.dbt_log is not None:
            lines = [line for event in self.dbt_log.events() for line in self.dbt.feed(event)]
            for line in lines + self.dbt.tick():
                self._line(line)
        for _, line in (s for s in said if s[0]):
            self._line(line)


def describe(st: State, first: bool = False, retried: bool = False) -> str:
    """"ingest__x.land: success after 3.2s"; a run is named by its id when first seen."""
    if st.task_id:
        text = f"{st.dag_id}.{st.task_id}: {st.state}"
    else:
        text = f"{st.dag_id}: run {st.run_id + ' ' if first else ''}{st.state}"
    if st.state in FINISHED and st.start and st.end:
        text += f" after {duration((st.end - st.start).total_seconds())}"
    if retried or (st.task_id and st.try_number > 1 and st.state not in FINISHED):
        text += f" (try {st.try_number})"
    return text


class Following:
    """A Watch polled every ``every`` seconds in a thread while the block runs (``airflow dags
    test`` in this process's child), and once more at its end, so the last states are said."""

    def __init__(self, watch: Watch, every: float = 1.0) -> None:
        self.watch = watch
        self.every = every
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self.stop.wait(self.every):
            self.watch.poll()

    def __enter__(self) -> Following:
        self.thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stop.set()
        self.thread.join()
        self.watch.poll()


# --- what runs now (safeguard status) ----------------------------------------------------------

@dataclass(frozen=True)
class Running:
    dag_id: str
    run_id: str
    state: str
    since: datetime | None
    tasks: list[tuple[str, str, datetime | None]]  # task, state, since


def running_now(s: Settings) -> list[Running]:
    """The DAG runs queued or running now, oldest first, each with its task instances that are
    queued, running or waiting to retry, from Airflow's metadata database."""
    with psycopg.connect(s.url("airflow", s.airflow_db), connect_timeout=5) as conn:
        runs = conn.execute(
            "select dag_id, run_id, state, coalesce(start_date, queued_at) from dag_run "
            "where state in ('queued', 'running') order by coalesce(start_date, queued_at), id"
        ).fetchall()
        tasks = conn.execute(
            "select ti.dag_id, ti.run_id, ti.task_id, ti.state, "
            "coalesce(ti.start_date, ti.queued_dttm) from task_instance ti join dag_run r "
            "on r.dag_id = ti.dag_id and r.run_id = ti.run_id "
            "where r.state in ('queued', 'running') and ti.state = any(%s) "
            "order by ti.start_date nulls last, ti.task_id", [list(ACTIVE)]).fetchall()
    return [Running(dag, run, state, since,
                    [(t[2], t[3], t[4]) for t in tasks if (t[0], t[1]) == (dag, run)])
            for dag, run, state, since in runs]
