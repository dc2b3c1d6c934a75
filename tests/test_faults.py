"""Faults survived, for real: the loading process killed mid-way, PostgreSQL stopped and
restarted under a load, Superset restarted. After each, running again gives the end state
exactly once: one batch loaded, every row once, the interrupted batch marked failed."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from itertools import product
from pathlib import Path

import psycopg
import pytest

from conftest import ROOT, TEST_HOME

MONTHS = [f"{y}-{m:02d}" for y in range(2012, 2025) for m in range(1, 13)]
CHANNELS = ["social_media", "gaming", "messaging", "live_video", "other", "unknown"]
TYPES = ["csam", "live_streaming", "sextortion", "harassment", "self_generated",
         "unwanted_exposure", "online_enticement"]
STAGES = ["victim_selection", "access_isolation", "trust_development", "desensitization",
          "post_abuse_maintenance", "unknown"]


@pytest.fixture(scope="module")
def big_delivery() -> tuple[Path, int]:
    """A partner file large enough that landing it takes a moment (~300k rows)."""
    countries = [line.split(",")[0] for line in
                 (ROOT / "dbt/seeds/ref_countries.csv").read_text().splitlines()[1:9]]
    path = TEST_HOME / "faults" / "partner_big_2012_2024.csv"
    path.parent.mkdir(parents=True, exist_ok=True)
    rows = 0
    with path.open("w") as f:
        f.write("month,country,channel,exploitation_type,grooming_stage,reporter_type,cases\n")
        for month, country, channel, kind, stage in product(MONTHS, countries, CHANNELS, TYPES,
                                                             STAGES):
            f.write(f"{month},{country},{channel},{kind},{stage},public,{rows % 97 + 1}\n")
            rows += 1
    return path, rows


def _ingest(path: Path) -> subprocess.Popen:
    exe = Path(sys.executable).with_name("safeguard")
    return subprocess.Popen([str(exe), "ingest", "--source", "sample_partner_aggregates",
                             str(path)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=os.environ, start_new_session=True)


def _wait_for_copy(conn: psycopg.Connection, file_name: str, timeout: float = 120) -> str:
    """Wait until the batch's rows are streaming into landing (COPY under way); its id. (The
    landing table is created in the COPY's own transaction, so it has no name others see.)"""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        row = conn.execute(
            "select b.batch_id from ops.batches b, pg_stat_progress_copy c "
            "where b.file_name = %s and b.status = 'landing' and c.tuples_processed > 0 "
            "and c.command = 'COPY FROM' and c.datname = current_database()",
            [file_name]).fetchone()
        if row:
            return str(row[0])
        time.sleep(0.02)
    raise AssertionError(f"{file_name} never started landing")


def _wait_for_landed(conn: psycopg.Connection, file_name: str, timeout: float = 300) -> str:
    """Wait until the batch has landed (validation under way, nothing loaded yet); its id."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        row = conn.execute("select batch_id from ops.batches where file_name = %s and "
                           "status = 'landed'", [file_name]).fetchone()
        if row:
            return str(row[0])
        time.sleep(0.02)
    raise AssertionError(f"{file_name} never landed")


@pytest.mark.parametrize("fault", ["process killed", "postgres restarted",
                                   "process killed after landing"])
def test_interrupted_load_completes_exactly_once_when_run_again(sg_settings, big_delivery,
                                                                 scratch, fault):
    """Killed while landing, or after landing and before loading, or the server restarted
    under it: the next run marks the batch abandoned at once (the run that held it is gone;
    no waiting an hour) and loads the file, every row once."""
    from safeguard.db.bootstrap import ensure_server
    from safeguard.db.embedded import EmbeddedPostgres

    if fault == "postgres restarted" and sg_settings.external_url:
        pytest.skip("the server is not ours to stop (DATABASE_URL)")
    path, rows = big_delivery
    admin = sg_settings.admin_url(sg_settings.warehouse_db)

    proc = _ingest(path)
    with psycopg.connect(admin, autocommit=True) as conn:
        if fault == "process killed after landing":
            interrupted = _wait_for_landed(conn, path.name)
        else:
            interrupted = _wait_for_copy(conn, path.name)
    if fault.startswith("process killed"):
        os.killpg(proc.pid, signal.SIGKILL)
    else:
        EmbeddedPostgres(sg_settings).stop()
    assert proc.wait(120) != 0
    if fault == "postgres restarted":
        ensure_server(sg_settings)

    # run again, as Airflow's retry (or the engineer) would
    proc = _ingest(path)
    out, err = proc.communicate(timeout=600)
    assert proc.returncode == 0, err[-3000:]
    assert f"read {rows} = loaded {rows} + quarantined 0" in out

    with psycopg.connect(admin, autocommit=True) as conn:
        batches = conn.execute(
            "select batch_id::text, status, rows_read, rows_loaded, message from ops.batches "
            "where file_name = %s order by started_at", [path.name]).fetchall()
        assert [b[1] for b in batches] == ["failed", "loaded"], batches
        stage = "landed" if fault.endswith("after landing") else "landing"
        assert batches[0][0] == interrupted and f"abandoned while {stage}" in batches[0][4]
        assert batches[0][2:4] == (0, 0)  # its books: nothing counted as read or loaded
        assert batches[1][2:4] == (rows, rows)
        loaded = conn.execute(
            "select count(*), count(distinct (month, country_code, channel, exploitation_type, "
            "grooming_stage)) from raw.partner_aggregates where batch_id = %s",
            [batches[1][0]]).fetchone()
        assert loaded == (rows, rows)  # every row once
        assert conn.execute("select count(*) from raw.partner_aggregates where batch_id = %s",
                            [interrupted]).fetchone()[0] == 0


def test_superset_restart_keeps_dashboards_and_users(superset_server):
    """Superset's metadata lives in PostgreSQL: a restart loses nothing."""
    from safeguard.superset.client import SupersetClient

    def inventory() -> tuple[set[str], set[str]]:
        with SupersetClient.for_server(superset_server) as client:
            boards = {d["slug"] for d in client.list_all("dashboard", ["slug"])}
            users = {u["username"] for u in client.get_json(
                "/api/v1/security/users/", params={"q": "(page_size:100)"})["result"]}
        return boards, users

    before = inventory()
    assert "leadership-overview" in before[0] and "admin" in before[1]
    superset_server.stop()
    assert superset_server.pid() is None
    superset_server.start(workers=False)  # as the session started it: reports' test starts them
    assert inventory() == before
