"""Case facts partitioned by month (issue 15, point 5): ``raw.hotline_cases`` is range-partitioned
by the month (UTC) a case was received; a load makes the partitions its rows need, and its rows
land in them; ``safeguard db detach --before YYYY-MM`` takes the older months out, all at once.

On a warehouse database of its own on the session's server (``SAFEGUARD_WAREHOUSE_DB``), so
that detaching months leaves the pipeline's warehouse as it is. Real deliveries through the
CLI, as an operator runs them."""

from __future__ import annotations

import os
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import psycopg
import pytest

from conftest import safeguard_cli
from safeguard.config import Settings
from safeguard.periods import next_month

SOURCE = "sample_hotline_cases"
HEADER = ("Case ID,Received,Reporter,Channel,Exploitation types,Highest grooming stage,"
          "Victim age band,Country,Triaged,Assessment,Referred to,Referred,Closed\n")
DATABASE = "safeguard_partitions_test"


def _extract(path: Path, prefix: str, received: list[str]) -> Path:
    path.write_text(HEADER + "".join(
        f"{prefix}-{i},{when},Industry,Social media,Online enticement,Desensitization,14-15,"
        f"NL,,,,,\n" for i, when in enumerate(received)))
    return path


@pytest.fixture(scope="module")
def own_warehouse(sg_settings: Settings) -> Iterator[tuple[dict[str, str], Settings]]:
    env = {**os.environ, "SAFEGUARD_WAREHOUSE_DB": DATABASE}
    admin = sg_settings.admin_url()
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'drop database if exists "{DATABASE}" with (force)')
    try:
        safeguard_cli("db", "up", env=env)
        yield env, sg_settings
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'drop database if exists "{DATABASE}" with (force)')


def _months(s: Settings) -> dict[str, tuple[date, int]]:
    """Each partition of raw.hotline_cases: its month's bounds as PostgreSQL has them, and
    its rows; every row checked to be in its partition's month (UTC)."""
    with psycopg.connect(s.admin_url(DATABASE)) as conn:
        assert conn.execute("select relkind from pg_class where oid = "
                            "'raw.hotline_cases'::regclass").fetchone() == ("p",)
        parts = conn.execute(
            "select c.relname, pg_get_expr(c.relpartbound, c.oid) from pg_inherits i "
            "join pg_class c on c.oid = i.inhrelid "
            "where i.inhparent = 'raw.hotline_cases'::regclass").fetchall()
        misplaced = conn.execute(
            "select count(*) from raw.hotline_cases where tableoid::regclass::text <> "
            "'raw.hotline_cases_' || to_char(received_at at time zone 'UTC', 'YYYY_MM')"
        ).fetchone()[0]
        rows = dict(conn.execute(
            "select tableoid::regclass::text, count(*) from raw.hotline_cases "
            "group by 1").fetchall())
    assert misplaced == 0
    out = {}
    for name, bound in parts:
        month = date(int(name[-7:-3]), int(name[-2:]), 1)
        assert bound == (f"FOR VALUES FROM ('{month} 00:00:00+00') "
                         f"TO ('{next_month(month)} 00:00:00+00')"), bound
        out[name] = (month, rows.get(f"raw.{name}", 0))
    return out


def test_a_load_makes_the_months_it_needs_and_its_rows_land_in_them(own_warehouse, tmp_path):
    env, s = own_warehouse
    # the last case is received on 31 March in UTC-2: 1 April in UTC, April's partition
    first = _extract(tmp_path / "hotline_a.csv", "PA", [
        "2019-03-01T00:00:00Z", "2019-03-15T12:00:00Z", "2019-03-31T23:30:00-02:00",
        "2020-07-04T08:00:00Z", "2020-07-31T23:59:59Z"])
    out = safeguard_cli("ingest", "--source", SOURCE, str(first), env=env).stdout
    assert "read 5 = loaded 5 + quarantined 0" in out, out
    assert {n: r for n, (_, r) in _months(s).items()} == {
        "hotline_cases_2019_03": 2, "hotline_cases_2019_04": 1, "hotline_cases_2020_07": 2}

    # a second delivery: a month that is there, one that is new, and a row the gate refuses
    # (not a timestamp), which makes no partition
    second = _extract(tmp_path / "hotline_b.csv", "PB", [
        "2019-03-20T10:00:00Z", "2021-01-02T10:00:00Z", "not a time"])
    done = safeguard_cli("ingest", "--source", SOURCE, str(second), env=env, check=False)
    assert done.returncode == 1, done  # rows set aside
    with psycopg.connect(s.admin_url(DATABASE)) as conn:
        assert conn.execute("select rows_read, rows_loaded, rows_quarantined from ops.batches "
                            "where file_name = 'hotline_b.csv'").fetchall() == [(3, 2, 1)]
    assert {n: r for n, (_, r) in _months(s).items()} == {
        "hotline_cases_2019_03": 3, "hotline_cases_2019_04": 1, "hotline_cases_2020_07": 2,
        "hotline_cases_2021_01": 1}


def test_old_months_are_detached_all_at_once_and_the_rest_stays(own_warehouse):
    env, s = own_warehouse
    before = _months(s)
    refused = safeguard_cli("db", "detach", "--before", "2020-7", env=env, check=False)
    assert refused.returncode != 0 and "YYYY-MM" in refused.stderr
    assert _months(s) == before

    out = safeguard_cli("db", "detach", "--before", "2020-07", env=env).stdout
    assert out.splitlines() == [
        "raw.hotline_cases: detached raw.hotline_cases_2019_03 (3 rows)",
        "raw.hotline_cases: detached raw.hotline_cases_2019_04 (1 rows)"]
    assert {n for n in _months(s)} == {"hotline_cases_2020_07", "hotline_cases_2021_01"}
    with psycopg.connect(s.admin_url(DATABASE)) as conn:
        assert conn.execute("select count(*) from raw.hotline_cases").fetchone() == (3,)
        # kept as tables of their own, which no model reads, until someone drops them
        assert conn.execute("select count(*) from raw.hotline_cases_2019_03").fetchone() == (3,)
    out = safeguard_cli("db", "detach", "--before", "2021-01", "--drop", env=env).stdout
    assert out.splitlines() == ["raw.hotline_cases: dropped raw.hotline_cases_2020_07 (2 rows)"]
    assert set(_months(s)) == {"hotline_cases_2021_01"}
    with psycopg.connect(s.admin_url(DATABASE)) as conn:
        assert conn.execute("select to_regclass('raw.hotline_cases_2020_07')").fetchone() \
            == (None,)
