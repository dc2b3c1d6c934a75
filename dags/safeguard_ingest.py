"""Ingest DAGs, one per source contract in ``contracts/`` (dag_id ``ingest__<contract>``).

land (stream the file into its landing table with COPY) -> validate_and_load (the Great
Expectations gate, then good rows to ``raw`` and failing rows to ``quarantine`` in one
transaction). A successful load updates the raw table's Asset, which schedules the dbt DAG
(``safeguard_transform``). A bad file fails the run without retries, so dbt never sees it.

Trigger with ``{"file": "<name in the drop folder>"}``; without it the newest file in
``$SAFEGUARD_HOME/drop/<contract>/`` is read, or the contract's bundled sample.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from airflow.sdk import Param, dag, task

from safeguard.assets import raw_asset
from safeguard.config import settings
from safeguard.contracts import Contract, all_contracts


def build_ingest_dag(contract: Contract):
    @dag(
        dag_id=f"ingest__{contract.name}",
        description=contract.description,
        doc_md=__doc__,
        schedule=contract.schedule,
        start_date=datetime(2024, 1, 1, tzinfo=UTC),
        catchup=False,
        max_active_runs=1,  # one batch in a source's landing table at a time
        tags=["safeguard", "ingest", contract.kind.name],
        default_args={"owner": "safeguard", "retries": 2, "retry_delay": timedelta(seconds=30)},
        params={"file": Param("", type="string",
                              description="File in the drop folder; empty: newest, or sample")},
    )
    def ingest():
        @task
        def land(params=None, run_id=None) -> dict:
            """Stream the file into raw.landing__<contract> and open a batch in ops.batches."""
            from safeguard.tasks import land as run

            return run(contract.name, (params or {}).get("file") or None,
                       f"airflow:ingest__{contract.name}/{run_id}")

        @task(outlets=[raw_asset(contract.kind.raw_table)])
        def validate_and_load(landed: dict) -> dict:
            """Run the GX checkpoint; load good rows, quarantine failing ones, account for all."""
            from safeguard.tasks import validate_and_load as run

            return run(contract.name, landed)

        validate_and_load(land())

    return ingest()


for _contract in all_contracts(settings()).values():
    globals()[f"ingest__{_contract.name}"] = build_ingest_dag(_contract)
