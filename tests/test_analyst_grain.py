"""Analysts at the right grain: case-level data with exact times is the data engineers' alone;
analysts read cases only coarsened, every row shared by at least k cases.

Checked as the roles themselves, on the pipeline's own data, and by construction: no relation
an analyst may read holds a case's pseudonym, whatever is added to marts later.
"""

from __future__ import annotations

from pathlib import Path

import psycopg
import pytest
import yaml

from safeguard.config import ROLES

ROOT = Path(__file__).resolve().parents[1]
K = yaml.safe_load((ROOT / "dbt" / "dbt_project.yml").read_text())["vars"]["min_analyst_group"]
CASE_LEVEL = ("cases.fct_hotline_cases", "cases.fct_case_exploitation_types",
              "snapshots.snap_hotline_case_status")


@pytest.fixture(scope="module")
def roles(pipeline_done):
    with psycopg.connect(pipeline_done.url("analyst"), autocommit=True) as analyst, \
            psycopg.connect(pipeline_done.url("engineer"), autocommit=True) as engineer, \
            psycopg.connect(pipeline_done.admin_url(pipeline_done.warehouse_db),
                            autocommit=True) as admin:
        yield analyst, engineer, admin


@pytest.mark.parametrize("relation", CASE_LEVEL)
def test_case_level_data_is_the_engineers_alone(roles, relation):
    analyst, engineer, _ = roles
    with pytest.raises(psycopg.errors.InsufficientPrivilege):
        analyst.execute(f"select 1 from {relation} limit 1")
    assert engineer.execute(f"select count(*) from {relation}").fetchone()[0] > 0


def test_no_relation_an_analyst_reads_holds_a_case_key(roles):
    """By construction: whatever marts holds, an analyst reads no pseudonym (the kinds'
    pseudonym columns) and no time of day of a case."""
    from safeguard.contracts.kinds import PSEUDONYM_COLUMNS

    _, _, admin = roles
    readable = admin.execute(
        """
        select c.table_schema || '.' || c.table_name, c.column_name
        from information_schema.columns c
        where c.table_schema not in ('pg_catalog', 'information_schema')
          and has_table_privilege(%s, format('%%I.%%I', c.table_schema, c.table_name),
                                  'select')
          and c.column_name = any(%s)
        """, [ROLES["analyst"], list(PSEUDONYM_COLUMNS)]).fetchall()
    assert not readable, readable


def test_analysts_cases_are_coarse_and_k_anonymous(roles):
    analyst, engineer, _ = roles
    types = dict(analyst.execute(
        "select column_name, data_type from information_schema.columns "
        "where table_schema = 'marts' and table_name = 'fct_hotline_cases_coarse'").fetchall())
    assert not [c for c, t in types.items() if "time" in t], types  # dates only, no times
    assert not {"country_code", "case_key", "received_at"} & set(types)
    periods = analyst.execute(
        "select distinct detail, extract(month from received_period_start)::int, "
        "extract(day from received_period_start)::int from marts.fct_hotline_cases_coarse"
        ).fetchall()
    assert {(d, m, day) for d, m, day in periods if d == "by_year"} <= {("by_year", 1, 1)}
    assert {m for d, m, _ in periods if d == "by_quarter"} <= {1, 4, 7, 10}
    # every combination of everything a row says is shared by at least K cases
    smallest = analyst.execute(
        "select min(n) from (select count(*) as n from marts.fct_hotline_cases_coarse t "
        "group by t) g").fetchone()[0]
    assert smallest >= K
    shown = analyst.execute("select count(*) from marts.fct_hotline_cases_coarse").fetchone()[0]
    cases = engineer.execute("select count(*) from cases.fct_hotline_cases").fetchone()[0]
    assert 0.5 * cases < shown <= cases  # most cases are there, none twice
