"""dbt build of the warehouse (staging -> marts -> reporting), whenever a raw table changes.

Scheduled on the raw tables' Assets, so it runs after any successful load and never after a
rejected one; serialised (``max_active_runs=1``) because concurrent dbt runs on the same
models race.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from functools import reduce

from airflow.sdk import dag, task

from safeguard.assets import raw_asset
from safeguard.config import settings
from safeguard.contracts import all_contracts

_raw_tables = sorted({c.kind.raw_table for c in all_contracts(settings()).values()})


@dag(
    dag_id="safeguard_transform",
    doc_md=__doc__,
    schedule=reduce(lambda a, b: a | b, [raw_asset(t) for t in _raw_tables]),
    start_date=datetime(2024, 1, 1, tzinfo=UTC),
    catchup=False,
    max_active_runs=1,
    tags=["safeguard", "dbt"],
    default_args={"owner": "safeguard", "retries": 1, "retry_delay": timedelta(seconds=30)},
)
def safeguard_transform():
    @task
    def dbt_build() -> None:
        """dbt build: seeds, models, data tests and unit tests, as the transformer role."""
        from safeguard.tasks import dbt_build as run

        run()

    dbt_build()


safeguard_transform()
