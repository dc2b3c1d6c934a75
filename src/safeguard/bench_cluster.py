"""``make bench``'s cluster step: ingest throughput through Airflow on Celery, 1 worker then 2.

A network of partner hotlines delivering together: ``BENCH_CLUSTER_FILES`` hotline case
extracts (default 6) of ``BENCH_CLUSTER_ROWS`` cases each (default 50,000), generated with
``safeguard generate``, one per source. Each source is a copy of the sample hotline contract
under a name of its own (``bench_hotline_01`` ...; in a contracts folder of the bench's,
``SAFEGUARD_CONTRACTS_DIR``), so each has its own ingest DAG and the deliveries may load side
by side: one source loads one file at a time (``max_active_runs=1``), and that would measure
nothing about workers.

For each topology, ``safeguard.cluster`` starts the API server, scheduler, DAG processor,
triggerer and the workers (every one serving ``ingest``; ``SAFEGUARD_CELERY_CONCURRENCY`` task
processes each, default 2; the kind's pool as large as all workers' processes, so that it is
the workers that limit), every DAG but the bench's paused (no dbt build competes for the
CPU), and the same files are triggered at once through the REST API. Throughput is rows read
and files over the time from the first trigger until the last run finished (scheduling
included: what a delivering partner sees). The batches are removed between the two, so the
second loads the same content again instead of finding it known. Every process started is
stopped at the end (``Cluster.down``), whatever happened.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path
from typing import Any

from safeguard.config import env, export_env

#: the bench's sources, ``bench_hotline_01`` ...
PREFIX = "bench_hotline_"
#: the topologies measured, in workers
TOPOLOGIES = (1, 2)
#: settings the step sets for itself, and puts back afterwards
SETTINGS = ("SAFEGUARD_EXECUTOR", "SAFEGUARD_CONTRACTS_DIR", "SAFEGUARD_CELERY_QUEUES",
            "SAFEGUARD_INGEST_POOL_SLOTS", "AIRFLOW_PORT", "REDIS_URL")


def bench_contract(text: str, name: str) -> str:
    """The sample hotline contract as source ``name``'s: its own name (so its own DAG), no
    schedule (its DAG runs when triggered, never on its own during the measurement) and no
    generated sample (its drop folder holds the bench's file)."""
    out = []
    for line in text.splitlines():
        if line.startswith("name:"):
            line = f"name: {name}"
        elif line.startswith(("schedule:", "generated_by:")):
            continue
        out.append(line)
    return "\n".join(out) + "\n"


def worker_queues(workers: int) -> str:
    """``SAFEGUARD_CELERY_QUEUES`` for the step: every worker serves ``ingest`` (and
    ``default``), since loading is what it measures."""
    return " ".join(["ingest,default"] * workers)


def rates(rows: int, files: int, seconds: float) -> dict[str, float]:
    return {"seconds": round(seconds, 2), "rows_per_s": round(rows / seconds, 1),
            "files_per_s": round(files / seconds, 4)}


def ratio(results: dict[str, dict[str, Any]]) -> float | None:
    """Rows/s with 2 workers over rows/s with 1 (None unless both ran)."""
    one, two = results.get("1"), results.get("2")
    if not one or not two:
        return None
    return round(two["rows_per_s"] / one["rows_per_s"], 2)


def _log(message: str) -> None:
    print(message, flush=True)


def _deliveries(s: Any, names: list[str], cases: int, seed: int) -> dict[str, tuple[str, int]]:
    """One generated hotline extract per source, in its drop folder: name -> (file, rows)."""
    from safeguard.generate import HOTLINE_CONTRACT, generate_files

    out = {}
    for i, name in enumerate(names):
        work = s.home / "inputs-cluster" / name
        shutil.rmtree(work, ignore_errors=True)
        work.mkdir(parents=True)
        summary = generate_files(work, cases, seed + i)
        data, rows = next((Path(p), n) for p, n in summary.files.items()
                          if Path(p).parent.name == HOTLINE_CONTRACT)
        target = s.drop_root / name / data.name
        target.parent.mkdir(parents=True, exist_ok=True)
        for old in target.parent.iterdir():
            old.unlink()
        shutil.move(data, target)
        out[name] = (target.name, rows)
    return out


def _remove_batches(s: Any, names: list[str]) -> None:
    """The bench sources' batches and their rows, so the same files load again."""
    import psycopg
    from psycopg import sql

    with psycopg.connect(s.admin_url(s.warehouse_db), autocommit=True) as conn:
        batches = "select batch_id from ops.batches where source_name = any(%s)"
        for schema, table in conn.execute(
                "select table_schema, table_name from information_schema.columns where "
                "column_name = 'batch_id' and table_schema in ('raw', 'quarantine', 'ops') "
                "and table_name <> 'batches' and table_name not like 'landing%%'").fetchall():
            conn.execute(sql.SQL("delete from {} where batch_id in (" + batches + ")").format(
                sql.Identifier(schema, table)), [names])
        conn.execute("delete from ops.batches where source_name = any(%s)", [names])


def _measure(s: Any, workers: int, deliveries: dict[str, tuple[str, int]],
             timeout: float) -> dict[str, Any]:
    """Trigger every delivery at once on a running cluster; wait for all runs to finish."""
    import psycopg

    from safeguard.airflow_env import airflow_port, api_token, trigger_run
    from safeguard.dag_ids import ingest_dag_id

    base = f"http://127.0.0.1:{airflow_port()}"
    prefix = f"bench_{workers}w_{int(time.time())}_"
    names = sorted(deliveries)
    token = api_token(s, base)
    with psycopg.connect(s.url("airflow", s.airflow_db), autocommit=True) as conn:
        t0 = time.monotonic()
        for name in names:
            trigger_run(base, token, ingest_dag_id(name), prefix + name,
                        {"file": deliveries[name][0]})
        deadline = t0 + timeout
        while True:
            states = dict(conn.execute(
                "select state, count(*) from dag_run where run_id like %s group by state",
                [prefix + "%"]).fetchall())
            if sum(n for st, n in states.items() if st in ("success", "failed")) == len(names):
                break
            if time.monotonic() > deadline:
                raise RuntimeError(f"cluster, {workers} worker(s): the runs did not finish "
                                   f"within {timeout:.0f}s ({states})")
            time.sleep(1)
        took = time.monotonic() - t0
        hosts = dict(conn.execute(
            "select hostname, count(*) from task_instance where run_id like %s "
            "group by hostname", [prefix + "%"]).fetchall())
    with psycopg.connect(s.admin_url(s.warehouse_db)) as conn:
        read, loaded, quarantined, batches = conn.execute(
            "select coalesce(sum(rows_read), 0), coalesce(sum(rows_loaded), 0), "
            "coalesce(sum(rows_quarantined), 0), count(*) from ops.batches "
            "where source_name = any(%s)", [names]).fetchone()
    return {"workers": workers, **rates(int(read), len(names), took),
            "runs": states, "batches": batches, "rows_read": int(read),
            "rows_loaded": int(loaded), "rows_quarantined": int(quarantined),
            "tasks_per_worker": hosts}


def run(s: Any, seed: int) -> dict[str, Any]:
    """The step; its figures (``results`` by workers, and ``ratio``)."""
    from safeguard.airflow_env import airflow
    from safeguard.cluster import Cluster
    from safeguard.ports import free_port
    from safeguard.runner import prepare

    files = int(env("BENCH_CLUSTER_FILES", "6") or 6)
    cases = int(env("BENCH_CLUSTER_ROWS", "50000") or 50000)
    concurrency = int(env("SAFEGUARD_CELERY_CONCURRENCY", "2") or 2)
    names = [f"{PREFIX}{i:02d}" for i in range(1, files + 1)]
    saved = {k: env(k) for k in SETTINGS}
    folder = s.home / "cluster-contracts"
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    template = (s.root / "contracts" / "sample_hotline_cases.yml").read_text()
    for name in names:
        (folder / f"{name}.yml").write_text(bench_contract(template, name))
    out: dict[str, Any] = {"files": files, "cases_per_file": cases,
                           "concurrency_per_worker": concurrency, "results": {}}
    try:
        export_env("SAFEGUARD_EXECUTOR", "celery")
        export_env("SAFEGUARD_CONTRACTS_DIR", str(folder))
        export_env("REDIS_URL", None)  # the bench's own Redis, as its own PostgreSQL
        export_env("AIRFLOW_PORT", env("BENCH_AIRFLOW_PORT") or str(free_port()))
        # the kind's pool never the limit: as many slots as two workers' processes
        export_env("SAFEGUARD_INGEST_POOL_SLOTS", str(max(TOPOLOGIES) * concurrency))
        _log(f"cluster: generating {files} hotline extracts of {cases:,} cases ...")
        deliveries = _deliveries(s, names, cases, seed)
        out["rows"] = sum(r for _, r in deliveries.values())
        _log("cluster: Airflow's metadata and DAGs ...")
        prepare(s)
        # only the bench's DAGs run: no dbt build, release or other source in the way
        airflow(s, "dags", "pause", "--treat-dag-id-as-regex", "-y",
                f"^(?!ingest__{PREFIX})", capture=True)
        for workers in TOPOLOGIES:
            export_env("SAFEGUARD_CELERY_QUEUES", worker_queues(workers))
            _remove_batches(s, names)
            group = Cluster(s, workers)
            try:
                _log(f"cluster: starting with {workers} worker(s) ...")
                group.up(echo=lambda _line: None)
                figures = _measure(s, workers, deliveries, timeout=1800)
            finally:
                group.down()
            out["results"][str(workers)] = figures
            _log(f"cluster, {workers} worker(s): {files} files, {figures['rows_read']:,} rows "
                 f"in {figures['seconds']:.1f}s ({figures['rows_per_s']:,.0f} rows/s)")
    finally:
        for name, value in saved.items():
            export_env(name, value)
    out["ratio"] = ratio(out["results"])
    return out


def print_table(c: dict[str, Any]) -> None:
    print()
    print(f"ingest through Airflow on Celery: {c['files']} hotline extracts of "
          f"{c['cases_per_file']:,} cases, one per source, triggered at once "
          f"({c.get('rows', 0):,} rows; {c['concurrency_per_worker']} task processes per "
          "worker)")
    for workers, r in sorted(c["results"].items()):
        noun = "worker " if workers == "1" else "workers"
        runs = ", ".join(f"{n} {st}" for st, n in sorted(r["runs"].items()))
        print(f"  {workers} {noun} {r['seconds']:9.1f}s {r['rows_per_s']:>10,.0f} rows/s "
              f"{r['files_per_s']:8.3f} files/s  runs: {runs}; read {r['rows_read']:,} = "
              f"loaded {r['rows_loaded']:,} + quarantined {r['rows_quarantined']:,}; tasks: "
              + ", ".join(f"{h.split('@')[0]} {n}"
                          for h, n in sorted(r["tasks_per_worker"].items())))
    if c.get("ratio") is not None:
        print(f"  ratio 2 workers / 1 worker (rows/s): {c['ratio']:.2f}x")
