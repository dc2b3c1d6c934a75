"""Airflow past one machine: the CeleryExecutor's components, each a process of its own.

``safeguard cluster up`` (with ``SAFEGUARD_EXECUTOR=celery``) starts the project's Redis (the
broker; or ``REDIS_URL``'s), then the API server, the scheduler, the DAG processor, the
triggerer and ``SAFEGUARD_CELERY_WORKERS`` Celery workers (default 2), each in a process session
of its own with its log and pid file in ``$SAFEGUARD_HOME/airflow/cluster/``. Every component
takes the same settings (``airflow_env``: metadata database, broker, result backend, JWT
secret, execution API URL), and ``--only`` starts a part of them (``worker``: the workers), so
that other machines could run some (given a database, Redis and API server they can reach).

Queues: the ingest DAGs' tasks go to ``ingest``, ``safeguard_transform``'s (dbt) to ``dbt``,
the rest to ``default``. With one worker it serves all three; with more, odd workers serve
``ingest,default`` and even ones ``dbt,default`` (``SAFEGUARD_CELERY_QUEUES`` says otherwise:
one comma list per worker, space-separated, e.g. ``"ingest,dbt,default ingest"``). A worker's
Celery hostname (``worker<i>@<machine>``) is also the hostname Airflow records for the tasks it
runs (``task_instance.hostname``), beside the queue (``task_instance.queue``).

On one machine, task logs are files in the shared ``$AIRFLOW_HOME/logs`` that the API server
reads; workers do not serve them over HTTP (across machines, use Airflow's remote logging).
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path

from safeguard.airflow_env import (
    BROKER_DB,
    REDIS_USER,
    airflow_env,
    airflow_exe,
    airflow_port,
    executor,
)
from safeguard.config import Settings, env
from safeguard.dag_ids import DBT_QUEUE, DEFAULT_QUEUE, INGEST_QUEUE
from safeguard.services import Process, Redis, ServiceError

#: the components besides the workers, in the order they start
SERVERS = ("api-server", "scheduler", "dag-processor", "triggerer")


class ClusterError(ServiceError):
    """The cluster could not be started; the message names the component and its log."""


def require_celery() -> None:
    if executor() != "celery":
        raise ClusterError("the cluster is Airflow on Celery: set SAFEGUARD_EXECUTOR=celery "
                           f"(it is {executor()!r})")


def worker_count() -> int:
    value = env("SAFEGUARD_CELERY_WORKERS", "2") or "2"
    if not value.isdigit() or int(value) < 1:
        raise ClusterError(f"SAFEGUARD_CELERY_WORKERS={value!r}: give a number of workers, 1 "
                           "or more")
    return int(value)


def worker_queues(count: int) -> list[list[str]]:
    """The queues each worker serves (see the module's docstring)."""
    given = (env("SAFEGUARD_CELERY_QUEUES") or "").split()
    if given:
        return [given[i % len(given)].split(",") for i in range(count)]
    if count == 1:
        return [[INGEST_QUEUE, DBT_QUEUE, DEFAULT_QUEUE]]
    return [[INGEST_QUEUE if i % 2 == 0 else DBT_QUEUE, DEFAULT_QUEUE] for i in range(count)]


def machine() -> str:
    return socket.gethostname()


def task_hostname() -> str:
    """Airflow's ``[core] hostname_callable`` in the workers we start: the worker's Celery
    hostname, so that each task instance names the worker that ran it (several share a
    machine here)."""
    from airflow.utils.net import getfqdn

    return env("SAFEGUARD_CELERY_HOSTNAME") or getfqdn()


def _started_at(pid: int) -> str | None:
    """The process's start time in clock ticks (``/proc/<pid>/stat``), which tells a process
    from a later one with the same pid. (Airflow and Celery rewrite their command lines, so
    those cannot.)"""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return None


class Component(Process):
    """One Airflow component (``airflow <args>``), as its own process session."""

    def __init__(self, folder: Path, name: str, args: list[str],
                 extra_env: dict[str, str] | None = None):
        super().__init__(folder, name)
        self.args = args
        self.extra_env = extra_env or {}

    def pid(self) -> int | None:
        state = self.state()
        pid = state.get("pid")
        if not pid or _started_at(int(pid)) != state.get("started"):
            return None
        return int(pid)

    def start(self, base_env: dict[str, str]) -> subprocess.Popen[bytes] | None:
        if self.pid():
            return None
        proc = self._spawn([airflow_exe(), *self.args], base_env | self.extra_env)
        self.state_file.write_text(
            f'{{"pid": {proc.pid}, "started": "{_started_at(proc.pid)}"}}')
        return proc

    def signal(self, sig: int) -> bool:
        pid = self.pid()
        if pid is None:
            return False
        try:
            os.killpg(pid, sig)  # started in a session of its own: pid is its group
        except ProcessLookupError:
            return False
        return True


class Cluster:
    """The CeleryExecutor's components on this machine."""

    def __init__(self, s: Settings, workers: int | None = None):
        self.settings = s
        self.folder = s.home / "airflow" / "cluster"
        self.redis = Redis(s)
        count = worker_count() if workers is None else workers
        self.servers = [Component(self.folder, "api-server", ["api-server"]),
                        Component(self.folder, "scheduler", ["scheduler"]),
                        Component(self.folder, "dag-processor", ["dag-processor"]),
                        Component(self.folder, "triggerer", ["triggerer", "--skip-serve-logs"])]
        self.workers = []
        for i, queues in enumerate(worker_queues(count), 1):
            hostname = f"worker{i}@{machine()}"
            self.workers.append(Component(
                self.folder, f"worker-{i}",
                ["celery", "worker", "--queues", ",".join(queues), "--celery-hostname", hostname,
                 "--skip-serve-logs"],
                {"SAFEGUARD_CELERY_HOSTNAME": hostname,
                 "AIRFLOW__CORE__HOSTNAME_CALLABLE": "safeguard.cluster.task_hostname"}))

    @property
    def components(self) -> list[Component]:
        return [*self.servers, *self.workers]

    def known(self) -> list[Component]:
        """Every component with a pid file here, also workers beyond today's count."""
        names = {c.name for c in self.components}
        extra = sorted(p.stem for p in self.folder.glob("worker-*.json") if p.stem not in names)
        return [*self.components, *(Component(self.folder, n, []) for n in extra)]

    def pick(self, only: tuple[str, ...]) -> list[Component]:
        """The components named (``worker`` for every worker), all when none is."""
        if not only:
            return self.components
        chosen = [c for c in self.components
                  if c.name in only or ("worker" in only and c in self.workers)]
        unknown = set(only) - {c.name for c in self.components} - {"worker"}
        if unknown:
            raise ClusterError(f"no component {', '.join(sorted(unknown))}; there are "
                               f"{', '.join(c.name for c in self.components)} and 'worker'")
        return chosen

    def up(self, only: tuple[str, ...] = (), echo: Callable[[str], None] = print,
           timeout: float = 240) -> None:
        """Start what is not running yet, and wait until the API server answers and every
        worker has joined the broker."""
        require_celery()
        chosen = self.pick(only)
        self.redis.start(REDIS_USER)
        echo(f"broker: {'REDIS_URL' if self.redis.external_url else 'Redis'} "
             f"{self.redis.url(BROKER_DB).split('@')[-1]}")
        base = airflow_env(self.settings)
        started = {}
        for component in chosen:
            proc = component.start(base)
            what = "started" if proc else "already running"
            echo(f"{component.name:<14} {what}, log {component.log}")
            if proc:
                started[component.name] = proc
        deadline = time.monotonic() + timeout
        self._wait_api(chosen, started, deadline)
        self._wait_workers([c for c in chosen if c in self.workers], started, deadline, base)

    def _exited(self, started: dict[str, subprocess.Popen[bytes]]) -> None:
        for name, proc in started.items():
            if proc.poll() is not None:
                component = next(c for c in self.components if c.name == name)
                raise ClusterError(f"{name} exited with code {proc.returncode}; "
                                   f"{component.log}:\n{component.tail(2000)}")

    def _wait_api(self, chosen, started, deadline: float) -> None:
        if not any(c.name == "api-server" for c in chosen):
            return
        url = f"http://127.0.0.1:{airflow_port()}/api/v2/monitor/health"
        while time.monotonic() < deadline:
            self._exited(started)
            try:
                with urllib.request.urlopen(url, timeout=5) as r:
                    if r.status < 500:
                        return
            except OSError:
                pass
            time.sleep(2)
        raise ClusterError(f"the API server did not answer on {url}; see "
                           f"{self.folder / 'api-server.log'}")

    def _wait_workers(self, workers, started, deadline: float, base: dict[str, str]) -> None:
        """Until Celery's own list of workers names each of ours."""
        waiting = {c.args[c.args.index("--celery-hostname") + 1] for c in workers}
        while waiting and time.monotonic() < deadline:
            self._exited(started)
            listed = subprocess.run([airflow_exe(), "celery", "list-workers", "-o", "plain"],
                                    env=base, capture_output=True, text=True, timeout=120)
            waiting = {w for w in waiting if w not in listed.stdout}
            if waiting:
                time.sleep(2)
        if waiting:
            raise ClusterError(f"Celery workers {', '.join(sorted(waiting))} did not join the "
                               f"broker; see their logs in {self.folder}")

    def down(self, timeout: float = 30) -> list[str]:
        """Stop every component (SIGTERM to each process group, SIGKILL to what is left after
        ``timeout``; a worker's warm shutdown lets a task finish meanwhile), then let the
        project's Redis go. What was running. Task processes lead process groups of their
        own, so whatever descends from a component is gathered first and killed if left."""
        known = self.known()
        # the scheduler first, so that nothing new is sent while the workers stop
        order = sorted(known, key=lambda c: c.name != "scheduler")
        pids = [p for p in (c.pid() for c in order) if p]
        family = {d: _started_at(d) for p in pids for d in _descendants(p)}
        stopped = [c.name for c in order if c.signal(signal.SIGTERM)]
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and any(_group_alive(p) for p in pids):
            time.sleep(0.3)
        for pid in pids:
            if _group_alive(pid):
                _kill(os.killpg, pid)
        for pid, started in family.items():
            if started and _started_at(pid) == started:
                _kill(os.kill, pid)
        for c in known:
            c.state_file.unlink(missing_ok=True)
        if self.redis.release(REDIS_USER):
            stopped.append("redis")
        return stopped

    def status(self) -> list[tuple[str, int | None, Path]]:
        """(component, pid or None, log) of each."""
        return [(c.name, c.pid(), c.log) for c in self.known()]


def _kill(how: Callable[[int, int], None], pid: int) -> None:
    try:
        how(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def _descendants(pid: int) -> list[int]:
    """Every process below ``pid`` (from each process's parent in ``/proc``)."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    out, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            out.append(child)
            todo.append(child)
    return out


def _group_alive(pgid: int) -> bool:
    try:
        os.waitpid(pgid, os.WNOHANG)  # reap our own child, or it stays a zombie "alive"
    except ChildProcessError:
        pass
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True

