"""What follows each release: the fact sheet (HTML and PDF: ``safeguard factsheet``) written
again, and the dashboards' chart-data cache warmed with the new figures.

Scheduled on the published tables' Asset, which every release updates, so the fact sheet in
``$SAFEGUARD_HOME/reports/`` always shows the latest release: the default theme (online
grooming) and year (the latest with published data). It reads the published tables only, as
the viewer role, and prints through Debian's headless Chromium. A fact sheet that cannot be
written fails this DAG (and alerts), never the release.

Beside it, ``warm_dashboards`` empties Superset's chart-data cache (a release changes the
figures under the same cache keys) and computes every chart of the published dashboards again
(safeguard.superset.warm); with no Superset running it ends skipped.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from airflow.sdk import dag, task

from safeguard.assets import published_asset
from safeguard.dag_ids import FACTSHEET_DAG
from safeguard.notify import task_failed, task_retrying


@dag(
    dag_id=FACTSHEET_DAG,
    doc_md=__doc__,
    schedule=published_asset(),
    start_date=datetime(2024, 1, 1, tzinfo=UTC),
    catchup=False,
    max_active_runs=1,
    tags=["safeguard", "advocacy"],
    default_args={"owner": "safeguard", "retries": 1, "retry_delay": timedelta(seconds=30),
                  "on_failure_callback": task_failed, "on_retry_callback": task_retrying},
)
def safeguard_factsheet():
    @task
    def write_factsheet() -> dict:
        """Write the fact sheet of the latest release into the reports folder; return the
        paths written (file names only: no figure leaves through XCom)."""
        from safeguard.tasks import factsheet as run

        return run()

    @task
    def warm_dashboards() -> dict:
        """Superset's chart-data cache emptied and every chart of the published dashboards
        computed again; skipped when Superset is not running. Counts only in XCom."""
        from safeguard.tasks import warm_dashboards as run

        return run()

    write_factsheet()
    warm_dashboards()


safeguard_factsheet()
