"""Stage 1: stream a delivered file into its landing table with COPY, recording the batch.

The file is read once, row by row (memory does not grow with the file), mapped from the
source's headers to canonical names, and sent through ``COPY ... FROM STDIN``. Nothing is
judged here beyond what makes the file unreadable as a whole: GX judges rows next.
"""

from __future__ import annotations

import csv
import getpass
import hashlib
import re
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import psycopg
from psycopg import sql

from safeguard.config import Settings
from safeguard.contracts import Contract
from safeguard.ingest.errors import FileRejected
from safeguard.ingest.tables import ensure_raw_table, recreate_landing_table


@dataclass(frozen=True)
class LandedBatch:
    batch_id: str
    contract: str
    file_name: str
    rows_read: int
    duplicate_of: str | None = None  # set when the same content was loaded before


def sha256_of(path: Path) -> tuple[str, int]:
    digest, size = hashlib.sha256(), 0
    with path.open("rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
            size += len(chunk)
    return digest.hexdigest(), size


def _normaliser(contract: Contract):
    """Per-column clean-up the contract asks for (e.g. thousands separators)."""
    grouped = {
        c.name: re.compile(r"^-?\d{1,3}(" + re.escape(c.thousands_separator) + r"\d{3})+$")
        for c in contract.columns if c.thousands_separator
    }

    def clean(name: str, value: str) -> str | None:
        value = value.strip()
        if value == "":
            return None
        pattern = grouped.get(name)
        if pattern and pattern.match(value):
            value = value.replace(contract.column(name).thousands_separator or "", "")
        return value

    return clean


def read_rows(contract: Contract, path: Path) -> Iterator[list[str | None]]:
    """Yield canonical rows (in contract column order); raise FileRejected on a bad header."""
    clean = _normaliser(contract)
    try:
        with path.open(newline="", encoding=contract.encoding) as f:
            reader = csv.reader(f, delimiter=contract.delimiter)
            header = next(reader, None)
            if header is None:
                raise FileRejected(f"{path.name}: the file is empty (expected a header row "
                                   f"with {[c.source for c in contract.columns]})")
            header = [h.strip().lstrip("\ufeff") for h in header]
            expected = [c.source for c in contract.columns]
            missing = [h for h in expected if h not in header]
            unknown = [h for h in header if h not in expected]
            if missing or unknown:
                raise FileRejected(
                    f"{path.name}, row 0 (header): columns do not match contract "
                    f"{contract.name!r} (rule: header_matches_contract). "
                    + (f"Missing: {missing}. " if missing else "")
                    + (f"Unknown: {unknown}. " if unknown else "")
                    + f"Header seen: {header}. Fix the file or the contract's 'from' names."
                )
            positions = [header.index(h) for h in expected]
            names = [c.name for c in contract.columns]
            for row in reader:
                if not row or all(not v.strip() for v in row):
                    continue
                if len(row) != len(header):
                    raise FileRejected(
                        f"{path.name}, row {reader.line_num - 1}: {len(row)} fields where the "
                        f"header has {len(header)} (rule: field_count_matches_header)"
                    )
                yield [clean(n, row[p]) for n, p in zip(names, positions, strict=True)]
    except UnicodeDecodeError as e:
        raise FileRejected(f"{path.name}: not valid {contract.encoding} at byte {e.start} "
                           f"(rule: encoding). Save it as {contract.encoding} or set "
                           f"file.encoding in the contract.") from e


def run_by_default() -> str:
    return f"cli:{getpass.getuser()}"


def land_file(settings: Settings, contract: Contract, path: Path, run_by: str | None = None
              ) -> LandedBatch:
    path = Path(path)
    digest, size = sha256_of(path)
    batch_id = str(uuid.uuid4())
    run_by = run_by or run_by_default()
    with psycopg.connect(settings.url("loader")) as conn:
        ensure_raw_table(conn, contract.kind)
        conn.commit()
        earlier = conn.execute(
            "select batch_id from ops.batches where source_name = %s and file_sha256 = %s "
            "and status in ('loaded', 'loaded_with_warnings')", [contract.name, digest],
        ).fetchone()
        conn.execute(
            "insert into ops.batches (batch_id, source_name, source_kind, file_name, file_sha256,"
            " file_bytes, status, run_by, started_at) values (%s,%s,%s,%s,%s,%s,%s,%s,%s)",
            [batch_id, contract.name, contract.kind.name, path.name, digest, size,
             "duplicate" if earlier else "landing", run_by, datetime.now(UTC)],
        )
        if earlier:
            conn.execute(
                "update ops.batches set rows_read = 0, rows_loaded = 0, rows_quarantined = 0,"
                " finished_at = %s, message = %s where batch_id = %s",
                [datetime.now(UTC), f"same content as batch {earlier[0]}: not loaded again",
                 batch_id],
            )
            conn.commit()
            return LandedBatch(batch_id, contract.name, path.name, 0, str(earlier[0]))
        conn.commit()
        try:
            with conn.transaction():
                recreate_landing_table(conn, contract)
                cols = [c.name for c in contract.columns]
                copy_sql = sql.SQL("copy raw.{} ({}) from stdin").format(
                    sql.Identifier(contract.landing_table),
                    sql.SQL(", ").join(map(sql.Identifier, ["batch_id", "source_row_number",
                                                            *cols])))
                rows = 0
                with conn.cursor().copy(copy_sql) as copy:
                    for rows, values in enumerate(read_rows(contract, path), start=1):
                        copy.write_row([batch_id, rows, *values])
                conn.execute(
                    "update ops.batches set status = 'landed', rows_read = %s where batch_id = %s",
                    [rows, batch_id])
        except FileRejected as e:
            conn.execute(
                "update ops.batches set status = 'rejected', rows_read = 0, rows_loaded = 0, "
                "rows_quarantined = 0, message = %s, finished_at = %s where batch_id = %s",
                [str(e), datetime.now(UTC), batch_id])
            conn.commit()
            e.batch_id = batch_id
            raise
    return LandedBatch(batch_id, contract.name, path.name, rows)
