"""Nothing identifying gets in: a hostile case extract, with identifying values in every form
mixed with clean rows, loads only the clean rows; no planted value is stored anywhere in the
database (every table of every schema is searched), and the batch report says what was caught."""

from __future__ import annotations

import csv

import pytest

from conftest import safeguard_cli

HEADER = ["Case ID", "Received", "Reporter", "Channel", "Exploitation types",
          "Highest grooming stage", "Victim age band", "Country", "Triaged", "Assessment",
          "Referred to", "Referred", "Closed"]
CLEAN = ["HL-P-{n}", "2021-05-0{n}T10:00:00Z", "Industry", "Messaging app", "Sextortion",
         "Desensitization", "14-15", "DE", "", "", "", "", ""]

# (column to plant in, planted value, the rule that must catch it)
PLANTED = [
    ("Channel", "jane.doe@example.org", "pii_email"),
    ("Reporter", "+44 7700 900123", "pii_phone"),
    ("Channel", "call 0612 345 678", "pii_phone"),
    ("Country", "192.168.13.37", "pii_ip_address"),
    ("Channel", "2001:db8:85a3::8a2e:370:7334", "pii_ip_address"),
    ("Exploitation types", "see https://chat.example.net/room/42", "pii_url"),
    ("Channel", "kidsgamehub.io", "pii_domain"),
    ("Reporter", "@darkfox_99", "pii_handle"),
    ("Victim age band", "4111 1111 1111 1111", "pii_payment_card"),
    ("Country", "221B Baker Street, London NW1 6XE", "pii_street_address"),
    ("Victim age band", "DOB 12/04/2009", "pii_date_of_birth"),
    ("Case ID", "Emily Johnson", "pii_person_name"),
    ("Case ID", "parent.report@mail.example.com", "pii_email"),
    ("Received", "mum@example.co.uk", "pii_email"),
    ("Channel", '=HYPERLINK("http://evil.example/x","click")', "no_formula"),
]


@pytest.fixture()
def hostile_file(tmp_path):
    path = tmp_path / "hostile_extract.csv"
    with path.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(HEADER)
        for n in range(1, 4):  # clean rows, on file rows 2-4
            w.writerow([v.format(n=n) for v in CLEAN])
        for i, (column, value, _) in enumerate(PLANTED):  # file rows 5 onwards
            row = [v.format(n=i + 10) for v in CLEAN]
            row[HEADER.index(column)] = value
            w.writerow(row)
    return path


def test_identifying_values_are_caught_masked_and_never_stored(pipeline_done, warehouse,
                                                               hostile_file, scratch):
    proc = safeguard_cli("ingest", "--source", "sample_hotline_cases", str(hostile_file),
                         check=False)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    report = proc.stderr
    assert f"{len(PLANTED)} of {len(PLANTED) + 3} rows quarantined, 3 loaded" in report
    for _, _, rule in PLANTED:
        assert f"rule {rule}:" in report, rule
    assert "hostile_extract.csv, row 5, column channel: rule pii_email" in report

    batch_id, status, read, loaded, quarantined = warehouse.execute(
        "select batch_id, status, rows_read, rows_loaded, rows_quarantined from ops.batches "
        "where file_name = 'hostile_extract.csv'").fetchone()
    assert (status, read, loaded, quarantined) == ("quarantined", len(PLANTED) + 3, 3,
                                                   len(PLANTED))
    by_rule = dict(warehouse.execute(
        "select rule, sum(row_count) from ops.batch_issues where batch_id = %s "
        "and (rule like 'pii_%%' or rule = 'no_formula') group by rule", [batch_id]).fetchall())
    # the street address also holds a postcode, reported as a kind of its own
    assert set(by_rule) == {rule for _, _, rule in PLANTED} | {"pii_postcode"}

    # quarantine keeps the row, masked: what was found, never what it said
    records = [r[0] for r in warehouse.execute(
        "select record::text from quarantine.rows where batch_id = %s", [batch_id])]
    assert len(records) == len(PLANTED)
    assert all("[masked " in r for r in records)

    # no planted value anywhere: every column of every table in every schema, as text
    tables = warehouse.execute(
        "select table_schema, table_name from information_schema.tables where table_schema "
        "not in ('pg_catalog', 'information_schema') and table_type in ('BASE TABLE', 'VIEW')"
    ).fetchall()
    assert len(tables) > 10
    for schema, table in tables:
        for _, value, _ in PLANTED:
            hits = warehouse.execute(
                f'select count(*) from "{schema}"."{table}" as t where strpos(t::text, %s) > 0',
                [value]).fetchone()[0]
            assert hits == 0, f"{schema}.{table} stores {value!r}"
        # the source's own case ids neither (only their keyed pseudonyms)
        assert warehouse.execute(
            f'select count(*) from "{schema}"."{table}" as t where strpos(t::text, %s) > 0',
            ["HL-P-"]).fetchone()[0] == 0, f"{schema}.{table} stores a source case id"


@pytest.mark.parametrize("value, column_type", [
    ("Online Enticement of Children for Sexual Acts", "category"),
    ("Live video / webcam", "category"),
    ("2020-03-14T09:12:00Z", "timestamp"),
    ("2020-03-15 10:00", "timestamp"),
    ("16,987,361", "count"),
    ("123456789012", "count"),
    ("HL-2020-0001234", "pseudonym"),
    ("11-13", "category"),
    ("2020-03", "month"),
])
def test_ordinary_values_are_not_mistaken_for_identifying_data(value, column_type):
    from safeguard.ingest.pii import scan

    assert scan(value, column_type) == ()
