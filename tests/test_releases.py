"""Releases (issue 11, point 1): the published tables change only through a release, and two
releases a day apart give an attacker who holds both no withheld cell and no small group.

Real PostgreSQL, dbt and the CLI's own code path. Day 1 is the pipeline's own release of the
synthetic sample; day 2 adds a small delivery to it: a few late cases of a month released long
ago, a few cases of the month whose embargo ends on day 2, and a few of the month still open.
The attacker (written here, apart from the release code: it takes each table's grain and counts
from the dbt YAML's tests and disclosure notes, not from the release rules) compares the two
releases cell by cell - the earlier one as an engineer reads it in the audit copy, the current
one as the viewer reads it in ``reporting`` - and looks for what differencing gives away: a
published count that moved by 1 to k-1 (those few cases, with every attribute the cell names),
and a count that went between withheld and published (the withheld value, from the published
one and the group's change). It finds nothing in the releases, and the same attacker finds
small groups in two plain rebuilds of the same data (the candidate before and after: no embargo,
no gate), so the rules are what makes the difference.
"""

from __future__ import annotations

import csv
import json
from collections import defaultdict
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import psycopg
import pytest
import yaml
from psycopg import sql

from conftest import ROOT, _remove_batches_since, put_back_the_pipelines_release, safeguard_cli
from safeguard.release import TableRule, plan_release

K = 10
PLAIN_BEFORE = "releases_test_plain_before"
LATE_MONTH = date(2024, 11, 1)  # released long ago: its late cases are revisions
EMBARGO_DAYS = 14


# --- the attacker --------------------------------------------------------------------------

def _model_cells() -> dict[str, tuple[list[str], list[str]]]:
    """Per published model on case data: the columns naming a cell (its grain, from its
    uniqueness test, else every column that is not a number or a flag) and its counts (the
    columns whose disclosure note says count or metric)."""
    doc = yaml.safe_load((ROOT / "dbt/models/reporting/_reporting__models.yml").read_text())
    out = {}
    for m in doc["models"]:
        counts = [c["name"] for c in m.get("columns", [])
                  if ((c.get("config") or {}).get("meta") or {}).get("disclosure")
                  in ("count", "metric")]
        if not counts:
            continue
        grain = next((t["dbt_utils_free_unique_combination"]["arguments"]["columns"]
                      for t in m.get("data_tests") or [] if isinstance(t, dict)
                      and "dbt_utils_free_unique_combination" in t), None)
        if grain is None:
            grain = [c["name"] for c in m.get("columns", [])
                     if not ((c.get("config") or {}).get("meta") or {}).get("disclosure")
                     and not (c["name"].startswith("is_") and c["name"] != "is_synthetic")
                     and "name" not in c["name"]]
        out[m["name"]] = (grain, counts)
    return out


PERIOD_COLUMNS = ("period_start", "week_start", "as_of_date", "year")


def _period(row: dict) -> object:
    return next((row[c] for c in PERIOD_COLUMNS if c in row), None)


def attack(before: dict[str, list[dict]], after: dict[str, list[dict]]) -> list[str]:
    """What differencing two versions of the published tables gives away: cells of a period
    published in both whose count moved by 1..k-1, or went between withheld and published
    (or appeared withheld where the period showed no such row: an exact 0 before)."""
    findings = []
    for table, (grain, counts) in _model_cells().items():
        old_rows, new_rows = before.get(table, []), after.get(table, [])
        periods = {_period(r) for r in old_rows}
        old = {(json.dumps([r.get(c) for c in grain], default=str), c): r.get(c)
               for r in old_rows for c in counts}
        new = {(json.dumps([r.get(c) for c in grain], default=str), c): r.get(c)
               for r in new_rows for c in counts if _period(r) in periods}
        for cell in old.keys() | new.keys():
            a, b = old.get(cell, 0), new.get(cell, 0)
            if a == b or (a is None and b is None):
                continue
            if (a is None) != (b is None):
                findings.append(f"{table} {cell}: withheld <-> published ({a} -> {b})")
            elif 0 < abs(float(b) - float(a)) < K:
                findings.append(f"{table} {cell}: {a} -> {b}: a group of "
                                f"{abs(float(b) - float(a)):g}")
    return findings


def read_tables(conn: psycopg.Connection, schema: str) -> dict[str, list[dict]]:
    names = [r[0] for r in conn.execute(
        "select table_name from information_schema.tables where table_schema = %s", [schema])]
    return {n: [r[0] for r in conn.execute(sql.SQL("select to_jsonb(t) from {} t").format(
        sql.Identifier(schema, n)))] for n in names}


def read_release(conn: psycopg.Connection, release_no: int) -> dict[str, list[dict]]:
    out: dict[str, list[dict]] = defaultdict(list)
    for table, row in conn.execute("select table_name, row_data from releases.release_rows"
                                   " where release_no = %s", [release_no]):
        out[table].append(row)
    return dict(out)


# --- unit: the gate on its own ---------------------------------------------------------------

MONTHLY = TableRule("t", period="period_start", grain="month", key=("period_start", "c"),
                    counts=("cases",))


def _rows(*cells: tuple[str, str, int | None]) -> list[dict]:
    return [{"period_start": p, "c": c, "cases": n} for p, c, n in cells]


def test_a_small_revision_is_held_and_a_large_one_goes_out():
    prev = {"t": _rows(("2024-01-01", "a", 50), ("2024-01-01", "b", None),
                       ("2024-02-01", "a", 40))}
    cand = {"t": _rows(("2024-01-01", "a", 51), ("2024-01-01", "b", None),
                       ("2024-02-01", "a", 60), ("2024-03-01", "a", None))}
    plan = plan_release({"t": MONTHLY}, cand, prev, K)
    status = {g[1]: o.status for g, o in plan.outcomes["t"].items()}
    assert status == {"2024-01-01": "held", "2024-02-01": "revised", "2024-03-01": "new"}
    assert sorted(plan.rows["t"], key=str) == sorted(
        _rows(("2024-01-01", "a", 50), ("2024-01-01", "b", None), ("2024-02-01", "a", 60),
              ("2024-03-01", "a", None)), key=str)


def test_a_withheld_cell_that_would_be_published_is_held_with_its_period_everywhere():
    other = TableRule("u", period="period_start", grain="month", key=("period_start", "c"),
                      counts=("cases",))
    prev = {"t": _rows(("2024-01-01", "a", None), ("2024-01-01", "b", 30)),
            "u": _rows(("2024-01-01", "x", 100))}
    cand = {"t": _rows(("2024-01-01", "a", 10), ("2024-01-01", "b", 30)),
            "u": _rows(("2024-01-01", "x", 200))}
    plan = plan_release({"t": MONTHLY, "u": other}, cand, prev, K)
    assert plan.rows == prev  # u's revision alone would pass: held with t's, same month
    # a new withheld row in a released period is a 0 that became 1..k-1: held as well
    cand = {"t": prev["t"] + _rows(("2024-01-01", "c", None)), "u": prev["u"]}
    assert plan_release({"t": MONTHLY, "u": other}, cand, prev, K).rows == prev


def test_a_table_whose_missing_rows_are_withheld_holds_them_as_withheld():
    """rpt_cases_monthly declares ``absent: withheld``: a country has no row only inside a
    group withheld as a whole (one row for the group). Its country then coming out published
    is a withheld count published, held like one; coming out withheld is no change at all.
    Read as a published 0 (the default), the second would be held as withheld <-> published,
    and the period never revised again."""
    grouped = TableRule("t", period="period_start", grain="month", key=("period_start", "c"),
                        counts=("cases",), absent="withheld")
    prev = {"t": _rows(("2024-01-01", "XX", None))}
    published = {"t": _rows(("2024-01-01", "a", 40), ("2024-01-01", "XX", 12))}
    plan = plan_release({"t": grouped}, published, prev, K)
    assert plan.rows == prev
    assert plan.outcomes["t"][("month", "2024-01-01")].reasons == ["cases withheld <-> published"]
    withheld = {"t": _rows(("2024-01-01", "a", None), ("2024-01-01", "b", None),
                           ("2024-01-01", "XX", None))}
    plan = plan_release({"t": grouped}, withheld, prev, K)
    assert plan.rows == withheld and not plan.outcomes["t"][("month", "2024-01-01")].reasons
    assert plan_release({"t": MONTHLY}, withheld, prev, K).rows == prev


# --- integration: two releases a day apart ---------------------------------------------------

def _days(today: date) -> tuple[date, date, date]:
    """Day 1 and day 2 (a day apart, on or after today: releases never go back in time), and
    the month whose embargo ends on day 2."""
    month = (date(today.year, today.month, 1) - timedelta(days=45)).replace(day=1)
    while True:
        end = (month + timedelta(days=32)).replace(day=1)
        if end + timedelta(days=EMBARGO_DAYS) > today:
            return (end + timedelta(days=EMBARGO_DAYS - 1), end + timedelta(days=EMBARGO_DAYS),
                    month)
        month = end


def _delivery(sample: Path, out: Path, due_month: date, open_month: date) -> Path:
    """A small delivery: copies of sample cases under new ids, three late ones received in
    LATE_MONTH as in the sample, and two each in the month due on day 2 and the open month
    (received on its first day, not yet triaged; none when that day is still to come)."""
    with sample.open(newline="") as f:
        reader = csv.reader(f)
        header = next(reader)
        late = [r for r in reader if r[1].startswith(LATE_MONTH.strftime("%Y-%m"))][0:39:13]
    assert len(late) == 3
    rows = [[f"HL-{LATE_MONTH.year}-98{i:05d}", *r[1:]] for i, r in enumerate(late)]
    for month, tag in ((due_month, "97"), (open_month, "96")):
        if month > datetime.now(UTC).date():
            continue  # in the second half of a month, the open month is the next: no case yet
        for i, r in enumerate(late[:2]):
            received = datetime(month.year, month.month, 1, 0, 30 + i, tzinfo=UTC)
            rows.append([f"HL-{month.year}-{tag}{i:05d}", received.strftime("%Y-%m-%dT%H:%M:00Z"),
                         *r[2:8], "", "", "", "", ""])
    path = out / "hotline_cases_late.csv"
    with path.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(header)
        w.writerows(rows)
    return path


@pytest.fixture(scope="module")
def two_releases(pipeline_done, tmp_path_factory) -> Iterator[dict]:
    """Day 1: the pipeline's release (made again as of day 1: nothing new). The candidate is
    kept as it is (the plain rebuild 'before'). Day 2: the delivery, dbt, a release as of day 2.
    Afterwards: the delivery's batches and the test's releases removed, the candidate rebuilt
    and reporting put back to the pipeline's release, for the tests that follow."""
    from safeguard.release import release
    from safeguard.transform import build, selection_for

    s = pipeline_done
    admin_url = s.admin_url(s.warehouse_db)
    with psycopg.connect(admin_url, autocommit=True) as admin:
        t0 = admin.execute("select clock_timestamp()").fetchone()[0]
        (first_no,) = admin.execute("select max(release_no) from ops.releases").fetchone()
        assert first_no, "the pipeline made no release"
        admin.execute(sql.SQL("drop schema if exists {} cascade").format(
            sql.Identifier(PLAIN_BEFORE)))
        admin.execute(sql.SQL("create schema {}").format(sql.Identifier(PLAIN_BEFORE)))
        for (t,) in admin.execute("select table_name from information_schema.tables"
                                  " where table_schema = 'publish_candidate'").fetchall():
            admin.execute(sql.SQL("create table {} as table {}").format(
                sql.Identifier(PLAIN_BEFORE, t), sql.Identifier("publish_candidate", t)))
    today = datetime.now(UTC).date()
    day1, day2, due_month = _days(today)
    open_month = (due_month + timedelta(days=32)).replace(day=1)
    try:
        r1 = release(s, as_of=day1, embargo_days=EMBARGO_DAYS, run_by="test:day1")
        day1_no = r1.release_no or r1.previous_no
        sample = next((s.drop_root / "sample_hotline_cases").glob("hotline_cases_*.csv"))
        work = tmp_path_factory.mktemp("releases")
        delivery = _delivery(sample, work, due_month, open_month)
        out = safeguard_cli("ingest", "--source", "sample_hotline_cases", str(delivery)).stdout
        assert out.startswith("loaded:"), out
        build(s, selection_for(["safeguard://warehouse/raw/hotline_cases"]),
              run_by="test:releases")
        r2 = release(s, as_of=day2, embargo_days=EMBARGO_DAYS, run_by="test:day2")
        yield {"day1": day1_no, "day2": r2, "due_month": due_month, "open_month": open_month,
               "as_of": day2}
    finally:
        with psycopg.connect(admin_url, autocommit=True) as admin:
            _remove_batches_since(admin, t0)
            admin.execute(sql.SQL("drop schema if exists {} cascade").format(
                sql.Identifier(PLAIN_BEFORE)))
        put_back_the_pipelines_release(s, first_no, ["safeguard://warehouse/raw/hotline_cases"],
                                       "test:releases")


def test_two_releases_a_day_apart_give_the_attacker_nothing(pipeline_done, two_releases):
    s = pipeline_done
    r2 = two_releases["day2"]
    assert r2.release_no == two_releases["day1"] + 1, r2.summary()
    with psycopg.connect(s.url("engineer")) as engineer:
        before = read_release(engineer, two_releases["day1"])
    with psycopg.connect(s.url("viewer")) as viewer:
        after = read_tables(viewer, "reporting")
    assert set(after) >= set(_model_cells())
    assert attack(before, after) == []
    # the delivery's late cases were a revision, held back (and recorded); the month due on
    # day 2 is out, the open month is not
    held = {t: c for t, c in r2.tables.items() if c["groups_held"]}
    assert "rpt_cases_monthly" in held, r2.summary()
    assert LATE_MONTH.isoformat() in str(held["rpt_cases_monthly"]["held_periods"])
    months = {r["period_start"] for r in after["rpt_cases_monthly"]}
    assert two_releases["due_month"].isoformat() in months
    assert two_releases["open_month"].isoformat() not in months
    with psycopg.connect(s.admin_url(s.warehouse_db)) as admin:
        candidate = {r[0].isoformat() for r in admin.execute(
            "select distinct period_start from publish_candidate.rpt_cases_monthly")}
    if two_releases["open_month"] <= datetime.now(UTC).date():  # its cases were delivered
        assert two_releases["open_month"].isoformat() in candidate  # built, not released


def test_without_the_release_rules_the_same_attacker_finds_small_groups(pipeline_done,
                                                                          two_releases):
    """The plain rebuilds of the same two days: the candidate before and after (no embargo,
    no gate). The late cases show as +1s, and the new months' cells as withheld where the
    period showed nothing, so the attacker has the few new cases' attributes."""
    s = pipeline_done
    with psycopg.connect(s.admin_url(s.warehouse_db)) as admin:
        before = read_tables(admin, PLAIN_BEFORE)
        after = read_tables(admin, "publish_candidate")
    found = attack(before, after)
    small = [f for f in found if "a group of" in f]
    assert small, found
    assert any(LATE_MONTH.isoformat() in f for f in small), small
    print(f"{len(found)} findings without the release rules, e.g.\n" + "\n".join(found[:5]))


def test_a_release_with_nothing_new_changes_nothing(pipeline_done, two_releases):
    s = pipeline_done
    with psycopg.connect(s.url("viewer")) as viewer:
        before = read_tables(viewer, "reporting")
    out = safeguard_cli("release", "--as-of", two_releases["as_of"].isoformat(),
                        "--embargo-days", str(EMBARGO_DAYS)).stdout
    assert "nothing to release" in out, out
    with psycopg.connect(s.url("viewer")) as viewer:
        assert read_tables(viewer, "reporting") == before
    with psycopg.connect(s.admin_url(s.warehouse_db)) as admin:
        (latest,) = admin.execute("select max(release_no) from ops.releases").fetchone()
    assert latest == two_releases["day2"].release_no


def test_a_release_never_goes_back_in_time(pipeline_done, two_releases):
    proc = safeguard_cli("release", "--as-of", "2020-01-01", check=False)
    assert proc.returncode == 1
    assert "never goes back in time" in proc.stderr and "Traceback" not in proc.stderr


def test_a_release_publishes_every_published_model_or_none(pipeline_done):
    """A candidate without one of the published models (a new warehouse, whose first build
    covered what one load touched) makes no release: reporting would hold half a layer, and
    the fact sheet (seen in the demo) fails on the table that is not there. The transform DAG
    then builds everything instead of its selection."""
    from safeguard.transform import selection_or_all

    s = pipeline_done
    with psycopg.connect(s.admin_url(s.warehouse_db), autocommit=True) as admin:
        before = admin.execute("select max(release_no) from ops.releases").fetchone()[0]
        admin.execute("alter table publish_candidate.rpt_stage_by_channel_yearly "
                      "rename to rpt_stage_by_channel_yearly_away")
        try:
            proc = safeguard_cli("release", check=False)
            assert proc.returncode == 1 and "Traceback" not in proc.stderr, proc.stderr
            assert "lacks 1 of the" in proc.stderr, proc.stderr
            assert "rpt_stage_by_channel_yearly" in proc.stderr, proc.stderr
            assert selection_or_all(s, "@source:raw.published_figures") is None
        finally:
            admin.execute("alter table publish_candidate.rpt_stage_by_channel_yearly_away "
                          "rename to rpt_stage_by_channel_yearly")
        assert admin.execute("select max(release_no) from ops.releases").fetchone()[0] == before
    assert selection_or_all(s, "@source:raw.published_figures") == \
        "@source:raw.published_figures"


def test_the_viewer_reads_no_release_and_no_candidate(pipeline_done):
    s = pipeline_done
    for relation in ("releases.release_rows", "publish_candidate.rpt_cases_monthly",
                     "ops.releases"):
        with psycopg.connect(s.url("viewer"), autocommit=True) as viewer, \
                pytest.raises(psycopg.errors.InsufficientPrivilege):
            viewer.execute(f"select 1 from {relation} limit 1")
    # and nobody in the pipeline may rewrite an audit copy
    for role in ("transformer", "engineer", "analyst"):
        with psycopg.connect(s.url(role), autocommit=True) as conn:
            for statement in ("delete from releases.release_rows",
                              "update ops.releases set run_by = 'x'"):
                with pytest.raises(psycopg.errors.InsufficientPrivilege):
                    conn.execute(statement)


def test_reporting_is_a_release_and_pipeline_health_lists_it(pipeline_done):
    s = pipeline_done
    with psycopg.connect(s.admin_url(s.warehouse_db)) as admin:
        (latest,) = admin.execute("select max(release_no) from ops.releases").fetchone()
        released = read_release(admin, latest)
        published = read_tables(admin, "reporting")
        listed = admin.execute("select table_name, rows_published_count from marts.fct_releases"
                               " where is_latest").fetchall()
    # the published tables say which release they are, for citing (the fact sheet does)
    with psycopg.connect(s.url("viewer")) as viewer:
        info = viewer.execute("select release_no from reporting.release_info").fetchall()
    assert info == [(latest,)]
    for table, rows in released.items():
        key = lambda r: json.dumps(r, sort_keys=True)  # noqa: E731
        assert sorted(map(key, published[table])) == sorted(map(key, rows)), table
    assert {t: n for t, n in listed if n} == {t: len(r) for t, r in released.items()}
