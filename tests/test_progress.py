"""Long work says what it is doing (issue 16): `safeguard run` a line per DAG run and task state
change and dbt's progress; `safeguard ingest` a bar on a terminal and timestamped lines
elsewhere; `safeguard status` the DAG runs and tasks running now. All of it real: Airflow
(`dags test`), dbt, PostgreSQL, and a pseudo-terminal for the bar."""

from __future__ import annotations

import io
import os
import re
import select
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import safeguard_cli

STAMP = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ ")
ELAPSED = re.compile(r"^\[(\d\d):(\d\d)\] (.*)$")
#: safeguard.progress.duration: 4.2s, 1m05s, 2h03m (a run on a busy machine passes a minute)
DURATION = r"(?:[\d.]+s|\d+m\d\ds|\d+h\d\dm)"
SOURCES = ("cybertip_incident_types", "icmec_grooming_legislation", "inhope_iccam",
           "iwf_annual_reports", "ncmec_cybertipline", "ncmec_reports_by_country",
           "sample_hotline_cases", "sample_partner_aggregates")
CASES = 200_000


# --- safeguard run -------------------------------------------------------------------------------

def _watched(stdout: str) -> list[tuple[int, str]]:
    """The run's "[mm:ss] ..." lines, as (seconds since it began, text)."""
    out = []
    for line in stdout.splitlines():
        m = ELAPSED.match(line)
        if m:
            out.append((int(m[1]) * 60 + int(m[2]), m[3]))
    return out


def test_dbt_progress_says_what_runs_only_while_something_runs():
    """The "still running" line is for a long model; once dbt's nodes are done it stays quiet,
    though the watch goes on (the fact sheet DAG runs after the build)."""
    from safeguard.transform import DbtProgress

    node = {"unique_id": "model.safeguard.fct_x", "node_name": "fct_x",
            "resource_type": "model", "node_status": "success"}
    progress = DbtProgress(interval=0)
    progress.feed({"info": {"name": "LogStartLine", "invocation_id": "a"},
                   "data": {"node_info": node, "total": 1}})
    assert progress.tick() == ["dbt 0/1 done, running model fct_x (0.0s)"]
    said = progress.feed({"info": {"name": "LogModelResult", "invocation_id": "a"},
                          "data": {"node_info": node, "total": 1, "execution_time": 1.5}})
    assert said == ["dbt 1/1 model fct_x success 1.5s"]
    assert progress.tick() == []


def test_dbt_progress_says_nothing_after_dbts_command_ended():
    """A node whose end was never seen (a log turned at the wrong moment, dbt killed) is not
    "running" once dbt says its command completed, nor once every node is counted."""
    from safeguard.transform import DbtProgress

    def a_started_b_and_a_ended(total: int) -> DbtProgress:
        """Nodes a and b started, a ended; of b's end nothing was seen."""
        def event(name: str, node: str) -> dict:
            return {"info": {"name": name, "invocation_id": "i"},
                    "data": {"total": total, "node_info": {
                        "unique_id": f"model.safeguard.{node}", "node_name": node,
                        "resource_type": "model", "node_status": "success"}}}

        progress = DbtProgress(interval=0)
        for said in (event("LogStartLine", "a"), event("LogStartLine", "b"),
                     event("LogModelResult", "a")):
            progress.feed(said)
        return progress

    progress = a_started_b_and_a_ended(total=2)
    assert progress.tick() == ["dbt 1/2 done, running model b (0.0s)"]
    progress.feed({"info": {"name": "CommandCompleted", "invocation_id": "i"}, "data": {}})
    assert progress.tick() == []
    assert a_started_b_and_a_ended(total=1).tick() == []  # every node counted


def test_dbt_log_loses_no_event_when_dbt_turns_the_file(tmp_path):
    """dbt's own file handler (a RotatingFileHandler) renames dbt.log to dbt.log.1 at its size
    limit: the events written to the old file after the last read are still read, once."""
    import logging
    from logging.handlers import RotatingFileHandler

    from safeguard.watch import DbtLog

    path = tmp_path / "dbt.log"
    handler = RotatingFileHandler(path, maxBytes=400, backupCount=5)
    handler.setFormatter(logging.Formatter("%(message)s"))
    logger = logging.getLogger("test_dbt_log_turns")
    logger.propagate, logger.handlers = False, [handler]
    logger.setLevel(logging.INFO)
    try:
        logger.info('{"info": {"name": "before"}}')
        log = DbtLog(path)  # follows from here on
        seen = []
        for i in range(40):
            logger.info('{"info": {"name": "e%d"}, "data": {"pad": "%s"}}', i, "x" * 30)
            if i % 7 == 3:  # read now and then: some turns fall between two reads
                seen += log.events()
        seen += log.events()
    finally:
        handler.close()
    assert path.with_name("dbt.log.2").exists()  # it turned more than once
    assert [e["info"]["name"] for e in seen] == [f"e{i}" for i in range(40)]


def test_run_says_each_dag_run_and_task_state_change_and_dbt_progress(pipeline_run_output):
    from safeguard.dag_ids import TRANSFORM_DAG, ingest_dag_id

    lines = _watched(pipeline_run_output.stdout)
    assert lines, pipeline_run_output.stdout[-3000:]
    assert [t for t, _ in lines] == sorted(t for t, _ in lines)  # time since the run began
    text = [line for _, line in lines]

    def states(what: str) -> list[str]:
        return [line.split(": ", 1)[1] for line in text if line.startswith(f"{what}: ")]

    for dag, tasks in [*((ingest_dag_id(s), ("land", "validate_and_load")) for s in SOURCES),
                       (TRANSFORM_DAG, ("dbt_build",))]:
        run = states(dag)
        assert re.fullmatch(r"run manual__\S+ running", run[0]), run
        assert re.fullmatch(rf"run success after {DURATION}", run[-1]), run
        for task in tasks:
            seen = [s.split(" ")[0] for s in states(f"{dag}.{task}")]
            # what was seen of scheduled -> queued -> running -> success, each change once, in
            # that order (a short state may fall between two polls, so any of them may be missed)
            assert seen[-1] == "success" and len(seen) == len(set(seen)), (task, seen)
            order = ("scheduled", "queued", "running", "success")
            assert seen == [s for s in order if s in seen], (task, seen)
            assert re.fullmatch(rf"success after {DURATION}", states(f"{dag}.{task}")[-1])
    # a dbt build takes long enough to be seen running
    assert "running" in [s.split(" ")[0] for s in states(f"{TRANSFORM_DAG}.dbt_build")]

    # dbt's progress, from its own JSON events: n of m nodes, the model, its outcome and time
    # (and, on a slow machine, now and then what still runs: "dbt 5/60 done, running ...")
    tick = re.compile(r"dbt \d+/\d+ done(?:, running (?:\w+ \S+ \([^)]+\)|\d+ tests?))?")
    nodes = [line for line in text if line.startswith("dbt ") and not tick.fullmatch(line)]
    node = re.compile(r"dbt (\d+)/(\d+) (\w+) (\w+) ([\w-]+)(?: ([\d.]+)s)?")  # no-op too
    dbt = [node.fullmatch(line) for line in nodes]
    assert dbt and all(dbt), [line for line in nodes if not node.fullmatch(line)][:5]
    totals = {int(m[2]) for m in dbt}
    assert len(totals) == 1 and all(0 < int(m[1]) <= int(m[2]) for m in dbt)
    done = [int(m[1]) for m in dbt]
    assert done == sorted(done)
    models = {m[4]: m[5] for m in dbt if m[3] == "model"}
    assert models.get("fct_hotline_cases") == "success"
    assert models.get("rpt_published_figures_yearly") == "success"
    assert len(models) >= 20
    # and they came while dbt_build ran: after the task was first seen (the state poll may
    # see it running a moment after dbt's log began), before its success line
    start = next(i for i, line in enumerate(text) if line.startswith(
        f"{TRANSFORM_DAG}.dbt_build: "))
    end = next(i for i, line in enumerate(text) if line.startswith(
        f"{TRANSFORM_DAG}.dbt_build: success"))
    assert all(start < i < end for i, line in enumerate(text) if line.startswith("dbt "))


# --- safeguard status ----------------------------------------------------------------------------

def test_status_names_the_running_dag_run_and_its_task(pipeline_done, tmp_path):
    """A real build, started as `safeguard run` starts it: while it runs, `safeguard status`
    names its run and the task it is at; once it ends, its run is no longer listed. (Other runs
    may be: a demo stopped mid-build leaves its run 'running' in Airflow's metadata, as Airflow
    itself shows it until a scheduler takes it up again.)"""
    from safeguard.airflow_env import airflow_env, airflow_exe
    from safeguard.dag_ids import TRANSFORM_DAG

    log = (tmp_path / "dags_test.log").open("w")
    build = subprocess.Popen([airflow_exe(), "dags", "test", TRANSFORM_DAG],
                             env=airflow_env(pipeline_done), stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline, said = time.monotonic() + 300, ""
        pattern = re.compile(rf"^  {TRANSFORM_DAG} +running +run (manual__\S+) since "
                             r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\dZ \([\d.ms]+\), at dbt_build "
                             r"\(running [\d.ms]+\)$", re.M)
        while not (seen := pattern.search(said)):
            assert build.poll() is None, f"the build ended before status saw it:\n{said}"
            assert time.monotonic() < deadline, said
            time.sleep(1)
            said = safeguard_cli("status", check=False).stdout
        assert said.startswith("running now:\n")
        run_id = seen.group(1)
        assert build.wait(600) == 0, (tmp_path / "dags_test.log").read_text()[-3000:]
    finally:
        if build.poll() is None:
            build.terminate()
            build.wait(60)
        log.close()
    after = safeguard_cli("status", check=False).stdout
    assert after.startswith("running now:") and run_id not in after, after


# --- safeguard ingest ----------------------------------------------------------------------------

@pytest.fixture(scope="module")
def cases_file(tmp_path_factory) -> Path:
    """A synthetic hotline extract of 200,000 cases (its own seed: not the pipeline's sample)."""
    from safeguard.generate import generate

    folder = tmp_path_factory.mktemp("big")
    (path,) = [p for p in generate(folder, cases=CASES, seed=16) if "hotline" in p.name]
    return path


def _through_a_terminal(args: list[str], timeout: float = 300) -> tuple[int, str]:
    """Run the CLI with stdin, stdout and stderr on a pseudo-terminal; return its exit code
    and everything it wrote there."""
    main, child = os.openpty()
    exe = Path(sys.executable).with_name("safeguard")
    proc = subprocess.Popen([str(exe), *args], stdin=child, stdout=child, stderr=child,
                            env={**os.environ, "TERM": "xterm-256color", "COLUMNS": "120"})
    os.close(child)
    out = b""
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([main], [], [], 1)
            if ready:
                try:
                    data = os.read(main, 65536)
                except OSError:  # the child closed the terminal
                    break
                if not data:
                    break
                out += data
            elif proc.poll() is not None:
                break
        return proc.wait(30), out.decode("utf-8", "replace")
    finally:
        os.close(main)
        if proc.poll() is None:
            proc.kill()


def test_ingest_on_a_terminal_draws_a_bar_with_rows_rate_and_time_left(cases_file, scratch):
    code, out = _through_a_terminal(["ingest", "--source", "sample_hotline_cases",
                                     str(cases_file)])
    assert code == 0, out[-3000:]
    assert "\x1b[" in out and "\r" in out  # drawn in place
    frames = re.findall(r"([\d,]+)/~([\d,]+) rows +([\d,]+|-) rows/s", out)
    counts = {int(done.replace(",", "")) for done, _, _ in frames}
    assert len(counts) >= 2 and max(counts) == CASES, frames[:10]  # it moved, and got there
    assert {int(total.replace(",", "")) for _, total, _ in frames} == {CASES}
    assert any(rate != "-" and int(rate.replace(",", "")) > 0 for *_, rate in frames)
    assert re.search(r"\d+:\d\d:\d\d", out)  # the time left
    assert f"validating (Great Expectations) and loading {CASES:,} rows" in out
    assert f"read {CASES} = loaded {CASES} + quarantined 0" in out


def test_ingest_without_a_terminal_writes_timestamped_lines_only(cases_file, scratch):
    proc = safeguard_cli("ingest", "--source", "sample_hotline_cases", str(cases_file))
    for stream in (proc.stdout, proc.stderr):
        assert "\x1b" not in stream and "\r" not in stream
    progress = proc.stderr.splitlines()
    assert progress and all(STAMP.match(line) for line in progress), progress
    assert re.search(rf"landing {cases_file.name}: {CASES:,} rows in [\d.ms]+ \([\d,]+ rows/s\)",
                     proc.stderr)
    assert "validating (Great Expectations) and loading" in progress[-1]
    assert proc.stdout.startswith("loaded: ")


def test_plain_progress_lines_come_at_most_every_interval():
    from safeguard.progress import RowProgress

    out = io.StringIO()
    progress = RowProgress("landing f.csv", 1_000, stream=out, interactive=False, interval=0.2)
    for done in range(100, 1_001, 100):
        progress(done)
        time.sleep(0.05)
    progress.stage("validating ...")
    lines = out.getvalue().splitlines()
    assert all(STAMP.match(line) for line in lines)
    rates = [line for line in lines if "rows/s, about" in line]
    assert 1 <= len(rates) <= 4, lines  # ten updates in 0.5 s, a line per 0.2 s at most
    assert lines[0].endswith("landing f.csv ... (~1,000 rows)")
    assert "landing f.csv: 1,000 rows in" in lines[-2] and lines[-1].endswith("validating ...")
