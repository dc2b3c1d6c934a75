"""Superset configuration for Safeguard: everything from the environment, nothing secret in git.

Loaded by Superset through ``SUPERSET_CONFIG_PATH``; ``safeguard superset up`` sets the
variables below from ``Settings`` (``src/safeguard/superset/server.py``). Started by hand,
Superset refuses to run without them rather than fall back to SQLite or a default key.

Required:
  SUPERSET_SECRET_KEY              signs sessions and encrypts stored database passwords
  SAFEGUARD_SUPERSET_METADATA_URI  postgresql+psycopg2 URI of the metadata database (role superset)
Optional:
  SUPERSET_HOME                    Superset's state folder (read by Superset itself)
  SAFEGUARD_SUPERSET_CACHE_DIR     file cache folder (default: $SUPERSET_HOME/cache)
  SAFEGUARD_SUPERSET_DATA_CACHE_SECONDS  how long chart results are reused (default 300)
"""

from __future__ import annotations

import os
from pathlib import Path


def _required(name: str) -> str:
    value = os.environ.get(name)
    if not value:
        raise RuntimeError(
            f"{name} is not set. Start Superset with `safeguard superset up`, which sets it "
            f"from $SAFEGUARD_HOME/secrets.env, or export it yourself."
        )
    return value


SECRET_KEY = _required("SUPERSET_SECRET_KEY")

# Metadata in PostgreSQL (SQLite metadata is deprecated in 6.x and would not survive two workers).
SQLALCHEMY_DATABASE_URI = _required("SAFEGUARD_SUPERSET_METADATA_URI")
if not SQLALCHEMY_DATABASE_URI.startswith("postgresql"):
    raise RuntimeError("SAFEGUARD_SUPERSET_METADATA_URI must point at PostgreSQL, not SQLite.")
# Few workers, few connections: the embedded server is shared with Airflow and dbt.
SQLALCHEMY_ENGINE_OPTIONS = {"pool_size": 5, "max_overflow": 5, "pool_pre_ping": True}

APP_NAME = "Safeguard"

# --- access ------------------------------------------------------------------------------
# Roles Leadership and Analyst and the users are made at bootstrap from
# src/safeguard/superset/access.py; database grants are set after each bundle import.
# No anonymous access: anonymous visitors get the Public role, which has no permissions
# (``superset init`` leaves it alone when PUBLIC_ROLE_LIKE is None, and our bootstrap empties
# it), so pages redirect to the login form and the API answers 401.
PUBLIC_ROLE_LIKE = None
AUTH_ROLE_PUBLIC = "Public"
# Accounts are made by an admin (or bootstrap), never by self-registration.
AUTH_USER_REGISTRATION = False
# The FAB security API (/api/v1/security/roles/..., admin only) sets the database grants.
FAB_ADD_SECURITY_API = True
WTF_CSRF_ENABLED = True
# Nothing is served cross-origin (map tiles are not used); keep the CORS extension off.
ENABLE_CORS = False
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"
# Only warehouse connections created from the bundle; never SQLite files or other local tricks.
PREVENT_UNSAFE_DB_CONNECTIONS = True

# Content Security Policy: Superset's default allows map tiles, web fonts and a telemetry
# pixel (apachesuperset.gateway.scarf.sh) that the UI embeds on every page. Who looks at these
# dashboards, and when, is nobody else's business: everything comes from this server only.
TALISMAN_ENABLED = True
TALISMAN_CONFIG = {
    "content_security_policy": {
        "base-uri": ["'self'"],
        "default-src": ["'self'"],
        "img-src": ["'self'", "blob:", "data:"],
        "worker-src": ["'self'", "blob:"],
        "connect-src": ["'self'"],
        "object-src": "'none'",
        "style-src": ["'self'", "'unsafe-inline'"],
        "font-src": ["'self'", "data:"],
        "script-src": ["'self'", "'strict-dynamic'"],
    },
    "content_security_policy_nonce_in": ["script-src"],
    "force_https": False,  # loopback only; put a TLS proxy in front for anything else
    "session_cookie_secure": False,
}

# --- features ----------------------------------------------------------------------------
# Native filters, cross-filters and drill-to-detail are on by default in 6.x. Jinja in SQL
# stays off: datasets point at published tables only, so there is nothing to template.
FEATURE_FLAGS = {
    "DASHBOARD_RBAC": False,
    "ENABLE_TEMPLATE_PROCESSING": False,
    "ALERT_REPORTS": False,  # would need Celery, a worker browser and a mail server
    "THUMBNAILS": False,  # would need Celery
}

# --- caching without Redis ---------------------------------------------------------------
# A fresh laptop has no Redis. A file cache is shared by all gunicorn workers (SimpleCache
# would be per process) and survives restarts; filter and explore state stay in the metadata
# database (Superset's default metastore cache).
_cache_dir = Path(
    os.environ.get("SAFEGUARD_SUPERSET_CACHE_DIR")
    or Path(os.environ.get("SUPERSET_HOME", Path.home() / ".superset")) / "cache"
)
_data_seconds = int(os.environ.get("SAFEGUARD_SUPERSET_DATA_CACHE_SECONDS", "300"))

CACHE_CONFIG = {
    "CACHE_TYPE": "FileSystemCache",
    "CACHE_DIR": str(_cache_dir / "metadata"),
    "CACHE_DEFAULT_TIMEOUT": 3600,
    "CACHE_KEY_PREFIX": "safeguard_meta_",
    "CACHE_THRESHOLD": 2000,
}
# Chart results: short, so a pipeline run shows up within minutes without a cache flush.
DATA_CACHE_CONFIG = {
    "CACHE_TYPE": "FileSystemCache",
    "CACHE_DIR": str(_cache_dir / "data"),
    "CACHE_DEFAULT_TIMEOUT": _data_seconds,
    "CACHE_KEY_PREFIX": "safeguard_data_",
    "CACHE_THRESHOLD": 2000,
}

# Small published tables: a low row limit keeps a mistaken raw query from flooding the browser.
ROW_LIMIT = 5000
SQL_MAX_ROW = 10000
