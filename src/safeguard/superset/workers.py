"""What Superset's Alerts & Reports run on: a Redis of our own and Celery's worker and beat.

Redis is the project's own (``safeguard.services``, shared with Airflow on Celery), or
``REDIS_URL``'s. The worker (``reports.execute``: Selenium drives Debian's chromedriver +
chromium for the screenshots, then mails) and beat (``reports.scheduler`` every minute) run from
Superset's own environment, each in a process session of its own, so a stop takes their
children (chromedriver, Chromium) down with them.
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Callable
from pathlib import Path

from safeguard import services
from safeguard.config import Settings, env
from safeguard.superset.errors import SupersetError

#: Superset's Celery application (its tasks: reports.scheduler, reports.execute, prune_log)
CELERY_APP = "superset.tasks.celery_app:app"
#: who the reports' Redis is started for (it stops when its last user lets it go)
REDIS_USER = "superset-reports"


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


class Redis(services.Redis):
    """The project's Redis (``safeguard.services``), as the reports' broker and results
    backend: Superset's side raises its own error."""

    error = SupersetError


class CeleryProcess(services.Process):
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
        if self.redis.release(REDIS_USER):
            stopped.append("redis")
        return stopped
