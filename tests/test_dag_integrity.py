"""Every DAG file parses, and every DAG carries tags, retries and an explicit schedule."""

from __future__ import annotations

import pytest

from conftest import ROOT


@pytest.fixture(scope="module")
def dagbag():
    from airflow.dag_processing.dagbag import DagBag

    return DagBag(dag_folder=str(ROOT / "dags"))


def test_no_import_errors(dagbag):
    assert dagbag.import_errors == {}


def test_one_ingest_dag_per_contract_and_the_transform_dag(dagbag, sg_settings):
    from safeguard.contracts import all_contracts

    expected = {f"ingest__{n}" for n in all_contracts(sg_settings)} | {"safeguard_transform"}
    assert expected <= set(dagbag.dag_ids)


def test_every_dag_has_tags_retries_and_no_catchup(dagbag):
    assert dagbag.dags
    for dag_id, dag in dagbag.dags.items():
        assert dag.tags, f"{dag_id} has no tags"
        assert not dag.catchup, f"{dag_id} catches up"
        for t in dag.tasks:
            assert t.retries >= 1, f"{dag_id}.{t.task_id} has no retries"
            doc = t.doc_md or t.doc or getattr(getattr(t, "python_callable", None), "__doc__", None)
            assert doc, f"{dag_id}.{t.task_id} has no docstring"


def test_transform_is_scheduled_by_the_raw_assets(dagbag):
    dag = dagbag.dags["safeguard_transform"]
    outlets = {o.uri for dag_id, d in dagbag.dags.items() if dag_id.startswith("ingest__")
               for t in d.tasks for o in t.outlets}
    assert {f"safeguard://warehouse/raw/{t}" for t in
            ("published_figures", "hotline_cases", "partner_aggregates", "legislation_review")
            } == outlets

    def uris(condition) -> set[str]:  # Asset, or AssetAny(...) of them, nested
        if hasattr(condition, "uri"):
            return {condition.uri}
        return set().union(*(uris(c) for c in condition.objects))

    assert uris(dag.timetable.asset_condition) == outlets


def test_the_fact_sheet_follows_every_release_and_only_a_release(dagbag):
    """The release tasks (after dbt, and daily) update the published tables' Asset, and the
    fact sheet DAG is scheduled on it; a release with nothing new ends skipped, which updates
    no Asset (safeguard.tasks.release)."""
    from safeguard.assets import published_asset
    from safeguard.dag_ids import FACTSHEET_DAG, RELEASE_DAG, TRANSFORM_DAG

    published = published_asset().uri
    writers = {(dag_id, t.task_id) for dag_id, d in dagbag.dags.items() for t in d.tasks
               if published in {o.uri for o in t.outlets}}
    assert writers == {(TRANSFORM_DAG, "release"), (RELEASE_DAG, "release")}
    condition = dagbag.dags[FACTSHEET_DAG].timetable.asset_condition
    assert getattr(condition, "uri", None) == published


def test_the_dashboards_cache_is_warmed_after_every_release(dagbag):
    """Beside the fact sheet, on the same Asset, and apart from it (one failing leaves the other
    to run): the warm-up of Superset's chart-data cache (safeguard.superset.warm)."""
    from safeguard.dag_ids import FACTSHEET_DAG

    dag = dagbag.dags[FACTSHEET_DAG]
    assert {t.task_id for t in dag.tasks} == {"write_factsheet", "warm_dashboards"}
    assert not dag.get_task("warm_dashboards").upstream_task_ids


def test_a_load_rebuilds_only_the_models_downstream_of_its_table(sg_settings):
    """The transform run triggered by a legislation load selects the legislation models and
    what they need (and the seeds), not the hotline-only ones: dbt resolves the selection."""
    from safeguard.transform import dbt, selection_for

    assert selection_for([]) is None  # a run started by hand builds everything

    def listed(table: str) -> set[str]:
        selection = selection_for([f"safeguard://warehouse/raw/{table}"])
        return set(dbt(sg_settings, "ls", "--resource-type", "model", "--resource-type",
                       "snapshot", "--output", "name", "--select", selection).split())

    legislation = listed("legislation_review")
    assert {"stg_raw__legislation_review", "rpt_legislation_coverage",
            "stg_ops__batches"} <= legislation
    assert not {"rpt_case_handling_weekly", "snap_hotline_case_status"} & legislation
    assert {"fct_hotline_cases", "rpt_case_handling_weekly",
            "snap_hotline_case_status"} <= listed("hotline_cases")
