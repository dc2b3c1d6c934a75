"""Superset configuration for Safeguard: everything from the environment, nothing secret in git.

Loaded by Superset through ``SUPERSET_CONFIG_PATH``; ``safeguard superset up`` sets the
variables below from ``Settings`` (``src/safeguard/superset/server.py``). Started by hand,
Superset refuses to run without them rather than fall back to SQLite or a default key.

Required:
  SUPERSET_SECRET_KEY              signs sessions and encrypts stored database passwords
  SAFEGUARD_SUPERSET_METADATA_URI  postgresql+psycopg2 URI of the metadata database (role superset)
Optional:
  SUPERSET_HOME                    Superset's state folder (read by Superset itself)
  SAFEGUARD_SUPERSET_CACHE_REDIS_URL  the metadata and chart-data caches in this Redis (see below)
  SAFEGUARD_SUPERSET_CACHE_DIR     else a file cache in this folder (default: $SUPERSET_HOME/cache)
  SAFEGUARD_SUPERSET_DATA_CACHE_SECONDS  how long chart results are reused (default 86400)

Caches. ``safeguard superset up`` puts the metadata and chart-data caches in Redis whenever the
project's Redis runs for this Superset (reports on, as in ``make demo`` and the tests) or
``REDIS_URL`` is set, and in files otherwise (a fresh laptop has no Redis);
``SAFEGUARD_SUPERSET_CACHE=redis|file`` says which (redis starts the project's Redis).
Both are shared by every gunicorn worker, so more workers do not mean more cold queries; Redis
also serves several machines and keeps the hot set in memory. Chart results live a day: the
published tables change by releases only, and after each release the cache is emptied and the
published dashboards' charts computed again (``safeguard.superset.warm``; Superset's own
start empties it too, in case a release came while it was down). Filter and explore state stay
in the metadata database (Superset's default): a shared link holds their key, so they belong
with what is backed up, not in a Redis that may evict them when full. No ``RESULTS_BACKEND``:
it holds SQL Lab's asynchronous results only, and no database here runs queries asynchronously
(the analysts' queries are small, and async would need the Celery worker to run SQL Lab's tasks
too).

Alerts & Reports (set by ``safeguard superset up`` when SAFEGUARD_REPORTS=1):
  SAFEGUARD_REPORTS                1 turns the ALERT_REPORTS flag and the Celery config on
  SAFEGUARD_REDIS_BROKER_URL / SAFEGUARD_REDIS_RESULTS_URL  Celery's broker and results
  SAFEGUARD_SUPERSET_URL           where the worker's browser finds this Superset
  SAFEGUARD_CHROMEDRIVER, SAFEGUARD_CHROMIUM_ARGS  Debian's chromedriver, headless flags (JSON)
  SAFEGUARD_SMTP_HOST/PORT/USER/PASSWORD/FROM/STARTTLS/SSL  the mail server reports go through
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
    "ALERT_REPORTS": False,  # on below with SAFEGUARD_REPORTS=1 (Celery, browser, mail)
    "THUMBNAILS": False,  # would need Celery
}

# --- caches: Redis when the project's Redis is in use, else files ------------------------------
# A fresh laptop has no Redis: a file cache is shared by all gunicorn workers too (SimpleCache
# would be per process) and survives restarts. Filter and explore state stay in the metadata
# database (Superset's default metastore cache). See the module's docstring for the choice.
_cache_dir = Path(
    os.environ.get("SAFEGUARD_SUPERSET_CACHE_DIR")
    or Path(os.environ.get("SUPERSET_HOME", Path.home() / ".superset")) / "cache"
)
_cache_redis = os.environ.get("SAFEGUARD_SUPERSET_CACHE_REDIS_URL")
# A day: every release empties the chart-data cache and warms it again (safeguard.superset.warm)
_data_seconds = int(os.environ.get("SAFEGUARD_SUPERSET_DATA_CACHE_SECONDS", "86400"))
#: the chart-data keys' prefix (SupersetServer.empty_data_cache deletes the keys by it)
DATA_CACHE_PREFIX = "safeguard_data_"


def _cache(kind: str, prefix: str, seconds: int) -> dict:
    if _cache_redis:
        from urllib.parse import urlsplit

        # flask-caching passes CACHE_REDIS_DB over the URL's own database: give it the same
        return {"CACHE_TYPE": "RedisCache", "CACHE_REDIS_URL": _cache_redis,
                "CACHE_REDIS_DB": int(urlsplit(_cache_redis).path.strip("/") or 0),
                "CACHE_DEFAULT_TIMEOUT": seconds, "CACHE_KEY_PREFIX": prefix}
    return {"CACHE_TYPE": "FileSystemCache", "CACHE_DIR": str(_cache_dir / kind),
            "CACHE_DEFAULT_TIMEOUT": seconds, "CACHE_KEY_PREFIX": prefix,
            "CACHE_THRESHOLD": 2000}


CACHE_CONFIG = _cache("metadata", "safeguard_meta_", 3600)
DATA_CACHE_CONFIG = _cache("data", DATA_CACHE_PREFIX, _data_seconds)

# --- Alerts & Reports ----------------------------------------------------------------------
# Off unless `safeguard superset up` runs with reports (SAFEGUARD_REPORTS=1; on in `make demo`):
# then a Redis of the project's own (src/safeguard/superset/workers.py) carries Celery's queue,
# beat runs the scheduler every minute, and the worker takes screenshots with Debian's
# chromium + chromedriver (Selenium; Playwright would need a browser download) and mails them.
# The schedules themselves are code: dashboards/reports/*.yaml (src/safeguard/superset/reports.py).
def _flag(name: str, default: str = "false") -> bool:
    return os.environ.get(name, default).strip().lower() in ("1", "true", "yes", "on")


REPORTS_ON = _flag("SAFEGUARD_REPORTS")
if REPORTS_ON:
    import json as _json

    from celery.schedules import crontab
    from superset.tasks.types import ExecutorType

    FEATURE_FLAGS["ALERT_REPORTS"] = True
    _broker = os.environ.get("SAFEGUARD_REDIS_BROKER_URL")
    if _broker:  # `superset db upgrade` and `init` run before Redis starts: no Celery there

        class CeleryConfig:  # noqa: D101 (Superset's name and shape)
            broker_url = _broker
            result_backend = os.environ.get("SAFEGUARD_REDIS_RESULTS_URL") or _broker
            imports = ("superset.tasks.scheduler",)
            worker_prefetch_multiplier = 1
            task_acks_late = False
            broker_connection_retry_on_startup = True
            beat_schedule = {
                "reports.scheduler": {
                    "task": "reports.scheduler",
                    "schedule": crontab(minute="*", hour="*"),
                    # Superset reads the trigger time from this expiry (celery/celery#6974)
                    "options": {"expires": 7 * 24 * 3600},
                },
                "reports.prune_log": {
                    "task": "reports.prune_log",
                    "schedule": crontab(minute=0, hour=0),
                },
            }

        CELERY_CONFIG = CeleryConfig

    # Each schedule runs as its owner (dashboards/reports/*.yaml names one): the screenshot
    # shows exactly what that user may see, e.g. the Leadership role for the weekly report.
    ALERT_REPORTS_EXECUTORS = [ExecutorType.OWNER]
    ALERT_REPORTS_NOTIFICATION_DRY_RUN = False
    EMAIL_REPORTS_SUBJECT_PREFIX = "[Safeguard] "
    # Selenium with Debian's chromedriver; the browser runs headless with the project's flags
    WEBDRIVER_TYPE = "chrome"
    WEBDRIVER_OPTION_ARGS = _json.loads(os.environ.get("SAFEGUARD_CHROMIUM_ARGS") or
                                        '["--headless", "--no-sandbox", "--disable-gpu"]')
    WEBDRIVER_CONFIGURATION = {
        "options": {"capabilities": {}, "preferences": {}},
        "service": {"executable_path": os.environ.get("SAFEGUARD_CHROMEDRIVER")
                    or "/usr/bin/chromedriver", "log_output": "/dev/null", "service_args": [],
                    "port": 0, "env": {}},
    }
    # tall enough for the whole Leadership overview on one page (Superset's 2000 cuts it off)
    WEBDRIVER_WINDOW = {"dashboard": (1600, 3200), "slice": (1600, 1200), "pixel_density": 1}
    WEBDRIVER_BASEURL = os.environ.get("SAFEGUARD_SUPERSET_URL") or "http://127.0.0.1:8088/"
    WEBDRIVER_BASEURL_USER_FRIENDLY = (os.environ.get("SAFEGUARD_SUPERSET_PUBLIC_URL")
                                       or WEBDRIVER_BASEURL)

# Mail (reports and alerts): from the environment; no login unless a user is set.
SMTP_HOST = os.environ.get("SAFEGUARD_SMTP_HOST") or "localhost"
SMTP_PORT = int(os.environ.get("SAFEGUARD_SMTP_PORT") or "25")
SMTP_USER = os.environ.get("SAFEGUARD_SMTP_USER") or ""
SMTP_PASSWORD = os.environ.get("SAFEGUARD_SMTP_PASSWORD") or ""
SMTP_MAIL_FROM = os.environ.get("SAFEGUARD_SMTP_FROM") or "safeguard@localhost"
SMTP_STARTTLS = _flag("SAFEGUARD_SMTP_STARTTLS", "true" if SMTP_USER else "false")
SMTP_SSL = _flag("SAFEGUARD_SMTP_SSL")
SMTP_SSL_SERVER_AUTH = True  # a TLS server's certificate is checked


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
