"""The dashboards-as-code bundle in ``dashboards/``: build, import, export, compare.

Import goes through ``POST /api/v1/assets/import/`` rather than the dashboard import or the
CLI: the assets import overwrites *every* object by UUID (the dashboard import overwrites the
dashboard but keeps existing charts, datasets and databases as they were, so an edited chart
in git would never arrive), it takes database passwords as a form field, and it runs with the
permissions of a real user through the same API an operator would use.

What git does not hold is filled in at import: the database YAML carries no host, port or
password; :func:`build_bundle` writes the address of the server in use for the warehouse role
each database connects as (``access.DATABASE_ROLES``: ``viewer`` for the dashboards, ``analyst``
for SQL Lab; password masked, as in an export) and :func:`import_bundle` passes that role's
password in ``passwords``. :func:`publish` then grants the Superset roles their databases.
Import never deletes; :func:`delete_orphans` removes objects we manage (``is_managed_externally``)
whose UUID left the bundle (apache/superset#31957).
"""

from __future__ import annotations

import io
import json
import re
import zipfile
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml

from safeguard.config import Settings
from safeguard.superset.access import DATABASE_ROLES, grant_databases
from safeguard.superset.client import SupersetClient
from safeguard.superset.server import SupersetServer

#: The bundle's folders in import order, and the REST resource each becomes.
RESOURCES = {"databases": "database", "datasets": "dataset", "charts": "chart",
             "dashboards": "dashboard"}
#: Report and alert schedules (``reports.py``): in the bundle folder, not in the assets ZIP.
REPORTS_FOLDER = "reports"
#: Superset's placeholder for a password it will not show (``PASSWORD_MASK``).
PASSWORD_MASK = "XXXXXXXXXX"
#: The warehouse role of the published dashboards' connection.
WAREHOUSE_ROLE = DATABASE_ROLES["databases/Safeguard_warehouse.yaml"]


def bundle_dir(settings: Settings) -> Path:
    return settings.root / "dashboards"


def read_bundle(source: Path) -> dict[str, dict[str, Any]]:
    """Every YAML file of the bundle, by path relative to its root (the schedules in
    ``reports/`` are not Superset assets: ``reports.py`` applies them through their own API)."""
    files = sorted(p for p in source.rglob("*.yaml")
                   if p.is_file() and p.relative_to(source).parts[0] != REPORTS_FOLDER)
    if not (source / "metadata.yaml").exists():
        raise FileNotFoundError(f"{source}/metadata.yaml is missing: not a Superset bundle")
    return {p.relative_to(source).as_posix(): yaml.safe_load(p.read_text()) for p in files}


def bundle_uuids(source: Path) -> dict[str, set[str]]:
    """UUIDs per resource (``chart``, ``dashboard``, ...) declared in the bundle."""
    uuids: dict[str, set[str]] = {r: set() for r in RESOURCES.values()}
    for name, config in read_bundle(source).items():
        folder = name.split("/")[0]
        if folder in RESOURCES:
            uuids[RESOURCES[folder]].add(str(config["uuid"]))
    return uuids


def dashboards_in_bundle(source: Path) -> list[dict[str, Any]]:
    """The bundle's dashboards in title order: ``title``, ``slug``, ``uuid`` and ``charts``
    (``[{"uuid", "name"}]`` in layout order), e.g. to print their addresses."""
    out = []
    for name, config in read_bundle(source).items():
        if name.startswith("dashboards/"):
            charts = [{"uuid": str(item["meta"]["uuid"]), "name": item["meta"]["sliceName"]}
                      for item in config["position"].values()
                      if isinstance(item, dict) and item.get("type") == "CHART"]
            out.append({"title": config["dashboard_title"], "slug": config["slug"],
                        "uuid": str(config["uuid"]), "charts": charts})
    return sorted(out, key=lambda d: d["title"])


def dashboard_urls(server_url: str, source: Path) -> list[tuple[str, str]]:
    """``(title, URL)`` of every dashboard in the bundle, for start-up messages."""
    return [(d["title"], f"{server_url}/superset/dashboard/{d['slug']}/")
            for d in dashboards_in_bundle(source)]


def database_uri(settings: Settings, role: str) -> tuple[str, str]:
    """(URI with the password masked, the password) for a warehouse role."""
    real = urlsplit(settings.url(role, driver="postgresql+psycopg2"))
    masked = real._replace(netloc=f"{real.username}:{PASSWORD_MASK}@{real.hostname}:{real.port}")
    return masked.geturl(), settings.role_password(role)


def warehouse_uri(settings: Settings) -> tuple[str, str]:
    """(URI with the password masked, the password) for the read-only viewer role."""
    return database_uri(settings, WAREHOUSE_ROLE)


def database_role(name: str, source: Path) -> str:
    """The warehouse role the bundle's database file ``name`` connects as; a file without
    one is refused rather than given some default role's rights."""
    try:
        return DATABASE_ROLES[name]
    except KeyError:
        raise ValueError(
            f"{source / name}: no warehouse role for this database. Add it to DATABASE_ROLES "
            "in src/safeguard/superset/access.py with the least-privileged role that serves it "
            "(viewer reads reporting only)."
        ) from None


def build_bundle(settings: Settings, source: Path | None = None) -> tuple[bytes, dict[str, str]]:
    """The bundle as a ZIP (files under one root folder, as Superset expects) and the
    ``passwords`` form field: ``{database file: password}``, each database with the URI and
    password of its own warehouse role."""
    source = source or bundle_dir(settings)
    passwords: dict[str, str] = {}
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, config in read_bundle(source).items():
            text = (source / name).read_text()
            if name.startswith("databases/"):
                uri, password = database_uri(settings, database_role(name, source))
                config["sqlalchemy_uri"] = uri
                text = yaml.safe_dump(config, sort_keys=False)
                passwords[name] = password
            zf.writestr(f"safeguard_bundle/{name}", text)
    return buffer.getvalue(), passwords


def import_bundle(client: SupersetClient, settings: Settings, source: Path | None = None) -> None:
    """Create or overwrite every object of the bundle, matched by UUID (idempotent)."""
    data, passwords = build_bundle(settings, source)
    client.request(
        "POST", "/api/v1/assets/import/",
        files={"bundle": ("safeguard_bundle.zip", data, "application/zip")},
        data={"passwords": json.dumps(passwords), "overwrite": "true"},
    )


def publish(server: SupersetServer, prune: bool = True) -> list[str]:
    """Import the bundle into a running server; with ``prune``, also delete the objects we
    manage whose UUID left ``dashboards/``; then grant each Superset role the databases of
    its warehouse roles (``access.grant_databases``); with reports on, create or update the
    schedules of ``dashboards/reports/`` (``reports.apply_schedules``). Returns what was
    deleted."""
    with SupersetClient.for_server(server) as client:
        import_bundle(client, server.settings)
        deleted = delete_orphans(client, server.settings) if prune else []
        grant_databases(client, bundle_dir(server.settings))
        if server.reports:
            from safeguard.superset.reports import apply_schedules

            deleted += apply_schedules(client, bundle_dir(server.settings) / REPORTS_FOLDER)
        return deleted


def delete_orphans(client: SupersetClient, settings: Settings,
                   source: Path | None = None) -> list[str]:
    """Delete objects that came from a bundle (``is_managed_externally``) but are no longer in
    it, dependents first; objects people made in the UI are never touched."""
    wanted = bundle_uuids(source or bundle_dir(settings))
    deleted: list[str] = []
    for resource in ("dashboard", "chart", "dataset", "database"):
        for row in client.list_all(resource, ["id", "uuid"]):
            if str(row["uuid"]) in wanted[resource]:
                continue
            # not every list endpoint offers is_managed_externally; the detail endpoint does
            detail = client.get_json(f"/api/v1/{resource}/{row['id']}")["result"]
            if detail.get("is_managed_externally"):
                client.request("DELETE", f"/api/v1/{resource}/{row['id']}")
                deleted.append(f"{resource} {row['uuid']}")
    return deleted


def export_assets(client: SupersetClient) -> dict[str, dict[str, Any]]:
    """Everything Superset holds, exported as a bundle: ``{relative path: parsed YAML}``."""
    r = client.request("GET", "/api/v1/assets/export/")
    with zipfile.ZipFile(io.BytesIO(r.content)) as zf:
        return {
            name.split("/", 1)[1]: yaml.safe_load(zf.read(name))
            for name in zf.namelist()
            if name.endswith(".yaml")
        }


#: Keys Superset takes on import but never exports.
_IMPORT_ONLY = ("is_managed_externally", "external_url")


def _normalise(name: str, config: dict[str, Any], uri: str | None = None) -> dict[str, Any]:
    """What must survive a round trip: ids the server assigns are dropped, a database in git
    gets the ``uri`` it is imported with (so the export must show the same role, host and
    port); lists whose order the server does not keep are sorted."""
    config = json.loads(json.dumps(config, default=str))
    for key in _IMPORT_ONLY:
        config.pop(key, None)
    folder = name.split("/")[0]
    if folder == "metadata.yaml":
        return {"version": config["version"]}
    if folder == "databases" and uri is not None:
        config["sqlalchemy_uri"] = uri
    if folder == "datasets":
        config["columns"] = sorted(config["columns"], key=lambda c: c["column_name"])
        config["metrics"] = sorted(config["metrics"], key=lambda m: m["metric_name"])
    if folder == "charts":
        config["params"].pop("datasource", None)
        if config.get("query_context"):
            context = json.loads(config["query_context"])
            context.pop("datasource", None)
            context.get("form_data", {}).pop("datasource", None)
            config["query_context"] = context
    if folder == "dashboards":
        # chart ids differ between git (placeholders) and the server; scopes are compared by
        # the UUID of the chart each id stands for in the same file's position
        uuid_of = chart_ids_to_uuids(config["position"])
        for native_filter in config["metadata"].get("native_filter_configuration", []):
            scope = native_filter.get("scope", {})
            if "excluded" in scope:
                scope["excluded"] = sorted(uuid_of.get(i, f"unknown chart id {i}")
                                           for i in scope["excluded"])
        for item in config["position"].values():
            if isinstance(item, dict) and item.get("type") == "CHART":
                item["meta"].pop("chartId", None)
    return config


def chart_ids_to_uuids(position: dict[str, Any]) -> dict[int, str]:
    """``{chartId: chart UUID}`` of a dashboard's layout.

    In git the ids are placeholders, unique within the dashboard; native filter scopes
    (``scope.excluded``) name charts by these ids, and the import maps them to the server's
    ids through this same layout (``update_id_refs``). ``chartsInScope``/``tabsInScope`` are
    NOT remapped on import (apache/superset#26338): the bundle leaves them out and the
    dashboard computes them from ``scope`` when it loads."""
    return {
        item["meta"]["chartId"]: str(item["meta"]["uuid"])
        for item in position.values()
        if isinstance(item, dict) and item.get("type") == "CHART"
    }


def _differences(a: Any, b: Any, path: str) -> list[str]:
    if isinstance(a, dict) and isinstance(b, dict):
        out: list[str] = []
        for key in sorted(set(a) | set(b), key=str):
            if key not in b:
                out.append(f"{path}.{key}: in git, not in the export")
            elif key not in a:
                out.append(f"{path}.{key}: in the export, not in git ({b[key]!r:.80})")
            else:
                out.extend(_differences(a[key], b[key], f"{path}.{key}"))
        return out
    if isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        return [d for i, (x, y) in enumerate(zip(a, b, strict=True))
                for d in _differences(x, y, f"{path}[{i}]")]
    return [] if a == b else [f"{path}: git {a!r:.80} != export {b!r:.80}"]


def round_trip_differences(settings: Settings, exported: dict[str, dict[str, Any]],
                           source: Path | None = None) -> list[str]:
    """How the export of an imported bundle differs from the bundle in git (empty: none).

    Files are matched by UUID (Superset renames them on export); a bundle that does not
    survive a round trip would silently lose settings on the next export-and-commit."""
    source = source or bundle_dir(settings)
    source_files = read_bundle(source)
    by_uuid = {str(c.get("uuid")): (n, c) for n, c in exported.items() if n != "metadata.yaml"}
    problems: list[str] = []
    for name, config in source_files.items():
        if name == "metadata.yaml":
            other: tuple[str, dict[str, Any]] | None = (name, exported.get(name) or {})
        else:
            other = by_uuid.pop(str(config["uuid"]), None)
        if other is None:
            problems.append(f"{name}: UUID {config['uuid']} missing from the export")
            continue
        uri = (database_uri(settings, database_role(name, source))[0]
               if name.startswith("databases/") else None)
        problems += _differences(_normalise(name, config, uri),
                                 _normalise(other[0], other[1]), name)
    problems += [f"{n}: exported but not in git" for n, _ in by_uuid.values()]
    return problems


# --- export: from the server back into git -----------------------------------------------------

#: how the bundle's YAML is written (what reproduces the committed files)
_YAML = {"sort_keys": False, "allow_unicode": True, "width": 100}


def _patch(raw: Any, ours: Any, theirs: Any) -> Any:
    """``raw`` (the file in git) with ``theirs`` (the export, normalised) wherever ``ours`` (the
    file, normalised the same way) differs from it: what the server did not change keeps its
    form in git, placeholder ids included."""
    if isinstance(raw, dict) and isinstance(ours, dict) and isinstance(theirs, dict):
        out = {k: v for k, v in raw.items() if k not in ours or k in theirs}
        for key, value in theirs.items():
            out[key] = (_patch(raw[key], ours[key], value) if key in raw and key in ours
                        else value)
        return out
    return raw if ours == theirs else theirs


def _with_placeholders(name: str, raw: dict[str, Any], merged: dict[str, Any]) -> dict[str, Any]:
    """What the server numbers its own way, put back the way git writes it."""
    folder = name.split("/")[0]
    if folder == "databases":  # never a host, port or password into git
        merged["sqlalchemy_uri"] = raw["sqlalchemy_uri"]
    if folder == "charts" and isinstance(merged.get("query_context"), dict):
        context = merged["query_context"]
        saved = json.loads(raw.get("query_context") or "{}")
        # git's placeholder (the import points it at the server's own dataset)
        context = {"datasource": saved.get("datasource", {"id": 0, "type": "table"}), **context}
        merged["query_context"] = json.dumps(context)
    if folder == "dashboards":
        position = merged["position"]
        ids = [i["meta"]["chartId"] for i in position.values()
               if isinstance(i, dict) and i.get("type") == "CHART" and "chartId" in i["meta"]]
        for item in position.values():  # a chart added on the server gets a placeholder id
            if isinstance(item, dict) and item.get("type") == "CHART" \
                    and "chartId" not in item["meta"]:
                ids.append(max(ids, default=0) + 1)
                item["meta"]["chartId"] = ids[-1]
        id_of = {uuid: chart_id for chart_id, uuid in chart_ids_to_uuids(position).items()}
        for native in merged["metadata"].get("native_filter_configuration", []):
            scope = native.get("scope", {})
            scope["excluded"] = [id_of.get(x, x) if isinstance(x, str) else x
                                 for x in scope.get("excluded", [])]
    return merged


def _write_yaml(path: Path, config: dict[str, Any], header: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(header + yaml.safe_dump(config, **_YAML))


def _header(text: str) -> str:
    lines = text.splitlines(keepends=True)
    return "".join(line for line in lines[:next(
        (i for i, line in enumerate(lines) if not line.startswith("#")), len(lines))])


def export_bundle(settings: Settings, exported: dict[str, dict[str, Any]],
                  source: Path | None = None) -> list[str]:
    """Write into the bundle what the server holds and git does not: a file whose object
    changed keeps its name, its header comment and every value the server left alone; an
    object made on the server gets a file of its own. Files the server did not change are
    not touched. Returns the bundle paths written."""
    source = source or bundle_dir(settings)
    files = read_bundle(source)
    in_git = {str(c.get("uuid")): n for n, c in files.items() if n != "metadata.yaml"}
    written: list[str] = []
    for exported_name, config in sorted(exported.items()):
        folder = exported_name.split("/")[0]
        if exported_name == "metadata.yaml" or folder not in RESOURCES:
            continue
        name = in_git.get(str(config.get("uuid")))
        if name is None:
            if folder == "databases":
                raise ValueError(f"{exported_name}: a database made on the server; add it to "
                                 "the bundle by hand, with its role in DATABASE_ROLES")
            new = _with_placeholders(exported_name, {}, _normalise(exported_name, config))
            new["is_managed_externally"] = True
            name = re.sub(r"_\d+\.yaml$", ".yaml", exported_name)  # the server's id, dropped
            _write_yaml(source / name, new,
                        "# Exported from Superset: say here what it shows and for whom.\n")
            written.append(name)
            continue
        raw = files[name]
        uri = (database_uri(settings, database_role(name, source))[0]
               if folder == "databases" else None)
        ours, theirs = _normalise(name, raw, uri), _normalise(exported_name, config)
        if not _differences(ours, theirs, name):
            continue
        merged = _with_placeholders(name, raw, _patch(raw, ours, theirs))
        for key in _IMPORT_ONLY:  # ours, not the server's: kept as git has them
            if key in raw:
                merged[key] = raw[key]
        _write_yaml(source / name, merged, _header((source / name).read_text()))
        written.append(name)
    return written
