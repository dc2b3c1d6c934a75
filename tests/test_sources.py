"""Sources are onboarded by contract alone: formats (CSV, XLSX, JSON), wide tables, number
formats, published totals reconciled, case extracts pseudonymised, bad rows quarantined with
messages that name the file, the row, the column and the rule."""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import shutil
from pathlib import Path

import psycopg
import pytest

from conftest import ROOT, safeguard_cli, transform_after_loads

# A published table in a layout the code has never seen: a title line, years as columns,
# thousands separators, a dash for "not published", a total row, notes under the table.
WIDE_CSV = """\
Table 3: Reports assessed, by category (TEST DATA, not real figures)
Category,2019,2020,2021
Self-generated imagery,"38,424","68,000","182,281"
Other,"94,276","85,350",-
Total,"132,700","153,350","182,281"
Source: test fixture. Notes: 2021 'Other' not published.
"""

WIDE_CONTRACT = """\
name: {name}
kind: published_figures
description: Test publisher's yearly table (wide, with totals).
publisher: testpub
series: reports_assessed
source_name: TESTPUB annual report, table 3 (test data)
is_synthetic: true
file:
  format: {format}
  header_row: 2
  footer_starts_with: ["Source"]
  null_values: ["-"]
unpivot:
  columns: "^(19|20)[0-9][0-9]$"
  name_to: year
  value_to: value
columns:
  year: {{type: year}}
  category:
    from: Category
    values:
      Self-generated imagery: self_generated_imagery
      Other: other_reports
      Total: reports_total
  value: {{type: count, thousands_separator: ","}}
grain: [year, category]
totals:
  when: {{category: reports_total}}
  sum_of: value
on_row_failure: reject_batch
"""


def _contracts_dir(tmp_path: Path, name: str, text: str) -> Path:
    folder = tmp_path / "contracts"
    shutil.copytree(ROOT / "contracts", folder)
    (folder / f"{name}.yml").write_text(text)
    return folder


def _batch(warehouse, batch_id: str) -> tuple:
    return warehouse.execute(
        "select status, rows_read, rows_loaded, rows_quarantined, message from ops.batches "
        "where batch_id = %s", [batch_id]).fetchone()


@pytest.fixture()
def published_rebuilt_after(pipeline_done):
    """After the test (and after `scratch` removed its batches), the published figures' models
    are rebuilt, so the tests that follow see the pipeline's own figures only."""
    yield
    from safeguard.transform import build, selection_for

    build(pipeline_done, selection_for(["safeguard://warehouse/raw/published_figures"]))


def test_wide_table_is_onboarded_by_a_contract_file_alone(pipeline_done, warehouse, tmp_path,
                                                          monkeypatch, published_rebuilt_after,
                                                          scratch):
    """As a new user would: add a contract file, deliver the file, run ingest and dbt (what the
    transform DAG builds after the load, and a release)."""
    folder = _contracts_dir(tmp_path, "testpub_table3",
                            WIDE_CONTRACT.format(name="testpub_table3", format="csv"))
    monkeypatch.setenv("SAFEGUARD_CONTRACTS_DIR", str(folder))
    data = tmp_path / "testpub_table3_2019_2021.csv"
    data.write_text(WIDE_CSV)

    listed = safeguard_cli("sources").stdout
    assert "testpub_table3" in listed
    out = safeguard_cli("ingest", "--source", "testpub_table3", str(data)).stdout
    assert out.startswith("loaded:") and "read 8 = loaded 8 + quarantined 0" in out
    transform_after_loads("published_figures")

    with psycopg.connect(pipeline_done.url("viewer")) as conn:  # what dashboards read
        rows = conn.execute(
            "select category_code, year, figure_value, yoy_change_pct, category_name "
            "from reporting.rpt_published_figures_yearly where publisher = 'testpub'"
        ).fetchall()
    got = {(r[0], r[1]): (r[2], None if r[3] is None else float(r[3])) for r in rows}
    assert got[("self_generated_imagery", 2019)] == (38424, None)
    assert got[("self_generated_imagery", 2020)] == (68000, 77.0)  # 68000/38424 - 1
    assert got[("self_generated_imagery", 2021)] == (182281, 168.1)
    assert got[("other_reports", 2020)] == (85350, -9.5)
    assert ("other_reports", 2021) not in got  # "-" means not published, not zero
    # a category no seed knows is still named, by the publisher's own label
    assert {r[4] for r in rows if r[0] == "other_reports"} == {"Other"}


@pytest.mark.parametrize("fmt", ["xlsx", "csv"])
def test_total_that_does_not_reconcile_is_loaded_with_a_warning(sg_settings, warehouse,
                                                                tmp_path, fmt):
    from safeguard.contracts import load_contract
    from safeguard.ingest.pipeline import ingest_file

    name = f"testpub_{fmt}"
    (tmp_path / f"{name}.yml").write_text(WIDE_CONTRACT.format(name=name, format=fmt))
    contract = load_contract(tmp_path / f"{name}.yml", ROOT)
    table = WIDE_CSV.replace('"153,350"', '"153,351"')  # the published total is off by one
    path = tmp_path / f"table3.{fmt}"
    if fmt == "csv":
        path.write_text(table)
    else:
        import csv
        import io

        import openpyxl

        wb = openpyxl.Workbook()
        wb.active.title = "Table 3"
        for row in csv.reader(io.StringIO(table)):
            # numbers as a spreadsheet holds them: numeric cells, no separators
            wb.active.append([int(v.replace(",", "")) if v.replace(",", "").isdigit() else v
                              for v in row])
        wb.save(path)

    result = ingest_file(sg_settings, contract, path)
    assert (result.status, result.rows_read, result.rows_loaded) == ("loaded_with_warnings", 8, 8)
    expected = (f"table3.{fmt}, row 5 ('2020'), column value: rule total_reconciles: published "
                f"total 153,351 (year 2020) but its 2 parts sum to 153,350 (difference +1)")
    assert expected in result.message
    issues = warehouse.execute(
        "select rule, severity, example_rows, row_count from ops.batch_issues "
        "where batch_id = %s", [result.batch_id]).fetchall()
    assert issues == [("total_reconciles", "warning", [5], 1)]
    assert _batch(warehouse, result.batch_id)[0] == "loaded_with_warnings"


def test_workbook_with_several_sheets_needs_the_contract_to_name_one(sg_settings, tmp_path):
    import openpyxl

    from safeguard.contracts import load_contract
    from safeguard.ingest.errors import FileRejected
    from safeguard.ingest.pipeline import ingest_file

    (tmp_path / "testpub_sheets.yml").write_text(
        WIDE_CONTRACT.format(name="testpub_sheets", format="xlsx"))
    contract = load_contract(tmp_path / "testpub_sheets.yml", ROOT)
    wb = openpyxl.Workbook()
    wb.active.title = "Notes"
    wb.create_sheet("Table 3")
    path = tmp_path / "two_sheets.xlsx"
    wb.save(path)
    with pytest.raises(FileRejected) as e:
        ingest_file(sg_settings, contract, path)
    assert "two_sheets.xlsx: the workbook has several sheets ['Notes', 'Table 3']" in str(e.value)
    assert "Set file.sheet in the contract" in str(e.value)


def _workbook(path: Path, sheets: dict[str, list[list]], merged: dict[str, list[str]]):
    """A real .xlsx written by openpyxl: sheets in order, with the given cell ranges merged."""
    import openpyxl

    wb = openpyxl.Workbook()
    wb.remove(wb.active)
    for title, rows in sheets.items():
        ws = wb.create_sheet(title)
        for row in rows:
            ws.append(row)
        for ref in merged.get(title, []):
            ws.merge_cells(ref)
    wb.save(path)


WIDE_ROWS = [["Table 3: Reports assessed, by category (TEST DATA, not real figures)"],
             ["Category", "2019", "2020", "2021"],
             ["Self-generated imagery", 38424, 68000, 182281],
             ["Other", 94276, 85350, "-"],
             ["Total", 132700, 153350, 182281],
             ["Source: test fixture. Notes: 2021 'Other' not published."]]


def _sheet_contract(tmp_path: Path, name: str, sheet: str | None = "Table 3"):
    from safeguard.contracts import load_contract

    text = WIDE_CONTRACT.format(name=name, format="xlsx")
    if sheet:
        text = text.replace("  format: xlsx\n", f"  format: xlsx\n  sheet: {sheet}\n")
    (tmp_path / f"{name}.yml").write_text(text)
    return load_contract(tmp_path / f"{name}.yml", ROOT)


def test_workbook_reads_the_sheet_its_contract_names(sg_settings, warehouse, tmp_path, scratch):
    """Several sheets, the contract names one: that one is read; a merged title above the
    header and a merged note under the table are fine (no value of the table is merged)."""
    from safeguard.ingest.pipeline import ingest_file

    contract = _sheet_contract(tmp_path, "testpub_named_sheet")
    path = tmp_path / "named_sheet.xlsx"
    _workbook(path, {"Notes": [["Read me first"], ["Figures are test data"]],
                     "Table 3": WIDE_ROWS},
              merged={"Notes": ["A1:D2"], "Table 3": ["A1:D1", "A6:D6"]})
    result = ingest_file(sg_settings, contract, path)
    assert (result.status, result.rows_read, result.rows_loaded) == ("loaded", 8, 8)
    assert _batch(warehouse, result.batch_id)[:4] == ("loaded", 8, 8, 0)


def test_workbook_without_the_sheet_the_contract_names_is_rejected(sg_settings, warehouse,
                                                                   tmp_path, scratch):
    from safeguard.ingest.errors import FileRejected
    from safeguard.ingest.pipeline import ingest_file

    contract = _sheet_contract(tmp_path, "testpub_missing_sheet")
    path = tmp_path / "renamed_sheet.xlsx"
    _workbook(path, {"Notes": [["Read me first"]], "Tabelle 3": WIDE_ROWS}, merged={})
    with pytest.raises(FileRejected) as e:
        ingest_file(sg_settings, contract, path)
    assert ("renamed_sheet.xlsx: no sheet 'Table 3'; the workbook has ['Notes', 'Tabelle 3'] "
            "(rule: sheet_exists)") in str(e.value)
    assert _batch(warehouse, e.value.batch_id)[:4] == ("rejected", 0, 0, 0)


def test_workbook_with_merged_cells_in_its_table_is_rejected_whole(sg_settings, warehouse,
                                                                   tmp_path, scratch):
    """Read-only openpyxl reads a merged cell as its value then blanks: a year merged over
    two rows would load the second row without a year. The file is refused with the range to
    unmerge, before anything is loaded."""
    from safeguard.ingest.errors import FileRejected
    from safeguard.ingest.pipeline import ingest_file

    contract = _sheet_contract(tmp_path, "testpub_merged")
    rows = [list(r) for r in WIDE_ROWS]
    rows[3][3] = 182281  # 'Other' 2021 shown merged with 'Self-generated imagery' 2021
    path = tmp_path / "merged.xlsx"
    _workbook(path, {"Table 3": rows}, merged={"Table 3": ["A1:D1", "D3:D4", "B5:C5"]})
    with pytest.raises(FileRejected) as e:
        ingest_file(sg_settings, contract, path)
    message = str(e.value)
    assert message.startswith("merged.xlsx, sheet 'Table 3', rows 3-4: cells D3:D4 are merged "
                              "(and 1 more merged range(s) below) (rule: no_merged_cells)")
    assert "Unmerge them and repeat the value in each cell" in message
    assert _batch(warehouse, e.value.batch_id)[:4] == ("rejected", 0, 0, 0)


@pytest.mark.parametrize("fmt", ["json", "jsonl"])
def test_json_records_load_through_the_same_contract_rules(sg_settings, warehouse, tmp_path,
                                                           fmt):
    from safeguard.contracts import load_contract
    from safeguard.ingest.errors import ValidationFailed
    from safeguard.ingest.pipeline import ingest_file

    text = (ROOT / "contracts/icmec_grooming_legislation.yml").read_text()
    name = f"legislation_{fmt}"
    text = text.replace("name: icmec_grooming_legislation", f"name: {name}")
    text = text.replace("format: csv", f"format: {fmt}").replace("reject_batch",
                                                                 "quarantine_rows")
    (tmp_path / f"{name}.yml").write_text(text)
    contract = load_contract(tmp_path / f"{name}.yml", ROOT)
    records = [
        {"Country code": "GB", "Edition": 1, "Dedicated grooming legislation": "Yes"},
        {"Country code": "FR", "Edition": 1, "Dedicated grooming legislation": "No"},
        {"Country code": "XX", "Edition": 1, "Dedicated grooming legislation": "Maybe"},
    ]
    path = tmp_path / f"review.{fmt}"
    path.write_text(json.dumps(records) if fmt == "json"
                    else "\n".join(json.dumps(r) for r in records))
    with pytest.raises(ValidationFailed) as e:
        ingest_file(sg_settings, contract, path)
    assert f"review.{fmt}, row 3, column country_code: rule known_category" in str(e.value)
    assert f"review.{fmt}, row 3, column has_dedicated_law: rule known_category" in str(e.value)
    loaded = warehouse.execute(
        "select l.country_code, l.edition, l.has_dedicated_law from raw.legislation_review l "
        "join ops.batches b using (batch_id) where b.source_name = %s order by 1",
        [name]).fetchall()
    assert loaded == [("FR", 1, False), ("GB", 1, True)]


CASES = """\
Case ID,Received,Reporter,Channel,Exploitation types,Highest grooming stage,Victim age band,\
Country,Triaged,Assessment,Referred to,Referred,Closed
HL-T-1,2020-03-14T09:12:00Z,Parent or caregiver,Online gaming,Online enticement;Sextortion,\
Trust development,11-13,GB,2020-03-14T12:00:00Z,Actionable,Law enforcement,\
2020-03-15T10:00:00Z,2020-04-01T00:00:00Z
HL-T-2,2020-03-15 10:00,Member of the public,Social media,CSAM,Unknown,Unknown,Unknown,,,,,
HL-T-3,2020-02-30T10:00:00Z,Industry,Social media,CSAM;Gossip,Unknown,14-15,FR,,,,,
HL-T-4,2030-01-01T00:00:00Z,Industry,Chatroulette,CSAM,Unknown,14-15,XX,\
2020-01-01T00:00:00Z,Actionable,Law enforcement,,
"""


def test_case_extract_is_pseudonymised_and_bad_rows_are_quarantined(sg_settings, warehouse,
                                                                     tmp_path, scratch):
    path = tmp_path / "hotline_extract.csv"
    path.write_text(CASES)
    proc = safeguard_cli("ingest", "--source", "sample_hotline_cases", str(path), check=False)
    assert proc.returncode == 1, proc.stderr
    message = proc.stderr
    for line in [
        "hotline_extract.csv, row 4, column received_at: rule valid_timestamp",
        "hotline_extract.csv, row 4, column exploitation_types: rule known_categories",
        "hotline_extract.csv, row 5, column received_at: rule not_in_future",
        "hotline_extract.csv, row 5, column triaged_at: rule triaged_at_not_before_received",
        "hotline_extract.csv, row 5, column referred_at: rule referral_has_time",
        "hotline_extract.csv, row 5, column channel: rule known_category",
        "hotline_extract.csv, row 5, column country_code: rule known_category",
    ]:
        assert line in message
    assert "2 of 4 rows quarantined, 2 loaded" in message

    batch_id = warehouse.execute(
        "select batch_id from ops.batches where file_name = 'hotline_extract.csv'").fetchone()[0]
    assert _batch(warehouse, batch_id)[:4] == ("quarantined", 4, 2, 2)
    key = sg_settings.secret("SAFEGUARD_PSEUDONYM_KEY").encode()
    expected = {hmac.new(key, cid.encode(), hashlib.sha256).hexdigest(): cid
                for cid in ("HL-T-1", "HL-T-2")}
    rows = warehouse.execute(
        "select case_key, received_at::text, exploitation_types, country_code, referred_to, "
        "reporter_type, channel from raw.hotline_cases where batch_id = %s order by received_at",
        [batch_id]).fetchall()
    assert [expected[r[0]] for r in rows] == ["HL-T-1", "HL-T-2"]  # same id -> same key
    assert rows[0][1:] == ("2020-03-14 09:12:00+00", ["online_enticement", "sextortion"], "GB",
                           "law_enforcement", "parent_caregiver", "gaming")
    assert rows[1][1:4] == ("2020-03-15 10:00:00+00", ["csam"], "ZZ")  # naive time: UTC

    # the source's own case ids are stored nowhere: not in raw, not in quarantine, not in ops
    for schema, table in warehouse.execute(
            "select table_schema, table_name from information_schema.tables "
            "where table_schema in ('raw', 'quarantine', 'ops')").fetchall():
        hits = warehouse.execute(
            f'select count(*) from "{schema}"."{table}" as t where t::text like %s',
            ["%HL-T-%"]).fetchone()[0]
        assert hits == 0, f"{schema}.{table} holds a source case id"


def test_generated_sample_loads_whole_through_its_contracts(sg_settings, warehouse, tmp_path,
                                                           scratch):
    """The generator and the contracts agree: every generated row passes every rule."""
    from safeguard.contracts import get_contract
    from safeguard.generate import generate
    from safeguard.ingest.pipeline import ingest_file

    written = generate(tmp_path, cases=3000, seed=7)
    for path in written:
        contract = get_contract(sg_settings, path.parent.name)
        result = ingest_file(sg_settings, contract, path)
        assert result.status == "loaded", result.message
        assert result.rows_read == result.rows_loaded > 0


@pytest.mark.parametrize("edit, message", [
    (lambda t: t.replace("Online gaming: gaming", "Online gaming: esports"),
     "column 'channel': ['esports'] are not codes of the reference list "
     "dbt/seeds/ref_channels.csv"),
    (lambda t: t.replace("    type: pseudonym", "    type: category"),
     "column 'case_key': type must be 'pseudonym'"),
    (lambda t: t.replace("grain: [case_key]", "grain: [case_key]\ntotals: {when: {}, sum_of: x}"),
     "kind 'case_extract' has no total rows to reconcile"),
    (lambda t: t.replace("  received_at:\n    from: Received", "  received_at:\n    from: Case ID"),
     "two columns read the same header"),
    (lambda t: t.replace("  timezone: UTC", "  timezone: Mars/Olympus"),
     "file.timezone 'Mars/Olympus' is not a time zone"),
])
def test_contract_mistakes_are_named(tmp_path, edit, message):
    from safeguard.contracts import ContractError, load_contract

    text = (ROOT / "contracts/sample_hotline_cases.yml").read_text()
    path = tmp_path / "sample_hotline_cases.yml"
    path.write_text(edit(text))
    with pytest.raises(ContractError) as e:
        load_contract(path, ROOT)
    assert str(e.value).startswith("sample_hotline_cases.yml: ")
    assert message in str(e.value)


def test_contracts_dir_can_live_outside_the_checkout(tmp_path, monkeypatch, sg_settings):
    from safeguard.contracts import all_contracts

    folder = _contracts_dir(tmp_path, "testpub_elsewhere",
                            WIDE_CONTRACT.format(name="testpub_elsewhere", format="csv"))
    monkeypatch.setenv("SAFEGUARD_CONTRACTS_DIR", str(folder))
    assert "testpub_elsewhere" in all_contracts(sg_settings)
    monkeypatch.delenv("SAFEGUARD_CONTRACTS_DIR")
    assert "testpub_elsewhere" not in all_contracts(sg_settings)
    assert os.environ.get("SAFEGUARD_CONTRACTS_DIR") is None
