"""Who may see what in Superset: its roles, the demo users, and which warehouse role each
database connection of the bundle logs in as.

Access is enforced twice, each layer enough on its own:

* PostgreSQL: every database in ``dashboards/databases/`` connects as a warehouse role
  (:data:`DATABASE_ROLES`) that can read only its schemas (``infra/sql/02_warehouse.sql``):
  ``Safeguard warehouse`` as ``viewer`` (``reporting``), ``Safeguard warehouse (analyst)`` as
  ``analyst`` (``marts``, ``snapshots``, ``reporting``, ``ops``). Nothing in Superset reaches
  ``raw`` or ``quarantine``.
* Superset: a role uses a database only through ``database_access`` on it, and what it may
  *do* (open dashboards, explore, SQL Lab) is an explicit allow-list of (permission, view)
  pairs below.

The roles are our own rather than the built-in Gamma/sql_lab: Superset's docs advise against
editing those (``superset init`` resets them), and Gamma in 6.1 carries far more than a
dashboard reader needs (the users list page, CSV export, tag and theme writes, dashboard
editing). Each role is set *exactly* at bootstrap, so a permission added by hand in the UI
does not survive the next ``safeguard superset up``. Database grants need the ids Superset
gives databases on import, so :func:`grant_databases` sets them after every import.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

if TYPE_CHECKING:
    from safeguard.superset.client import SupersetClient

#: Superset's administrator (made at bootstrap; its password in secrets.env)
ADMIN_USERNAME = "admin"

#: The PostgreSQL role each database file of the bundle connects as. A database file not
#: listed here is refused at import: every connection must say whose rights it uses.
DATABASE_ROLES = {
    "databases/Safeguard_warehouse.yaml": "viewer",  # the published dashboards
    "databases/Safeguard_warehouse_analyst.yaml": "analyst",  # SQL Lab, datasets on marts
}

Permission = tuple[str, str]

#: Reading the published dashboards and nothing else: no explore, no SQL Lab, no dataset or
#: database lists, no CSV export, no editing. Each pair is what a dashboard page calls.
LEADERSHIP_PERMISSIONS: frozenset[Permission] = frozenset({
    # the dashboard page and its charts
    ("can_read", "Dashboard"),
    ("can_read", "Chart"),
    ("can_dashboard", "Superset"),  # /superset/dashboard/<slug>/
    ("can_explore_json", "Superset"),  # data of legacy charts (the world maps)
    ("can_time_range", "Api"),  # the period filter resolves its range
    ("can_read", "CssTemplate"),
    ("can_read", "Theme"),
    # native filters keep their state per visitor; a permalink shares a filtered view
    ("can_read", "DashboardFilterStateRestApi"),
    ("can_write", "DashboardFilterStateRestApi"),
    ("can_read", "DashboardPermalinkRestApi"),
    ("can_write", "DashboardPermalinkRestApi"),
    ("can_dashboard_permalink", "Superset"),
    # the navigation and one's own account
    ("menu_access", "Dashboards"),
    ("can_get", "MenuApi"),
    ("can_read", "CurrentUserRestApi"),
    ("can_read", "SecurityRestApi"),  # the CSRF token, nothing else
    ("can_recent_activity", "Log"),
    ("can_log", "Superset"),  # the UI's own event log
    ("can_userinfo", "UserDBModelView"),
    ("resetmypassword", "UserDBModelView"),
    ("can_this_form_get", "ResetMyPasswordView"),
    ("can_this_form_post", "ResetMyPasswordView"),
})

#: What analysts add: explore the datasets they can read and save charts, and SQL Lab
#: (queries, saved queries, their own history). Not included, on purpose: creating or editing
#: datasets and dashboards (the bundle in git is the source of those), CSV export of query
#: results (case-level marts rows would leave the platform), and uploads.
ANALYST_EXTRA_PERMISSIONS: frozenset[Permission] = frozenset({
    # explore and charts
    ("can_read", "Explore"),
    ("can_explore", "Superset"),
    ("can_slice", "Superset"),
    ("can_write", "Chart"),
    ("can_read", "ExploreFormDataRestApi"),
    ("can_write", "ExploreFormDataRestApi"),
    ("can_read", "ExplorePermalinkRestApi"),
    ("can_write", "ExplorePermalinkRestApi"),
    ("can_read", "Dataset"),
    ("can_get_drill_info", "Dataset"),
    ("can_get", "Datasource"),
    ("can_external_metadata", "Datasource"),
    ("can_external_metadata_by_name", "Datasource"),
    ("can_fetch_datasource_metadata", "Superset"),
    ("can_query", "Api"),
    ("can_query_form_data", "Api"),
    ("can_view_query", "Dashboard"),
    ("can_view_chart_as_table", "Dashboard"),
    ("can_drill", "Dashboard"),
    ("can_share_chart", "Superset"),
    ("can_read", "AdvancedDataType"),
    ("menu_access", "Charts"),
    ("menu_access", "Datasets"),
    ("menu_access", "Data"),
    # SQL Lab (the built-in sql_lab role without its CSV exports)
    ("can_read", "Database"),  # the database list SQL Lab offers, filtered by access
    ("can_sqllab", "Superset"),
    ("can_sqllab_history", "Superset"),
    ("can_read", "SQLLab"),
    ("can_execute_sql_query", "SQLLab"),
    ("can_get_results", "SQLLab"),
    ("can_estimate_query_cost", "SQLLab"),
    ("can_format_sql", "SQLLab"),
    ("can_read", "Query"),
    ("can_read", "SavedQuery"),
    ("can_write", "SavedQuery"),
    ("can_read", "SqlLabPermalinkRestApi"),
    ("can_write", "SqlLabPermalinkRestApi"),
    ("can_activate", "TabStateView"),
    ("can_get", "TabStateView"),
    ("can_post", "TabStateView"),
    ("can_put", "TabStateView"),
    ("can_delete", "TabStateView"),
    ("can_delete_query", "TabStateView"),
    ("can_migrate_query", "TabStateView"),
    ("can_post", "TableSchemaView"),
    ("can_expanded", "TableSchemaView"),
    ("can_delete", "TableSchemaView"),
    ("menu_access", "SQL Lab"),
    ("menu_access", "SQL Editor"),
    ("menu_access", "Saved Queries"),
    ("menu_access", "Query Search"),
})

#: Role name -> (its permissions, the warehouse roles whose database connections it may use).
ROLES: dict[str, tuple[frozenset[Permission], tuple[str, ...]]] = {
    "Leadership": (LEADERSHIP_PERMISSIONS, ("viewer",)),
    "Analyst": (LEADERSHIP_PERMISSIONS | ANALYST_EXTRA_PERMISSIONS, ("viewer", "analyst")),
}

#: Demo users created at bootstrap: username -> (role, the secrets.env entry of the password).
DEMO_USERS = {
    "leader": ("Leadership", "SUPERSET_LEADER_PASSWORD"),
    "analyst": ("Analyst", "SUPERSET_ANALYST_PASSWORD"),
}


def database_roles(source: Path) -> dict[str, str]:
    """``{database UUID: warehouse role}`` for the bundle in ``source``."""
    out = {}
    for name, role in DATABASE_ROLES.items():
        path = source / name
        if path.exists():
            out[str(yaml.safe_load(path.read_text())["uuid"])] = role
    return out


def _database_perm(database: dict[str, Any]) -> str:
    # Superset's Database.perm: the view menu of the database's `database_access`
    return f"[{database['database_name']}].(id:{database['id']})"


def _pages(client: SupersetClient, path: str) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    page = 0
    while True:
        result = client.get_json(path, params={"q": f"(page:{page},page_size:100)"})["result"]
        rows.extend(result)
        if len(result) < 100:
            return rows
        page += 1


def grant_databases(client: SupersetClient, source: Path) -> dict[str, list[str]]:
    """Give each role of :data:`ROLES` ``database_access`` on exactly the databases that
    connect as its warehouse roles, keeping its other permissions (set at bootstrap).
    Idempotent; returns ``{role: [database names]}``."""
    from safeguard.superset.errors import SupersetError

    by_uuid = {str(d["uuid"]): d
               for d in client.list_all("database", ["id", "uuid", "database_name"])}
    wanted_perms: dict[str, set[str]] = {}
    names: dict[str, list[str]] = {}
    for uuid, warehouse_role in database_roles(source).items():
        if uuid not in by_uuid:
            continue  # not imported (yet): nothing to grant
        for role, (_, warehouse_roles) in ROLES.items():
            if warehouse_role in warehouse_roles:
                wanted_perms.setdefault(role, set()).add(_database_perm(by_uuid[uuid]))
                names.setdefault(role, []).append(by_uuid[uuid]["database_name"])
    pvm_ids = {
        p["view_menu"]["name"]: p["id"]
        for p in _pages(client, "/api/v1/security/permissions-resources/")
        if p["permission"]["name"] == "database_access"
    }
    roles = {r["name"]: r["id"] for r in _pages(client, "/api/v1/security/roles/")}
    for role in ROLES:
        if role not in roles:
            raise SupersetError(f"Superset has no role {role!r}: run `safeguard superset up` "
                                "(its bootstrap creates the roles).")
        current = client.get_json(f"/api/v1/security/roles/{roles[role]}/permissions/")["result"]
        keep = {p["id"] for p in current if p["permission_name"] != "database_access"}
        missing = wanted_perms.get(role, set()) - set(pvm_ids)
        if missing:
            raise SupersetError(f"Superset has no database_access permission for {missing}")
        wanted = keep | {pvm_ids[perm] for perm in wanted_perms.get(role, set())}
        if wanted != {p["id"] for p in current}:
            client.request("POST", f"/api/v1/security/roles/{roles[role]}/permissions",
                           json={"permission_view_menu_ids": sorted(wanted)})
    return {role: sorted(names.get(role, [])) for role in ROLES}
