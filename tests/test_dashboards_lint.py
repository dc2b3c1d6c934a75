"""The dashboards bundle checked as files, before any Superset sees it.

Superset imports a bundle whose links are broken without complaint: a chart whose metric is
not on its dataset fails only when someone opens it, and native filter scopes are not
remapped on import (apache/superset#26338), so a filter that names a chart id the layout
does not have silently applies to the wrong charts or to none. These tests read
``dashboards/`` and the dbt reporting models' YAML, and need no server.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from safeguard.superset.access import DATABASE_ROLES
from safeguard.superset.bundle import chart_ids_to_uuids, read_bundle

ROOT = Path(__file__).resolve().parents[1]

#: the user a connection in git names: none (the import takes it from DATABASE_ROLES, so that a
#: role's name is written once, in safeguard.config.ROLES)
ROLE_SET_AT_IMPORT = "role-from-access-py"
BUNDLE = read_bundle(ROOT / "dashboards")


def _models(folder: str) -> dict[str, dict[str, Any]]:
    return {m["name"]: m for path in sorted((ROOT / "dbt" / "models" / folder).glob("*.yml"))
            for m in (yaml.safe_load(path.read_text()) or {}).get("models", [])}


#: The dbt models a dataset may read, by schema: the published layer, and for data engineers
#: the pipeline's own audit marts.
MODELS_BY_SCHEMA = {"reporting": _models("reporting"), "marts": _models("marts/ops")}
MODELS = MODELS_BY_SCHEMA["reporting"]
#: Which schemas a dataset may read, by the warehouse role its database connects as.
SCHEMAS_OF_ROLE = {"viewer": {"reporting"}, "analyst": {"reporting", "marts"}}


def _of(folder: str) -> dict[str, dict[str, Any]]:
    return {str(c["uuid"]): c for n, c in BUNDLE.items() if n.startswith(f"{folder}/")}


DATABASES, DATASETS, CHARTS, DASHBOARDS = (_of(f) for f in
                                          ("databases", "datasets", "charts", "dashboards"))
BY_SLUG = {d["slug"]: d for d in DASHBOARDS.values()}

#: The dashboards, their titles and the ids of their native filters: stable, because
#: bookmarks, permalinks and filter state saved by users refer to them.
EXPECTED = {
    "leadership-overview": ("Leadership overview",
                            ["lo-period", "lo-region", "lo-country", "lo-channel"]),
    "grooming-stages-channels": ("Grooming stages and channels",
                                 ["gs-period", "gs-region", "gs-country", "gs-channel"]),
    "global-legislation": ("Global legislation", ["gl-region", "gl-country"]),
    "hotline-operations": ("Hotline operations", ["ho-period", "ho-region", "ho-channel"]),
    "pipeline-health": ("Pipeline health", ["ph-period", "ph-source"]),
    "published-figures": ("Published figures", ["pf-publisher", "pf-series"]),
}

#: Charts a filter leaves out on purpose although their dataset has the column.
DELIBERATELY_UNFILTERED = {
    # the current backlog is the backlog at the data's as-of date, whatever the period
    "ho-period": {"Open cases by age, latest (SYNTHETIC)", "Current backlog by age (SYNTHETIC)"},
    # the period is the cases' month; warnings are dated by when a file was loaded
    "lo-period": {"Data-quality notes on published sources",
                  "Data-quality warnings on published sources"},
    # the latest delivery of each source, whenever it came: a source silent for the whole
    # period is exactly what the engineer must see
    "ph-period": {"Latest delivery per source"},
    # NCMEC's world-wide figures: a region or country would leave them empty (the banner
    # says the filters apply to the case charts only)
    "lo-region": {"Published figures by year", "Online enticement reports by year",
                  "Online enticement, change 2019 to 2020 (%)"},
    "lo-country": {"Published figures by year", "Online enticement reports by year",
                   "Online enticement, change 2019 to 2020 (%)"},
}

#: Reporting models built on generated or illustrative sample data, and the banner each needs.
SYNTHETIC_MODELS = {
    "rpt_cases_monthly", "rpt_stage_by_channel_yearly", "rpt_exploitation_types_yearly",
    "rpt_enticement_change_2019_2020", "rpt_case_handling_weekly", "rpt_case_backlog",
    "rpt_case_outcomes_monthly",
}
ILLUSTRATIVE_MODELS = {"rpt_legislation_by_country", "rpt_legislation_coverage"}
SYNTHETIC_BANNER = "SYNTHETIC SAMPLE DATA — not real cases; do not cite"
ILLUSTRATIVE_BANNER = "per-country values illustrative; totals as published by ICMEC"


def _charts_in_layout(dashboard: dict[str, Any]) -> list[dict[str, Any]]:
    return [item["meta"] for item in dashboard["position"].values()
            if isinstance(item, dict) and item.get("type") == "CHART"]


def _dataset_of(chart: dict[str, Any]) -> dict[str, Any]:
    return DATASETS[str(chart["dataset_uuid"])]


def _columns(dataset: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {c["column_name"]: c for c in dataset["columns"]}


def _metrics(dataset: dict[str, Any]) -> set[str]:
    return {m["metric_name"] for m in dataset["metrics"]}


def _filters(dashboard: dict[str, Any]) -> list[dict[str, Any]]:
    return dashboard["metadata"].get("native_filter_configuration", [])


def _temporal_filter_columns(chart: dict[str, Any]) -> set[str]:
    return {f["subject"] for f in chart["params"].get("adhoc_filters", [])
            if f.get("operator") == "TEMPORAL_RANGE"}


def _column_refs(params: dict[str, Any]) -> set[str]:
    """Every dataset column a chart's params name."""
    refs: set[str] = set()
    for key in ("groupby", "all_columns", "columns"):
        refs.update(c for c in params.get(key) or [] if isinstance(c, str))
    for key in ("x_axis", "entity", "granularity_sqla"):
        if isinstance(params.get(key), str):
            refs.add(params[key])
    refs.update(f["subject"] for f in params.get("adhoc_filters", [])
                if f.get("expressionType") == "SIMPLE")
    refs.update(json.loads(c)[0] for c in params.get("order_by_cols", []))
    return refs


def _metric_refs(params: dict[str, Any]) -> set[str]:
    refs = {m for m in params.get("metrics") or [] if isinstance(m, str)}
    refs.update(params[k] for k in ("metric", "secondary_metric", "x_axis_sort")
                if isinstance(params.get(k), str))
    return refs


def test_the_dashboards_are_there() -> None:
    assert {slug: d["dashboard_title"] for slug, d in BY_SLUG.items()} == {
        slug: title for slug, (title, _) in EXPECTED.items()}


def test_uuids_are_unique_and_every_link_resolves() -> None:
    uuids = [str(c["uuid"]) for n, c in BUNDLE.items() if n != "metadata.yaml"]
    assert len(uuids) == len(set(uuids))
    for chart in CHARTS.values():
        assert str(chart["dataset_uuid"]) in DATASETS, chart["slice_name"]
        assert chart["viz_type"] == chart["params"]["viz_type"], chart["slice_name"]
    for dataset in DATASETS.values():
        assert str(dataset["database_uuid"]) in DATABASES, dataset["table_name"]
    on_a_dashboard = set()
    for dashboard in DASHBOARDS.values():
        for meta in _charts_in_layout(dashboard):
            assert meta["uuid"] in CHARTS, (dashboard["slug"], meta["sliceName"])
            assert meta["sliceName"] == CHARTS[meta["uuid"]]["slice_name"]
            on_a_dashboard.add(meta["uuid"])
    assert set(CHARTS) == on_a_dashboard, "charts on no dashboard"


def _role_of(database: dict[str, Any]) -> str:
    (name,) = (n for n, c in BUNDLE.items() if c is database)
    return DATABASE_ROLES[name]


def test_each_database_connects_as_its_read_only_role() -> None:
    """Every connection says whose rights it uses (safeguard.superset.access), logs in as
    that warehouse role, and can neither write nor upload; only the analyst's is in SQL Lab."""
    assert {n for n in BUNDLE if n.startswith("databases/")} == set(DATABASE_ROLES)
    for database in DATABASES.values():
        role = _role_of(database)
        assert database["sqlalchemy_uri"].startswith(f"postgresql+psycopg2://{ROLE_SET_AT_IMPORT}:"
                                                     ), database["database_name"]
        for flag in ("allow_dml", "allow_ctas", "allow_cvas", "allow_csv_upload"):
            assert database[flag] is False, (database["database_name"], flag)
        assert database["expose_in_sqllab"] is (role == "analyst"), database["database_name"]


@pytest.mark.parametrize("name", sorted(d["table_name"] for d in DATASETS.values()))
def test_dataset_is_a_published_model_with_its_columns(name: str) -> None:
    """Datasets read physical tables of dbt models their connection's role may read (the
    dashboards' viewer: the published layer only), with columns the dbt model declares: a
    column renamed in dbt fails here, not on a dashboard."""
    (dataset,) = (d for d in DATASETS.values() if d["table_name"] == name)
    schema = dataset["schema"]
    assert schema in SCHEMAS_OF_ROLE[_role_of(DATABASES[str(dataset["database_uuid"])])]
    assert dataset["sql"] is None
    models = MODELS_BY_SCHEMA[schema]
    assert name in models, f"{name} is not a model of schema {schema} in dbt/models"
    declared = {c["name"] for c in models[name].get("columns", [])}
    physical = {c["column_name"] for c in dataset["columns"] if not c["expression"]}
    assert physical <= declared, f"not in the dbt model: {physical - declared}"
    if dataset["main_dttm_col"]:
        assert _columns(dataset)[dataset["main_dttm_col"]]["is_dttm"]


@pytest.mark.parametrize("uuid", sorted(CHARTS), ids=lambda u: CHARTS[u]["slice_name"])
def test_chart_names_only_fields_of_its_dataset(uuid: str) -> None:
    chart = CHARTS[uuid]
    dataset = _dataset_of(chart)
    columns = _columns(dataset)
    params = chart["params"]
    assert _column_refs(params) <= set(columns), _column_refs(params) - set(columns)
    assert _metric_refs(params) <= _metrics(dataset) | set(columns), (
        _metric_refs(params) - _metrics(dataset))
    for column in _temporal_filter_columns(chart):
        assert columns[column]["is_dttm"], f"time filter on non-temporal {column}"
    # the saved query (GET /api/v1/chart/<id>/data/, reports) asks for the same fields
    (query,) = json.loads(chart["query_context"])["queries"]
    named = {c if isinstance(c, str) else c["sqlExpression"] for c in query["columns"]}
    assert named <= set(columns)
    assert set(query.get("metrics") or []) <= _metrics(dataset)
    assert {f["col"] for f in query["filters"]} <= set(columns)


@pytest.mark.parametrize("slug", sorted(EXPECTED))
def test_native_filters_point_at_charts_and_datasets_of_the_bundle(slug: str) -> None:
    dashboard = BY_SLUG[slug]
    layout = _charts_in_layout(dashboard)
    ids = [meta["chartId"] for meta in layout]
    assert len(ids) == len(set(ids)), "chart ids must be unique within a dashboard's layout"
    chart_of_id = {i: CHARTS[u] for i, u in chart_ids_to_uuids(dashboard["position"]).items()}
    filters = _filters(dashboard)
    assert [f["id"] for f in filters] == [f"NATIVE_FILTER-{i}" for i in EXPECTED[slug][1]]
    for native in filters:
        name = native["id"].removeprefix("NATIVE_FILTER-")
        # not remapped on import: a stored list would name another server's chart ids
        assert "chartsInScope" not in native and "tabsInScope" not in native
        assert native["scope"]["rootPath"] == ["ROOT_ID"]
        assert set(native["scope"]["excluded"]) <= set(ids), f"{name}: unknown chart ids"
        in_scope = [c for i, c in chart_of_id.items() if i not in native["scope"]["excluded"]]
        assert in_scope, f"{name} applies to no chart"
        if native["filterType"] == "filter_time":
            assert native["targets"] == [{}]
            can_filter = {u for u, c in CHARTS.items()
                          if any(col["is_dttm"] for col in _dataset_of(c)["columns"])}
            for chart in in_scope:  # a time range applies to a chart's TEMPORAL_RANGE filter
                assert _temporal_filter_columns(chart), f"{name}: {chart['slice_name']!r}"
        else:
            (target,) = native["targets"]
            column = target["column"]["name"]
            assert target["datasetUuid"] in DATASETS, f"{name}: dataset not in the bundle"
            assert column in _columns(DATASETS[target["datasetUuid"]])
            can_filter = {u for u, c in CHARTS.items() if column in _columns(_dataset_of(c))}
        for chart in in_scope:
            assert str(chart["uuid"]) in can_filter, (
                f"{name} applies to {chart['slice_name']!r}, whose dataset cannot take it")
        left_out = {c["slice_name"] for i, c in chart_of_id.items()
                    if str(c["uuid"]) in can_filter and c not in in_scope}
        assert left_out == DELIBERATELY_UNFILTERED.get(name, set()), (
            f"{name} leaves out charts it could filter: {left_out}")


@pytest.mark.parametrize("slug", sorted(EXPECTED))
def test_dashboard_says_on_its_face_what_its_data_is(slug: str) -> None:
    """The first thing on a dashboard over sample data is a banner that says so, and the
    sources are named."""
    dashboard = BY_SLUG[slug]
    position = dashboard["position"]
    first_row = position[position["GRID_ID"]["children"][0]]
    (banner_id,) = first_row["children"]
    assert position[banner_id]["type"] == "MARKDOWN"
    banner = position[banner_id]["meta"]["code"]
    charts = [CHARTS[m["uuid"]] for m in _charts_in_layout(dashboard)]
    models = {_dataset_of(c)["table_name"] for c in charts}
    headline = {f["comparator"] for c in charts for f in c["params"]["adhoc_filters"]
                if f["subject"] == "metric_code"}
    if any(c["viz_type"] == "table" and c["params"]["adhoc_filters"] == [] for c in charts
           if _dataset_of(c)["table_name"] == "rpt_headline_figures"):
        headline.add("all")  # the full headline table
    if models & SYNTHETIC_MODELS:
        assert SYNTHETIC_BANNER in banner
    if models & ILLUSTRATIVE_MODELS:
        assert ILLUSTRATIVE_BANNER in banner.replace("ILLUSTRATIVE SAMPLE DATA — ", "")
    if "rpt_published_figures_yearly" in models or headline & {
            "all", "enticement_change_2019_2020_pct"}:
        assert "NCMEC CyberTipline" in banner
    if models & ILLUSTRATIVE_MODELS or any(h.startswith(("all", "countries")) for h in headline):
        assert "ICMEC" in banner and "Model Legislation & Global Review" in banner
    for meta in _charts_in_layout(dashboard):
        chart = CHARTS[meta["uuid"]]
        if _dataset_of(chart)["table_name"] in SYNTHETIC_MODELS:
            assert "SYNTHETIC" in chart["slice_name"] + chart["description"], chart["slice_name"]


@pytest.mark.parametrize("name", sorted(m for m in MODELS if any(
    c["name"] == "is_suppressed" for c in MODELS[m].get("columns", []))
    and any(d["table_name"] == m for d in DATASETS.values())))
def test_suppressed_counts_are_labelled_never_zero(name: str) -> None:
    """Every count a model may withhold has a display column that says 'suppressed', and no
    dataset expression turns a withheld NULL into 0."""
    (dataset,) = (d for d in DATASETS.values() if d["table_name"] == name)
    shown = [c for c in dataset["columns"] if c["expression"]
             and re.search(r"THEN 'suppressed'", c["expression"])]
    assert shown, f"{name}: no column labels suppressed values"
    for expression in [c["expression"] for c in dataset["columns"] if c["expression"]] + [
            m["expression"] for m in dataset["metrics"]]:
        assert not re.search(r"coalesce\([^)]*,\s*0\)", expression, re.I), expression


def _over_case_data(slug: str) -> bool:
    return any(_dataset_of(CHARTS[m["uuid"]])["table_name"] in SYNTHETIC_MODELS
               for m in _charts_in_layout(BY_SLUG[slug]))


@pytest.mark.parametrize("slug", sorted(s for s in EXPECTED if _over_case_data(s)))
def test_suppressed_values_are_visible_in_a_table(slug: str) -> None:
    """Charts leave withheld cells out; each dashboard over case data also has a table that
    shows them as 'suppressed'."""
    charts = [CHARTS[m["uuid"]] for m in _charts_in_layout(BY_SLUG[slug])]
    labelled = [c for c in charts if c["viz_type"] == "table" and any(
        "'suppressed'" in (_columns(_dataset_of(c))[col]["expression"] or "")
        for col in c["params"]["all_columns"])]
    assert labelled
