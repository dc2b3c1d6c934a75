"""The Airflow DAG ids, written once: the DAG files, the runner and the CLI take them here."""

#: dbt build of the warehouse (dags/safeguard_transform.py)
TRANSFORM_DAG = "safeguard_transform"

#: the daily release of the published tables (dags/safeguard_release.py)
RELEASE_DAG = "safeguard_release"


def ingest_dag_id(contract_name: str) -> str:
    """One ingest DAG per source contract (dags/safeguard_ingest.py)."""
    return f"ingest__{contract_name}"

#: the fact sheet, written again after each release (dags/safeguard_factsheet.py)
FACTSHEET_DAG = "safeguard_factsheet"

#: the Celery queues the tasks are sent to (``SAFEGUARD_EXECUTOR=celery``: safeguard.cluster;
#: LocalExecutor ignores them): loads, dbt, and the rest (releases, the fact sheet)
INGEST_QUEUE = "ingest"
DBT_QUEUE = "dbt"
DEFAULT_QUEUE = "default"

#: Airflow pools (created by ``airflow_env.migrate``, for either executor): dbt runs one task at
#: a time, whatever starts it; each source kind's loads take a slot of their kind's pool
DBT_POOL = "dbt"


def ingest_pool(kind: str) -> str:
    """The pool of every ingest DAG's tasks of one source kind (``ingest_partner_aggregates``)."""
    return f"ingest_{kind}"
