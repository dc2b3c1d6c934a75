"""What Superset's Alerts & Reports run on: a Redis of our own and Celery's worker and beat.

Redis is Debian's ``redis-server``, started like the embedded PostgreSQL: its own folder
(``$SAFEGUARD_HOME/redis``), 127.0.0.1 only, a free port picked on first start and kept, a
password from ``secrets.env`` (in a mode-600 config file, never on a command line), nothing
written to disk. ``REDIS_URL`` points at another Redis instead, which we then never start or
stop. The worker (``reports.execute``: Selenium drives Debian's chromedriver + chromium for the
screenshots, then mails) and beat (``reports.scheduler`` every minute) run from Superset's own
environment, each in a process session of its own, so a stop takes their children (chromedriver,
Chromium) down with them.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from urllib.parse import quote

from safeguard.config import Settings, env, write_private
from safeguard.ports import free_port, port_is_free
from safeguard.superset.errors import SupersetError

#: Superset's Celery application (its tasks: reports.scheduler, reports.execute, prune_log)
CELERY_APP = "superset.tasks.celery_app:app"


def _truthy(value: str | None) -> bool:
    return (value or "").strip().lower() in ("1", "true", "yes", "on")


def reports_wanted(default: bool = False) -> bool:
    """``SAFEGUARD_REPORTS`` (1/0), else ``default`` (on in ``make demo``, off otherwise)."""
    value = env("SAFEGUARD_REPORTS")
    return default if value is None else _truthy(value)


def missing_for_reports() -> list[str]:
    """What this machine lacks for reports (``make setup`` installs both), e.g. for the demo
    to go on without them and say why."""
    from safeguard.config import chromedriver_path

    missing = []
    if not env("REDIS_URL") and not (env("SAFEGUARD_REDIS_SERVER") or shutil.which("redis-server")):
        missing.append("redis-server")
    if not Path(chromedriver_path()).exists():
        missing.append("chromedriver (chromium-driver)")
    return missing


def _alive(pid: int, marker: bytes) -> bool:
    """The process still runs and is what we started (a reused pid is not ours)."""
    try:
        return marker in Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False


def _stop_group(pid: int, timeout: float = 20.0) -> None:
    """SIGTERM the process group led by ``pid``, SIGKILL what is left after ``timeout``."""
    try:
        pgid = os.getpgid(pid)
        os.killpg(pgid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.waitpid(pid, os.WNOHANG)  # reap it if it is our child
        except ChildProcessError:
            pass
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.2)
    try:
        os.killpg(pgid, signal.SIGKILL)
    except ProcessLookupError:
        pass


class _Process:
    """One long-running program of ours: its log, and a JSON file with its pid (and port)."""

    marker: bytes = b""

    def __init__(self, folder: Path, name: str):
        self.folder = folder
        self.name = name

    @property
    def log(self) -> Path:
        return self.folder / f"{self.name}.log"

    @property
    def state_file(self) -> Path:
        return self.folder / f"{self.name}.json"

    def state(self) -> dict:
        try:
            return json.loads(self.state_file.read_text())
        except (OSError, ValueError):
            return {}

    def pid(self) -> int | None:
        pid = self.state().get("pid")
        return int(pid) if pid and _alive(int(pid), self.marker) else None

    def _spawn(self, args: list[str], env: dict[str, str],
               state: dict | None = None) -> subprocess.Popen[bytes]:
        self.folder.mkdir(parents=True, exist_ok=True)
        with self.log.open("ab") as log:
            log.write(f"\n=== {' '.join(args[:3])} ...\n".encode())
            log.flush()
            proc = subprocess.Popen(args, env=env, cwd=self.folder, stdin=subprocess.DEVNULL,
                                    stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        self.state_file.write_text(json.dumps({"pid": proc.pid, **(state or {})}))
        return proc

    def stop(self) -> bool:
        """Stop it if it runs; True if it did."""
        pid = self.pid()
        if pid is not None:
            _stop_group(pid)
        self.state_file.unlink(missing_ok=True)
        return pid is not None

    def tail(self, chars: int = 3000) -> str:
        try:
            return self.log.read_text(errors="replace")[-chars:]
        except OSError:
            return ""


class Redis(_Process):
    """The broker and results backend of the reports' Celery: ours, or ``REDIS_URL``'s."""

    marker = b"redis-server"

    def __init__(self, settings: Settings):
        super().__init__(settings.home / "redis", "redis")
        self.settings = settings

    @property
    def external_url(self) -> str | None:
        return env("REDIS_URL")

    @property
    def port(self) -> int | None:
        port = self.state().get("port")
        return int(port) if port else None

    @property
    def password(self) -> str:
        return self.settings.secret("SAFEGUARD_REDIS_PASSWORD")

    def url(self, db: int = 0) -> str:
        """``redis://`` URL of database ``db`` (the broker uses 0, results 1)."""
        if self.external_url:
            return self.external_url
        if self.port is None:
            raise SupersetError("Redis for the reports is not started: `safeguard superset up` "
                                "with SAFEGUARD_REPORTS=1 starts it.")
        return f"redis://:{quote(self.password, safe='')}@127.0.0.1:{self.port}/{db}"

    def ping(self, timeout: float = 1.0) -> bool:
        if self.port is None:
            return False
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=timeout) as s:
                pw = self.password.encode()
                s.sendall(b"*2\r\n$4\r\nAUTH\r\n$%d\r\n%s\r\n*1\r\n$4\r\nPING\r\n" % (len(pw), pw))
                reply = b""
                while b"PONG" not in reply and b"-" not in reply[:1]:
                    chunk = s.recv(256)
                    if not chunk:
                        break
                    reply += chunk
                return b"+PONG" in reply
        except OSError:
            return False

    def start(self, timeout: float = 20.0) -> None:
        """Start our Redis (no-op with ``REDIS_URL``, or when ours already answers)."""
        if self.external_url or (self.pid() and self.ping()):
            return
        binary = env("SAFEGUARD_REDIS_SERVER") or shutil.which("redis-server")
        if not binary:
            raise SupersetError("redis-server is not installed (reports need it): run "
                                "`make setup`, or set REDIS_URL to a Redis of yours.")
        port = self.port if self.port and port_is_free(self.port) else free_port()
        self.folder.mkdir(parents=True, exist_ok=True)
        conf = self.folder / "redis.conf"
        # loopback only, password, no persistence: the queue holds nothing worth keeping
        write_private(conf, "".join(f"{line}\n" for line in (
            f"port {port}", "bind 127.0.0.1", "protected-mode yes",
            f'requirepass "{self.password}"', 'save ""', "appendonly no",
            f'dir "{self.folder}"', "daemonize no", "maxmemory 128mb",
            "maxmemory-policy noeviction")))
        # SAFEGUARD_HOME in its environment: Redis rewrites its command line, and whoever
        # looks for what a home started (the demo's test) finds it by that
        proc = self._spawn([binary, str(conf)], {"PATH": env("PATH", "") or "",
                                                 "SAFEGUARD_HOME": str(self.settings.home)},
                           {"port": port})
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise SupersetError(f"redis-server exited while starting; {self.log}:\n"
                                    f"{self.tail()}")
            if self.ping():
                return
            time.sleep(0.2)
        self.stop()
        raise SupersetError(f"redis-server did not answer on port {port}; see {self.log}")

    def stop(self) -> bool:
        if self.external_url:
            return False
        return super().stop()


class CeleryProcess(_Process):
    """Superset's Celery worker or beat, from Superset's environment."""

    marker = b"celery"

    def __init__(self, folder: Path, kind: str):
        super().__init__(folder, f"celery-{kind}")
        self.kind = kind

    def start(self, celery: Path, env: dict[str, str]) -> None:
        if self.pid():
            return
        if self.kind == "worker":
            concurrency = env.get("SAFEGUARD_REPORTS_CONCURRENCY") or "1"
            args = [str(celery), f"--app={CELERY_APP}", "worker", "--pool=prefork",
                    f"--concurrency={concurrency}", "-O", "fair", "--loglevel=INFO",
                    "--max-tasks-per-child=20", f"--hostname=safeguard-reports@{os.uname()[1]}"]
        else:
            args = [str(celery), f"--app={CELERY_APP}", "beat", "--loglevel=INFO",
                    f"--schedule={self.folder / 'celerybeat-schedule'}",
                    f"--pidfile={self.folder / 'celerybeat.pid'}"]
        proc = self._spawn(args, env)
        time.sleep(1.0)
        if proc.poll() is not None:
            raise SupersetError(f"Celery {self.kind} exited at once; {self.log}:\n{self.tail()}")


class ReportWorkers:
    """Redis, the worker and beat together: started after Superset, stopped with it."""

    def __init__(self, settings: Settings, folder: Path):
        self.redis = Redis(settings)
        self.worker = CeleryProcess(folder, "worker")
        self.beat = CeleryProcess(folder, "beat")

    def start(self, celery: Path, env: dict[str, str],
              echo: Callable[[str], None] = lambda _: None) -> None:
        echo(f"Reports: Celery worker and beat (logs {self.worker.log.parent})")
        self.worker.start(celery, env)
        self.beat.start(celery, env)

    def running(self) -> bool:
        return bool(self.worker.pid() and self.beat.pid())

    def stop(self) -> list[str]:
        """Stop beat, the worker and our Redis; what was running."""
        stopped = [p.name for p in (self.beat, self.worker) if p.stop()]
        if self.redis.stop():
            stopped.append("redis")
        return stopped
