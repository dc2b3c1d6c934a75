"""Where things live and how to reach them, from the environment with safe local defaults.

Everything a fresh machine needs is derived from two facts: the repository root and a
state folder (``SAFEGUARD_HOME``, default ``<repo>/.local``, git-ignored). Secrets are
generated once into ``<home>/secrets.env`` (mode 600) and never written to git; any of them
can be overridden by an environment variable of the same name.
"""

from __future__ import annotations

import os
import secrets
import shutil
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from urllib.parse import parse_qsl, quote, urlencode, urlsplit

#: Role names created by ``infra/sql``; least privilege, one job each.
ROLES = {
    "loader": "safeguard_loader",  # writes raw, quarantine, ops
    "transformer": "safeguard_transformer",  # dbt: reads raw, writes staging/marts/reporting
    "analyst": "safeguard_analyst",  # reads marts (aggregates, coarsened cases) and reporting
    "engineer": "safeguard_engineer",  # data engineers: exact case-level data too
    "viewer": "safeguard_viewer",  # reads reporting only
    "airflow": "safeguard_airflow",  # owns the Airflow metadata database
    "superset": "safeguard_superset",  # owns the Superset metadata database
}

#: Secrets generated on first use; the env var of the same name wins.
SECRET_NAMES = (
    "SAFEGUARD_PG_SUPERUSER_PASSWORD",
    *(f"SAFEGUARD_{r.upper()}_PASSWORD" for r in ROLES),
    "SAFEGUARD_PSEUDONYM_KEY",
    "SUPERSET_SECRET_KEY",
    "SUPERSET_ADMIN_PASSWORD",
    "SUPERSET_LEADER_PASSWORD",
    "SUPERSET_ANALYST_PASSWORD",
    "AIRFLOW_ADMIN_PASSWORD",
    "AIRFLOW__API_AUTH__JWT_SECRET",
    "AIRFLOW__API__SECRET_KEY",
    "SAFEGUARD_REDIS_PASSWORD",
)


# --- the process environment: read (and, for child processes and tools, written) here only --

def env(name: str, default: str | None = None) -> str | None:
    """A setting from the environment (empty counts as unset). Every read of the process
    environment goes through here or through :class:`Settings`."""
    return os.environ.get(name) or default


def child_env(drop: tuple[str, ...] = (), **overrides: str) -> dict[str, str]:
    """The environment a child process gets: ours, less ``drop``, with ``overrides``."""
    out = {k: v for k, v in os.environ.items() if k not in drop}
    out.update(overrides)
    return out


def export_env(name: str, value: str | None, default_only: bool = False) -> None:
    """Set (or with ``None`` remove) a variable for this process and the tools it loads (GX
    reads its own settings from the environment). ``default_only``: unless already set."""
    if value is None:
        os.environ.pop(name, None)
    elif not (default_only and name in os.environ):
        os.environ[name] = value


def airflow_context() -> tuple[str | None, str | None]:
    """(DAG id, run id) inside an Airflow task (its runner exports ``AIRFLOW_CTX_*``)."""
    return env("AIRFLOW_CTX_DAG_ID"), env("AIRFLOW_CTX_DAG_RUN_ID")


@dataclass(frozen=True)
class AlertSettings:
    """Where failures are sent (``SAFEGUARD_ALERT_*``); see ``notify``."""

    webhook_url: str | None
    smtp_host: str | None
    email_to: str | None
    email_from: str
    smtp_port: int
    smtp_user: str | None
    smtp_password: str
    starttls: bool
    smtp_cafile: str | None

    @classmethod
    def from_env(cls) -> AlertSettings:
        user = env("SAFEGUARD_ALERT_SMTP_USER")
        return cls(
            webhook_url=env("SAFEGUARD_ALERT_WEBHOOK_URL"),
            smtp_host=env("SAFEGUARD_ALERT_SMTP_HOST"),
            email_to=env("SAFEGUARD_ALERT_EMAIL_TO"),
            email_from=env("SAFEGUARD_ALERT_EMAIL_FROM", "safeguard@localhost"),
            smtp_port=int(env("SAFEGUARD_ALERT_SMTP_PORT", "25")),
            smtp_user=user,
            smtp_password=env("SAFEGUARD_ALERT_SMTP_PASSWORD", ""),
            starttls=env("SAFEGUARD_ALERT_SMTP_STARTTLS", "true" if user else "false"
                         ).strip().lower() in ("1", "true", "yes", "on"),
            smtp_cafile=env("SAFEGUARD_ALERT_SMTP_CAFILE"),
        )


#: how headless Chromium runs here (the fact sheet's PDF, the dashboard tests): no sandbox (we
#: may be root), no GPU, and nothing fetched in the background (no network beyond the page)
HEADLESS_CHROMIUM_ARGS = (
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--no-first-run",
)


def chromium_path() -> str:
    """The headless browser that prints the fact sheet to PDF: ``SAFEGUARD_CHROMIUM``, else
    Debian's ``chromium`` (``make setup`` installs it; nothing is downloaded at run time)."""
    return env("SAFEGUARD_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"


def chromedriver_path() -> str:
    """The driver Superset's report screenshots use (Selenium): ``SAFEGUARD_CHROMEDRIVER``, else
    Debian's ``chromium-driver`` (``make setup`` installs it), which matches ``chromium``."""
    return (env("SAFEGUARD_CHROMEDRIVER") or shutil.which("chromedriver")
            or "/usr/bin/chromedriver")


def repo_root() -> Path:
    """The checkout this package was installed from (editable install)."""
    env = os.environ.get("SAFEGUARD_ROOT")
    return Path(env).resolve() if env else Path(__file__).resolve().parents[2]


def write_private(path: Path, text: str) -> None:
    """Write a file only its owner can read, mode 600 from the moment it exists (never
    written first and chmod'ed after), replacing it atomically."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.unlink(missing_ok=True)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text)
    tmp.replace(path)


def write_secrets(path: Path, values: dict[str, str], header: str) -> None:
    """A secrets file as ``_read_env_file`` reads it: a comment, then ``NAME=value`` lines."""
    write_private(path, f"# {header}\n" + "".join(f"{k}={v}\n" for k, v in sorted(values.items())))


def _generated_secret(nbytes: int) -> str:
    """A URL-safe random secret that never starts with '-': one that does reads as an option
    when pasted into a command line (``git grep``, ``psql -W`` prompts, curl) and broke a check."""
    value = secrets.token_urlsafe(nbytes)
    while value.startswith("-"):
        value = secrets.token_urlsafe(nbytes)
    return value


def _read_env_file(path: Path) -> dict[str, str]:
    values: dict[str, str] = {}
    if path.exists():
        for line in path.read_text().splitlines():
            line = line.strip()
            if line and not line.startswith("#") and "=" in line:
                key, _, value = line.partition("=")
                values[key.strip()] = value.strip()
    return values


@dataclass(frozen=True)
class Settings:
    root: Path
    home: Path

    @classmethod
    def load(cls) -> Settings:
        root = repo_root()
        home = Path(os.environ.get("SAFEGUARD_HOME", root / ".local")).resolve()
        return cls(root=root, home=home)

    # --- secrets ---------------------------------------------------------------------------
    @property
    def secrets_file(self) -> Path:
        return self.home / "secrets.env"

    @cached_property
    def secrets(self) -> dict[str, str]:
        """Generated secrets, created on first use and kept in ``secrets.env`` (mode 600)."""
        self.home.mkdir(parents=True, exist_ok=True)
        stored = _read_env_file(self.secrets_file)
        missing = [n for n in SECRET_NAMES if n not in stored]
        if missing:
            for name in missing:
                stored[name] = _generated_secret(32 if "KEY" in name else 18)
            write_secrets(self.secrets_file, stored,
                          "Generated by safeguard on first run. Keep out of git; back it up: a "
                          "lost SAFEGUARD_PSEUDONYM_KEY cannot be made again.")
        return {n: os.environ.get(n) or stored[n] for n in stored}

    def secret(self, name: str) -> str:
        return self.secrets[name]

    def pseudonym_keys(self) -> list[str]:
        """The pseudonym keys, oldest first. One until the first ``safeguard rekey``; after
        it, a case id's pseudonym is HMAC(k_n, ... HMAC(k_1, id)) (see ``ingest/keys.py``)."""
        earlier = os.environ.get(PREVIOUS_KEYS) or self.secrets.get(PREVIOUS_KEYS) or ""
        return [k for k in earlier.split(",") if k] + [self.secret("SAFEGUARD_PSEUDONYM_KEY")]

    def role_password(self, role: str) -> str:
        return self.secret(f"SAFEGUARD_{role.upper()}_PASSWORD")

    @property
    def reports_dir(self) -> Path:
        """Where ``safeguard factsheet`` writes by default: ``$SAFEGUARD_HOME/reports``."""
        return self.home / "reports"

    # --- database ----------------------------------------------------------------------------
    @property
    def external_url(self) -> str | None:
        """``DATABASE_URL``: an existing server to use instead of the embedded one."""
        return os.environ.get("DATABASE_URL") or None

    @property
    def connection_params(self) -> dict[str, str]:
        """The TLS and GSS settings of ``DATABASE_URL`` (``sslmode``, ``sslrootcert``, ...),
        which every connection keeps: each role's URL is built from the server's host and port,
        and would otherwise connect without them."""
        if not self.external_url:
            return {}
        return {k: v for k, v in parse_qsl(urlsplit(self.external_url).query)
                if k in CARRIED_PARAMS}

    def libpq_env(self) -> dict[str, str]:
        """The same settings as libpq's environment variables, for tools configured by host
        and port (dbt's profile)."""
        return {CARRIED_PARAMS[k]: v for k, v in self.connection_params.items()}

    @property
    def embedded_port(self) -> int:
        return int(os.environ.get("SAFEGUARD_PG_PORT", "55432"))

    @property
    def drop_root(self) -> Path:
        """Where deliveries arrive, one folder per source: ``SAFEGUARD_DROP_DIR``, or
        ``$SAFEGUARD_HOME/drop``."""
        return Path(env("SAFEGUARD_DROP_DIR") or self.home / "drop")

    @property
    def release_embargo_days(self) -> int:
        """Days after a period ends before ``safeguard release`` publishes it
        (``SAFEGUARD_RELEASE_EMBARGO_DAYS``, default 14): late cases of a period arrive before
        its first release, not as revisions of it."""
        return int(env("SAFEGUARD_RELEASE_EMBARGO_DAYS", "14"))

    @property
    def embedded_port_in_use(self) -> int:
        """The port the embedded server was started on (it may have moved off a busy one):
        ``pg_dir/port``, written by ``db.embedded``; the configured one before a first start."""
        port_file = self.pg_dir / "port"
        return int(port_file.read_text()) if port_file.exists() else self.embedded_port

    @property
    def pg_dir(self) -> Path:
        return self.home / "postgres"

    @property
    def warehouse_db(self) -> str:
        return os.environ.get("SAFEGUARD_WAREHOUSE_DB", "safeguard")

    @property
    def airflow_db(self) -> str:
        return os.environ.get("SAFEGUARD_AIRFLOW_DB", "safeguard_airflow")

    @property
    def superset_db(self) -> str:
        return os.environ.get("SAFEGUARD_SUPERSET_DB", "safeguard_superset")

    def server_address(self) -> tuple[str, int]:
        """(host, port) of the PostgreSQL server in use."""
        if self.external_url:
            parts = urlsplit(self.external_url)
            return parts.hostname or "127.0.0.1", parts.port or 5432
        return "127.0.0.1", self.embedded_port_in_use

    def admin_url(self, database: str = "postgres") -> str:
        """A URL with rights to create databases and roles (bootstrap only)."""
        if self.external_url:
            parts = urlsplit(self.external_url)
            return parts._replace(path=f"/{database}").geturl()
        host, port = self.server_address()
        pw = quote(self.secret("SAFEGUARD_PG_SUPERUSER_PASSWORD"), safe="")
        return f"postgresql://postgres:{pw}@{host}:{port}/{database}"

    def url(self, role: str, database: str | None = None, driver: str = "postgresql") -> str:
        """Connection URL for one of :data:`ROLES` (default database: the warehouse)."""
        host, port = self.server_address()
        user = ROLES[role]
        pw = quote(self.role_password(role), safe="")
        db = database or self.warehouse_db
        query = urlencode(self.connection_params)
        return f"{driver}://{user}:{pw}@{host}:{port}/{db}" + (f"?{query}" if query else "")


#: the keys a rotation retired, oldest first, comma-separated (``safeguard rekey`` writes it)
PREVIOUS_KEYS = "SAFEGUARD_PSEUDONYM_KEY_PREVIOUS"

#: libpq settings of DATABASE_URL that every connection keeps, with their environment variables
CARRIED_PARAMS = {
    "sslmode": "PGSSLMODE", "sslrootcert": "PGSSLROOTCERT", "sslcert": "PGSSLCERT",
    "sslkey": "PGSSLKEY", "sslcrl": "PGSSLCRL", "sslcrldir": "PGSSLCRLDIR", "sslsni": "PGSSLSNI",
    "sslcertmode": "PGSSLCERTMODE", "sslnegotiation": "PGSSLNEGOTIATION",
    "ssl_min_protocol_version": "PGSSLMINPROTOCOLVERSION",
    "ssl_max_protocol_version": "PGSSLMAXPROTOCOLVERSION",
    "channel_binding": "PGCHANNELBINDING", "gssencmode": "PGGSSENCMODE",
    "requirepeer": "PGREQUIREPEER",
}


def settings() -> Settings:
    return Settings.load()
