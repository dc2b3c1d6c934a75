"""Report and alert schedules as code: ``dashboards/reports/*.yaml`` -> ``/api/v1/report/``.

Superset's asset import does not carry Alerts & Reports, so each schedule is a small YAML file
beside the bundle, created or updated through the REST API after every import (matched by
name; idempotent). A schedule names its dashboard (and an alert its database) by the bundle's
UUIDs, its owner by username (the schedule runs as its owner: ``ALERT_REPORTS_EXECUTORS``), and
its recipients by an environment variable with a default. Schedules that came from here carry
their file's path under :data:`MANAGED` in ``extra`` (the description is the mail's text); one
whose file left the folder is deleted, while schedules people make in the UI are never touched.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

from safeguard.config import env
from safeguard.superset.client import SupersetClient
from safeguard.superset.errors import SupersetError

#: the key of ``extra`` that marks a schedule kept in git, with its file
MANAGED = "safeguard_file"
#: Superset -> Settings -> Alerts & reports
LIST_PATH = "/alert/list/"

_REQUIRED = {"name", "type", "dashboard", "format", "crontab", "owner", "recipients"}


def read_schedules(folder: Path) -> dict[str, dict[str, Any]]:
    """Every schedule file of ``folder``, by file name, checked for what the API needs."""
    out = {}
    for path in sorted(folder.glob("*.yaml")) if folder.is_dir() else []:
        spec = yaml.safe_load(path.read_text())
        missing = _REQUIRED - set(spec)
        if missing:
            raise ValueError(f"{path}: missing {', '.join(sorted(missing))}")
        if spec["type"] not in ("Report", "Alert"):
            raise ValueError(f"{path}: type must be Report or Alert, not {spec['type']!r}")
        if spec["type"] == "Alert" and not {"database", "sql", "condition"} <= set(spec):
            raise ValueError(f"{path}: an alert needs database, sql and condition")
        out[path.name] = spec
    return out


def recipients(spec: dict[str, Any]) -> list[str]:
    """The addresses a schedule mails: its environment variable (comma-separated), else its
    default."""
    value = env(spec["recipients"]["env"]) or spec["recipients"]["default"]
    return [a.strip() for a in value.split(",") if a.strip()]


def _id_by_uuid(client: SupersetClient, resource: str, uuid: str) -> int:
    for row in client.list_all(resource, ["id", "uuid"]):
        if str(row["uuid"]) == str(uuid):
            return int(row["id"])
    raise SupersetError(f"No {resource} with UUID {uuid} in Superset: import the bundle first "
                        "(`safeguard superset import`).")


def _user_id(client: SupersetClient, username: str) -> int:
    q = f"(filters:!((col:username,opr:eq,value:'{username}')))"
    result = client.get_json("/api/v1/security/users/", params={"q": q})["result"]
    if not result:
        raise SupersetError(f"No Superset user {username!r} to own a schedule: run "
                            "`safeguard superset up` (its bootstrap creates the users).")
    return int(result[0]["id"])


def payload(client: SupersetClient, file_name: str, spec: dict[str, Any]) -> dict[str, Any]:
    """What ``POST``/``PUT /api/v1/report/`` takes for one schedule file."""
    body: dict[str, Any] = {
        "type": spec["type"],
        "name": spec["name"],
        "description": spec.get("description", "").strip(),
        "active": bool(spec.get("active", True)),
        "crontab": spec["crontab"],
        "timezone": spec.get("timezone", "UTC"),
        "dashboard": _id_by_uuid(client, "dashboard", spec["dashboard"]),
        "owners": [_user_id(client, spec["owner"])],
        "report_format": spec["format"],
        "recipients": [{"type": "Email", "recipient_config_json": {
            "target": ",".join(recipients(spec))}}],
        "log_retention": int(spec.get("log_retention_days", 90)),
        "grace_period": int(spec.get("grace_period_seconds", 3600)),
        "working_timeout": int(spec.get("working_timeout_seconds", 600)),
        "force_screenshot": bool(spec.get("force_screenshot", True)),
        "creation_method": "alerts_reports",
        "extra": {"dashboard": {}, MANAGED: f"dashboards/reports/{file_name}"},
    }
    if spec.get("email_subject"):
        body["email_subject"] = spec["email_subject"]
    if spec["type"] == "Alert":
        op, threshold = spec["condition"]["op"], spec["condition"]["threshold"]
        body |= {
            "database": _id_by_uuid(client, "database", spec["database"]),
            "sql": spec["sql"].strip(),
            "validator_type": "operator",
            "validator_config_json": {"op": op, "threshold": threshold},
        }
    return body


def existing(client: SupersetClient) -> list[dict[str, Any]]:
    return client.list_all("report", ["id", "name", "type", "extra", "crontab", "active",
                                      "last_state"])


def apply_schedules(client: SupersetClient, folder: Path) -> list[str]:
    """Create or update every schedule of ``folder`` (matched by name) and delete those we
    made whose file is gone. Returns what was deleted, e.g. ``["report 'Old one'"]``."""
    wanted = read_schedules(folder)
    by_name = {row["name"]: row for row in existing(client)}
    for file_name, spec in wanted.items():
        body = payload(client, file_name, spec)
        row = by_name.get(spec["name"])
        if row is None:
            client.request("POST", "/api/v1/report/", json=body)
        else:
            client.request("PUT", f"/api/v1/report/{row['id']}", json=body)
    names = {spec["name"] for spec in wanted.values()}
    deleted = []
    for row in by_name.values():
        extra = row.get("extra") or {}
        if isinstance(extra, str):
            extra = json.loads(extra or "{}")
        if row["name"] not in names and MANAGED in extra:
            client.request("DELETE", f"/api/v1/report/{row['id']}")
            deleted.append(f"{row['type'].lower()} {row['name']!r}")
    return deleted


def set_crontab(client: SupersetClient, name: str, crontab: str) -> None:
    """Reschedule one schedule (tests run the weekly report now with ``* * * * *``)."""
    (row,) = (r for r in existing(client) if r["name"] == name)
    client.request("PUT", f"/api/v1/report/{row['id']}", json={"crontab": crontab})


def where(server_url: str, folder: Path) -> str:
    """Where the schedules are, for start-up messages."""
    names = ", ".join(f"{s['name']} ({s['crontab']} {s.get('timezone', 'UTC')})"
                      for s in read_schedules(folder).values())
    return f"{server_url}{LIST_PATH} (Settings -> Alerts & reports): {names}"

