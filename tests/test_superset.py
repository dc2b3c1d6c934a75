"""Superset against the real pipeline output: server, bundle import, chart data, access.

Needs the Superset environment (``infra/superset/.venv``) and the ``pipeline_done`` fixture,
which fills ``reporting.rpt_published_figures_yearly`` in an isolated test home.
"""

from __future__ import annotations

import shutil
from collections import Counter
from pathlib import Path

import httpx
import pytest
import yaml

from safeguard.superset.bundle import (
    bundle_dir,
    bundle_uuids,
    delete_orphans,
    export_assets,
    import_bundle,
    round_trip_differences,
)
from safeguard.superset.client import SupersetClient
from safeguard.superset.server import SupersetServer

pytest_plugins = ["safeguard.superset.testing"]
pytestmark = pytest.mark.superset

ENTICEMENT_CHART = "287dedd8-3564-4421-93cc-5d313c2070f4"
CHANGE_CHART = "a8131e11-efd7-41e4-991c-b482f265fcb3"
TABLE_CHART = "71d1ff9a-98dd-42b8-98a2-ce4256182897"
RESOURCES = ("dashboard", "chart", "dataset", "database")


def _uuid_counts(client: SupersetClient) -> dict[str, Counter[str]]:
    return {r: Counter(str(row["uuid"]) for row in client.list_all(r, ["id", "uuid"]))
            for r in RESOURCES}


def _chart_id(client: SupersetClient, uuid: str) -> int:
    rows = client.list_all("chart", ["id", "uuid"])
    return next(row["id"] for row in rows if str(row["uuid"]) == uuid)


def _chart_rows(client: SupersetClient, uuid: str) -> list[dict]:
    """Rows of the chart's saved query context, as ``GET /api/v1/chart/<id>/data/`` runs it."""
    payload = client.get_json(f"/api/v1/chart/{_chart_id(client, uuid)}/data/")
    (result,) = payload["result"]
    assert result["status"] == "success", result.get("error")
    return result["data"]


def test_server_is_up_with_postgres_metadata(superset_server: SupersetServer) -> None:
    assert superset_server.is_healthy()
    assert superset_server.pid() is not None
    # metadata in PostgreSQL, never a SQLite file in Superset's home
    assert not list((superset_server.dir / "home").glob("*.db"))


def test_import_twice_gives_no_duplicates(superset_server: SupersetServer,
                                          superset_client: SupersetClient) -> None:
    wanted = bundle_uuids(bundle_dir(superset_server.settings))
    import_bundle(superset_client, superset_server.settings)  # the fixture imported once already
    counts = _uuid_counts(superset_client)
    for resource in RESOURCES:
        assert set(counts[resource]) == wanted[resource], resource
        assert max(counts[resource].values()) == 1, f"duplicate {resource}: {counts[resource]}"
    dashboards = superset_client.get_json("/api/v1/dashboard/online-enticement")["result"]
    assert dashboards["dashboard_title"] == "Online enticement trend"


def test_bundle_round_trips_through_export(superset_server: SupersetServer,
                                           superset_client: SupersetClient) -> None:
    """What we import is what Superset exports back: no setting in git is silently dropped."""
    exported = export_assets(superset_client)
    assert round_trip_differences(superset_server.settings, exported) == []


def test_enticement_chart_returns_published_figures(superset_client: SupersetClient) -> None:
    rows = _chart_rows(superset_client, ENTICEMENT_CHART)
    assert [(r["year"], r["reports"]) for r in rows] == [
        (2019, 19174), (2020, 37872), (2021, 44155), (2022, 80524),
    ]


def test_change_chart_returns_97_5(superset_client: SupersetClient) -> None:
    (row,) = _chart_rows(superset_client, CHANGE_CHART)
    assert row["yoy_change_pct"] == pytest.approx(97.5)


def test_table_chart_has_both_series(superset_client: SupersetClient) -> None:
    rows = _chart_rows(superset_client, TABLE_CHART)
    by_key = {(r["category_name"], r["year"]): r for r in rows}
    assert len(rows) == 8
    enticement_2020 = by_key[("Online enticement of children for sexual acts", 2020)]
    assert (enticement_2020["figure_value"], enticement_2020["yoy_change_pct"]) == (37872, 97.5)
    total_2022 = by_key[("CyberTipline reports, all incident types", 2022)]
    assert total_2022["figure_value"] == 32059029


def test_database_uses_read_only_viewer_role(superset_client: SupersetClient) -> None:
    (db,) = superset_client.list_all("database", ["id", "uuid"])
    detail = superset_client.get_json(f"/api/v1/database/{db['id']}/connection")["result"]
    assert "safeguard_viewer:XXXXXXXXXX@" in detail["sqlalchemy_uri"]


def test_anonymous_api_request_is_refused(superset_server: SupersetServer) -> None:
    for path in ("/api/v1/dashboard/", "/api/v1/chart/", "/api/v1/dataset/",
                 "/api/v1/assets/export/"):
        r = httpx.get(f"{superset_server.url}{path}", timeout=30)
        assert r.status_code == 401, (path, r.status_code)
    # the dashboard page sends an anonymous visitor to the login form, never the data
    r = httpx.get(f"{superset_server.url}/superset/dashboard/online-enticement/", timeout=30)
    assert r.status_code in (302, 401), r.status_code
    assert "/login" in r.headers.get("location", "/login")


def test_prune_deletes_managed_objects_that_left_the_bundle(
        tmp_path: Path, superset_server: SupersetServer, superset_client: SupersetClient) -> None:
    """Import never deletes (apache/superset#31957); `delete_orphans` does, for our objects."""
    settings = superset_server.settings
    source = tmp_path / "bundle"
    shutil.copytree(bundle_dir(settings), source)
    chart_file = source / "charts" / "Online_enticement_reports_by_year.yaml"
    extra = yaml.safe_load(chart_file.read_text())
    extra.update(uuid="00000000-0000-4000-8000-00000000dead", slice_name="Retired chart")
    (source / "charts" / "Retired_chart.yaml").write_text(yaml.safe_dump(extra))
    import_bundle(superset_client, settings, source)
    assert _uuid_counts(superset_client)["chart"][extra["uuid"]] == 1

    deleted = delete_orphans(superset_client, settings)  # against the bundle in git

    assert deleted == [f"chart {extra['uuid']}"]
    counts = _uuid_counts(superset_client)
    assert set(counts["chart"]) == bundle_uuids(bundle_dir(settings))["chart"]
