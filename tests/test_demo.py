"""`make demo`'s job, for real: every service started, the pipeline run green through the
Airflow scheduler, the dashboards imported; then Ctrl-C stops everything it started."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import psutil
import pytest

from conftest import TEST_HOME
from safeguard.ports import free_port


@pytest.mark.superset
def test_demo_runs_the_pipeline_through_the_scheduler_and_stops_cleanly(tmp_path):
    home = TEST_HOME.parent / "test-demo"
    subprocess.run(["rm", "-rf", str(home)], check=True)
    airflow_port, superset_port = free_port(), free_port()
    env = {**os.environ, "SAFEGUARD_HOME": str(home), "SAFEGUARD_PG_PORT": str(free_port()),
           "AIRFLOW_PORT": str(airflow_port), "SUPERSET_PORT": str(superset_port)}
    log = tmp_path / "demo.log"
    exe = Path(sys.executable).with_name("safeguard")
    with log.open("w") as out:
        proc = subprocess.Popen([str(exe), "demo"], env=env, stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True)
    try:
        deadline = time.monotonic() + 900
        while "Ctrl-C stops everything" not in log.read_text():
            assert proc.poll() is None, f"demo exited early:\n{log.read_text()[-4000:]}"
            assert time.monotonic() < deadline, f"demo not ready:\n{log.read_text()[-4000:]}"
            time.sleep(3)
        text = log.read_text()
        assert "pipeline: success" in text and "(+97.5%)" in text
        for slug in ("leadership-overview", "grooming-stages-channels", "global-legislation",
                     "hotline-operations"):
            assert f"/superset/dashboard/{slug}/" in text
        assert "generated synthetic sample" in text
        # the fact sheet DAG wrote the fact sheet after the release, and the demo says where
        sheet = re.search(r"fact sheet: (\S+\.pdf)", text)
        assert sheet, text[-3000:]
        pdf = Path(sheet[1])
        assert pdf.parent == home / "reports" and pdf.stat().st_size > 10_000
        assert pdf.with_suffix(".html").exists()
        # and where the report schedules live in Superset
        schedules = re.search(r"reports and alerts: http://\S+/alert/list/ \(Settings -> "
                              r"Alerts & reports\): (.*)", text)
        assert schedules and "Leadership overview, weekly" in schedules[1], text[-3000:]

        # the runs were made by the scheduler, the transform one triggered by the raw Asset
        secrets = dict(line.split("=", 1) for line in (home / "secrets.env").read_text()
                       .splitlines() if "=" in line and not line.startswith("#"))
        body = json.dumps({"username": "admin",
                           "password": secrets["AIRFLOW_ADMIN_PASSWORD"]}).encode()
        req = urllib.request.Request(f"http://127.0.0.1:{airflow_port}/auth/token", data=body,
                                     headers={"Content-Type": "application/json"})
        token = json.load(urllib.request.urlopen(req, timeout=30))["access_token"]
        req = urllib.request.Request(
            f"http://127.0.0.1:{airflow_port}/api/v2/dags/~/dagRuns?limit=50",
            headers={"Authorization": f"Bearer {token}"})
        runs = json.load(urllib.request.urlopen(req, timeout=30))["dag_runs"]
        states = {(r["dag_id"], r["run_type"], r["state"]) for r in runs}
        assert ("safeguard_transform", "asset_triggered", "success") in states
        for source in ("ncmec_cybertipline", "icmec_grooming_legislation", "sample_hotline_cases",
                       "sample_partner_aggregates"):
            assert any(d == f"ingest__{source}" and s == "success" for d, _, s in states)
        assert not any(s == "failed" for *_, s in states)

        # Superset serves the imported dashboard
        with urllib.request.urlopen(f"http://127.0.0.1:{superset_port}/health", timeout=30) as r:
            assert r.status == 200

        children = psutil.Process(proc.pid).children(recursive=True)
        started = {p.pid for p in children}
        # and everything it started (in their own sessions) belongs to this demo's home
        started |= {p.pid for p in psutil.process_iter(["cmdline", "environ"])
                    if _mentions(p, str(home))}
        assert started
    finally:
        os.killpg(proc.pid, signal.SIGINT)  # what Ctrl-C in the terminal does
        proc.wait(120)
    time.sleep(2)
    alive = [p for p in started if psutil.pid_exists(p)
             and psutil.Process(p).status() != psutil.STATUS_ZOMBIE]
    assert alive == [], f"left running after Ctrl-C: {alive}\n{log.read_text()[-2000:]}"
    assert "stopped." in log.read_text()


def _mentions(p: psutil.Process, text: str) -> bool:
    try:
        cmd = " ".join(p.info["cmdline"] or [])
        env = p.info["environ"] or {}
        return text in cmd or env.get("SAFEGUARD_HOME") == text
    except (psutil.Error, TypeError):
        return False
