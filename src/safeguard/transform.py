"""dbt, as the transformer role, with the connection in the environment (``dbt/profiles.yml``)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from safeguard.config import Settings


class DbtFailed(RuntimeError):
    pass


def dbt_env(settings: Settings) -> dict[str, str]:
    host, port = settings.server_address()
    return {
        **os.environ,
        "SAFEGUARD_DBT_HOST": host,
        "SAFEGUARD_DBT_PORT": str(port),
        "SAFEGUARD_DBT_USER": "safeguard_transformer",
        "SAFEGUARD_DBT_PASSWORD": settings.role_password("transformer"),
        "SAFEGUARD_DBT_DBNAME": settings.warehouse_db,
        "DBT_PROFILES_DIR": str(settings.root / "dbt"),
        "DBT_PROJECT_DIR": str(settings.root / "dbt"),
        "DBT_TARGET_PATH": str(settings.home / "dbt" / "target"),
        "DBT_LOG_PATH": str(settings.home / "dbt" / "logs"),
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


def build(settings: Settings, select: str | None = None) -> str:
    """``dbt build`` (seeds, models, tests, unit tests), optionally limited to a selection."""
    args = ["build"]
    if select:
        args += ["--select", select]
    return dbt(settings, *args)


def selection_for(raw_asset_uris: list[str]) -> str | None:
    """The dbt selection for a run triggered by loads into these raw tables: the seeds, the
    audit trail's models, and everything downstream of each table. None (everything) when no
    table is named, e.g. a run started by hand."""
    tables = sorted({uri.rstrip("/").rsplit("/", 1)[-1] for uri in raw_asset_uris})
    if not tables:
        return None
    return " ".join(["resource_type:seed", "source:ops.batch_issues+",
                     *(f"source:raw.{t}+" for t in tables)])
