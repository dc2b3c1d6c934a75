"""Read a delivered file as a stream of canonical records, whatever its format.

Each format yields ``(row number in the file, cells)``; the header is the contract's
``file.header_row``-th row. Then the contract's header check, unpivot, null values, number
formats and pseudonymisation are applied the same way for all formats. Memory does not grow
with the file: CSV and JSON are parsed incrementally and XLSX is opened read-only. A
workbook whose table has merged cells is refused whole (rule ``no_merged_cells``): read-only
openpyxl reads them as one value and blanks, which would load rows with values missing.

Row numbers are the ones a person sees when opening the file: the line in a text file where
the record starts, the row in a spreadsheet, the record's position (1 = first) in JSON.
"""

from __future__ import annotations

import codecs
import csv
import datetime as dt
import hashlib
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from safeguard.contracts import Contract
from safeguard.ingest import admit
from safeguard.ingest.errors import FileRejected

Cells = list[Any]

_BOMS = {codecs.BOM_UTF16_LE: "utf-16", codecs.BOM_UTF16_BE: "utf-16",
         codecs.BOM_UTF32_LE: "utf-32", codecs.BOM_UTF32_BE: "utf-32"}


def _check_encoding(contract: Contract, path: Path) -> str:
    with path.open("rb") as f:
        head = f.read(4)
    declared = codecs.lookup(contract.encoding).name
    for bom, actual in _BOMS.items():
        if head.startswith(bom) and not declared.replace("_", "-").startswith(actual):
            raise FileRejected(
                f"{_name(path)}: the file is {actual.upper()} (it starts with a byte-order "
                f"mark) but contract {contract.name!r} expects {contract.encoding} (rule: "
                f"encoding). Save it as {contract.encoding}, or set file.encoding: {actual} "
                f"in the contract.")
    # utf-8-sig reads UTF-8 with or without a byte-order mark
    return "utf-8-sig" if declared == "utf-8" else contract.encoding


def _csv_rows(contract: Contract, path: Path) -> Iterator[tuple[int, Cells]]:
    encoding = _check_encoding(contract, path)
    try:
        with path.open(newline="", encoding=encoding) as f:
            reader = csv.reader(f, delimiter=contract.delimiter, strict=True)
            line = 0
            while True:
                start = line + 1
                try:
                    row = next(reader)
                except StopIteration:
                    return
                except csv.Error as e:
                    raise FileRejected(f"{_name(path)}, row {reader.line_num}: not readable as "
                                       f"CSV ({e}) (rule: csv_well_formed)") from e
                line = reader.line_num
                yield start, row
    except UnicodeDecodeError as e:
        raise FileRejected(f"{_name(path)}: not valid {contract.encoding} at byte {e.start} "
                           f"(rule: encoding). Save it as {contract.encoding} or set "
                           f"file.encoding in the contract.") from e


#: an .xlsx is a zip archive: it is opened only within these limits (a "zip bomb" stops here)
XLSX_MAX_MEMBERS = 10_000
XLSX_MAX_UNPACKED = 2 << 30  # 2 GiB
XLSX_MAX_RATIO = 200


def _check_archive(path: Path) -> None:
    import zipfile

    try:
        with zipfile.ZipFile(path) as z:
            members = z.infolist()
    except (zipfile.BadZipFile, OSError) as e:
        raise FileRejected(f"{_name(path)}: not a readable .xlsx workbook "
                           f"(rule: file_format)") from e
    unpacked = sum(m.file_size for m in members)
    packed = max(1, sum(m.compress_size for m in members))
    if (len(members) > XLSX_MAX_MEMBERS or unpacked > XLSX_MAX_UNPACKED
            or unpacked / packed > XLSX_MAX_RATIO):
        raise FileRejected(
            f"{_name(path)}: the workbook unpacks to {unpacked:,} bytes in {len(members):,} parts "
            f"({unpacked / packed:.0f}x its size), beyond the limits ({XLSX_MAX_UNPACKED:,} "
            f"bytes, {XLSX_MAX_MEMBERS:,} parts, {XLSX_MAX_RATIO}x) (rule: archive_limits)")


def _xlsx_rows(contract: Contract, path: Path) -> Iterator[tuple[int, Cells]]:
    import zipfile

    import openpyxl

    _check_archive(path)
    try:
        wb = openpyxl.load_workbook(path, read_only=True, data_only=True)
    except (zipfile.BadZipFile, OSError, KeyError, ValueError) as e:
        raise FileRejected(f"{_name(path)}: not a readable .xlsx workbook "
                           f"(rule: file_format)") from e
    try:
        names = wb.sheetnames
        if contract.file.sheet:
            if contract.file.sheet not in names:
                shown = [_shown_header(n) for n in names]
                raise FileRejected(f"{_name(path)}: no sheet "
                                   f"{_shown_header(contract.file.sheet)!r}; the workbook "
                                   f"has {shown} (rule: sheet_exists)")
            ws = wb[contract.file.sheet]
        elif len(names) == 1:
            ws = wb[names[0]]
        else:
            shown = [_shown_header(n) for n in names]
            raise FileRejected(f"{_name(path)}: the workbook has several sheets {shown} and "
                               f"contract {contract.name!r} does not say which to read "
                               f"(rule: one_sheet). Set file.sheet in the contract.")
        merged = _merged_ranges(wb, ws)
        for number, row in enumerate(ws.iter_rows(values_only=True), start=1):
            cells = list(row)
            hit = [m for m in merged if m[1] <= number <= m[2]] if merged else None
            if hit and number >= contract.file.header_row and not _is_footer(
                    contract, [_text(v) for v in cells]):
                later = [m for m in merged if m[1] > number]
                more = f" (and {len(later)} more merged range(s) below)" if later else ""
                ref, first, last = hit[0]
                rows = f"row {first}" if first == last else f"rows {first}-{last}"
                raise FileRejected(
                    f"{_name(path)}, sheet {_shown_header(ws.title)!r}, {rows}: cells {ref} "
                    f"are merged{more} "
                    f"(rule: no_merged_cells). A merged cell keeps its value in its first cell "
                    f"only, so the other rows and columns would read as blank. Unmerge them and "
                    f"repeat the value in each cell, then deliver the file again.")
            yield number, cells
    finally:
        wb.close()


_MERGE = re.compile(rb'<(?:[A-Za-z0-9_]+:)?mergeCell\s[^>]*?ref="([A-Z]+)([0-9]+)'
                    rb'(?::([A-Z]+)([0-9]+))?"')


def _merged_ranges(wb: Any, ws: Any) -> list[tuple[str, int, int]]:
    """The sheet's merged ranges as (ref, first row, last row). Read-only openpyxl does not
    report them (merged cells just read as blanks), so the sheet's XML is scanned for its
    ``<mergeCell ref=...>`` elements, in chunks: memory stays flat however big the sheet."""
    part = getattr(ws, "_worksheet_path", None)
    archive = getattr(wb, "_archive", None)
    if part is None or archive is None:
        return []
    found: list[tuple[str, int, int]] = []
    tail = b""
    with archive.open(part) as f:
        while chunk := f.read(1 << 20):
            data = tail + chunk
            end = 0
            for m in _MERGE.finditer(data):
                c1, r1, c2, r2 = m.groups()
                ref = f"{c1.decode()}{r1.decode()}" + (f":{c2.decode()}{r2.decode()}" if c2
                                                       else "")
                found.append((ref, int(r1), int(r2 or r1)))
                end = m.end()
            tail = data[max(end, len(data) - 200):]  # an element cut by the chunk boundary
    return sorted(set(found), key=lambda m: (m[1], m[0]))


def _is_footer(contract: Contract, texts: list[str | None]) -> bool:
    """A row of notes under the table ("Source: ..."): the table ends there (and its cells
    may well be merged). Its first filled cell starts as the contract's
    ``file.footer_starts_with`` says."""
    first = next((t.strip() for t in texts if t and t.strip()), None)
    return first is not None and any(first.startswith(s) for s in contract.file.footer_starts_with)


def _json_rows(contract: Contract, path: Path) -> Iterator[tuple[int, Cells]]:
    import ijson

    header: list[str] | None = None
    with path.open("rb") as f:
        try:
            items = ijson.items(f, contract.file.records_path) if contract.file_format == "json" \
                else _json_lines(f, path)
            for number, item in enumerate(items, start=1):
                if not isinstance(item, dict):
                    raise FileRejected(f"{_name(path)}, record {number}: expected an object of "
                                       f"named values (rule: json_records)")
                if header is None:
                    header = list(item)
                    yield 0, list(header)
                extra = [k for k in item if k not in header]
                if extra:
                    raise FileRejected(f"{_name(path)}, record {number}: names {extra} that the "
                                       f"first record does not have (rule: "
                                       f"header_matches_contract)")
                yield number, [item.get(k) for k in header]
        except ijson.JSONError as e:
            raise FileRejected(f"{_name(path)}: not valid JSON (rule: file_format)") from e


def _json_lines(f, path: Path) -> Iterator[Any]:
    import json

    for number, line in enumerate(f, start=1):
        if line.strip():
            try:
                yield json.loads(line)
            except ValueError as e:
                raise FileRejected(f"{_name(path)}, line {number}: not valid JSON "
                                   f"(rule: file_format)") from e


def _text(value: Any) -> str | None:
    """A cell as text: numbers without spurious decimals, dates in ISO 8601."""
    if type(value) is str:  # CSV and most JSON: the common case first
        return value
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, dt.datetime):
        return value.date().isoformat() if value.time() == dt.time() else value.isoformat()
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, dict | list):
        return repr(value)  # nested data is not a value of any of our types: rules reject it
    return str(value)


def _shown_header(name: str) -> str:
    """A header (or sheet name) as it may appear in a message: masked if it identifies
    someone."""
    return admit.shown(name)


def _name(path: Path | str) -> str:
    """A file's name as it may appear in a message or ``ops.batches``: masked (its extension
    kept) when it holds identifying data."""
    return admit.shown_file_name(Path(path).name)


def _header(contract: Contract, path: Path, number: int, cells: Cells) -> list[str]:
    header = [(_text(h) or "").strip().lstrip("\ufeff") for h in cells]
    expected = [c.source for c in contract.read_columns]
    unpivot = contract.unpivot
    named = [h for h in header if h]
    dupes = sorted({h for h in named if named.count(h) > 1})
    missing = [h for h in expected if h not in header]
    unknown = [_shown_header(h) for h in named
               if h not in expected and not (unpivot and unpivot.matches(h))]
    problems = []
    if dupes:
        problems.append(f"Repeated: {[_shown_header(h) for h in dupes]}. ")
    if missing:
        problems.append(f"Missing: {missing}. ")
    if unknown:
        problems.append(f"Unknown: {unknown}. ")
    if unpivot and not any(unpivot.matches(h) for h in header):
        problems.append(f"No column matches the unpivot pattern {unpivot.columns!r}. ")
    if problems and len(named) == 1:
        seen = [d for d in (";", "\t", "|", ",") if d in named[0] and d != contract.delimiter]
        if seen:
            problems.append(f"The header looks {seen[0]!r}-separated, but the contract reads "
                            f"{contract.delimiter!r}: fix the file or set file.delimiter. ")
    if problems:
        raise FileRejected(
            f"{_name(path)}, row {number} (header): columns do not match contract "
            f"{contract.name!r} (rule: header_matches_contract). {''.join(problems)}"
            f"Header seen: {[_shown_header(h) for h in named]}. Fix the file or the "
            f"contract's 'from' names.")
    return header


@dataclass
class RawBatch:
    """Up to ``CHUNK_ROWS`` canonical records as delivered (text, not yet admitted): the file
    row each came from, the header of an unpivoted cell, the cells by canonical column."""

    source_row: pa.Array
    source_column: pa.Array
    columns: dict[str, pa.Array]

    def __len__(self) -> int:
        return len(self.source_row)


CHUNK_ROWS = 65_536
#: the longest field either reader accepts (Python's csv module's own limit)
FIELD_LIMIT = csv.field_size_limit()


@dataclass(frozen=True)
class FileFacts:
    """What one pass over the bytes tells (with the SHA-256): the lines, and a NUL byte."""

    sha256: str
    size: int
    lines: int
    has_nul: bool


def file_facts(path: Path) -> FileFacts:
    digest, size, lines, nul, last = hashlib.sha256(), 0, 0, False, b""
    with path.open("rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
            size += len(chunk)
            lines += chunk.count(b"\n")
            nul = nul or b"\x00" in chunk
            last = chunk[-1:]
    if last and last != b"\n":
        lines += 1
    return FileFacts(digest.hexdigest(), size, lines, nul)


class NotSimple(Exception):
    """The fast CSV reader cannot vouch for this file (it failed, or its rows are not one per
    line): read it with the reference reader instead, which names what is wrong."""


def read_batches(contract: Contract, path: Path, facts: FileFacts | None = None,
                 fast: bool = True) -> Iterator[RawBatch]:
    """The file as batches of raw canonical records. A plain CSV (one record per line, header
    on the first, no notes under the table, no unpivot) is parsed by Arrow's multi-threaded
    reader; anything else, or a file it fails on, by the reference reader (``_records``),
    which knows every file-level rule. The fast path raises ``NotSimple`` (before or after
    some batches) when the caller must start again with ``fast=False``."""
    path = Path(path)
    if fast and _simple(contract, facts):
        yield from _fast_csv(contract, path, facts)
        return
    yield from _chunked(contract, _records(contract, path))


def _simple(contract: Contract, facts: FileFacts | None) -> bool:
    f = contract.file
    return (facts is not None and not facts.has_nul and f.format == "csv"
            and codecs.lookup(f.encoding).name == "utf-8" and f.header_row == 1
            and not f.footer_starts_with and contract.unpivot is None)


def _fast_csv(contract: Contract, path: Path, facts: FileFacts) -> Iterator[RawBatch]:
    import pyarrow.csv as pcsv

    first = next(_csv_rows(contract, path), None)
    if first is None:
        raise NotSimple("empty")
    header = _header(contract, path, first[0], first[1])
    if not all(header):
        raise NotSimple("a column without a header")
    wanted = list(contract.read_columns)
    read = pcsv.ReadOptions(column_names=header, use_threads=True, block_size=4 << 20)
    parse = pcsv.ParseOptions(delimiter=contract.delimiter, newlines_in_values=False,
                              ignore_empty_lines=True)
    convert = pcsv.ConvertOptions(column_types={h: pa.string() for h in header},
                                  include_columns=[c.source for c in wanted],
                                  strings_can_be_null=False, quoted_strings_can_be_null=False)
    row = 2
    for block in _line_blocks(path):
        try:
            table = pcsv.read_csv(pa.py_buffer(block), read_options=read,
                                  parse_options=parse, convert_options=convert)
        except (pa.ArrowInvalid, pa.ArrowException) as e:
            raise NotSimple(type(e).__name__) from None
        n = table.num_rows
        if n == 0:
            continue
        columns = {c.name: table.column(c.source).combine_chunks() for c in wanted}
        if any((pc.max(pc.utf8_length(v)).as_py() or 0) > FIELD_LIMIT for v in columns.values()):
            raise NotSimple("a field beyond the CSV reader's limit")
        yield RawBatch(pa.array(range(row, row + n), pa.int64()), pa.nulls(n, pa.string()),
                       columns)
        row += n
    if row - 2 != facts.lines - 1:
        # blank lines skipped, or a record over several lines: row numbers would be wrong
        raise NotSimple("records and lines differ")


#: bytes of whole lines parsed at a time by the fast reader (its memory, whatever the file).
#: Measured landing 1M cases: 8 MB blocks peaked at 360 MB and took 4.2 s, 2 MB at 225 MB in
#: 3.7 s (smaller blocks stay in the CPU's caches), 1 MB at 190 MB but slower again
BLOCK_BYTES = 2 << 20


def _line_blocks(path: Path) -> Iterator[bytes]:
    """The file after its header line, in blocks of whole lines. (Arrow's own streaming
    reader reads far ahead, holding most of a file in memory; this holds one block.)"""
    with path.open("rb") as f:
        f.readline()
        rest = b""
        while chunk := f.read(BLOCK_BYTES):
            data = rest + chunk
            cut = data.rfind(b"\n") + 1
            if cut == 0:
                rest = data
                continue
            yield data[:cut]
            rest = data[cut:]
        if rest:
            yield rest


def _chunked(contract: Contract, records: Iterator[tuple[int, str | None, dict]]
             ) -> Iterator[RawBatch]:
    names = [c.name for c in contract.columns]
    rows: list[int] = []
    headers: list[str | None] = []
    cells: dict[str, list] = {n: [] for n in names}

    def flush() -> RawBatch:
        batch = RawBatch(pa.array(rows, pa.int64()), pa.array(headers, pa.string()),
                         {n: pa.array(cells[n], pa.string()) for n in names})
        rows.clear()
        headers.clear()
        for v in cells.values():
            v.clear()
        return batch

    for row, header, values in records:
        rows.append(row)
        headers.append(header)
        for n in names:
            cells[n].append(values.get(n))
        if len(rows) >= CHUNK_ROWS:
            yield flush()
    if rows:
        yield flush()


def _records(contract: Contract, path: Path) -> Iterator[tuple[int, str | None, dict]]:
    """The reference reader: ``(file row, unpivoted header, raw cells by canonical name)``,
    one record at a time; raises FileRejected when the file as a whole is unreadable."""
    path = Path(path)
    rows = {"csv": _csv_rows, "xlsx": _xlsx_rows, "json": _json_rows,
            "jsonl": _json_rows}[contract.file_format](contract, path)
    nulls = {"", *contract.file.null_values}
    header_at = 1 if contract.file_format in ("json", "jsonl") else contract.file.header_row
    header: list[str] | None = None
    for index, (number, cells) in enumerate(rows, start=1):
        texts = [_text(v) for v in cells]
        if any(t is not None and "\x00" in t for t in texts):
            raise FileRejected(f"{_name(path)}, row {number}: a NUL byte, which no text holds: the "
                               f"file is binary or damaged (rule: no_nul_bytes)")
        if header is None:
            if index == header_at:
                header = _header(contract, path, number, cells)
                fixed = [(c, header.index(c.source)) for c in contract.read_columns]
                wide = [(i, h) for i, h in enumerate(header)
                        if contract.unpivot and contract.unpivot.matches(h)]
            continue
        if not any(t and t.strip() for t in texts):
            continue
        if _is_footer(contract, texts):
            break
        if len(cells) != len(header):
            if contract.file_format == "csv" or len(cells) > len(header) and any(
                    t and t.strip() for t in texts[len(header):]):
                raise FileRejected(
                    f"{_name(path)}, row {number}: {len(cells)} fields where the header has "
                    f"{len(header)} (rule: field_count_matches_header)")
            texts = (texts + [None] * len(header))[:len(header)]
        orphan = [i for i, h in enumerate(header) if not h and texts[i]]
        if orphan:
            raise FileRejected(f"{_name(path)}, row {number}: a value in column {orphan[0] + 1}, "
                               f"which has no header (rule: header_matches_contract)")
        base = {c.name: texts[i] for c, i in fixed}
        if not contract.unpivot:
            yield number, None, base
            continue
        u = contract.unpivot
        for i, name in wide:
            value = texts[i]
            if u.skip_empty and (value is None or value.strip() in nulls):
                continue
            yield number, name, {**base, u.name_to: name, u.value_to: value}
    if header is None:
        raise FileRejected(f"{_name(path)}: the file is empty (expected a header row with "
                           f"{[c.source for c in contract.read_columns]}) (rule: not_empty)")
