"""Long-running programs we start and stop ourselves, and the project's own Redis.

Each program runs in a process session of its own (so a stop takes its children down with it),
with its log and a JSON file holding its pid (and port) in a folder of its own. Superset's
Alerts & Reports (``safeguard.superset.workers``) and Airflow on Celery (``safeguard.cluster``)
both use them, and share one Redis.

Redis is Debian's ``redis-server``, started like the embedded PostgreSQL: its own folder
(``$SAFEGUARD_HOME/redis``), 127.0.0.1 only, a free port picked on first start and kept, a
password from ``secrets.env`` (in a mode-600 config file, never on a command line), its
queues kept in an append-only file in its folder, so that a restart of the broker loses no
queued task. ``REDIS_URL`` points at another Redis instead, which we then never start or
stop. Whoever starts it says who it is for; it stops when the last of them lets it go.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path
from urllib.parse import quote

from safeguard.config import Settings, env, write_private
from safeguard.ports import free_port, port_is_free


class ServiceError(RuntimeError):
    """A program of ours could not be started or reached; the message says where to look."""


def alive(pid: int, marker: bytes) -> bool:
    """The process still runs and is what we started (a reused pid is not ours)."""
    try:
        return marker in Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False


def stop_group(pid: int, timeout: float = 20.0) -> None:
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


class Process:
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
        return int(pid) if pid and alive(int(pid), self.marker) else None

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
            stop_group(pid)
        self.state_file.unlink(missing_ok=True)
        return pid is not None

    def tail(self, chars: int = 3000) -> str:
        try:
            return self.log.read_text(errors="replace")[-chars:]
        except OSError:
            return ""


class Redis(Process):
    """The project's Redis (a Celery broker): ours, or ``REDIS_URL``'s."""

    marker = b"redis-server"
    #: what callers catch (Superset's side raises its own error)
    error: type[Exception] = ServiceError

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
        """``redis://`` URL of database ``db`` (Superset's broker 0 and results 1, Airflow's
        broker 2); ``REDIS_URL`` as it is."""
        if self.external_url:
            return self.external_url
        if self.port is None:
            raise self.error(f"the project's Redis is not started (see {self.folder}): "
                             "`safeguard superset up --reports` or `safeguard cluster up` "
                             "starts it.")
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

    def _user_file(self, user: str) -> Path:
        return self.folder / "users" / user

    def start(self, user: str, timeout: float = 20.0) -> None:
        """Start our Redis for ``user`` (no-op with ``REDIS_URL``; when ours already answers,
        ``user`` is only counted in)."""
        if self.external_url:
            return
        self._user_file(user).parent.mkdir(parents=True, exist_ok=True)
        self._user_file(user).touch()
        if self.pid() and self.ping():
            return
        binary = env("SAFEGUARD_REDIS_SERVER") or shutil.which("redis-server")
        if not binary:
            raise self.error("redis-server is not installed: run `make setup`, or set "
                             "REDIS_URL to a Redis of yours.")
        port = self.port if self.port and port_is_free(self.port) else free_port()
        conf = self.folder / "redis.conf"
        # loopback only, password; the append-only file (flushed every second, and whole at
        # a stop) keeps the queues across a restart: Celery's messages, queued or taken and
        # not yet acknowledged, would otherwise be gone and their tasks left queued.
        # Full, it evicts keys that expire only (Superset's cache entries, Celery's results),
        # never a queue: a cache that grows must not lose a task
        write_private(conf, "".join(f"{line}\n" for line in (
            f"port {port}", "bind 127.0.0.1", "protected-mode yes",
            f'requirepass "{self.password}"', 'save ""', "appendonly yes",
            "appendfsync everysec",
            f'dir "{self.folder}"', "daemonize no", "maxmemory 128mb",
            "maxmemory-policy volatile-lru")))
        # SAFEGUARD_HOME in its environment: Redis rewrites its command line, and whoever
        # looks for what a home started (the demo's test) finds it by that
        proc = self._spawn([binary, str(conf)], {"PATH": env("PATH", "") or "",
                                                 "SAFEGUARD_HOME": str(self.settings.home)},
                           {"port": port})
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise self.error(f"redis-server exited while starting; {self.log}:\n"
                                 f"{self.tail()}")
            if self.ping():
                return
            time.sleep(0.2)
        self.stop()
        raise self.error(f"redis-server did not answer on port {port}; see {self.log}")

    def users(self) -> list[str]:
        folder = self.folder / "users"
        return sorted(p.name for p in folder.iterdir()) if folder.is_dir() else []

    def release(self, user: str) -> bool:
        """``user`` is done with it: stop our Redis unless another still uses it; True if it
        was stopped."""
        self._user_file(user).unlink(missing_ok=True)
        if self.users():
            return False
        return self.stop()

    def stop(self) -> bool:
        """Stop it whoever uses it (``release`` is the polite way)."""
        if self.external_url:
            return False
        return super().stop()

