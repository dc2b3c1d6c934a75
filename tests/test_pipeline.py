"""The walking skeleton end to end: Airflow lands the NCMEC file, GX passes it, dbt builds
the marts, and the published layer says +97.5%. A bad file is stopped at the GX gate."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

from conftest import ROOT, safeguard_cli

NCMEC = {  # public figures, as published by NCMEC
    ("online_enticement", 2019): 19174, ("online_enticement", 2020): 37872,
    ("online_enticement", 2021): 44155, ("online_enticement", 2022): 80524,
    ("cybertipline_reports_total", 2019): 16987361,
    ("cybertipline_reports_total", 2020): 21751085,
    ("cybertipline_reports_total", 2021): 29397681,
    ("cybertipline_reports_total", 2022): 32059029,
}


def test_rows_land_in_raw_with_lineage(pipeline_done, warehouse):
    rows = warehouse.execute(
        "select f.category, f.year, f.value, b.file_name, b.file_sha256, b.status, b.rows_read,"
        " b.rows_loaded, b.rows_quarantined, b.run_by from raw.published_figures f"
        " join ops.batches b using (batch_id) where b.source_name = 'ncmec_cybertipline'"
    ).fetchall()
    assert {(r[0], r[1]): r[2] for r in rows} == NCMEC
    for r in rows:
        assert r[3] == "ncmec_cybertipline_2019_2022.csv"
        assert len(r[4]) == 64
        assert r[5] == "loaded" and (r[6], r[7], r[8]) == (8, 8, 0)
        assert r[9].startswith("airflow:ingest__ncmec_cybertipline/")


def test_published_layer_says_online_enticement_rose_97_5_percent(pipeline_done):
    with psycopg.connect(pipeline_done.url("viewer")) as conn:  # what dashboards read
        rows = conn.execute(
            "select category_code, year, figure_value, yoy_change_pct, source_name,"
            " is_synthetic from reporting.rpt_published_figures_yearly"
            " where publisher = 'ncmec' and series = 'cybertipline_reports'"
            " and country_code is null").fetchall()
    by_key = {(r[0], r[1]): r for r in rows}
    assert {k: r[2] for k, r in by_key.items()} == NCMEC
    assert float(by_key[("online_enticement", 2020)][3]) == 97.5
    assert by_key[("online_enticement", 2019)][3] is None  # no year before 2019 published
    assert all(r[4].startswith("NCMEC") and r[5] is False for r in rows)


def test_dbt_build_passes_again_and_changes_nothing(pipeline_done, warehouse):
    from safeguard.transform import build

    before = warehouse.execute(
        "select * from marts.fct_published_figures_yearly order by figure_id").fetchall()
    output = build(pipeline_done)
    assert "Completed successfully" in output and "ERROR=0" in output
    assert "unit_test" in output  # the yoy unit tests ran
    after = warehouse.execute(
        "select * from marts.fct_published_figures_yearly order by figure_id").fetchall()
    assert before == after


def test_same_file_again_is_recognised_and_not_loaded_twice(pipeline_done, warehouse):
    proc = safeguard_cli("ingest", "--source", "ncmec_cybertipline",
                         str(ROOT / "data/sample/ncmec_cybertipline_2019_2022.csv"))
    assert proc.stdout.startswith("duplicate:")
    assert warehouse.execute(
        "select count(*) from raw.published_figures p join ops.batches b using (batch_id)"
        " where b.source_name = 'ncmec_cybertipline'").fetchone()[0] == 8


@pytest.fixture()
def bad_file(pipeline_done):
    """The sample with a negative count, an unknown incident type and a year before 1998."""
    text = (ROOT / "data/sample/ncmec_cybertipline_2019_2022.csv").read_text()
    text = (text.replace('"37,872"', "-5")
                .replace('Total CyberTipline reports,"29,397,681"', 'Sextortion,"29,397,681"')
                .replace("2022,Online", "1990,Online"))
    drop = pipeline_done.home / "drop" / "ncmec_cybertipline"
    drop.mkdir(parents=True, exist_ok=True)
    path = drop / "ncmec_bad.csv"
    path.write_text(text)
    yield path
    shutil.rmtree(drop)


def _airflow_db(s, query: str, params: list | None = None) -> list[tuple]:
    with psycopg.connect(s.url("airflow", s.airflow_db)) as conn:
        return conn.execute(query, params).fetchall()


RAW_EVENTS = ("select e.source_dag_id, e.source_task_id, e.source_run_id from asset_event e "
              "join asset a on a.id = e.asset_id where a.name = 'raw.published_figures'")
TRANSFORM_QUEUE = "select asset_id, created_at from asset_dag_run_queue " \
                  "where target_dag_id = 'safeguard_transform' order by 1"


def test_bad_file_is_stopped_by_gx_and_nothing_reaches_the_marts(pipeline_done, bad_file,
                                                                  warehouse):
    """The GX gate failing: the load task fails once (no retries for a bad file), emits no
    event on the raw table's Asset, so the dbt DAG is not queued; raw, marts and the published
    layer keep their last good state; the batch, its issues and an alert say why."""
    from safeguard.runner import dags_test

    s = pipeline_done
    marts_before = warehouse.execute(
        "select * from marts.fct_published_figures_yearly order by figure_id").fetchall()
    reporting_before = warehouse.execute(
        "select * from reporting.rpt_published_figures_yearly order by 1, 2, 3").fetchall()
    events_before = _airflow_db(s, RAW_EVENTS)
    assert ("ingest__ncmec_cybertipline", "validate_and_load") in {e[:2] for e in events_before}
    queue_before = _airflow_db(s, TRANSFORM_QUEUE)
    alerts = s.home / "logs" / "alerts.jsonl"
    alerts_before = alerts.read_text().count("\n") if alerts.exists() else 0

    state = dags_test(s, "ingest__ncmec_cybertipline", {"file": bad_file.name})
    assert state == "failed"

    (run_id,) = _airflow_db(s, "select run_id from dag_run where dag_id = "
                               "'ingest__ncmec_cybertipline' order by id desc limit 1")[0]
    tasks = dict((t, (st, n)) for t, st, n in _airflow_db(
        s, "select task_id, state, try_number from task_instance where run_id = %s",
        [run_id]))
    assert tasks == {"land": ("success", 1), "validate_and_load": ("failed", 1)}
    # no Asset event from the failed run: safeguard_transform (dbt) is not queued by it
    assert _airflow_db(s, RAW_EVENTS) == events_before
    assert not [e for e in _airflow_db(s, RAW_EVENTS) if e[2] == run_id]
    assert _airflow_db(s, TRANSFORM_QUEUE) == queue_before
    logged = [json.loads(line) for line in alerts.read_text().splitlines()[alerts_before:]]
    assert [(e["task_id"], e["event"]) for e in logged if e["run_id"] == run_id] == \
        [("validate_and_load", "failed")]
    assert "ncmec_bad.csv, row 3, column value: rule count_is_whole_non_negative" in \
        logged[-1]["message"]
    assert warehouse.execute(
        "select * from reporting.rpt_published_figures_yearly order by 1, 2, 3").fetchall() \
        == reporting_before

    batch_id, status, read, loaded, quarantined, message = warehouse.execute(
        "select batch_id, status, rows_read, rows_loaded, rows_quarantined, message"
        " from ops.batches where file_name = 'ncmec_bad.csv'").fetchone()
    assert (status, read, loaded, quarantined) == ("rejected", 8, 0, 8)
    # the message names the file, the row (as numbered in the file), the column and the rule
    assert "ncmec_bad.csv, row 3, column value: rule count_is_whole_non_negative" in message
    assert "ncmec_bad.csv, row 8, column category: rule known_category" in message
    assert "ncmec_bad.csv, row 5, column year: rule year_in_range" in message

    reasons = dict(warehouse.execute(
        "select source_row_number, reasons from quarantine.rows where batch_id = %s",
        [batch_id]).fetchall())
    assert len(reasons) == 8
    assert [r["rule"] for r in reasons[2]] == ["count_is_whole_non_negative"]
    assert reasons[1][0]["rule"] == "batch_rejected"
    issues = {r[0] for r in warehouse.execute(
        "select rule from ops.batch_issues where batch_id = %s", [batch_id])}
    assert issues == {"count_is_whole_non_negative", "known_category", "year_in_range"}

    # no raw row from it, and the marts are as they were
    assert warehouse.execute("select count(*) from raw.published_figures where batch_id = %s",
                             [batch_id]).fetchone()[0] == 0
    assert warehouse.execute(
        "select * from marts.fct_published_figures_yearly order by figure_id").fetchall() \
        == marts_before


def test_cli_ingest_exit_codes_and_messages(pipeline_done, tmp_path):
    wrong_header = tmp_path / "renamed.csv"
    wrong_header.write_text("Year,Type,Reports\n2020,Online Enticement,1\n")
    proc = safeguard_cli("ingest", "--source", "ncmec_cybertipline", str(wrong_header),
                         check=False)
    assert proc.returncode == 2
    assert "renamed.csv, row 1 (header)" in proc.stderr
    assert "Missing: ['Incident type']" in proc.stderr and "Unknown: ['Type']" in proc.stderr


def test_roles_are_least_privilege(pipeline_done):
    def can_read(role: str, table: str) -> bool:
        with psycopg.connect(pipeline_done.url(role)) as conn:
            try:
                conn.execute(f"select 1 from {table} limit 1")
                return True
            except psycopg.errors.InsufficientPrivilege:
                return False

    for table in ("raw.published_figures", "quarantine.rows", "ops.batches",
                  "marts.fct_published_figures_yearly"):
        assert not can_read("viewer", table), table
    assert can_read("viewer", "reporting.rpt_published_figures_yearly")
    assert can_read("analyst", "marts.fct_published_figures_yearly")
    assert not can_read("analyst", "raw.published_figures")
    assert not can_read("analyst", "quarantine.rows")
    assert not can_read("transformer", "quarantine.rows")


def test_status_reports_last_batch(pipeline_done):
    proc = safeguard_cli("status", check=False)
    assert "ncmec_cybertipline" in proc.stdout
    json.dumps(proc.stdout)  # printable


def _increment_file(folder: Path, cases: int) -> Path:
    """A delivery of ``cases`` new synthetic cases (ids no earlier delivery used)."""
    path = folder / "hotline_cases_2024-06.csv"
    lines = ["Case ID,Received,Reporter,Channel,Exploitation types,Highest grooming stage,"
             "Victim age band,Country,Triaged,Assessment,Referred to,Referred,Closed"]
    for i in range(cases):
        forms = "CSAM;Sextortion" if i % 3 == 0 else "Online enticement"
        lines.append(f"INC-2024-{i:05d},2024-06-{1 + i % 28:02d}T10:00:00Z,Member of the public,"
                     f"Social media,{forms},Trust development,14-15,FR,"
                     f"2024-06-{1 + i % 28:02d}T12:00:00Z,Actionable,Law enforcement,"
                     f"2024-06-{1 + i % 28:02d}T20:00:00Z,")
    path.write_text("\n".join(lines) + "\n")
    return path


def test_an_increment_merges_only_the_new_batch(pipeline_done, warehouse, scratch, tmp_path):
    """After a delivery, the incremental models merge the new batch's cases and nothing else:
    not the history, not the batches an earlier run already merged (what makes an increment
    cost what it adds: issue 13). Counted by the merge's own stamp, merged_at."""
    from safeguard.transform import build

    models = "fct_hotline_cases fct_case_exploitation_types"
    build(pipeline_done, select=models)  # whatever earlier tests left unmerged, merged now
    total = warehouse.execute("select count(*) from cases.fct_hotline_cases").fetchone()[0]
    cases = 37
    safeguard_cli("ingest", "--source", "sample_hotline_cases",
                  str(_increment_file(tmp_path, cases)))
    try:
        build(pipeline_done, select=models)
        merged = warehouse.execute(
            "select count(*), count(*) filter (where case_key in (select case_key from "
            "raw.hotline_cases where batch_id = (select batch_id from ops.batches where "
            "source_name = 'sample_hotline_cases' order by started_at desc limit 1))) "
            "from cases.fct_hotline_cases "
            "where merged_at = (select max(merged_at) from cases.fct_hotline_cases)").fetchone()
        assert merged == (cases, cases), (merged, total)
        forms = warehouse.execute(
            "select count(*) from cases.fct_case_exploitation_types "
            "where merged_at = (select max(merged_at) from cases.fct_case_exploitation_types)"
        ).fetchone()[0]
        assert forms == sum(2 if i % 3 == 0 else 1 for i in range(cases))
        assert warehouse.execute("select count(*) from cases.fct_hotline_cases"
                                 ).fetchone()[0] == total + cases
        # a run with nothing new merges nothing
        stamp = warehouse.execute("select max(merged_at) from cases.fct_hotline_cases"
                                  ).fetchone()[0]
        build(pipeline_done, select=models)
        assert warehouse.execute("select max(merged_at) from cases.fct_hotline_cases"
                                 ).fetchone()[0] == stamp
    finally:
        # the scratch fixture removes the batch from raw and ops; the two models are rebuilt
        # from what is left, so the tests that follow see the pipeline's cases only
        from conftest import _remove_batches_since

        t0 = warehouse.execute("select min(started_at) from ops.batches where file_name = %s",
                               ["hotline_cases_2024-06.csv"]).fetchone()[0]
        if t0 is not None:
            _remove_batches_since(warehouse, t0)
        build(pipeline_done, select=models, full_refresh=True)


def _chart_tables() -> dict[str, set[str]]:
    """schema.table of every dataset a chart of the bundle reads -> the charts reading it."""
    import yaml

    datasets = {}
    for path in (ROOT / "dashboards" / "datasets").rglob("*.yaml"):
        d = yaml.safe_load(path.read_text())
        datasets[d["uuid"]] = d
    tables: dict[str, set[str]] = {}
    for path in (ROOT / "dashboards" / "charts").glob("*.yaml"):
        chart = yaml.safe_load(path.read_text())
        d = datasets[chart["dataset_uuid"]]
        # a chart reads a physical table: no SQL run per view over the case-level facts
        assert not d.get("sql"), f"{path.name} reads a virtual dataset"
        tables.setdefault(f"{d['schema']}.{d['table_name']}", set()).add(chart["slice_name"])
    return tables


#: more distinct values than a code list of the published grains has (countries: about 250):
#: a column past it would vary per case or per delivery row
DOMAIN_BOUND = 400

#: the tables published as a grid in two levels (README, privacy model: zeros look like small
#: counts): their rows are not fewer than the cases on small data, but bounded all the same -
#: per group of the grid (these columns), at most this many rows (the cells of its breakdown:
#: the countries of the largest region, or the 24 outcomes; and a remainder row)
GROUPED_GRIDS = {
    "reporting.rpt_cases_monthly": (
        ("period_start", "region", "channel_code", "source_kind", "is_synthetic"), 54 + 1),
    "reporting.rpt_case_outcomes_monthly": (
        ("period_start", "region", "channel_code", "is_synthetic"), 4 * 6 + 1),
}


def test_every_table_a_chart_reads_is_a_pre_aggregate(pipeline_done, warehouse):
    """Charts read pre-aggregated tables (issue 13), so that a dashboard's query costs what
    the published grain costs, whatever the number of cases: each table a chart of the bundle
    reads has fewer rows than there are cases (a table published as a grid in two levels: at
    most its groups times the cells of a group's breakdown, which on the sample's few cases is
    more than the cases), carries no case key, and each of its dimension
    columns (every column but the measures) takes its values from a small domain - a
    calendar of periods or a list of codes - so its rows are bounded by the product of those
    domains, not by the cases. (`make bench` shows the row counts at 1M cases.)"""
    tables = _chart_tables()
    assert {t.split(".")[0] for t in tables} <= {"reporting", "marts"}
    cases = warehouse.execute("select count(*) from cases.fct_hotline_cases").fetchone()[0]
    assert cases >= 10_000, cases  # enough cases that a case-level column would show
    for table, charts in sorted(tables.items()):
        schema, name = table.split(".")
        ref = sql.SQL("{}.{}").format(sql.Identifier(schema), sql.Identifier(name))
        rows = warehouse.execute(sql.SQL("select count(*) from {}").format(ref)).fetchone()[0]
        if table in GROUPED_GRIDS:
            group, per_group = GROUPED_GRIDS[table]
            groups, largest = warehouse.execute(sql.SQL(
                "select count(*), max(n) from (select count(*) as n from {} group by {}) g"
            ).format(ref, sql.SQL(", ").join(map(sql.Identifier, group)))).fetchone()
            assert largest <= per_group, (table, largest, per_group)
            assert rows <= groups * per_group, (table, rows, groups)
        else:
            assert rows < cases, f"{table} ({rows} rows for {cases} cases) read by {charts}"
        columns = dict(warehouse.execute(
            "select column_name, data_type from information_schema.columns "
            "where table_schema = %s and table_name = %s", [schema, name]).fetchall())
        assert columns and not set(columns) & {"case_key", "case_id"}, (table, columns)
        dimensions = [c for c, t in columns.items()
                      if t not in ("integer", "bigint", "numeric", "double precision", "real")]
        widest = warehouse.execute(sql.SQL("select {} from {}").format(
            sql.SQL(", ").join(sql.SQL("count(distinct {})").format(sql.Identifier(c))
                               for c in dimensions), ref)).fetchone()
        for column, distinct in zip(dimensions, widest, strict=True):
            if columns[column] == "date":  # periods: one a week at most (and the latest day)
                low, high = warehouse.execute(sql.SQL("select min({0}), max({0}) from {1}")
                                              .format(sql.Identifier(column), ref)).fetchone()
                bound = (high - low).days // 7 + 2 if low else 0
            else:
                bound = DOMAIN_BOUND
            assert distinct <= bound, (
                f"{table}.{column} takes {distinct} values (at most {bound} for a dimension "
                f"of a pre-aggregate), read by {charts}")
