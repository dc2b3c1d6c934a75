"""The ingest path attacked with files nobody here designed it for.

1. Nothing unvetted is ever stored: every bundled contract gets files with identifying values
   (``hostile_corpus.CORPUS`` alone and ``EMBEDDED`` in other text) planted in every column,
   the case id included; deliveries named after a person; headers that are identifying values.
   Each is judged by its exit code, its messages and the batch's books.
2. A crashed batch leaves nothing behind: a loader killed while landing, or after it has
   landed, is marked failed by the next run, and its rows are gone from landing.
3. Search everywhere: after 1 and 2, no planted value is in any table of any database on the
   server, nor in any file under SAFEGUARD_HOME (the server's data files, WAL and log
   included), nor in any file the run wrote under the checkout.
4. Exact counts at volume: 10, 1,000 and 100,000 bad rows per rule, mixed with good ones: each
   set aside exactly, counted exactly, and described exactly.

Failure messages never quote a planted value: they name where it was found and its KIND.
"""

from __future__ import annotations

import csv
import itertools
import json
import os
import random
import re
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import psycopg
import pytest
from psycopg import sql
from psycopg.rows import dict_row, tuple_row

from conftest import ROOT, _remove_batches_since, safeguard_cli
from hostile_corpus import CORPUS, EMBEDDED

HOTLINE = "sample_hotline_cases"
PARTNER = "sample_partner_aggregates"
NCMEC = "ncmec_cybertipline"
ICMEC = "icmec_grooming_legislation"
#: the published-figure tables: their clean rows are built from the contract alone
#: (``_from_contract``), so a table added later is attacked without new code here
IWF, INHOPE = "iwf_annual_reports", "inhope_iccam"
CYBERTIP, NCMEC_BY_COUNTRY = "cybertip_incident_types", "ncmec_reports_by_country"
SOURCES = (HOTLINE, PARTNER, NCMEC, ICMEC, IWF, INHOPE, CYBERTIP, NCMEC_BY_COUNTRY)

#: every value planted in a cell: the corpus alone, then inside other text
PLANTED_VALUES: list[tuple[str, str]] = [*CORPUS, *EMBEDDED]
#: the source's own case ids: never stored either (only their keyed hash)
CASE_ID_PREFIX = "HLX-SRC-"
#: a delivery's name holding an identifying value (each a CORPUS value, so searched for in 3)
NAMED_AFTER = {HOTLINE: ("cases_", "jane.doe@example.org"),
               PARTNER: ("partner_", "+44 7700 900123"),
               NCMEC: ("ncmec_", "Emily Johnson"),
               ICMEC: ("icmec_", "kidsgamehub.example.org"),
               IWF: ("iwf_", "Oliver Brandt"),
               INHOPE: ("inhope_", "darkroom.example.net"),
               CYBERTIP: ("cybertip_", "Amelia Hartley"),
               NCMEC_BY_COUNTRY: ("by_country_", "Hannah Schmidt")}

EXIT_LOADED, EXIT_ROWS_FAILED, EXIT_FILE_REJECTED = 0, 1, 2


# --- what is searched for, in every form a stored or logged value could take ----------------

def _record_escaped(text: str) -> str:
    """As PostgreSQL's record output writes a quoted field: `"` and `\\` doubled."""
    return "".join(c * 2 if c in '"\\' else c for c in text)


def _array_escaped(text: str) -> str:
    """As PostgreSQL's array output writes a quoted element: `"` and `\\` backslashed."""
    return "".join("\\" + c if c in '"\\' else c for c in text)


def _forms(value: str) -> set[str]:
    """The value as delivered and trimmed, and as JSON, a Python repr, an SQL literal, an array
    element or a record field would write it (only values holding quotes, backslashes, tabs or
    non-ASCII letters have more than one form)."""
    out: set[str] = set()
    for base in {value, value.strip()}:
        forms = {base, json.dumps(base)[1:-1], json.dumps(base, ensure_ascii=False)[1:-1],
                 repr(base)[1:-1], base.replace("'", "''")}
        forms |= {_array_escaped(f) for f in forms}
        forms |= {_record_escaped(f) for f in forms}
        out |= forms
    return out


def _needles() -> dict[str, str]:
    """Text searched for -> the kind it betrays."""
    found: dict[str, str] = {}
    for kind, value in CORPUS:
        for form in _forms(value):
            found.setdefault(form, kind)
    corpus = {v for _, v in CORPUS}
    assert all(v in corpus for _, v in NAMED_AFTER.values()), "file names hold CORPUS values"
    found[CASE_ID_PREFIX] = "source_case_id"
    assert all(len(n) >= 8 for n in found), "a needle that short would match by chance"
    return found


NEEDLES = _needles()
_BY_LENGTH = sorted(NEEDLES, key=len, reverse=True)


def kinds_in(text: str | None) -> list[str]:
    """The kinds of planted values that ``text`` holds (never the values)."""
    if not text:
        return []
    return sorted({NEEDLES[n] for n in _BY_LENGTH if n in text})


def redact(text: str) -> str:
    """``text`` with every planted value replaced by its kind: safe to show in a report."""
    for n in _BY_LENGTH:
        text = text.replace(n, f"<{NEEDLES[n]}>")
    return text[-4000:]


# --- clean rows, per contract ---------------------------------------------------------------

def _digits(i: int, *domains: list[str]) -> list[str]:
    """Row i's value in each domain (mixed radix): distinct rows get distinct combinations."""
    out = []
    for d in domains:
        out.append(d[i % len(d)])
        i //= len(d)
    return out


MONTHS = [f"{y}-{m:02d}" for y in range(2018, 2025) for m in range(1, 13)]


@dataclass
class Source:
    name: str
    header: list[str]
    clean: Callable[[int], dict[str, str]]  # row i: clean, its grain unique to i
    policy: str
    raw_table: str
    #: what the file's name must end with: the period a column is read from (e.g. ``_2022``)
    name_suffix: str = ""


def _sources(settings) -> dict[str, Source]:
    from safeguard.contracts import all_contracts

    contracts = all_contracts(settings)

    def labels(source: str, column: str) -> list[str]:
        return sorted(contracts[source].column(column).values)

    def hotline(i: int) -> dict[str, str]:
        return {"Case ID": f"{CASE_ID_PREFIX}{i:07d}",
                "Received": f"2021-05-{i % 28 + 1:02d}T10:00:00Z", "Reporter": "Industry",
                "Channel": "Messaging app", "Exploitation types": "Sextortion",
                "Highest grooming stage": "Desensitization", "Victim age band": "14-15",
                "Country": "DE", "Triaged": "", "Assessment": "", "Referred to": "",
                "Referred": "", "Closed": ""}

    partner_domains = [MONTHS] + [labels(PARTNER, c) for c in (
        "country_code", "channel", "exploitation_type", "grooming_stage", "reporter_type")]

    def partner(i: int) -> dict[str, str]:
        month, country, channel, etype, stage, reporter = _digits(i, *partner_domains)
        return {"month": month, "country": country, "channel": channel,
                "exploitation_type": etype, "grooming_stage": stage, "reporter_type": reporter,
                "cases": str(i % 50 + 1)}

    years = [str(y) for y in range(1998, 2025)]

    def ncmec(i: int) -> dict[str, str]:
        year, category = _digits(i, years, labels(NCMEC, "category"))
        return {"Year": year, "Incident type": category, "Reports": "19,174"}

    countries = labels(ICMEC, "country_code")
    editions = [str(e) for e in range(1, 10)]

    def icmec(i: int) -> dict[str, str]:
        country, edition = _digits(i, countries, editions)
        return {"Country code": country, "Edition": edition,
                "Dedicated grooming legislation": ("Yes", "No")[i % 2]}

    builders = {HOTLINE: hotline, PARTNER: partner, NCMEC: ncmec, ICMEC: icmec}
    out = {}
    for name in SOURCES:
        c = contracts[name]
        build = builders.get(name) or _from_contract(c)
        header = list(build(0))
        assert sorted(header) == sorted(col.source for col in c.read_columns), name
        from_name = {col.name for col in c.columns if col.from_file_name}
        suffix = "_2022-03" if "month" in from_name else "_2022" if from_name else ""
        out[name] = Source(name, header, build, c.on_row_failure, c.kind.raw_table, suffix)
    return out


def _from_contract(contract) -> Callable[[int], dict[str, str]]:
    """Clean rows of a published-figures contract, from its columns alone: every labelled
    column takes its labels (a totals row's label left out: a clean file reconciles by having
    none), a year column the years from its minimum, the value a count in the contract's
    thousands style. Row i's grain is unique to i while the combinations last."""
    sep = {}
    domains: list[tuple[str, list[str]]] = []
    totals = set(contract.totals.when.values()) if contract.totals else set()
    for col in contract.read_columns:
        assert not contract.unpivot, f"{contract.name}: unpivoted headers need a builder here"
        if col.type == "count":
            sep[col.source] = col.thousands_separator or ""
        elif col.values:
            domains.append((col.source, sorted(k for k, v in col.values.items()
                                               if v not in totals)))
        elif col.type == "year":
            domains.append((col.source, [str(y) for y in range(max(col.min or 1990, 1990),
                                                                2025)]))
        else:
            raise AssertionError(f"{contract.name}: no clean value for column {col.name!r} "
                                 f"({col.type}); teach _from_contract one")

    def build(i: int) -> dict[str, str]:
        row = dict(zip([d[0] for d in domains], _digits(i, *[d[1] for d in domains]), strict=True))
        row.update({source: f"{1_000 + i:,}".replace(",", s) for source, s in sep.items()})
        return row
    return build


def _write_csv(path: Path, header: list[str], rows: Iterable[list[str]]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="", encoding="utf-8") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(header)
        w.writerows(rows)
    return path


# --- one delivery through the CLI, and what it left in ops ----------------------------------

@dataclass(repr=False)  # its output may hold what it should not: never shown in a report
class Delivery:
    source: str
    variant: str
    path: Path
    expected_exit: int
    data_rows: int = 0
    planted_lines: list[int] = field(default_factory=list)
    #: file line -> "column: kind" of the value planted there
    planted_what: dict[int, str] = field(default_factory=dict)
    # filled by _deliver
    returncode: int | None = None
    output: str = ""
    seconds: float = 0.0
    batches: list[dict] = field(default_factory=list)
    issues: list[dict] = field(default_factory=list)
    quarantined_lines: list[int] = field(default_factory=list)
    raw_rows: int = 0

    def __repr__(self) -> str:
        return f"Delivery({self.source}, {self.variant}, exit {self.returncode})"


def _deliver(settings, d: Delivery, raw_table: str) -> Delivery:
    """Run the delivery through ``safeguard ingest``; its batch is the one of its source and
    (shown) file name started since (others may use the server meanwhile)."""
    from safeguard.ingest.admit import shown_file_name

    admin = settings.admin_url(settings.warehouse_db)
    with psycopg.connect(admin, autocommit=True, row_factory=dict_row) as conn:
        since = conn.execute("select clock_timestamp() as t").fetchone()["t"]
        t = time.perf_counter()
        proc = safeguard_cli("ingest", "--source", d.source, str(d.path), check=False)
        d.seconds = time.perf_counter() - t
        d.returncode, d.output = proc.returncode, proc.stdout + proc.stderr
        d.batches = conn.execute(
            "select batch_id::text, status, file_name, rows_read, rows_loaded, "
            "rows_quarantined, message from ops.batches where source_name = %s "
            "and file_name = %s and started_at >= %s order by started_at",
            [d.source, shown_file_name(d.path.name), since]).fetchall()
        if len(d.batches) == 1:
            batch_id = d.batches[0]["batch_id"]
            d.issues = conn.execute(
                "select rule, column_name, row_count, example_rows, severity, message "
                "from ops.batch_issues where batch_id = %s order by rule, column_name",
                [batch_id]).fetchall()
            d.quarantined_lines = [r["line"] for r in conn.execute(
                "select (record->>'source_row')::bigint as line from quarantine.rows "
                "where batch_id = %s order by 1", [batch_id])]
            d.raw_rows = conn.execute(
                sql.SQL("select count(*) as n from {} where batch_id = %s").format(
                    sql.Identifier("raw", raw_table)), [batch_id]).fetchone()["n"]
    return d


# --- the hostile deliveries of part 1 -------------------------------------------------------

VARIANTS = ("planted", "header_unknown", "header_repeated", "header_many", "name_clean",
            "name_header", "name_planted")


def _planted_file(src: Source, path: Path, values: list[tuple[str, str]],
                  columns: list[str], clean_every: int = 4, start: int = 0) -> Delivery:
    """One planted value per row, every value in every given column, a clean row after every
    ``clean_every`` planted ones."""
    rows: list[list[str]] = []
    planted: dict[int, str] = {}
    i = start
    for column in columns:
        for kind, value in values:
            if len(planted) % clean_every == 0:
                rows.append([src.clean(i)[h] for h in src.header])
                i += 1
            row = src.clean(i)
            row[column] = value
            rows.append([row[h] for h in src.header])
            planted[len(rows) + 1] = f"{column}: {kind}"  # the header is line 1
            i += 1
    _write_csv(path, src.header, rows)
    return Delivery(src.name, "", path, EXIT_ROWS_FAILED, len(rows), sorted(planted), planted)


def _deliveries(src: Source, folder: Path) -> dict[str, Delivery]:
    out: dict[str, Delivery] = {}
    sfx = src.name_suffix
    header_file = f"hostile_header{sfx}.csv"
    d = _planted_file(src, folder / "planted" / f"hostile_{src.name.replace('_', '-')}{sfx}.csv",
                      PLANTED_VALUES, src.header)
    out["planted"] = d

    clean = [[src.clean(i)[h] for h in src.header] for i in range(3)]
    extra = [v for _, v in PLANTED_VALUES]
    path = _write_csv(folder / "header_unknown" / header_file, src.header + extra,
                      [row + [""] * len(extra) for row in clean])
    out["header_unknown"] = Delivery(src.name, "", path, EXIT_FILE_REJECTED)
    # one value of each kind, twice (a short message: see header_many for a long one)
    repeated = list({k: v for k, v in CORPUS}.values()) * 2
    path = _write_csv(folder / "header_repeated" / header_file, src.header + repeated,
                      [row + [""] * len(repeated) for row in clean])
    out["header_repeated"] = Delivery(src.name, "", path, EXIT_FILE_REJECTED)
    # so many unknown columns that the message runs past 10,000 characters
    many = extra + [f"Unexpected column {k}" for k in range(400)]
    path = _write_csv(folder / "header_many" / header_file, src.header + many,
                      [row + [""] * len(many) for row in clean])
    out["header_many"] = Delivery(src.name, "", path, EXIT_FILE_REJECTED)

    prefix, value = NAMED_AFTER[src.name]
    name = f"{prefix}{value}{sfx}.csv"
    path = _write_csv(folder / "name_clean" / name, src.header, clean)
    out["name_clean"] = Delivery(src.name, "", path, EXIT_LOADED, len(clean))
    path = _write_csv(folder / "name_header" / name, [*src.header, "Notes"],
                      [row + [""] for row in clean])
    out["name_header"] = Delivery(src.name, "", path, EXIT_FILE_REJECTED)
    out["name_planted"] = _planted_file(src, folder / "name_planted" / name, CORPUS[:5],
                                        [src.header[1]], clean_every=2, start=10)
    for variant, d in out.items():
        d.variant = variant
    return out


@pytest.fixture(scope="module")
def module_start(sg_settings):
    """This module's batches stay in the warehouse until every test of it has run, so the search
    (3) sees what the runs stored and nothing was deleted before it: a DELETE leaves the row's
    bytes in the data files (a dead tuple; VACUUM marks the space free without zeroing it) and
    in the WAL, so cleaning up first would plant findings of our own making. Afterwards they are
    removed, as ``scratch`` does, so the tests that follow see the pipeline's own data only."""
    url = sg_settings.admin_url(sg_settings.warehouse_db)
    with psycopg.connect(url, autocommit=True) as conn:
        t0 = conn.execute("select clock_timestamp()").fetchone()[0]
    yield t0
    with psycopg.connect(url, autocommit=True) as conn:
        _remove_batches_since(conn, t0)


@pytest.fixture(scope="module")
def sources(sg_settings) -> dict[str, Source]:
    return _sources(sg_settings)


@pytest.fixture(scope="module")
def hostile_runs(sg_settings, module_start, checkout_baseline, sources, tmp_path_factory
                 ) -> dict[tuple[str, str], Delivery]:
    folder = tmp_path_factory.mktemp("hostile")

    def deliver_all(name: str) -> list[Delivery]:  # one source's deliveries, one at a time
        src = sources[name]
        return [_deliver(sg_settings, d, src.raw_table)
                for d in _deliveries(src, folder / name).values()]

    # sources side by side: each CLI run spends most of its time starting up (importing GX)
    with ThreadPoolExecutor(len(SOURCES)) as pool:
        done = [d for ds in pool.map(deliver_all, SOURCES) for d in ds]
    for d in done:
        print(f"\n{d.source} {d.variant}: exit {d.returncode} in {d.seconds:.1f} s", end="")
    return {(d.source, d.variant): d for d in done}


def test_every_bundled_contract_is_attacked(sg_settings):
    from safeguard.contracts import all_contracts

    bundled = {p.stem for p in (ROOT / "contracts").glob("*.yml")}
    assert bundled == set(SOURCES) == set(all_contracts(sg_settings))


def _leaks(d: Delivery) -> list[str]:
    """Where this delivery's messages and books show a planted value (kinds only)."""
    found = [f"stdout/stderr: {k}" for k in kinds_in(d.output)]
    for b in d.batches:
        found += [f"ops.batches.{col}: {k}" for col in ("file_name", "message")
                  for k in kinds_in(b[col])]
    for i in d.issues:
        found += [f"ops.batch_issues.message ({i['rule']}): {k}" for k in kinds_in(i["message"])]
    return found


@pytest.mark.parametrize("source", SOURCES)
@pytest.mark.parametrize("variant", VARIANTS)
def test_hostile_delivery_is_set_aside_and_never_quoted(hostile_runs, sources, source, variant):
    from safeguard.ingest.admit import shown_file_name

    d = hostile_runs[(source, variant)]
    src = sources[source]
    shown = redact(d.output)
    assert d.returncode == d.expected_exit, shown
    assert "Traceback" not in d.output, shown
    assert not _leaks(d), _leaks(d)
    assert len(d.batches) == 1, [(b["status"], b["rows_read"]) for b in d.batches]
    b = d.batches[0]
    assert b["file_name"] == shown_file_name(d.path.name)
    if variant in ("planted", "name_planted") and src.policy == "quarantine_rows":
        loaded = sorted(set(d.planted_lines) - set(d.quarantined_lines))
        assert not loaded, "planted rows not set aside: " + "; ".join(
            f"line {line} ({d.planted_what[line]})" for line in loaded)
    status = {EXIT_LOADED: "loaded", EXIT_FILE_REJECTED: "rejected"}.get(d.expected_exit) or (
        "quarantined" if src.policy == "quarantine_rows" else "rejected")
    assert b["status"] == status, f"batch left {b['status']}: {redact(b['message'] or '')}"
    assert b["rows_read"] == b["rows_loaded"] + b["rows_quarantined"]
    if variant.startswith("name_"):
        assert shown_file_name(d.path.name) != d.path.name  # the name was masked...
        assert shown_file_name(d.path.name) in d.output  # ...and the message names it so
    if variant in ("planted", "name_planted"):
        assert b["rows_read"] == d.data_rows
        assert not [i for i in d.issues if i["rule"] == "gate_counts_agree"], d.issues
        if src.policy == "quarantine_rows":
            assert b["status"] == "quarantined", redact(b["message"] or "")
            assert b["rows_quarantined"] == len(d.planted_lines)
            assert b["rows_loaded"] == d.data_rows - len(d.planted_lines)
            assert d.raw_rows == b["rows_loaded"]
            assert d.quarantined_lines == d.planted_lines
        else:
            assert b["status"] == "rejected"
            assert (b["rows_loaded"], b["rows_quarantined"]) == (0, d.data_rows)
            assert d.raw_rows == 0
    elif variant == "name_clean":
        assert (b["status"], b["rows_read"], b["rows_loaded"], b["rows_quarantined"]) == (
            "loaded", d.data_rows, d.data_rows, 0)
        assert d.raw_rows == d.data_rows
    else:  # a header: the file is rejected whole, nothing read
        assert (b["status"], b["rows_read"], b["rows_loaded"], b["rows_quarantined"]) == (
            "rejected", 0, 0, 0)
        assert [i["rule"] for i in d.issues] == ["header_matches_contract"]
        assert "(rule: header_matches_contract)" in d.output
        assert d.raw_rows == 0 and d.quarantined_lines == []


# --- 2. a crashed batch ---------------------------------------------------------------------

CRASH_ROWS = 300_000
KILL_POINTS = ("landing", "landed")


def _crash_file(src: Source, path: Path) -> int:
    """CRASH_ROWS case rows, one in 97 with a planted value (every value, in every column)."""
    cycle = itertools.cycle([(c, v) for c in src.header for _, v in PLANTED_VALUES])
    with path.open("w", newline="", encoding="utf-8") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(src.header)
        for i in range(CRASH_ROWS):
            row = src.clean(1_000_000 + i)
            if i % 97 == 0:
                column, value = next(cycle)
                row[column] = value
            w.writerow([row[h] for h in src.header])
    return CRASH_ROWS


def _wait_for_kill_point(conn, since, file_name: str, point: str, proc: subprocess.Popen,
                         timeout: float = 300) -> tuple[str, str]:
    """The batch's id and status once it is landing with rows streaming into landing (COPY
    under way), or once it has landed (validation under way)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        row = conn.execute(
            "select b.batch_id::text, b.status, exists (select from pg_stat_progress_copy c "
            "where c.command = 'COPY FROM' and c.tuples_processed > 0 "
            "and c.datname = current_database()) from ops.batches b "
            "where b.source_name = %s and b.file_name = %s and b.started_at >= %s",
            [HOTLINE, file_name, since]).fetchone()
        if row and row[1] == point and (point == "landed" or row[2]):
            return row[0], row[1]
        if proc.poll() is not None:
            raise AssertionError(f"the ingest ended (exit {proc.returncode}) before it was "
                                 f"{point}: batch {row}")
        time.sleep(0.02)
    raise AssertionError(f"the batch was never {point} within {timeout} s")


@dataclass(repr=False)
class Crash:
    point: str
    batch_id: str
    status_when_killed: str
    status_after_kill: str
    killed_exit: int
    killed_output: str
    seconds_to_kill: float
    recovery: subprocess.CompletedProcess
    crashed: dict
    issues: list[dict]
    in_landing_before: int | None  # the crashed batch's rows in landing before the next run
    left_in_landing: int | None
    left_in_raw: int
    left_in_quarantine: int
    recovery_batch: dict | None

    def __repr__(self) -> str:
        return f"Crash({self.point}, batch {self.batch_id})"


@pytest.fixture(scope="module")
def crashes(sg_settings, module_start, checkout_baseline, sources, tmp_path_factory
            ) -> dict[str, Crash]:
    src = sources[HOTLINE]
    folder = tmp_path_factory.mktemp("crash")
    big = folder / "hostile_big_extract.csv"
    _crash_file(src, big)
    admin = sg_settings.admin_url(sg_settings.warehouse_db)
    exe = Path(sys.executable).with_name("safeguard")
    out: dict[str, Crash] = {}
    for n, point in enumerate(KILL_POINTS):
        with psycopg.connect(admin, autocommit=True) as conn:
            since = conn.execute("select clock_timestamp()").fetchone()[0]
            log = (folder / f"killed_{point}.out").open("w+")
            t = time.perf_counter()
            proc = subprocess.Popen([str(exe), "ingest", "--source", HOTLINE, str(big)],
                                    stdout=log, stderr=subprocess.STDOUT, text=True,
                                    env=os.environ, start_new_session=True)
            try:
                batch_id, status = _wait_for_kill_point(conn, since, big.name, point, proc)
            finally:
                if proc.poll() is None:
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(60)
            seconds = time.perf_counter() - t
            log.seek(0)
            killed_output = log.read()
            log.close()
            after_kill = conn.execute("select status from ops.batches where batch_id = %s",
                                      [batch_id]).fetchone()[0]
            in_landing_before = _in_landing(conn, batch_id)

            # the next run of the source: a small clean delivery, as an engineer would send
            rows = [[src.clean(2_000_000 + 10 * n + i)[h] for h in src.header] for i in range(5)]
            clean = _write_csv(folder / f"after_{point}" / "clean_extract.csv", src.header,
                               rows)
            recovery = safeguard_cli("ingest", "--source", HOTLINE, str(clean), check=False)

            conn.row_factory = dict_row
            crashed = conn.execute(
                "select status, rows_read, rows_loaded, rows_quarantined, message, finished_at "
                "from ops.batches where batch_id = %s", [batch_id]).fetchone()
            issues = conn.execute(
                "select rule, severity, row_count, message from ops.batch_issues "
                "where batch_id = %s", [batch_id]).fetchall()
            left_in_landing = _in_landing(conn, batch_id)
            in_raw = conn.execute("select count(*) as n from raw.hotline_cases "
                                  "where batch_id = %s", [batch_id]).fetchone()["n"]
            in_quarantine = conn.execute("select count(*) as n from quarantine.rows "
                                         "where batch_id = %s", [batch_id]).fetchone()["n"]
            recovery_batch = conn.execute(
                "select status, rows_read, rows_loaded, rows_quarantined from ops.batches "
                "where source_name = %s and file_name = %s and started_at > %s",
                [HOTLINE, clean.name, since]).fetchone()
        out[point] = Crash(point, batch_id, status, after_kill, proc.returncode,
                           killed_output, seconds, recovery, crashed, issues,
                           in_landing_before, left_in_landing, in_raw, in_quarantine,
                           recovery_batch)
        print(f"\nkilled when {point} after {seconds:.1f} s", end="")
    return out


def _in_landing(conn, batch_id: str) -> int | None:
    """The batch's rows in the source's landing table (None: no such table)."""
    landing = f"landing.landing__{HOTLINE}"
    cur = conn.cursor(row_factory=tuple_row)
    if not cur.execute("select to_regclass(%s)", [landing]).fetchone()[0]:
        return None
    return cur.execute(f"select count(*) from {landing} where batch_id = %s",
                       [batch_id]).fetchone()[0]


@pytest.mark.parametrize("point", KILL_POINTS)
def test_crashed_batch_leaves_nothing_behind(crashes, point):
    c = crashes[point]
    assert c.killed_exit == -signal.SIGKILL
    assert c.status_when_killed == point
    assert c.status_after_kill == point  # nothing else touched it before the next run
    out = c.recovery.stdout + c.recovery.stderr
    assert c.recovery.returncode == EXIT_LOADED, redact(out)
    assert "Traceback" not in out + c.killed_output
    assert not kinds_in(out + c.killed_output), kinds_in(out + c.killed_output)
    assert c.recovery_batch == {"status": "loaded", "rows_read": 5, "rows_loaded": 5,
                                "rows_quarantined": 0}
    crashed = c.crashed
    assert crashed["status"] == "failed"
    assert (crashed["rows_read"], crashed["rows_loaded"], crashed["rows_quarantined"]) == (0,) * 3
    assert crashed["finished_at"] is not None
    assert f"abandoned while {point}" in crashed["message"]
    assert "(rule: run_completes)" in crashed["message"]
    assert [(i["rule"], i["severity"]) for i in c.issues] == [("run_completes", "error")]
    assert not kinds_in(crashed["message"]) and not kinds_in(c.issues[0]["message"])
    # killed while landing, its COPY was rolled back; killed after landing, all its rows were
    # there until the next run (so the check below is not vacuous)
    assert c.in_landing_before == (CRASH_ROWS if point == "landed" else 0)
    assert c.left_in_landing == 0, f"{c.left_in_landing} rows of the crashed batch in landing"
    assert (c.left_in_raw, c.left_in_quarantine) == (0, 0)


# --- 3. search everywhere -------------------------------------------------------------------

#: under the checkout, not searched: the corpus itself (tests/), environments, git, other homes
EXCLUDED = {ROOT / "tests", ROOT / ".venv", ROOT / "infra/superset/.venv", ROOT / ".git",
            ROOT / ".local/bench", ROOT / ".local/tools"}


def _not_searched(home: Path, tmp_path_factory) -> set[Path]:
    """EXCLUDED, this session's home (searched on its own, whole), pytest's folders, and the
    homes of other sessions under .local (a concurrent test run's SAFEGUARD_TEST_HOME, a
    profiling home: a folder with its own secrets.env or postgres/): what those hold was
    written by those runs, not by this one."""
    local = ROOT / ".local"
    others = {p for p in local.iterdir() if p.is_dir() and p.resolve() != home and (
        (p / "secrets.env").exists() or (p / "postgres").is_dir())} if local.is_dir() else set()
    return EXCLUDED | others | {home, tmp_path_factory.getbasetemp().resolve()}


def _files_under(top: Path, skip: set[Path]) -> list[Path]:
    """Regular files under ``top`` (no symlinks, sockets or the like), minus ``skip``, minus
    __pycache__ and pytest's own folders."""
    found = []
    for folder, dirs, files in os.walk(top):
        here = Path(folder)
        dirs[:] = [d for d in dirs if d != "__pycache__" and not d.startswith("pytest-of-")
                   and here / d not in skip]
        for f in files:
            p = here / f
            if p.is_file() and not p.is_symlink():
                found.append(p)
    return found


class Hits(Counter):
    """(path, needle) -> occurrences; never shows the needles in a report."""

    def __repr__(self) -> str:
        return f"Hits({len(self)} (file, needle) pairs)"


def _grep(files: list[Path], patterns: Path) -> tuple[Hits, list[str]]:
    """(path, needle) -> occurrences, with GNU grep's fixed-string (Aho-Corasick) search over
    the raw bytes; and the files it could not read that still exist."""
    hits = Hits()
    unreadable: list[str] = []
    env = {**os.environ, "LC_ALL": "C"}
    for start in range(0, len(files), 400):
        chunk = [str(f) for f in files[start:start + 400]]
        proc = subprocess.run(["grep", "-F", "-a", "-o", "-H", "--null", "-f", str(patterns),
                               "--", *chunk], capture_output=True, env=env)
        for line in proc.stdout.split(b"\n"):
            if b"\0" in line:
                path, needle = line.split(b"\0", 1)
                hits[(path.decode(errors="replace"), needle)] += 1
        if proc.returncode > 1:
            for message in proc.stderr.decode(errors="replace").splitlines():
                m = re.match(r"grep: (.*): [^:]+$", message)
                if not m or Path(m[1]).exists():
                    unreadable.append(message)
    return hits, unreadable


def _byte_needles() -> dict[bytes, str]:
    return {n.encode(): k for n, k in NEEDLES.items()}


def _patterns_file(folder: Path) -> Path:
    path = folder / "needles.txt"
    path.write_bytes(b"\n".join(_byte_needles()))
    return path


@pytest.fixture(scope="module")
def checkout_baseline(sg_settings, tmp_path_factory) -> Hits:
    """What the checkout's own files held before any delivery: the hand-written examples in the
    detectors' documentation (src/safeguard/ingest/pii.py quotes several corpus values), which
    no run wrote. Only what a run adds to a file of the checkout counts as found."""
    folder = tmp_path_factory.mktemp("needles")
    files = _files_under(ROOT, _not_searched(sg_settings.home.resolve(), tmp_path_factory))
    hits, _ = _grep(files, _patterns_file(folder))
    return hits


def _search_databases(settings, needles: list[str]) -> tuple[list[str], list[str], int]:
    """Every table (ordinary, partitioned, materialized) of every schema of every database on
    the server, catalogs included, each row cast to text (bytea shows as hex: its needles are
    searched as hex too). Returns the findings, what could not be searched, tables searched."""
    texts = needles + [n.encode().hex() for n in needles]
    kinds = [NEEDLES[n] for n in needles] * 2
    findings, errors, searched = [], [], 0
    with psycopg.connect(settings.admin_url("postgres"), autocommit=True) as conn:
        databases = [r[0] for r in conn.execute(
            "select datname from pg_database where not datistemplate and datallowconn "
            "order by 1")]
    for db in databases:
        with psycopg.connect(settings.admin_url(db), autocommit=True) as conn:
            conn.execute("set lock_timeout = '10s'")
            tables = conn.execute(
                "select n.nspname, c.relname, c.relkind, c.relispopulated from pg_class c "
                "join pg_namespace n on n.oid = c.relnamespace where c.relkind in ('r', 'p', "
                "'m') and c.relpersistence <> 't' and n.nspname !~ '^pg_(toast|temp_)' "
                "order by 1, 2").fetchall()
            for schema, table, relkind, populated in tables:
                if relkind == "m" and not populated:
                    continue  # a materialized view never refreshed holds nothing
                query = sql.SQL(
                    "select distinct n.i from (select hostile_row::text as s from {} as "
                    "hostile_row offset 0) as x cross join lateral unnest(%s::text[]) "
                    "with ordinality as n(v, i) where strpos(x.s, n.v) > 0").format(
                        sql.Identifier(schema, table))
                try:
                    hit = sorted({kinds[i - 1] for (i,) in conn.execute(query, [texts])})
                except psycopg.Error as e:
                    errors.append(f"{db}: {schema}.{table}: {type(e).__name__}")
                    continue
                searched += 1
                findings += [f"database {db}, table {schema}.{table}: {k}" for k in hit]
    return findings, errors, searched


def _relation_of(settings, path: Path) -> str:
    """For a data file (base/<database oid>/<file node>), the table it stores."""
    m = re.search(r"/base/(\d+)/(\d+)", str(path))
    if not m:
        return ""
    try:
        with psycopg.connect(settings.admin_url("postgres"), autocommit=True) as conn:
            db = conn.execute("select datname from pg_database where oid = %s",
                              [int(m[1])]).fetchone()
        if not db:
            return ""
        with psycopg.connect(settings.admin_url(db[0]), autocommit=True) as conn:
            rel = conn.execute("select pg_filenode_relation(0, %s)::regclass::text",
                               [int(m[2])]).fetchone()[0]
        return f" (database {db[0]}, relation {rel or 'gone: a dropped or rewritten table'})"
    except psycopg.Error:
        return ""


def test_no_planted_value_is_stored_anywhere(sg_settings, hostile_runs, crashes,
                                             checkout_baseline, tmp_path_factory):
    needles = list(NEEDLES)
    # the rows of 1 and 2 are still here (see module_start): nothing was deleted before this
    db_findings, db_errors, searched = _search_databases(sg_settings, needles)
    assert searched > 100, f"only {searched} tables searched"

    # what the server holds in memory reaches its data files (unlogged tables too, where the
    # server can: PostgreSQL 19's CHECKPOINT (FLUSH_UNLOGGED); 18 writes them at shutdown)
    with psycopg.connect(sg_settings.admin_url("postgres"), autocommit=True) as conn:
        try:
            conn.execute("checkpoint (flush_unlogged)")
        except psycopg.errors.SyntaxError:
            conn.execute("checkpoint")

    home = sg_settings.home.resolve()
    home_files = _files_under(home, set())
    checkout_files = _files_under(ROOT, _not_searched(home, tmp_path_factory))
    if not sg_settings.external_url:
        from safeguard.db.embedded import EmbeddedPostgres

        pg = EmbeddedPostgres(sg_settings)
        kept = pg.server_dir.resolve()
        if not kept.is_relative_to(home):  # a server kept outside a private home
            home_files += _files_under(kept, set())
        # the server's own log, its WAL and its data files are among what is searched
        assert pg.log.resolve() in home_files
        assert any("pg_wal" in p.parts for p in home_files)
        assert sum(1 for p in home_files if "base" in p.parts) > 100
    patterns = _patterns_file(tmp_path_factory.mktemp("needles"))
    kinds = _byte_needles()
    home_hits, home_errors = _grep(home_files, patterns)
    checkout_hits, checkout_errors = _grep(checkout_files, patterns)

    findings = list(db_findings)
    for (path, needle), n in sorted(home_hits.items()):
        findings.append(f"file {path}{_relation_of(sg_settings, Path(path))}: {kinds[needle]} "
                        f"({n}x)")
    for (path, needle), n in sorted(checkout_hits.items()):
        if n > checkout_baseline[(path, needle)]:
            findings.append(f"file {path}: {kinds[needle]} ({n}x, "
                            f"{checkout_baseline[(path, needle)]} before the run)")
    errors = db_errors + home_errors + checkout_errors
    assert not errors, "not searched:\n" + "\n".join(errors)
    assert not findings, "planted values stored:\n" + "\n".join(sorted(set(findings)))


# --- 4. exact counts at volume --------------------------------------------------------------

SIZES = (10, 1_000, 100_000)
#: per source: (rule, column) -> the bad value planted for it
HOTLINE_RULES = {("known_category", "channel"): ("Channel", "Carrier pigeon"),
                 ("valid_timestamp", "received_at"): ("Received", "2021-02-30T10:00:00Z")}
PARTNER_RULES = {("period_within_declared_range", "month"): ("month", None),
                 ("count_is_whole_non_negative", "case_count"): ("cases", "-7")}
OUTSIDE_APRIL_2020 = ["2020-03", "2020-05", "2019-04", "2021-04", "2020-12"]


def _volume_file(src: Source, rules: dict, n: int, path: Path) -> tuple[int, dict, int]:
    """n bad rows per rule and n//4 + 10 good rows, shuffled; returns the good rows, the file
    lines of each rule's rows, and the data rows."""
    good = n // 4 + 10
    kinds = ["good"] * good + [rule for rule in rules for _ in range(n)]
    random.Random(n).shuffle(kinds)
    lines: dict = {rule: [] for rule in rules}
    with path.open("w", newline="", encoding="utf-8") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(src.header)
        for i, kind in enumerate(kinds):
            if src.name == PARTNER:
                # every row its own grain cell (the month is the lowest digit of clean(i), so
                # i * len(MONTHS) varies the other columns), in April 2020 unless it is to
                # break the period
                row = src.clean(i * len(MONTHS))
                row["month"] = "2020-04"
            else:
                row = src.clean(i)
            if kind != "good":
                column, bad = rules[kind]
                row[column] = bad if bad is not None else OUTSIDE_APRIL_2020[i % 5]
                lines[kind].append(i + 2)
            w.writerow([row[h] for h in src.header])
    return good, lines, len(kinds)


@dataclass(repr=False)
class Volume:
    delivery: Delivery
    good: int
    lines: dict  # (rule, column) -> the file lines of its bad rows

    def __repr__(self) -> str:
        return f"Volume({self.delivery!r})"


@pytest.fixture(scope="module")
def volume_runs(sg_settings, module_start, sources, tmp_path_factory
                ) -> dict[tuple[str, int], Volume]:
    """Every size of each source's file, the two sources side by side (their batches never
    meet: each source has its own landing table and lock)."""
    folder = tmp_path_factory.mktemp("volume")

    def run(source: str) -> list[tuple[tuple[str, int], Volume]]:
        src = sources[source]
        rules = HOTLINE_RULES if source == HOTLINE else PARTNER_RULES
        out = []
        for n in SIZES:
            path = folder / f"{source}_n{n}" / VOLUME_FILE[source]
            path.parent.mkdir()
            good, lines, total = _volume_file(src, rules, n, path)
            d = _deliver(sg_settings, Delivery(source, f"volume-{n}", path, EXIT_ROWS_FAILED,
                                               total), src.raw_table)
            print(f"\n{source} {n:,} bad rows per rule: {total:,} rows in {d.seconds:.1f} s",
                  end="")
            out.append(((source, n), Volume(d, good, lines)))
        return out

    with ThreadPoolExecutor(2) as pool:
        return dict(v for vs in pool.map(run, [HOTLINE, PARTNER]) for v in vs)


#: the partner file's name declares April 2020; the hotline's declares nothing
VOLUME_FILE = {HOTLINE: "volume_extract.csv", PARTNER: "volume_partner_2020-04.csv"}


@pytest.mark.parametrize("n", SIZES)
@pytest.mark.parametrize("source", [HOTLINE, PARTNER])
def test_exact_counts_at_volume(sg_settings, volume_runs, source, n):
    v = volume_runs[(source, n)]
    d, good, lines = v.delivery, v.good, v.lines
    rules, name, total = list(lines), VOLUME_FILE[source], d.data_rows
    err = d.output
    assert d.returncode == EXIT_ROWS_FAILED, redact(err)
    assert "Traceback" not in err
    assert len(d.batches) == 1
    b = d.batches[0]
    bad = sorted(line for rows in lines.values() for line in rows)
    assert (b["status"], b["rows_read"], b["rows_loaded"], b["rows_quarantined"]) == (
        "quarantined", total, good, len(rules) * n)
    assert d.raw_rows == good
    assert d.quarantined_lines == bad

    assert {(i["rule"], i["column_name"]): i["row_count"] for i in d.issues} == {
        rule: n for rule in rules}
    for i in d.issues:
        rule = (i["rule"], i["column_name"])
        assert i["severity"] == "error"
        assert i["example_rows"] == lines[rule][:10]
        # the message: the first ten rows as numbered in the file, then how many more
        listed = ", ".join(map(str, lines[rule][:10]))
        more = f" (+{n - 10:,} more)" if n > 10 else ""
        line = (f"{name}, rows {listed}{more}, column {rule[1]}: rule {rule[0]}: ")
        assert line in b["message"], redact(b["message"])
        assert line in err
        assert b["message"].count(f": rule {rule[0]}: ") == 1

    with psycopg.connect(sg_settings.admin_url(sg_settings.warehouse_db)) as conn:
        if source == HOTLINE:
            wrong = conn.execute(
                "select count(*) from raw.hotline_cases t where batch_id = %s and (channel "
                "is distinct from 'messaging' or received_at is null or strpos(t::text, "
                "'Carrier pigeon') > 0 or strpos(t::text, '2021-02-30') > 0)",
                [b["batch_id"]]).fetchone()[0]
        else:
            wrong = conn.execute(
                "select count(*) from raw.partner_aggregates where batch_id = %s and (month "
                "is distinct from date '2020-04-01' or case_count is null or case_count < 0)",
                [b["batch_id"]]).fetchone()[0]
    assert wrong == 0, f"{wrong} bad rows in raw"
