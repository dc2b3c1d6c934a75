"""Published figures you can trust: one identity per figure, whoever delivers it; values the
file does not hold (a year from the file's name, a fixed category, a country); warnings that
stay true; and ``sources check``, which says what a file would do and writes nothing.

Uses the pipeline's warehouse (the bundled real tables are loaded by it); each test removes
its own batches and rebuilds the published models after itself.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import psycopg
import pytest

from conftest import ROOT, safeguard_cli, transform_after_loads

BUNDLED_NCMEC = "NCMEC CyberTipline data (published figures)"

# the same NCMEC figures in two more layouts: NCMEC's incident-type table (an older edition)
# and a press digest (a secondary source, which rounds them). Test copies, not NCMEC files.
INCIDENT_TABLE = """\
Incident type,2019,2020
Online Enticement of Children for Sexual Acts,"19,174","37,872"
"""
INCIDENT_CONTRACT = """\
name: testpub_ncmec_incidents
kind: published_figures
publisher: ncmec
series: cybertipline_reports
source_role: primary
edition: "2022"
source_name: NCMEC incident-type table, 2022 edition (test copy)
is_synthetic: false
unpivot: {columns: "^20[0-9][0-9]$", name_to: year, value_to: value}
columns:
  year: {type: year}
  category:
    from: Incident type
    values: {Online Enticement of Children for Sexual Acts: online_enticement}
  value: {type: count, thousands_separator: ","}
grain: [year, category]
on_row_failure: reject_batch
"""
DIGEST_TABLE = """\
Year,Enticement reports
2019,"19,000"
2020,"37,900"
"""
DIGEST_CONTRACT = """\
name: testpub_press_digest
kind: published_figures
publisher: ncmec
series: cybertipline_reports
source_role: secondary
edition: "2024"
source_name: A press digest of NCMEC figures (test copy, rounded)
is_synthetic: false
columns:
  year: {from: Year, type: year}
  category: {value: online_enticement, values: {enticement: online_enticement}}
  value: {from: Enticement reports, type: count, thousands_separator: ","}
grain: [year, category]
on_row_failure: reject_batch
"""

# a publisher's table with a total: loaded as published; when the total does not add up,
# the figures carry the warning until a delivery that adds up replaces them
TOTALS_CONTRACT = """\
name: testpub_totals
kind: published_figures
publisher: testpub
series: reports_processed
source_name: TESTPUB yearly table (test data)
is_synthetic: true
columns:
  category:
    from: Type
    values: {Luring: luring, Imagery: imagery, Total: reports_total}
  year: {from_file_name: true}
  value: {from: Reports, type: count}
grain: [year, category]
totals: {when: {category: reports_total}, sum_of: value}
on_row_failure: reject_batch
"""
TOTALS_TABLE = "Type,Reports\nLuring,40\nImagery,60\nTotal,{total}\n"


@pytest.fixture()
def contracts(tmp_path, monkeypatch):
    """A contracts folder holding the bundled contracts and the ones a test adds."""
    folder = tmp_path / "contracts"
    shutil.copytree(ROOT / "contracts", folder)
    monkeypatch.setenv("SAFEGUARD_CONTRACTS_DIR", str(folder))

    def add(name: str, text: str) -> Path:
        path = folder / f"{name}.yml"
        path.write_text(text)
        return path

    return add


@pytest.fixture()
def published_rebuilt_after(pipeline_done):
    yield
    from safeguard.transform import build, selection_for

    build(pipeline_done, selection_for(["safeguard://warehouse/raw/published_figures"]))


def _viewer(settings) -> psycopg.Connection:
    return psycopg.connect(settings.url("viewer"))  # what dashboards read


def test_one_figure_delivered_by_three_sources_is_counted_once(
        pipeline_done, warehouse, tmp_path, contracts, published_rebuilt_after, scratch):
    contracts("testpub_ncmec_incidents", INCIDENT_CONTRACT)
    contracts("testpub_press_digest", DIGEST_CONTRACT)
    (tmp_path / "incidents_2019_2020.csv").write_text(INCIDENT_TABLE)
    (tmp_path / "digest_2019_2020.csv").write_text(DIGEST_TABLE)
    for name, file in (("testpub_ncmec_incidents", "incidents_2019_2020.csv"),
                       ("testpub_press_digest", "digest_2019_2020.csv")):
        out = safeguard_cli("ingest", "--source", name, str(tmp_path / file)).stdout
        assert out.startswith("loaded:"), out
    # the figures are read as the viewer below, not through Superset: its cache is emptied
    # (no reader sees the previous release), not computed again
    out = transform_after_loads("published_figures").stdout
    assert "charts of the published dashboards computed again" not in out, out

    with _viewer(pipeline_done) as conn:
        rows = conn.execute(
            "select year, figure_value, source_name, yoy_change_pct from "
            "reporting.rpt_published_figures_yearly where publisher = 'ncmec' and "
            "series = 'cybertipline_reports' and category_code = 'online_enticement' and "
            "country_code is null and year in (2019, 2020) order by year").fetchall()
        headline = conn.execute(
            "select value, source_name, metric_name from reporting.rpt_headline_figures "
            "where metric_code = 'enticement_change_2019_2020_pct'").fetchone()
        summed = conn.execute(
            "select sum(figure_value) from reporting.rpt_published_figures_yearly "
            "where category_code = 'online_enticement' and year = 2020").fetchone()[0]
    # each figure once, the declared winner's: the publisher's own table of the latest edition
    # (not the older edition, not the secondary digest's rounded numbers, not three times)
    assert [(r[0], r[1], r[2]) for r in rows] == [(2019, 19174, BUNDLED_NCMEC),
                                                  (2020, 37872, BUNDLED_NCMEC)]
    assert summed == 37872
    assert float(rows[1][3]) == 97.5
    assert (float(headline[0]), headline[1]) == (97.5, BUNDLED_NCMEC)
    assert "CyberTipline reports" in headline[2]  # the series is named
    deliveries = warehouse.execute(
        "select delivery_count from marts.fct_published_figures_yearly where publisher = "
        "'ncmec' and category_code = 'online_enticement' and figure_year = 2020 "
        "and country_code is null").fetchall()
    assert deliveries == [(3,)]  # the others are kept for lineage, never counted


def test_values_the_file_does_not_hold(pipeline_done, warehouse, tmp_path, scratch):
    """The bundled real tables: Cybertip.ca's one-year table takes its year from the file name,
    the by-country table gives every row the same (fixed) category and lands on the map."""
    with _viewer(pipeline_done) as conn:
        c3p = dict(conn.execute(
            "select category_code, figure_value from reporting.rpt_published_figures_yearly "
            "where publisher = 'c3p' and year = 2022").fetchall())
        countries = conn.execute(
            "select iso3_code, country_name, figure_value, source_role, category_name from "
            "reporting.rpt_published_figures_yearly where publisher = 'ncmec' and "
            "country_code is not null and year = 2019 order by figure_value desc").fetchall()
        total_flags = conn.execute(
            "select bool_or(has_warning), bool_or(is_total) from "
            "reporting.rpt_published_figures_yearly where publisher = 'c3p'").fetchone()
    assert c3p["public_reports_total"] == 18891 and c3p["online_luring"] == 2052
    assert sum(v for k, v in c3p.items() if k != "public_reports_total") == 18891
    assert total_flags == (False, True)  # its total reconciles, and is marked as a total
    assert countries[0][:4] == ("IND", "India", 1987430, "secondary")
    assert {r[0] for r in countries} == {"IND", "PAK", "IRQ", "IDN", "MEX", "BGD"}
    assert {r[4] for r in countries} == {"CyberTipline reports, all incident types"}

    # a file whose name declares no year cannot give the one-year table its year
    undated = tmp_path / "cybertip_reports_by_incident_type.csv"
    lines = (ROOT / "data/sample/cybertip_reports_by_incident_type_2022.csv").read_text(
    ).splitlines(keepends=True)
    undated.write_text("".join([lines[0], *reversed(lines[1:])]))  # not the same file again
    proc = safeguard_cli("ingest", "--source", "cybertip_incident_types", str(undated),
                         check=False)
    assert proc.returncode == 2, proc.stderr
    assert "the contract takes column 'year' from the file name" in proc.stderr
    assert "(rule: value_from_file_name)" in proc.stderr
    issue = warehouse.execute(
        "select i.rule, i.severity from ops.batch_issues i join ops.batches b using (batch_id) "
        "where b.file_name = %s order by issue_id desc limit 1", [undated.name]).fetchone()
    assert issue == ("value_from_file_name", "error")  # with the row rules, in Pipeline health


def test_a_total_that_does_not_add_up_is_flagged_kept_and_retired(
        pipeline_done, warehouse, tmp_path, contracts, published_rebuilt_after, scratch):
    contracts("testpub_totals", TOTALS_CONTRACT)
    bad = tmp_path / "testpub_totals_2021.csv"
    bad.write_text(TOTALS_TABLE.format(total=101))
    out = safeguard_cli("ingest", "--source", "testpub_totals", str(bad)).stdout
    assert out.startswith("loaded_with_warnings:"), out
    transform_after_loads("published_figures")

    def published() -> dict[str, tuple]:
        with _viewer(pipeline_done) as conn:
            return {r[0]: r[1:] for r in conn.execute(
                "select category_code, figure_value, has_warning, warning_note from "
                "reporting.rpt_published_figures_yearly where publisher = 'testpub'")}

    def warnings() -> list[str]:
        with _viewer(pipeline_done) as conn:
            return [r[0] for r in conn.execute(
                "select message from reporting.rpt_batch_warnings "
                "where source_name = 'testpub_totals'")]

    figures = published()
    assert figures["reports_total"][:2] == (101, True)
    assert figures["luring"][1] is True  # the parts carry it too: they do not add up
    assert "published total 101" in figures["reports_total"][2]
    assert len(warnings()) == 1
    status = safeguard_cli("status", check=False).stdout
    assert "standing warning on published figures: published total 101" in status

    # the same file again is a duplicate: the warning stays where people look
    again = tmp_path / "testpub_totals_2021_again.csv"
    shutil.copy(bad, again)
    assert safeguard_cli("ingest", "--source", "testpub_totals", str(again)
                         ).stdout.startswith("duplicate:")
    status = safeguard_cli("status", check=False)
    assert "standing warning on published figures: published total 101" in status.stdout
    assert status.returncode == 1

    # a corrected delivery of the same figures adds up: the flag and the warning retire
    fixed = tmp_path / "testpub_totals_2021_corrected.csv"
    fixed.write_text(TOTALS_TABLE.format(total=100))
    assert safeguard_cli("ingest", "--source", "testpub_totals", str(fixed)
                         ).stdout.startswith("loaded:")
    transform_after_loads("published_figures")
    figures = published()
    assert figures["reports_total"][:2] == (100, False) and figures["luring"][1] is False
    assert warnings() == []
    assert "published total 101" not in safeguard_cli("status", check=False).stdout


def test_sources_check_says_what_would_happen_and_writes_nothing(sg_settings, warehouse,
                                                                 tmp_path, contracts):
    contract = contracts("testpub_totals", TOTALS_CONTRACT)

    def footprint() -> tuple:
        return warehouse.execute(
            "select (select count(*) from ops.batches), (select count(*) from ops.batch_issues),"
            " (select count(*) from quarantine.rows), (select count(*) from "
            "raw.published_figures), (select count(*) from pg_tables where schemaname = "
            "'landing' and tablename = 'landing__testpub_totals')").fetchone()

    before = footprint()
    good = tmp_path / "testpub_totals_2021.csv"
    good.write_text(TOTALS_TABLE.format(total=100))
    proc = safeguard_cli("sources", "check", str(contract), str(good))
    assert "would load; read 3 = would load 3 + set aside 0 (nothing written)" in proc.stdout

    bad = tmp_path / "testpub_totals_2020.csv"
    bad.write_text("Type,Reports\nLuring,forty\nImagery,60\nGossip,1\nTotal,100\n")
    proc = safeguard_cli("sources", "check", "testpub_totals", str(bad), check=False)
    assert proc.returncode == 1, proc.stderr
    assert "would reject the file whole (on_row_failure: reject_batch)" in proc.stdout
    assert ("testpub_totals_2020.csv, row 2, column value: rule count_is_whole_non_negative"
            in proc.stdout)
    assert "row 4, column category: rule known_category" in proc.stdout
    assert "forty" not in proc.stdout + proc.stderr and "Gossip" not in proc.stdout

    undated = tmp_path / "testpub_totals.csv"
    undated.write_text(TOTALS_TABLE.format(total=100))
    proc = safeguard_cli("sources", "check", "testpub_totals", str(undated), check=False)
    assert proc.returncode == 2 and "(rule: value_from_file_name)" in proc.stderr

    wrong = tmp_path / "wrong.yml"
    wrong.write_text(TOTALS_CONTRACT.replace("totals:", "total:"))
    proc = safeguard_cli("sources", "check", str(wrong), str(good), check=False)
    assert proc.returncode == 3 and "did you mean 'totals'?" in proc.stderr
    assert footprint() == before
