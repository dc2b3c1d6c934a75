"""Start, stop and bootstrap a local Superset from the pipeline environment.

Superset runs under gunicorn from ``infra/superset/.venv`` in its own process session, so a stop
(or Ctrl-C on ``safeguard superset up --foreground``) takes the master and its workers down
together and leaves no orphans. State lives in ``<home>/superset``: the log, a small JSON file
with the pid and port (so ``safeguard superset stop`` from another shell finds the server),
and Superset's own folder (``SUPERSET_HOME``).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import httpx

from safeguard.config import (
    HEADLESS_CHROMIUM_ARGS,
    Settings,
    child_env,
    chromedriver_path,
    chromium_path,
    env,
)
from safeguard.ports import port_is_free
from safeguard.superset.access import ADMIN_USERNAME, DEMO_USERS, ROLES
from safeguard.superset.errors import SupersetError
from safeguard.superset.workers import REDIS_USER, ReportWorkers, reports_wanted

__all__ = ["ADMIN_USERNAME", "SupersetError", "SupersetServer"]  # re-exported for callers

DEFAULT_PORT = 8088

# Roles and users, inside Superset's app context (infra/superset/apply_access.py, run with
# Superset's own Python). Each role of ``access.ROLES`` gets exactly
# its permissions (database grants, set after each import by ``access.grant_databases``, are
# kept); the Public role (``AUTH_ROLE_PUBLIC``, what anonymous visitors get) is emptied, so
# a permission added to it by hand does not survive a restart. Users are created or updated
# to exactly their role and password. Passwords travel in the environment, not on a command
# line other users could read with ``ps``; FAB's own ``create-admin`` is not idempotent and
# ``reset-password`` takes the password as an argument.
_ACCESS_SCRIPT = "apply_access.py"  # in infra/superset, beside superset_config.py

#: Redis database of Superset's caches (the reports' broker is 0, their results 1, Airflow's
#: broker 2), and who the project's Redis is started for when only the cache needs it
CACHE_REDIS_DB = 3
CACHE_REDIS_USER = "superset-cache"
#: the chart-data cache's key prefix, as superset_config.py sets it
DATA_CACHE_PREFIX = "safeguard_data_"


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class SupersetServer:
    """One local Superset: its environment, its bootstrap and its gunicorn process group."""

    def __init__(self, settings: Settings, port: int | None = None, host: str = "127.0.0.1",
                 reports: bool | None = None):
        self.settings = settings
        self.report_workers = ReportWorkers(settings, self.settings.home / "superset" / "celery")
        #: Alerts & Reports on: Redis, the ALERT_REPORTS flag, Celery worker and beat
        #: (``SAFEGUARD_REPORTS``; default off, ``make demo`` turns it on; on while ours run)
        self.reports = (reports_wanted() or self.report_workers.running() if reports is None
                        else reports)
        self.host = host
        saved = self._saved_state()
        self.port = port or int(
            env("SUPERSET_PORT") or (saved or {}).get("port") or DEFAULT_PORT
        )
        self.workers = int(env("SUPERSET_WORKERS", "2"))
        self._proc: subprocess.Popen[bytes] | None = None

    @classmethod
    def running(cls, settings: Settings) -> SupersetServer | None:
        """Our Superset of this home, at the port it was started on, if it runs and answers
        (``SUPERSET_PORT`` may name another port than a test's or a demo's free one)."""
        state = cls(settings, port=DEFAULT_PORT)._saved_state() or {}
        server = cls(settings, port=int(state.get("port") or DEFAULT_PORT))
        return server if server.pid() and server.is_healthy() else None

    # --- where things are ------------------------------------------------------------------
    @property
    def dir(self) -> Path:
        return self.settings.home / "superset"

    @property
    def log(self) -> Path:
        return self.dir / "superset.log"

    @property
    def state_file(self) -> Path:
        return self.dir / "server.json"

    @property
    def venv_bin(self) -> Path:
        return self.settings.root / "infra" / "superset" / ".venv" / "bin"

    @property
    def config_path(self) -> Path:
        return self.settings.root / "infra" / "superset" / "superset_config.py"

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def admin_password(self) -> str:
        return self.password(ADMIN_USERNAME)

    def metadata_uri(self) -> str:
        return self.settings.url(
            "superset", database=self.settings.superset_db, driver="postgresql+psycopg2"
        )

    def env(self) -> dict[str, str]:
        """The environment Superset's processes get: our config, secrets and state folder."""
        if not (self.venv_bin / "superset").exists():
            raise SupersetError(
                f"No Superset environment in {self.venv_bin.parent}: run "
                "`cd infra/superset && uv sync --frozen` (or `make setup`)."
            )
        out = child_env(drop=("VIRTUAL_ENV", "PYTHONPATH", "PYTHONHOME"))
        out.update(
            PATH=f"{self.venv_bin}{os.pathsep}{env('PATH', '')}",
            SUPERSET_CONFIG_PATH=str(self.config_path),
            SUPERSET_HOME=str(self.dir / "home"),
            SUPERSET_SECRET_KEY=self.settings.secret("SUPERSET_SECRET_KEY"),
            SAFEGUARD_SUPERSET_METADATA_URI=self.metadata_uri(),
            SAFEGUARD_SUPERSET_CACHE_DIR=str(self.dir / "cache"),
            FLASK_APP="superset.app:create_app()",
            PYTHONUNBUFFERED="1",
        )
        out["SAFEGUARD_REPORTS"] = "1" if self.reports else "0"
        if self.reports:
            out.update(self.reports_env())
        redis = self.report_workers.redis
        # not before Redis started (bootstrap): Superset's commands then use the file cache
        if self.cache_in_redis() and (redis.external_url or redis.port is not None):
            out["SAFEGUARD_SUPERSET_CACHE_REDIS_URL"] = redis.url(CACHE_REDIS_DB)
        return out

    def cache_in_redis(self) -> bool:
        """Superset's caches in Redis (``SAFEGUARD_SUPERSET_CACHE=redis``) or in files
        (``file``); unset, in Redis when the project's Redis runs for this Superset anyway
        (reports on) or ``REDIS_URL`` names one, since a fresh laptop has none."""
        wanted = (env("SAFEGUARD_SUPERSET_CACHE") or "").strip().lower()
        if wanted not in ("", "redis", "file"):
            raise SupersetError(f"SAFEGUARD_SUPERSET_CACHE is redis or file, not {wanted!r}.")
        started = self._saved_state() if self.pid() else None
        if started and "cache_redis" in started:  # a running server keeps what it started with
            return bool(started["cache_redis"])
        if wanted:
            return wanted == "redis"
        return self.reports or bool(self.report_workers.redis.external_url)

    def empty_data_cache(self) -> int:
        """Delete every cached chart result, whatever the query (a release changes the
        figures under the same cache keys, a filtered view's too); how many were deleted.
        Nothing else in the cache is touched."""
        redis = self.report_workers.redis
        if not self.cache_in_redis():
            folder = self.dir / "cache" / "data"
            files = [p for p in folder.iterdir() if p.is_file()] if folder.is_dir() else []
            for p in files:
                p.unlink(missing_ok=True)
            return len(files)
        if not (redis.external_url or redis.port is not None):
            return 0  # not started: nothing cached
        import redis as redis_client

        try:
            with redis_client.Redis.from_url(redis.url(CACHE_REDIS_DB),
                                             socket_timeout=10) as client:
                keys = list(client.scan_iter(match=f"{DATA_CACHE_PREFIX}*", count=1000))
                for i in range(0, len(keys), 500):
                    client.unlink(*keys[i:i + 500])
        except redis_client.RedisError as e:
            raise SupersetError(f"Superset's cache in Redis could not be emptied "
                                f"({type(e).__name__}); see {redis.log}") from None
        return len(keys)

    def reports_env(self) -> dict[str, str]:
        """What ``superset_config.py`` turns Alerts & Reports on with: the Redis (broker db 0,
        results db 1), where the worker's browser finds Superset, the browser and its driver.
        SMTP settings (``SAFEGUARD_SMTP_*``) pass through from our own environment."""
        redis = self.report_workers.redis
        out = {}
        if redis.external_url or redis.port is not None:  # not before Redis started (bootstrap)
            out |= {"SAFEGUARD_REDIS_BROKER_URL": redis.url(0),
                    "SAFEGUARD_REDIS_RESULTS_URL": redis.url(1)}
        return out | {
            "SAFEGUARD_SUPERSET_URL": f"{self.url}/",
            "SAFEGUARD_CHROMEDRIVER": chromedriver_path(),
            "SAFEGUARD_CHROMIUM": chromium_path(),
            "SAFEGUARD_CHROMIUM_ARGS": json.dumps(list(HEADLESS_CHROMIUM_ARGS)),
        }

    # --- bootstrap -------------------------------------------------------------------------
    def _run(self, label: str, args: list[str], extra_env: dict[str, str] | None = None) -> str:
        """Run one Superset command, its output appended to the log; raise with its tail."""
        self.dir.mkdir(parents=True, exist_ok=True)
        env = self.env() | (extra_env or {})
        result = subprocess.run(
            args, env=env, cwd=self.dir, stdin=subprocess.DEVNULL, capture_output=True,
            text=True,
        )
        with self.log.open("a") as log:
            log.write(f"\n=== {label} (exit {result.returncode})\n{result.stdout}{result.stderr}")
        if result.returncode != 0:
            tail = (result.stdout + result.stderr)[-3000:]
            raise SupersetError(
                f"{label} failed (exit {result.returncode}); full output in {self.log}:\n{tail}"
            )
        return result.stdout

    def users(self) -> list[dict[str, str]]:
        """The users bootstrap keeps: the admin and the demo users of ``access.DEMO_USERS``,
        each with its role and the secrets.env entry of its password."""
        users = [{"username": ADMIN_USERNAME, "role": "Admin",
                  "password_env": "SUPERSET_ADMIN_PASSWORD"}]
        users += [{"username": name, "role": role, "password_env": secret}
                  for name, (role, secret) in DEMO_USERS.items()]
        return users

    def logins(self) -> str:
        """The logins bootstrap keeps, as the demo and ``superset up`` print them."""
        return "; ".join(f"{u['username']} ({u['role']}) / {u['password_env']}"
                         for u in self.users())

    def password(self, username: str) -> str:
        """The password of a user kept by bootstrap (from secrets.env or the environment)."""
        (user,) = (u for u in self.users() if u["username"] == username)
        return self.settings.secret(user["password_env"])

    def bootstrap(self, echo: Callable[[str], None] = lambda _: None) -> None:
        """Idempotent: metadata schema, built-in roles, our roles (``access.ROLES``), the
        admin and demo users. The database and its roles must exist already
        (``safeguard.db.bootstrap``)."""
        superset = str(self.venv_bin / "superset")
        echo("Superset: migrating the metadata database (superset db upgrade)")
        self._run("superset db upgrade", [superset, "db", "upgrade"])
        echo("Superset: built-in roles and permissions (superset init)")
        self._run("superset init", [superset, "init"])
        users = self.users()
        echo(f"Superset: roles {', '.join(ROLES)}; users "
             f"{', '.join(u['username'] for u in users)}")
        spec = {"roles": {name: sorted(perms) for name, (perms, _) in ROLES.items()},
                "users": users}
        self._run(
            "roles and users",
            [str(self.venv_bin / "python"), str(self.config_path.with_name(_ACCESS_SCRIPT))],
            {"SAFEGUARD_SUPERSET_ACCESS": json.dumps(spec)}
            | {u["password_env"]: self.settings.secret(u["password_env"]) for u in users},
        )

    # --- process ---------------------------------------------------------------------------
    def _saved_state(self) -> dict[str, int] | None:
        try:
            return json.loads(self.state_file.read_text())
        except (OSError, ValueError):
            return None

    def pid(self) -> int | None:
        """The gunicorn master we started, if it still runs (a stale pid file is ignored)."""
        state = self._saved_state()
        if not state:
            return None
        pid = int(state["pid"])
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            return None
        return pid if b"gunicorn" in cmdline else None

    def is_healthy(self, timeout: float = 2.0) -> bool:
        try:
            r = httpx.get(f"{self.url}/health", timeout=timeout)
        except httpx.HTTPError:
            return False
        return r.status_code == 200 and r.text.strip() == "OK"

    def start(self, timeout: float = 240.0, workers: bool = True) -> None:
        """Start gunicorn in a new session and wait for ``/health``; no-op if ours already runs.
        With reports on, Redis first, and (``workers``) Celery's worker and beat after."""
        if self.reports:
            self.report_workers.redis.start(REDIS_USER)
        if self.cache_in_redis():
            self.report_workers.redis.start(CACHE_REDIS_USER)
        self._start_web(timeout)
        if self.reports and workers:
            self.start_report_workers()

    def start_report_workers(self, extra_env: dict[str, str] | None = None) -> None:
        """Celery's worker and beat for Alerts & Reports (Redis must run: :meth:`start`)."""
        if not self.reports:
            raise SupersetError("Reports are off for this server (SAFEGUARD_REPORTS=1 turns "
                                "them on).")
        if not Path(chromedriver_path()).exists():
            raise SupersetError(f"No chromedriver at {chromedriver_path()} (report screenshots "
                                "need it): run `make setup` (Debian's chromium-driver).")
        self.report_workers.start(self.venv_bin / "celery", self.env() | (extra_env or {}))

    def _start_web(self, timeout: float) -> None:
        if self.pid() and self.is_healthy():
            return
        if not port_is_free(self.port, self.host):
            raise SupersetError(
                f"Port {self.port} on {self.host} is taken by another program. Set SUPERSET_PORT "
                "to a free port, or stop what listens there."
            )
        self.dir.mkdir(parents=True, exist_ok=True)
        # chart results live a day: a release while Superset was down must not be served old
        self.empty_data_cache()
        args = [
            str(self.venv_bin / "gunicorn"),
            "--bind", f"{self.host}:{self.port}",
            "--workers", str(self.workers),  # 2-core machines: more workers only cost memory
            "--worker-class", "gthread", "--threads", "4",
            "--timeout", "120", "--graceful-timeout", "10",
            "--limit-request-line", "0", "--limit-request-field_size", "0",
            "superset.app:create_app()",
        ]
        with self.log.open("ab") as log:
            log.write(f"\n=== gunicorn on {self.url}\n".encode())
            log.flush()
            self._proc = subprocess.Popen(
                args, env=self.env(), cwd=self.dir, stdin=subprocess.DEVNULL, stdout=log,
                stderr=subprocess.STDOUT, start_new_session=True,
            )
        self.state_file.write_text(json.dumps({"pid": self._proc.pid, "port": self.port,
                                               "cache_redis": self.cache_in_redis()}))
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                tail = self.log.read_text(errors="replace")[-3000:]
                raise SupersetError(
                    f"Superset exited with code {self._proc.returncode} while starting; "
                    f"log {self.log}:\n{tail}"
                )
            if self.is_healthy():
                return
            time.sleep(1)
        self.stop()
        raise SupersetError(f"Superset did not answer {self.url}/health within {timeout:.0f} s; "
                            f"see {self.log}")

    def stop(self, timeout: float = 30.0) -> bool:
        """SIGTERM the whole process group, SIGKILL what is left; True if something ran.
        The reports' worker, beat and our Redis stop too, whether or not gunicorn ran (Redis
        only when Airflow's Celery does not use it as well)."""
        self.report_workers.redis.release(CACHE_REDIS_USER)
        workers = self.report_workers.stop()
        return self._stop_web(timeout) or bool(workers)

    def _stop_web(self, timeout: float) -> bool:
        pid = self.pid()
        if pid is None:
            self.state_file.unlink(missing_ok=True)
            return False
        pgid = os.getpgid(pid)
        os.killpg(pgid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._proc is not None:
                self._proc.poll()  # reap our own child, or it lingers as a zombie
            if not _group_alive(pgid):
                break
            time.sleep(0.2)
        else:
            os.killpg(pgid, signal.SIGKILL)
            if self._proc is not None:
                self._proc.wait(10)
        self.state_file.unlink(missing_ok=True)
        return True
