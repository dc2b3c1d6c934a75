"""Superset against the real pipeline output: server, bundle import, chart data, access.

Needs the Superset environment (``infra/superset/.venv``) and the ``pipeline_done`` fixture,
which runs the whole pipeline (all four sources, dbt) in an isolated test home, so every
reporting table the dashboards read is filled the way `make run` fills it.
"""

from __future__ import annotations

import copy
import json
import shutil
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from safeguard.config import ROLES
from safeguard.superset.bundle import (
    bundle_dir,
    bundle_uuids,
    chart_ids_to_uuids,
    dashboards_in_bundle,
    delete_orphans,
    export_assets,
    export_bundle,
    import_bundle,
    read_bundle,
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

SOURCE = Path(__file__).resolve().parents[1] / "dashboards"
BUNDLE = read_bundle(SOURCE)
DASHBOARDS = {d["slug"]: d for d in dashboards_in_bundle(SOURCE)}
CHARTS = {str(c["uuid"]): c for n, c in BUNDLE.items() if n.startswith("charts/")}
DATASET_NAMES = {str(c["uuid"]): c["table_name"] for n, c in BUNDLE.items()
                 if n.startswith("datasets/")}
TITLES = {
    "leadership-overview": "Leadership overview",
    "grooming-stages-channels": "Grooming stages and channels",
    "global-legislation": "Global legislation",
    "hotline-operations": "Hotline operations",
    "pipeline-health": "Pipeline health",
    "published-figures": "Published figures",
}
#: Charts whose empty result is a good outcome, not a broken pipeline.
MAY_BE_EMPTY = {"Data-quality notes on published sources",
                # nothing failed, nothing to attend to: the good outcome on Pipeline health
                "Rules failed most often", "Deliveries needing attention, with their message",
                # no point out of its series' pattern: nothing to check
                "Points to check: cases per month by channel (SYNTHETIC)"}


def _viewer_database_id(client: SupersetClient) -> int:
    """The dashboards' connection (the other one, for analysts, is in test_superset_access)."""
    (viewer,) = (c for n, c in BUNDLE.items()
                 if n.startswith("databases/") and c["database_name"] == "Safeguard warehouse")
    rows = client.list_all("database", ["id", "uuid"])
    return next(row["id"] for row in rows if str(row["uuid"]) == str(viewer["uuid"]))


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


def _chart_named(name: str) -> str:
    (uuid,) = (u for u, c in CHARTS.items() if c["slice_name"] == name)
    return uuid


def _post_query(client: SupersetClient, context: dict[str, Any]) -> list[dict]:
    payload = client.request("POST", "/api/v1/chart/data", json=context).json()
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
    for slug, title in TITLES.items():
        dashboard = superset_client.get_json(f"/api/v1/dashboard/{slug}")["result"]
        assert dashboard["dashboard_title"] == title


def test_bundle_round_trips_through_export(superset_server: SupersetServer,
                                           superset_client: SupersetClient) -> None:
    """What we import is what Superset exports back: no setting in git is silently dropped."""
    exported = export_assets(superset_client)
    assert round_trip_differences(superset_server.settings, exported) == []


@pytest.mark.parametrize("slug", sorted(TITLES))
def test_dashboard_has_its_charts_and_filters_point_at_them(
        slug: str, superset_client: SupersetClient) -> None:
    """The server's copy of each dashboard shows every chart of the bundle's layout, and its
    native filters name this server's ids for the charts and datasets the bundle meant
    (scopes are mapped on import through the layout; see bundle.chart_ids_to_uuids)."""
    assert set(TITLES) == set(DASHBOARDS)
    server = superset_client.get_json(f"/api/v1/dashboard/{slug}")["result"]
    ids = {str(r["uuid"]): r["id"] for r in superset_client.list_all("chart", ["id", "uuid"])}
    dataset_ids = {str(r["uuid"]): r["id"]
                   for r in superset_client.list_all("dataset", ["id", "uuid"])}
    charts = superset_client.get_json(f"/api/v1/dashboard/{slug}/charts")["result"]
    wanted = {c["uuid"] for c in DASHBOARDS[slug]["charts"]}
    assert {c["id"] for c in charts} == {ids[u] for u in wanted}

    (git,) = (c for n, c in BUNDLE.items() if n.startswith("dashboards/") and c["slug"] == slug)
    git_uuid_of = chart_ids_to_uuids(git["position"])
    position = json.loads(server["position_json"])
    assert {ids[u] for u in chart_ids_to_uuids(position).values()} == set(
        chart_ids_to_uuids(position)), "layout chart ids are not this server's"
    metadata = json.loads(server["json_metadata"])
    served = {f["id"]: f for f in metadata["native_filter_configuration"]}
    for native in git["metadata"]["native_filter_configuration"]:
        on_server = served[native["id"]]
        assert sorted(on_server["scope"]["excluded"]) == sorted(
            ids[git_uuid_of[i]] for i in native["scope"]["excluded"]), native["id"]
        for target, mine in zip(on_server["targets"], native["targets"], strict=True):
            if mine:
                assert target["datasetId"] == dataset_ids[mine["datasetUuid"]]
                assert target["column"] == mine["column"]


@pytest.mark.parametrize("uuid", sorted(CHARTS), ids=lambda u: CHARTS[u]["slice_name"])
def test_every_chart_returns_rows(uuid: str, superset_client: SupersetClient) -> None:
    """Each chart's saved query runs on the pipeline's reporting tables and finds data."""
    rows = _chart_rows(superset_client, uuid)
    if CHARTS[uuid]["slice_name"] not in MAY_BE_EMPTY:
        assert rows, f"{CHARTS[uuid]['slice_name']}: no rows"


def _filter_cases() -> list[Any]:
    cases = []
    for name, config in BUNDLE.items():
        if name.startswith("dashboards/"):
            uuid_of = chart_ids_to_uuids(config["position"])
            for native in config["metadata"]["native_filter_configuration"]:
                for chart_id, uuid in sorted(uuid_of.items()):
                    if chart_id not in native["scope"]["excluded"]:
                        cases.append(pytest.param(
                            config["slug"], native["id"], uuid,
                            id=f"{native['id'].removeprefix('NATIVE_FILTER-')}:"
                               f"{CHARTS[uuid]['slice_name']}"))
    return cases


@pytest.mark.parametrize(("slug", "filter_id", "uuid"), _filter_cases())
def test_native_filter_applies_to_each_chart_in_its_scope(
        slug: str, filter_id: str, uuid: str, superset_client: SupersetClient) -> None:
    """What the dashboard sends when a filter is set (a column filter, or a time range on
    the chart's TEMPORAL_RANGE filter) runs on every chart in the filter's scope, and
    narrows its rows rather than failing on a column the chart's dataset lacks."""
    (dashboard,) = (c for n, c in BUNDLE.items()
                    if n.startswith("dashboards/") and c["slug"] == slug)
    (native,) = (f for f in dashboard["metadata"]["native_filter_configuration"]
                 if f["id"] == filter_id)
    chart_id = _chart_id(superset_client, uuid)
    saved = superset_client.get_json(f"/api/v1/chart/{chart_id}")["result"]["query_context"]
    context = json.loads(saved)
    unfiltered = _post_query(superset_client, copy.deepcopy(context))
    (query,) = context["queries"]
    if native["filterType"] == "filter_time":
        temporal = [f for f in query["filters"] if f["op"] == "TEMPORAL_RANGE"]
        assert temporal, "no TEMPORAL_RANGE filter for the time range to set"
        temporal[0]["val"] = "2020-01-01 : 2021-01-01"
    else:
        (target,) = native["targets"]
        column = target["column"]["name"]
        dataset_id = context["datasource"]["id"]
        values = superset_client.get_json(
            f"/api/v1/datasource/table/{dataset_id}/column/{column}/values/")["result"]
        if not values:  # an empty chart (nothing failed): the filter must still run on it
            assert CHARTS[uuid]["slice_name"] in MAY_BE_EMPTY, f"no values of {column}"
            values = ["(no such value)"]
        query["filters"].append({"col": column, "op": "IN", "val": values[:1]})
    filtered = _post_query(superset_client, context)
    assert len(filtered) <= len(unfiltered)


def test_legislation_totals_are_icmecs(superset_client: SupersetClient) -> None:
    (first,) = _chart_rows(superset_client, _chart_named(
        "Countries with dedicated grooming law, 1st edition"))
    (second,) = _chart_rows(superset_client, _chart_named(
        "Countries with dedicated grooming law, 2nd edition"))
    assert (first["value"], second["value"]) == (63, 77)
    coverage = _chart_rows(superset_client, _chart_named("Coverage by region and edition"))
    world = {r["edition_label"][:3]: (r["countries_with_law"], r["countries_reviewed"])
             for r in coverage if r["region"] == "World"}
    assert world == {"1st": (63, 196), "2nd": (77, 196)}


def test_world_maps_colour_countries_by_iso3(superset_client: SupersetClient) -> None:
    for edition in ("1st", "2nd"):
        rows = _chart_rows(superset_client, _chart_named(
            f"Dedicated grooming legislation by country, {edition} edition (illustrative)"))
        assert len(rows) >= 190
        assert all(len(r["iso3"]) == 3 and r["has_law"] in (0, 1) for r in rows)


def test_suppressed_counts_read_suppressed_never_zero(superset_client: SupersetClient) -> None:
    """Where the reporting layer withheld a count the tables say 'suppressed'."""
    rows = _chart_rows(superset_client, _chart_named(
        "Grooming stage by channel, region and year"))
    shown = Counter("suppressed" if r["cases_shown"] == "suppressed" else "number"
                    for r in rows)
    assert shown["number"] > 0
    assert all(r["cases_shown"] != "0" for r in rows)


def test_warehouse_connection_reads_reporting_only(superset_client: SupersetClient) -> None:
    """The dashboards' database connection is the viewer role: the published layer only."""
    db = _viewer_database_id(superset_client)
    ok = superset_client.http.post("/api/v1/sqllab/execute/", json={
        "database_id": db, "runAsync": False,
        "sql": "select count(*) as n from reporting.rpt_published_figures_yearly"})
    assert ok.status_code == 200 and ok.json()["data"][0]["n"] > 0
    refused = superset_client.http.post("/api/v1/sqllab/execute/", json={
        "database_id": db, "runAsync": False, "sql": "select 1 from raw.published_figures"})
    assert refused.status_code != 200
    assert "permission denied" in refused.text


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
    db = _viewer_database_id(superset_client)
    detail = superset_client.get_json(f"/api/v1/database/{db}/connection")["result"]
    assert f"{ROLES['viewer']}:XXXXXXXXXX@" in detail["sqlalchemy_uri"]


def test_anonymous_api_request_is_refused(superset_server: SupersetServer) -> None:
    for path in ("/api/v1/dashboard/", "/api/v1/chart/", "/api/v1/dataset/",
                 "/api/v1/assets/export/"):
        r = httpx.get(f"{superset_server.url}{path}", timeout=30)
        assert r.status_code == 401, (path, r.status_code)
    # the dashboard page sends an anonymous visitor to the login form, never the data
    r = httpx.get(f"{superset_server.url}/superset/dashboard/leadership-overview/", timeout=30)
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


def test_export_writes_a_change_made_in_the_ui_and_nothing_else(
        superset_server: SupersetServer, superset_client: SupersetClient, tmp_path: Path) -> None:
    """A chart edited on the server (as an analyst would in explore), exported: the change is
    the only difference from git, in that chart's own file, under its own name and comments."""
    source = bundle_dir(superset_server.settings)
    copy_of_git = tmp_path / "dashboards"
    shutil.copytree(source, copy_of_git)
    # unchanged server: nothing to write
    assert export_bundle(superset_server.settings, export_assets(superset_client),
                         copy_of_git) == []

    name, chart = next((n, c) for n, c in sorted(BUNDLE.items())
                       if n.startswith("charts/") and c["params"].get("row_limit"))
    ids = {str(r["uuid"]): r["id"] for r in superset_client.list_all("chart", ["id", "uuid"])}
    chart_id = ids[str(chart["uuid"])]
    params = json.loads(superset_client.get_json(f"/api/v1/chart/{chart_id}")["result"]["params"])
    params["row_limit"] = int(params["row_limit"]) + 7
    description = "Edited in the UI for the export test."
    try:
        superset_client.request("PUT", f"/api/v1/chart/{chart_id}", json={
            "params": json.dumps(params), "description": description})
        written = export_bundle(superset_server.settings, export_assets(superset_client),
                                copy_of_git)
    finally:
        import_bundle(superset_client, superset_server.settings)  # the server as git has it
    assert written == [name]
    before, after = (source / name).read_text(), (copy_of_git / name).read_text()
    assert after.startswith("".join(line for line in before.splitlines(True)
                                    if line.startswith("#")))  # its header comment kept
    old, new = yaml.safe_load(before), yaml.safe_load(after)
    assert new["description"] == description
    assert new["params"]["row_limit"] == params["row_limit"]
    new["description"], new["params"]["row_limit"] = old["description"], old["params"]["row_limit"]
    assert new == old  # nothing else changed, the placeholders included
    for other in source.rglob("*.yaml"):  # every other file byte for byte as in git
        rel = other.relative_to(source).as_posix()
        if rel != name:
            assert (copy_of_git / rel).read_text() == other.read_text(), rel
