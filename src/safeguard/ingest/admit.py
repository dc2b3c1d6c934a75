"""The allow-list: what of a delivered value may be stored, decided column by column, vectorised.

A value is stored as delivered only when it conforms to its column's declared type and domain:
a label of the contract's mapping, a whole number, an ISO 8601 date or time, a year, a month.
Anything else is replaced, before it is written anywhere (landing and quarantine included), by
a typed marker that says what it is not and how long it was (``[not a timestamp: 19 chars]``),
or, when a detector recognises identifying data in it, by what was found
(``[masked email]``). Privacy therefore does not rest on recognising every kind of
identifier: a value nobody anticipated is not stored either. The detectors (``pii``) only name
the reason, and they look at every non-conforming value whatever its column's type, and at
every value of the case-id column (which is stored as its keyed hash, never as delivered).

The work is done on Arrow arrays (pyarrow's compute kernels, RE2 regular expressions): a batch
of tens of thousands of values per call, not a Python loop per value. Python only touches the
values that fail (to name their reason) and the case ids (HMAC).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache

import pyarrow as pa
import pyarrow.compute as pc

from safeguard.contracts import Column, Contract
from safeguard.ingest import pii

_D = "[0-9]"
_YEAR = f"[1-9]{_D}{_D}{_D}"
_LEAP = (f"(?:{_D}{_D}(?:0[48]|[2468][048]|[13579][26])|(?:[02468][048]|[13579][26])00)")
#: a calendar date that exists (day within its month, 29 February in leap years only)
_DATE = (f"(?:{_YEAR}-(?:(?:0[1-9]|1[0-2])-(?:0[1-9]|1{_D}|2[0-8])|(?:0[13-9]|1[0-2])-(?:29|30)"
         f"|(?:0[13578]|1[02])-31)|{_LEAP}-02-29)")
_TIME = f"(?:[ T](?:[01]{_D}|2[0-3]):[0-5]{_D}(?::[0-5]{_D}(?:[.]{_D}{{1,9}})?)?)?"
#: UTC offsets as PostgreSQL takes them (up to 15:59 either way)
_ZONE = f"(?:Z|[+-](?:0{_D}|1[0-5])(?::?[0-5]{_D})?)?"

#: logical type -> (what the marker calls a value of it, RE2 pattern of a conforming value)
PATTERNS: dict[str, tuple[str, str]] = {
    # a count: 0, or up to nine digits without a leading zero (under a billion: more than any
    # publisher has counted in a cell). A longer run of digits, or one with a leading zero, is
    # more likely a card, an account or a phone number than a count, so it is not stored.
    "count": ("count", f"^(?:0|[1-9]{_D}{{0,8}})$"),
    "integer": ("whole number", f"^-?(?:0|[1-9]{_D}{{0,8}})$"),
    "year": ("year", f"^{_D}{{4}}$"),
    "month": ("month", f"^{_YEAR}-(?:0[1-9]|1[0-2])(?:-01)?$"),
    "date": ("date", f"^{_DATE}$"),
    "timestamp": ("timestamp", f"^{_DATE}{_TIME}{_ZONE}$"),
}
#: a case id as delivered: printable, no longer than this (it is stored as its keyed hash)
PSEUDONYM_MAX = 256
_CONTROL = "[\\x00-\\x1f\\x7f]"
_NUMBER_TYPES = {"count", "integer", "year"}


@dataclass
class Admitted:
    """One batch of landing rows: the stored text of each canonical column (conforming
    values as delivered, everything else as a marker) and, per row, the identifying data that
    was found and masked (``column:kind+kind; ...``, null when none)."""

    columns: dict[str, pa.Array]
    findings: pa.Array


def _label_set(column: Column) -> pa.Array:
    return pa.array(sorted(column.values), pa.string())


def _marker(column: Column, length: int) -> str:
    what = PATTERNS[column.type][0] if column.type in PATTERNS else {
        "category": "known label", "country": "known country", "boolean": "yes/no label",
        "category_list": "list of known labels", "pseudonym": "case id"}.get(column.type,
                                                                             column.type)
    article = "an" if what[0] in "aeiou" else "a"
    return f"[not {article} {what}: {length} chars]"


class Admission:
    """The allow-list of one contract, compiled once per file."""

    def __init__(self, contract: Contract, pseudonym_keys: Sequence[str] | str | None):
        """``pseudonym_keys``: one key, or the chain, oldest first (``pseudonym_keys()``)."""
        self.contract = contract
        self.nulls = pa.array(sorted({"", *contract.file.null_values}), pa.string())
        if isinstance(pseudonym_keys, str):
            pseudonym_keys = [pseudonym_keys]
        self.keys = [k.encode() for k in pseudonym_keys or () if k]
        self.labels = {c.name: _label_set(c) for c in contract.columns if c.values}

    def __call__(self, raw: dict[str, pa.Array]) -> Admitted:
        n = len(next(iter(raw.values()))) if raw else 0
        found: dict[int, list[str]] = {}
        out: dict[str, pa.Array] = {}
        for column in self.contract.columns:
            out[column.name] = self._column(column, raw[column.name], found)
        findings = [None] * n
        for row, items in found.items():
            findings[row] = "; ".join(items)
        return Admitted(out, pa.array(findings, pa.string()))

    def _column(self, column: Column, values: pa.Array, found: dict[int, list[str]]
                ) -> pa.Array:
        values = pc.utf8_trim_whitespace(values.cast(pa.string()))
        values = pc.if_else(pc.is_in(values, value_set=self.nulls), None, values)
        if column.thousands_separator and column.type in _NUMBER_TYPES:
            values = _drop_thousands_separator(values, column.thousands_separator)
        if column.type == "pseudonym":
            return self._pseudonym(column, values, found)
        conforming = self._conforming(column, values)
        # nulls conform (whether a column may be empty is a rule of its own, checked later)
        bad = pc.and_(pc.invert(pc.fill_null(conforming, True)), pc.is_valid(values))
        if not pc.any(bad).as_py():
            return values
        rows = pc.indices_nonzero(bad).to_pylist()
        replaced = [self._named(column, v, row, found) for row, v in
                    zip(rows, pc.take(values, pa.array(rows)).to_pylist(), strict=True)]
        return _put(values, rows, replaced)

    def _conforming(self, column: Column, values: pa.Array) -> pa.Array:
        typ = column.type
        if typ in PATTERNS:
            return pc.match_substring_regex(values, PATTERNS[typ][1])
        if typ in ("category", "country", "boolean"):
            return pc.is_in(values, value_set=self.labels[column.name])
        if typ == "category_list":
            return _all_in(values, column.separator, self.labels[column.name])
        raise ValueError(f"no allow-list for type {typ!r}")

    def _named(self, column: Column, value: str, row: int, found: dict[int, list[str]]) -> str:
        """What a refused value is stored as: what a detector found in it, else a marker."""
        return self._masked(column, value, row, found) or _marker(column, len(value))

    def _masked(self, column: Column, value: str, row: int, found: dict[int, list[str]]
                ) -> str | None:
        """The mask of the identifying data a detector finds in the value (noted in
        ``found``), or None."""
        kinds = pii.detect(value)
        if not kinds:
            return None
        found.setdefault(row, []).append(f"{column.name}:{'+'.join(kinds)}")
        return pii.mask(kinds)

    def _pseudonym(self, column: Column, values: pa.Array, found: dict[int, list[str]]
                   ) -> pa.Array:
        """Every case id is scanned (the prefilter passes the few that could hold anything to
        the detectors); a clean one is replaced by its keyed hash, so the source's own id
        never leaves this function."""
        if not self.keys:
            raise RuntimeError("no pseudonym key: set SAFEGUARD_PSEUDONYM_KEY")
        suspect = pc.fill_null(pc.or_(pc.match_substring_regex(values, pii.SUSPECT),
                                      pc.match_substring_regex(values, _CONTROL)), False)
        too_long = pc.fill_null(pc.greater(pc.utf8_length(values), PSEUDONYM_MAX), False)
        ids = values.to_pylist()
        decided: dict[int, str] = {}  # rows not stored as a hash: masked or marked
        for row in pc.indices_nonzero(pc.or_(suspect, too_long)).to_pylist():
            value = ids[row]
            masked = self._masked(column, value, row, found)
            if masked or len(value) > PSEUDONYM_MAX or not _printable(value):
                decided[row] = masked or _marker(column, len(value))
        keyed = chained_hmac(self.keys)
        if decided:
            return pa.array([None if v is None else decided[i] if i in decided
                             else keyed(v.encode()) for i, v in enumerate(ids)], pa.string())
        return pa.array([None if v is None else keyed(v.encode()) for v in ids], pa.string())


def _printable(text: str) -> bool:
    """No control character (what ``_CONTROL`` matches)."""
    return not any(ord(c) < 32 or ord(c) == 127 for c in text)


def chained_hmac(keys: Sequence[bytes]):
    """HMAC-SHA256 through the keys in turn, each over the hex of the one before: what a
    pseudonym is after every rotation (one key: plain HMAC-SHA256)."""
    steps = [_hmac_sha256(k) for k in keys]
    if len(steps) == 1:
        return steps[0]

    def keyed(message: bytes) -> str:
        for step in steps[:-1]:
            message = step(message).encode()
        return steps[-1](message)

    return keyed


def _hmac_sha256(key: bytes):
    """HMAC-SHA256 under ``key`` as hex (RFC 2104, the same as ``hmac.new(key, msg,
    sha256).hexdigest()``), with the padded key's two hash states computed once instead of
    once per value: a case id costs two hash copies and updates."""
    if len(key) > 64:
        key = hashlib.sha256(key).digest()
    key = key.ljust(64, b"\0")
    inner = hashlib.sha256(bytes(b ^ 0x36 for b in key)).copy
    outer = hashlib.sha256(bytes(b ^ 0x5C for b in key)).copy

    def keyed(message: bytes) -> str:
        h = inner()
        h.update(message)
        o = outer()
        o.update(h.digest())
        return o.hexdigest()

    return keyed


def _put(values: pa.Array, rows: Sequence[int], replaced: Sequence[str]) -> pa.Array:
    """``values`` with the given rows replaced."""
    mask = [False] * len(values)
    for r in rows:
        mask[r] = True
    return pc.replace_with_mask(values, pa.array(mask), pa.array(replaced, pa.string()))


def _drop_thousands_separator(values: pa.Array, sep: str) -> pa.Array:
    """"21,669,264" -> "21669264": only where the separator groups digits by three."""
    grouped = pc.fill_null(pc.match_substring_regex(
        values, f"^-?[0-9]{{1,3}}(?:{_re2_escape(sep)}[0-9]{{3}})+$"), False)
    return pc.if_else(grouped, pc.replace_substring(values, sep, ""), values)


def _all_in(values: pa.Array, separator: str, labels: pa.Array) -> pa.Array:
    """Whether every element of each separated list is a known label (null stays null)."""
    import numpy as np

    parts = pc.split_pattern(values, separator)
    flat = pc.utf8_trim_whitespace(pc.list_flatten(parts))
    known = pc.is_in(flat, value_set=labels).to_numpy(zero_copy_only=False)
    parents = pc.list_parent_indices(parts).to_numpy(zero_copy_only=False)
    unknown = np.bincount(parents[~known], minlength=len(values)) if len(parents) else \
        np.zeros(len(values), dtype=np.int64)
    return pc.if_else(pc.is_valid(values), pa.array(unknown == 0), None)


@lru_cache(maxsize=256)
def _re2_escape(text: str) -> str:
    return "".join(f"\\{c}" if c in r"\.^$|?*+()[]{}-" else c for c in text)


#: a name (header, sheet, file) longer than this is not repeated in messages
SHOWN_MAX = 80


def shown(text: str) -> str:
    """A header or sheet name as it may appear in a message, ``ops`` or an alert: as it is when
    it is short, printable and holds nothing a detector recognises; otherwise what it holds
    (``[masked email]``) or a marker."""
    kinds = pii.detect(text)
    if kinds:
        return pii.mask(kinds)
    if len(text) > SHOWN_MAX or not _printable(text):
        return f"[not shown: {len(text)} chars]"
    return text


def shown_file_name(name: str) -> str:
    """A file's name as it may be recorded and shown: masked, its extension kept, when it holds
    identifying data (a delivery named after a person or an e-mail address)."""
    stem, dot, ext = name.rpartition(".")
    if not dot or not ext.isalnum() or len(ext) > 5:
        stem, ext = name, ""
    safe = shown(stem)
    return name if safe == stem else safe + (f".{ext}" if ext else "")
