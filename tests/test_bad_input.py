"""The catalogue of bad input: for each, the outcome (rejected whole / rows quarantined /
loaded with a warning), a message naming the file, the row, the column and the rule, and the
accounting rows read = loaded + quarantined. Real PostgreSQL, real GX, the loader's own code
path (the one `safeguard ingest` and the DAGs call)."""

from __future__ import annotations

import codecs
import io
import shutil
import zipfile

import pytest

from conftest import ROOT

NCMEC = (ROOT / "data/sample/ncmec_cybertipline_2019_2022.csv").read_text()
PARTNER_HEADER = "month,country,channel,exploitation_type,grooming_stage,reporter_type,cases\n"
PARTNER_ROW = "2023-01,NL,gaming,online_enticement,trust_development,public,{cases}\n"
CASE_HEADER = ("Case ID,Received,Reporter,Channel,Exploitation types,Highest grooming stage,"
               "Victim age band,Country,Triaged,Assessment,Referred to,Referred,Closed\n")


def _case_rows(*channels: str) -> str:
    """A case extract with one row per channel value, quoted as a spreadsheet would."""
    import csv
    import io

    out = io.StringIO()
    w = csv.writer(out, lineterminator="\n")
    for i, channel in enumerate(channels):
        w.writerow([f"HL-B-{i}", "2021-05-01T10:00:00Z", "Industry", channel, "Sextortion",
                    "Desensitization", "14-15", "DE", "", "", "", "", ""])
    return CASE_HEADER + out.getvalue()


@pytest.fixture()
def ingest(sg_settings, warehouse, tmp_path, scratch):
    """Deliver bytes under a contract; return (outcome, message, ops.batches accounting)."""
    from safeguard.contracts import get_contract
    from safeguard.ingest.errors import FileRejected, IngestError
    from safeguard.ingest.pipeline import ingest_file

    def run(source: str, name: str, data: bytes | str):
        path = tmp_path / name
        path.write_bytes(data.encode() if isinstance(data, str) else data)
        try:
            result = ingest_file(sg_settings, get_contract(sg_settings, source), path)
            outcome, message, batch_id = result.status, result.message, result.batch_id
        except FileRejected as e:
            outcome, message, batch_id = "file rejected", str(e), e.batch_id
        except IngestError as e:
            outcome, message, batch_id = "rows quarantined", str(e), e.batch_id
        accounting = warehouse.execute(
            "select status, rows_read, rows_loaded, rows_quarantined from ops.batches "
            "where batch_id = %s", [batch_id]).fetchone()
        status, read, loaded, quarantined = accounting
        assert read == loaded + quarantined  # the books balance, whatever happened
        return outcome, message, accounting

    return run


REJECTED = [  # (case, source, file name, content, words the message must contain)
    ("empty file", "ncmec_cybertipline", "empty.csv", "",
     ["empty.csv: the file is empty", "rule: not_empty"]),
    ("wrong delimiter", "ncmec_cybertipline", "semicolons.csv", NCMEC.replace(",", ";"),
     ["semicolons.csv, row 1 (header)", "rule: header_matches_contract",
      "looks ';'-separated"]),
    ("Latin-1 encoding", "ncmec_cybertipline", "latin1.csv",
     NCMEC.replace("Sexual Acts", "Sexual Acts é").encode("latin-1"),
     ["latin1.csv: not valid utf-8", "rule: encoding"]),
    ("UTF-16 with BOM", "ncmec_cybertipline", "utf16.csv",
     codecs.BOM_UTF16_LE + NCMEC.encode("utf-16-le"),
     ["utf16.csv: the file is UTF-16", "rule: encoding", "file.encoding"]),
    ("truncated last line", "ncmec_cybertipline", "truncated.csv", NCMEC.rstrip()[:-14],
     ["truncated.csv, row 9: 2 fields where the header has 3",
      "rule: field_count_matches_header"]),
    ("unterminated quote", "ncmec_cybertipline", "quote.csv", NCMEC + '2023,"Online',
     ["quote.csv", "rule: csv_well_formed"]),
    ("missing column", "ncmec_cybertipline", "missing.csv",
     "\n".join(",".join(line.split(",")[:2]) for line in NCMEC.splitlines()),
     ["missing.csv, row 1 (header)", "Missing: ['Reports']"]),
    ("extra column", "ncmec_cybertipline", "extra.csv",
     "\n".join(line + ",x" for line in NCMEC.splitlines()),
     ["extra.csv, row 1 (header)", "Unknown: ['x']"]),
    ("renamed column", "ncmec_cybertipline", "renamed.csv",
     NCMEC.replace("Incident type", "Type"),
     ["Missing: ['Incident type']", "Unknown: ['Type']"]),
    ("duplicate header names", "ncmec_cybertipline", "dupe_header.csv",
     NCMEC.replace("Year,Incident type,Reports", "Year,Incident type,Reports,Year"),
     ["Repeated: ['Year']"]),
    ("NUL byte", "ncmec_cybertipline", "nul.csv", NCMEC.replace("2021", "20\x0021", 1),
     ["nul.csv, row 4: a NUL byte", "rule: no_nul_bytes"]),
    ("very long field", "ncmec_cybertipline", "long.csv",
     NCMEC + "2023,Online Enticement" + "x" * 200_000 + ",5\n",
     ["long.csv, row", "rule: csv_well_formed"]),
    ("binary file", "ncmec_cybertipline", "fake.csv", b"PK\x03\x04\x00\x00garbage",
     ["fake.csv, row 1", "rule: no_nul_bytes"]),
]


@pytest.mark.parametrize("case, source, name, content, words", REJECTED,
                         ids=[r[0] for r in REJECTED])
def test_file_unreadable_under_its_contract_is_rejected_whole(ingest, case, source, name,
                                                               content, words):
    outcome, message, (status, read, loaded, quarantined) = ingest(source, name, content)
    assert outcome == "file rejected" and status == "rejected", message
    assert (read, loaded, quarantined) == (0, 0, 0)
    for w in words:
        assert w in message, f"{case}: {w!r} not in {message!r}"


QUARANTINED = [  # (case, source, content, expected message line, rows loaded of rows read)
    ("unknown category", "sample_partner_aggregates",
     PARTNER_HEADER + PARTNER_ROW.format(cases=3) + PARTNER_ROW.replace("gaming", "metaverse")
     .format(cases=4), "rows.csv, row 3, column channel: rule known_category", (1, 2)),
    ("negative count", "sample_partner_aggregates",
     PARTNER_HEADER + PARTNER_ROW.format(cases=-4),
     "rows.csv, row 2, column case_count: rule count_is_whole_non_negative", (0, 1)),
    ("fractional count", "sample_partner_aggregates",
     PARTNER_HEADER + PARTNER_ROW.format(cases="2.5"),
     "rows.csv, row 2, column case_count: rule count_is_whole_non_negative", (0, 1)),
    ("absurdly large count", "sample_partner_aggregates",
     PARTNER_HEADER + PARTNER_ROW.format(cases="9" * 20),
     "rows.csv, row 2, column case_count: rule count_is_whole_non_negative", (0, 1)),
    ("duplicate key in the file", "sample_partner_aggregates",
     PARTNER_HEADER + PARTNER_ROW.format(cases=3) + PARTNER_ROW.format(cases=5),
     "rows.csv, rows 2, 3, column month x country_code x channel x exploitation_type x "
     "grooming_stage x reporter_type: rule unique_grain", (0, 2)),
    ("date in the future", "sample_hotline_cases",
     _case_rows("Social media").replace("2021-05-01", "2099-05-01"),
     "rows.csv, row 2, column received_at: rule not_in_future", (0, 1)),
    ("date before the source existed", "sample_hotline_cases",
     _case_rows("Social media").replace("2021-05-01", "2009-05-01"),
     "rows.csv, row 2, column received_at: rule in_range: 'Received' must be 2018-01-01 or "
     "later", (0, 1)),
    ("impossible date", "sample_hotline_cases",
     _case_rows("Social media").replace("2021-05-01", "2021-02-30"),
     "rows.csv, row 2, column received_at: rule valid_timestamp", (0, 1)),
    ("formula injection", "sample_hotline_cases",
     _case_rows("Social media", '=HYPERLINK("http://x.example","y")', "+cmd", "@SUM(A1)"),
     "rows.csv, rows 3, 4, 5, column channel: rule no_formula", (1, 4)),
    ("SQL-looking string", "sample_hotline_cases",
     _case_rows("Social media", "x'); drop table raw.hotline_cases; --"),
     "rows.csv, row 3, column channel: rule known_category", (1, 2)),
    ("control characters", "sample_hotline_cases",
     _case_rows("Social media", "Social\x01media"),
     "rows.csv, row 3, column channel: rule known_category", (1, 2)),
]


@pytest.mark.parametrize("case, source, content, line, counts", QUARANTINED,
                         ids=[q[0] for q in QUARANTINED])
def test_rows_breaking_the_rules_are_quarantined_with_their_reason(ingest, warehouse, case,
                                                                    source, content, line,
                                                                    counts):
    outcome, message, (status, read, loaded, quarantined) = ingest(source, "rows.csv", content)
    assert outcome == "rows quarantined" and status == "quarantined", message
    assert line in message, f"{case}: {line!r} not in:\n{message}"
    assert (loaded, read) == counts
    if "drop table" in content:  # values are data, never SQL: the table is still there
        assert warehouse.execute("select to_regclass('raw.hotline_cases')").fetchone()[0]


def test_header_only_file_loads_nothing_with_a_warning(ingest):
    outcome, message, accounting = ingest("sample_partner_aggregates", "header_only.csv",
                                          PARTNER_HEADER)
    assert outcome == "loaded_with_warnings"
    assert accounting == ("loaded_with_warnings", 0, 0, 0)
    assert "header_only.csv, whole file, column -: rule has_data_rows" in message


def test_reordered_columns_are_read_by_name(ingest, warehouse):
    header = "cases,month,country,channel,exploitation_type,grooming_stage,reporter_type\n"
    outcome, _, accounting = ingest("sample_partner_aggregates", "reordered.csv",
                                    header + "12,2023-02,NL,gaming,online_enticement,"
                                    "trust_development,public\n")
    assert outcome == "loaded" and accounting == ("loaded", 1, 1, 0)


def test_same_content_under_another_name_is_not_loaded_twice(ingest):
    content = PARTNER_HEADER + PARTNER_ROW.format(cases=31).replace("2023-01", "2023-05")
    assert ingest("sample_partner_aggregates", "may.csv", content)[0] == "loaded"
    outcome, message, accounting = ingest("sample_partner_aggregates", "may_resent.csv", content)
    assert outcome == "duplicate" and accounting == ("duplicate", 0, 0, 0)
    assert "same content as batch" in message


def test_two_runs_racing_on_the_same_file_load_it_once(sg_settings, warehouse, tmp_path,
                                                        scratch):
    """Two ingests of one delivery at the same moment: the second waits for the first (the
    source's landing table holds one batch at a time), then finds the content loaded."""
    from concurrent.futures import ThreadPoolExecutor

    from safeguard.contracts import get_contract
    from safeguard.ingest.pipeline import ingest_file

    path = tmp_path / "raced.csv"
    path.write_text(PARTNER_HEADER + "".join(
        PARTNER_ROW.replace("2023-01", f"2022-{m:02d}").format(cases=m + 10)
        for m in range(1, 13)))
    contract = get_contract(sg_settings, "sample_partner_aggregates")
    with ThreadPoolExecutor(2) as pool:
        results = list(pool.map(lambda _: ingest_file(sg_settings, contract, path), range(2)))
    assert sorted(r.status for r in results) == ["duplicate", "loaded"]
    assert warehouse.execute(
        "select count(*) from raw.partner_aggregates p join ops.batches b using (batch_id) "
        "where b.file_name = 'raced.csv'").fetchone()[0] == 12


def test_workbook_that_unpacks_to_far_more_than_its_size_is_not_opened(ingest, tmp_path,
                                                                      monkeypatch):
    """An .xlsx is a zip archive: a "zip bomb" is refused before anything unpacks it."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("[Content_Types].xml", "<Types/>")
        z.writestr("xl/worksheets/sheet1.xml", "0" * 50_000_000)  # 50 MB of zeros
    contracts = tmp_path / "contracts"
    shutil.copytree(ROOT / "contracts", contracts)
    text = (ROOT / "contracts/ncmec_cybertipline.yml").read_text()
    (contracts / "ncmec_xlsx.yml").write_text(
        text.replace("name: ncmec_cybertipline", "name: ncmec_xlsx")
        .replace("format: csv", "format: xlsx"))
    monkeypatch.setenv("SAFEGUARD_CONTRACTS_DIR", str(contracts))

    outcome, message, accounting = ingest("ncmec_xlsx", "bomb.xlsx", buffer.getvalue())
    assert outcome == "file rejected" and accounting == ("rejected", 0, 0, 0)
    assert "bomb.xlsx: the workbook unpacks to 50,000,008 bytes" in message
    assert "rule: archive_limits" in message


# A row whose period lies outside the period its file's name declares: filed in the wrong
# delivery (a month's file carrying the next month, a 2019-2022 table with a 2023 row).
# (case, source, file name, content, outcome, message line, (loaded, read))
OUT_OF_PERIOD = [
    ("month outside the month in the name", "sample_partner_aggregates",
     "partner_monthly_2023-03.csv",
     PARTNER_HEADER + PARTNER_ROW.replace("2023-01", "2023-03").format(cases=7)
     + PARTNER_ROW.replace("2023-01", "2023-04").format(cases=8),
     "quarantined",
     "partner_monthly_2023-03.csv, row 3, column month: rule period_within_declared_range: "
     "'month' must lie within the period the file's name declares (2023-03)", (1, 2)),
    ("month outside the years in the name", "sample_partner_aggregates",
     "partner_aggregates_2021_2022.csv",
     PARTNER_HEADER + PARTNER_ROW.replace("2023-01", "2020-12").format(cases=9)
     + PARTNER_ROW.replace("2023-01", "2021-01").format(cases=10)
     + PARTNER_ROW.replace("2023-01", "2022-12").format(cases=11),
     "quarantined",
     "partner_aggregates_2021_2022.csv, row 2, column month: rule "
     "period_within_declared_range: 'month' must lie within the period the file's name "
     "declares (2021-2022)", (2, 3)),
    ("year outside the years in the name", "ncmec_cybertipline",
     "ncmec_cybertipline_2019_2022.csv",
     NCMEC + '2023,Online Enticement of Children for Sexual Acts,"186,819"\n',
     "rejected",  # the contract rejects a published table whole
     "ncmec_cybertipline_2019_2022.csv, row 10, column year: rule "
     "period_within_declared_range: 'Year' must lie within the period the file's name "
     "declares (2019-2022)", (0, 9)),
]


@pytest.mark.parametrize("case, source, name, content, status_wanted, line, counts",
                         OUT_OF_PERIOD, ids=[o[0] for o in OUT_OF_PERIOD])
def test_row_outside_the_period_the_file_name_declares_is_quarantined(
        ingest, warehouse, case, source, name, content, status_wanted, line, counts):
    outcome, message, (status, read, loaded, quarantined) = ingest(source, name, content)
    assert outcome == "rows quarantined" and status == status_wanted, message
    assert line in message, f"{case}: {line!r} not in:\n{message}"
    assert (loaded, read) == counts
    reasons = [r for (rs,) in warehouse.execute(
        "select q.reasons from quarantine.rows q join ops.batches b using (batch_id) "
        "where b.file_name = %s and b.status = %s", [name, status_wanted]) for r in rs]
    assert any(r["rule"] == "period_within_declared_range" and "declares (" in r["message"]
               for r in reasons), reasons


def test_file_without_a_date_in_its_name_declares_no_period(ingest):
    content = (PARTNER_HEADER + PARTNER_ROW.replace("2023-01", "2016-07").format(cases=41)
               + PARTNER_ROW.replace("2023-01", "2024-02").format(cases=42))
    outcome, message, accounting = ingest("sample_partner_aggregates", "partner_latest.csv",
                                          content)
    assert outcome == "loaded" and accounting == ("loaded", 2, 2, 0), message


@pytest.mark.parametrize("name, period", [
    ("ncmec_cybertipline_2019_2022.csv", "2019-2022"),
    ("table3_2019-2021.xlsx", "2019-2021"),
    ("report_2022.csv", "2022"),
    ("partner_monthly_2023-03.csv", "2023-03"),
    ("extract_2023-03-31.csv", "2023-03-31"),
    ("partner_latest.csv", None),
    ("backwards_2022_2019.csv", None),
    ("bad_month_2023-13.csv", "2023"),  # not a month: the year is still declared
])
def test_the_period_a_name_declares(name, period):
    from safeguard.periods import declared_period

    got = declared_period(name)
    assert (str(got) if got else None) == period


def test_a_file_far_larger_than_memory_is_read_a_batch_at_a_time(tmp_path):
    """The reader and the allow-list hold one batch of records at a time, so a file of any
    size streams into COPY: the peak memory they use (Python objects and Arrow buffers) for
    five times the rows stays within 1.5 times. (Holding 1,000,000 rows would take well over
    a hundred MB; one batch is a few.)"""
    import tracemalloc
    from itertools import cycle, islice

    import pyarrow as pa

    from safeguard.contracts import load_contract
    from safeguard.ingest.admit import Admission
    from safeguard.ingest.readers import CHUNK_ROWS, file_facts, read_batches

    contract = load_contract(ROOT / "contracts" / "sample_partner_aggregates.yml")
    countries = [line.split(",")[0] for line in
                 (ROOT / "dbt/seeds/ref_countries.csv").read_text().splitlines()[1:41]]

    def peak(rows: int) -> tuple[int, int]:
        path = tmp_path / f"partner_{rows}.csv"
        with path.open("w") as f:
            f.write(PARTNER_HEADER)
            for i, country in enumerate(islice(cycle(countries), rows)):
                f.write(f"{2018 + i % 7}-{i % 12 + 1:02d},{country},gaming,online_enticement,"
                        f"trust_development,public,{i % 997}\n")
        admit = Admission(contract, "k")
        base, top, read = pa.total_allocated_bytes(), 0, 0
        tracemalloc.start()
        try:
            for batch in read_batches(contract, path, file_facts(path)):
                admitted = admit(batch.columns)
                read += len(batch)
                top = max(top, pa.total_allocated_bytes() - base)
                del admitted, batch
            return read, top + tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()

    assert CHUNK_ROWS < 200_000
    (small_rows, small), (large_rows, large) = peak(200_000), peak(1_000_000)
    assert (small_rows, large_rows) == (200_000, 1_000_000)
    assert large <= 1.5 * small, f"peak {large:,} B for 1M rows vs {small:,} B for 200k"
