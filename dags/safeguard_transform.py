"""dbt build of the warehouse (staging -> marts -> the release candidate), whenever a raw table
changes: only the models downstream of the tables that changed; then a release publishes the
candidate into reporting (embargo and revision gate: safeguard.release).

Scheduled on the raw tables' Assets, so it runs after any successful load and never after a
rejected one; serialised (``max_active_runs=1``, and its tasks in pool ``dbt`` of one slot, so
that a backfill or a run by hand cannot overlap either) because concurrent dbt runs on the same
models race.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from functools import reduce

from airflow.sdk import dag, task

from safeguard.assets import published_asset, raw_asset
from safeguard.config import settings
from safeguard.contracts import all_contracts
from safeguard.dag_ids import DBT_POOL, DBT_QUEUE, TRANSFORM_DAG
from safeguard.notify import task_failed, task_retrying

_raw_tables = sorted({c.kind.raw_table for c in all_contracts(settings()).values()})


@dag(
    dag_id=TRANSFORM_DAG,
    doc_md=__doc__,
    schedule=reduce(lambda a, b: a | b, [raw_asset(t) for t in _raw_tables]),
    start_date=datetime(2024, 1, 1, tzinfo=UTC),
    catchup=False,
    max_active_runs=1,
    max_active_tasks=1,
    tags=["safeguard", "dbt"],
    default_args={"owner": "safeguard", "retries": 1, "retry_delay": timedelta(seconds=30),
                  "on_failure_callback": task_failed, "on_retry_callback": task_retrying,
                  "queue": DBT_QUEUE,  # the Celery workers that run dbt (cluster only)
                  # one slot: no build or release beside another, a backfill's or a hand's
                  "pool": DBT_POOL},
)
def safeguard_transform():
    @task
    def dbt_build(triggering_asset_events=None) -> None:
        """dbt build of what the loads changed: the seeds, and every model, snapshot and test
        downstream of the raw tables whose Assets triggered this run (all of it when the run
        was started by hand), as the transformer role."""
        from safeguard.tasks import dbt_build as run
        from safeguard.transform import selection_for

        uris = [getattr(asset, "uri", str(asset)) for asset in (triggering_asset_events or {})]
        run(selection_for(uris))

    @task(outlets=[published_asset()])
    def release(dag_run=None) -> None:
        """Publish what dbt built: a new numbered release of the reporting tables, with the
        embargo counted to the day this run was due (safeguard.release: embargo and gate)."""
        from safeguard.tasks import release as run

        run(dag_run.run_after.date() if dag_run is not None else None)

    dbt_build() >> release()


safeguard_transform()
