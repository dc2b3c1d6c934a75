"""The daily release of the published tables: periods whose embargo ends today are published
even when no delivery came (safeguard.release). A release with nothing new makes no release;
the transform DAG also releases after each dbt build."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from airflow.sdk import dag, task

from safeguard.assets import published_asset
from safeguard.dag_ids import RELEASE_DAG
from safeguard.notify import task_failed, task_retrying


@dag(
    dag_id=RELEASE_DAG,
    doc_md=__doc__,
    schedule="@daily",
    start_date=datetime(2024, 1, 1, tzinfo=UTC),
    catchup=False,
    max_active_runs=1,
    tags=["safeguard", "release"],
    default_args={"owner": "safeguard", "retries": 2, "retry_delay": timedelta(minutes=5),
                  "on_failure_callback": task_failed, "on_retry_callback": task_retrying},
)
def safeguard_release():
    @task(outlets=[published_asset()])
    def release(dag_run=None) -> None:
        """A release of the candidate dbt built last, with the embargo counted to the day the
        run was due; nothing new, no release."""
        from safeguard.tasks import release as run

        run(dag_run.run_after.date() if dag_run is not None else None)

    release()


safeguard_release()
