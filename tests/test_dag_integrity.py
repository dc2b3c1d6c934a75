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
    ingest = dagbag.dags["ingest__ncmec_cybertipline"]
    outlets = {o.uri for t in ingest.tasks for o in t.outlets}
    assert "safeguard://warehouse/raw/published_figures" in outlets
    scheduled_on = {a.uri for a in dag.timetable.asset_condition.iter_assets().values()} \
        if hasattr(dag.timetable.asset_condition, "iter_assets") else {
            dag.timetable.asset_condition.uri}
    assert scheduled_on == outlets
