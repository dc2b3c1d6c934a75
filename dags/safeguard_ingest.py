"""Ingest DAGs, one per source contract in ``contracts/`` (dag_id ``ingest__<contract>``).

land (stream the file into its landing table with COPY) -> validate_and_load (the Great
Expectations gate, then good rows to ``raw`` and failing rows to ``quarantine`` in one
transaction). A successful load updates the raw table's Asset, which schedules the dbt DAG
(``safeguard_transform``). A bad file fails the run without retries, so dbt never sees it.

Trigger with ``{"file": "<name in the drop folder>"}``; without it the newest file in
``$SAFEGUARD_HOME/drop/<contract>/`` is read, or the contract's bundled sample. Scheduled and
backfill runs read the file whose name dates it inside their data interval
(``partner_aggregates_2020-03.csv`` for March 2020), and are skipped when there is none; so
``airflow backfill create --dag-id ingest__<contract> --from-date ... --to-date ...`` loads a
date range, and re-running it loads nothing twice (the content hash is known).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from airflow.sdk import Param, dag, task

from safeguard.assets import raw_asset
from safeguard.config import settings
from safeguard.contracts import Contract, all_contracts
from safeguard.dag_ids import INGEST_QUEUE, ingest_dag_id, ingest_pool
from safeguard.notify import task_failed, task_retrying


def build_ingest_dag(contract: Contract):
    @dag(
        dag_id=ingest_dag_id(contract.name),
        description=contract.description,
        doc_md=__doc__,
        schedule=contract.schedule,
        start_date=datetime(2015, 1, 1, tzinfo=UTC),  # backfills may reach back this far
        catchup=False,
        max_active_runs=1,  # one batch in a source's landing table at a time
        # a backfill's run may overlap a scheduled one: its land then waits for the other's
        # load, which must still find a slot (so 2, and loads before lands: weight_rule)
        max_active_tasks=2,
        tags=["safeguard", "ingest", contract.kind.name],
        default_args={"owner": "safeguard", "retries": 2, "retry_delay": timedelta(seconds=30),
                      "on_failure_callback": task_failed, "on_retry_callback": task_retrying,
                      "queue": INGEST_QUEUE,  # the Celery workers that load (cluster only)
                      # loads of one source kind at once: SAFEGUARD_INGEST_POOL_SLOTS
                      "pool": ingest_pool(contract.kind.name),
                      # a landed batch loads before another source's file lands
                      "weight_rule": "upstream"},
        params={"file": Param("", type="string",
                              description="File in the drop folder; empty: newest, or sample")},
    )
    def ingest():
        @task
        def land(params=None, run_id=None, dag_run=None, data_interval_start=None,
                 data_interval_end=None) -> dict:
            """Stream the file into raw.landing__<contract> and open a batch in ops.batches."""
            from safeguard.tasks import land as run

            # scheduled and backfill runs read the delivery dated in their interval
            run_type = str(getattr(dag_run, "run_type", "manual"))
            interval = None
            if "manual" not in run_type and data_interval_start and data_interval_end:
                interval = (data_interval_start.date(), data_interval_end.date())
            return run(contract.name, (params or {}).get("file") or None,
                       f"airflow:{ingest_dag_id(contract.name)}/{run_id}", interval)

        @task(outlets=[raw_asset(contract.kind.raw_table)])
        def validate_and_load(landed: dict) -> dict:
            """Run the GX checkpoint; load good rows, quarantine failing ones, account for all."""
            from safeguard.tasks import validate_and_load as run

            return run(contract.name, landed)

        validate_and_load(land())

    return ingest()


for _contract in all_contracts(settings()).values():
    globals()[ingest_dag_id(_contract.name)] = build_ingest_dag(_contract)
