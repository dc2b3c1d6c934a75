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


# --- no custom SQL for readers ------------------------------------------------------------
# A chart-data request names its columns, metrics and filters itself, and Superset takes a
# name it does not know (and every adhoc "Custom SQL" expression, WHERE and HAVING) as SQL text.
# Leadership only reads dashboards, so such a request from anyone who is not an author (Admin,
# Analyst) may only hold what is known: the dataset's own columns and metrics, and expressions
# an author saved in a chart. Anything else is refused before it reaches the database (which
# refuses the viewer everything unpublished anyway: infra/sql/04_catalog.sql).
AUTHOR_ROLES = frozenset({"Admin", "Analyst"})
#: keys whose string values Superset runs as SQL text
_SQL_KEYS = frozenset({"sqlExpression", "where", "having"})
#: keys whose string values name a column or metric, and are run as SQL when they name none
_NAME_KEYS = frozenset({
    "columns", "groupby", "metrics", "metric", "orderby", "series_columns", "x_axis",
    "granularity", "granularity_sqla", "series_limit_metric", "timeseries_limit_metric",
    "col", "subject", "entity", "secondary_metric", "all_columns", "percent_metrics", "series",
    "order_by_cols"})
#: what is done to results in pandas, never in SQL: its column lists hold metric labels
_NOT_SQL = frozenset({"post_processing"})


def _strings_at_sql_keys(obj, found: set[str], key: str | None = None) -> set[str]:
    """Every string that a chart-data payload holds where Superset could read SQL."""
    if isinstance(obj, dict):
        for k, v in obj.items():
            if k in _NOT_SQL:
                continue
            if k in _SQL_KEYS and isinstance(v, str):
                if v.strip():
                    found.add(v)
            elif k in _NAME_KEYS:
                _strings_at_sql_keys(v, found, k)
            else:
                _strings_at_sql_keys(v, found, None)
    elif isinstance(obj, list):
        for v in obj:
            _strings_at_sql_keys(v, found, key)
    elif isinstance(obj, str) and key is not None and obj:
        found.add(obj)
    return found


def _payloads(request) -> list:
    """What becomes SQL: a chart-data body's queries (its ``form_data`` copy only steers the
    display), or the form data explore_json runs."""
    import json

    out = []
    body = request.get_json(silent=True)
    if isinstance(body, dict) and "queries" in body:
        out.append({"datasource": body.get("datasource"), "queries": body["queries"]})
    elif body is not None:
        out.append(body)
    for source in (request.form, request.args):
        if source.get("form_data"):
            try:
                out.append(json.loads(source["form_data"]))
            except ValueError:
                out.append(source["form_data"])  # not JSON: Superset refuses it itself
    return out


def _saved_sql() -> set[str]:
    """What authors saved in charts, as the dashboards send it."""
    import json

    from superset.extensions import db
    from superset.models.slice import Slice

    known: set[str] = set()
    for params, query_context in db.session.query(Slice.params, Slice.query_context):
        for text in (params, query_context):
            try:
                saved = json.loads(text or "null")
            except ValueError:
                continue
            _strings_at_sql_keys(saved, known)
            if isinstance(saved, dict):  # the UI sends SQL filters as one WHERE / HAVING
                for clause in ("WHERE", "HAVING"):
                    parts = [f.get("sqlExpression") or "" for f in saved.get("adhoc_filters") or []
                             if isinstance(f, dict) and f.get("expressionType") == "SQL"
                             and f.get("clause") == clause]
                    if parts:
                        known.add(" AND ".join(f"({p})" for p in parts))
    return known


def _dataset_names(payloads: list) -> set[str]:
    """The columns and metrics of the datasets the payloads ask for."""
    from superset.connectors.sqla.models import SqlaTable
    from superset.extensions import db

    ids: set[int] = set()
    for p in payloads:
        if not isinstance(p, dict):
            continue
        ds = p.get("datasource")
        if isinstance(ds, dict) and str(ds.get("id", "")).isdigit():
            ids.add(int(ds["id"]))
        elif isinstance(ds, str) and ds.split("__")[0].isdigit():
            ids.add(int(ds.split("__")[0]))
    names: set[str] = set()
    for table in db.session.query(SqlaTable).filter(SqlaTable.id.in_(ids)):
        names |= {c.column_name for c in table.columns}
        names |= {m.metric_name for m in table.metrics}
    return names


def _request_user():
    from flask_login import current_user

    if current_user is not None and current_user.is_authenticated:
        return current_user
    from flask_jwt_extended import get_current_user, verify_jwt_in_request

    try:
        verify_jwt_in_request(optional=True)
        return get_current_user()
    except Exception:  # no or a bad token: Superset's own checks answer
        return None


def _refuse_custom_sql():
    from flask import jsonify, request

    path = request.path.rstrip("/")
    runs_a_query = (path == "/api/v1/chart/data" and request.method == "POST"
                    or path.startswith("/superset/explore_json"))
    if not runs_a_query:
        return None
    user = _request_user()
    if user is None or AUTHOR_ROLES & {r.name for r in getattr(user, "roles", [])}:
        return None
    payloads = _payloads(request)
    asked: set[str] = set()
    for p in payloads:
        _strings_at_sql_keys(p, asked)
    unknown = asked - _dataset_names(payloads) if asked else set()
    if unknown:
        unknown -= _saved_sql()
    if unknown or any(isinstance(p, str) for p in payloads):
        return jsonify(message="This request holds SQL of its own (a custom expression, or a "
                               "column or metric the dataset does not have). Readers see "
                               "the saved charts only; custom SQL is for analysts."), 403
    return None


def FLASK_APP_MUTATOR(app) -> None:  # noqa: N802 (Superset's name)
    app.before_request(_refuse_custom_sql)
