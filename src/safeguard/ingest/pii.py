"""What identifies a person (or would run as a formula), found in a delivered value before it
reaches the database.

Every value of every column is scanned while the file is read (in Python, before COPY), so an
identifying value is never written anywhere, not even to landing or quarantine: it is replaced
by a mask that says what was found (``[masked email]``), and the row is quarantined under the
rule ``pii_<what>`` (``no_formula`` for a value a spreadsheet would execute). Detectors are
deliberately eager: a false positive costs one quarantined row that a person looks at; a
false negative could expose a child.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from functools import lru_cache

_EMAIL = re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}")
_URL = re.compile(r"(?i)\b(https?://|ftp://|www\.)\S+")
_DOMAIN = re.compile(
    r"(?i)\b[a-z0-9][a-z0-9-]{0,62}(\.[a-z0-9-]{1,63})*\.(com|net|org|info|io|co|me|tv|gg|"
    r"app|dev|xyz|ru|uk|de|fr|nl|es|it|pl|br|in|cn|jp|us|ca|au|eu|biz|online|site|club)\b")
_HANDLE = re.compile(r"(?<![\w@])@[A-Za-z0-9_.]{2,30}\b")
_IPV4 = re.compile(r"\b(25[0-5]|2[0-4]\d|1?\d?\d)(\.(25[0-5]|2[0-4]\d|1?\d?\d)){3}\b")
_IPV6 = re.compile(r"(?i)\b([0-9a-f]{1,4}:){2,7}[0-9a-f]{0,4}\b|::[0-9a-f]{1,4}(:[0-9a-f]{1,4})*")
_CARD = re.compile(r"\b(?:\d[ -]?){12,18}\d\b")
_PHONE = re.compile(r"(?<![\w-])(\+|00)?\(?\d[\d ().-]{7,}\d(?![\w-])")
_STREET = re.compile(
    r"(?i)\b\d{1,5}[a-z]?,?\s+([a-z]+\s){0,3}(street|st|road|rd|avenue|ave|lane|ln|drive|dr|"
    r"boulevard|blvd|way|close|court|ct|place|pl|square|sq|terrace|strasse|straße|rue|calle|"
    r"via|weg|laan|straat)\b\.?")
_POSTCODE = re.compile(r"(?i)\b([A-Z]{1,2}\d[A-Z\d]? ?\d[A-Z]{2}|\d{5}-\d{4})\b")
_DOB = re.compile(
    r"(?i)\b(d\.?o\.?b\.?|born|date of birth|birth ?date)\b|"
    r"\b(0?[1-9]|[12]\d|3[01])[./](0?[1-9]|1[0-2])[./](19|20)\d{2}\b|"
    r"\b(19|20)\d{2}-(0[1-9]|1[0-2])-(0[1-9]|[12]\d|3[01])\b")
_NAME = re.compile(r"^[A-Z][a-z]+([ '-][A-Z][a-z]+)+$")
#: what a spreadsheet would run as a formula when the value is opened in one
_FORMULA = re.compile(r"^=|^[+\-@]\s*[A-Za-z(]|^[\t\r]")


def _luhn(digits: str) -> bool:
    total, parity = 0, len(digits) % 2
    for i, ch in enumerate(digits):
        d = int(ch)
        if i % 2 == parity:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


def _card(value: str) -> bool:
    for m in _CARD.finditer(value):
        digits = re.sub(r"\D", "", m.group())
        if 13 <= len(digits) <= 19 and _luhn(digits):
            return True
    return False


def _phone(value: str) -> bool:
    for m in _PHONE.finditer(value):
        digits = re.sub(r"\D", "", m.group())
        text = m.group()
        # a bare run of digits is a number; a phone shows itself by a + / 00 prefix, a leading
        # 0 or separators (spaces, dots, dashes, brackets) between digit groups
        if 9 <= len(digits) <= 15 and (text[0] in "+(0" or re.search(r"\d[ ().-]+\d", text)):
            if not _DOB.fullmatch(text) and not re.fullmatch(r"\d{4}-\d{2}(-\d{2})?", text):
                return True
    return False


#: (name, cheap necessary condition, test) in the order they are reported. The condition is
#: a plain substring/character check that every match needs, so the regexes only run on the
#: few values that could match: the scan costs next to nothing on ordinary values.
_HAS_DIGITS = re.compile(r"\d.*\d.*\d")
DETECTORS: tuple[tuple[str, Callable[[str], bool], Callable[[str], bool]], ...] = (
    ("email", lambda v: "@" in v, lambda v: bool(_EMAIL.search(v))),
    ("url", lambda v: "://" in v or "www." in v.lower(), lambda v: bool(_URL.search(v))),
    ("domain", lambda v: "." in v, lambda v: bool(_DOMAIN.search(v)) and not _EMAIL.search(v)),
    ("handle", lambda v: "@" in v, lambda v: bool(_HANDLE.search(v))),
    ("ip_address", lambda v: "." in v or ":" in v,
     lambda v: bool(_IPV4.search(v) or _IPV6.search(v))),
    ("payment_card", lambda v: sum(c.isdigit() for c in v) >= 13, _card),
    ("phone", lambda v: sum(c.isdigit() for c in v) >= 9, _phone),
    ("street_address", lambda v: " " in v and _HAS_DIGITS.search(v) is not None
     or any(c.isdigit() for c in v) and any(c.isalpha() for c in v) and len(v) >= 5,
     lambda v: bool(_STREET.search(v) or _POSTCODE.search(v))),
    ("date_of_birth", lambda v: any(c.isdigit() for c in v) or "b" in v.lower(),
     lambda v: bool(_DOB.search(v))),
)

#: column types whose values may legitimately be dates
TIME_TYPES = {"date", "timestamp", "month"}
_SKIP_IN_TIMES = {"date_of_birth", "phone", "ip_address", "payment_card"}
_SKIP_IN_NUMBERS = {"phone", "payment_card"}


#: values that cannot hold any of the above, recognised in one step: a well-formed ISO time in
#: a time column, a plain number in a number column, a short token (letters, digits, - and _,
#: too few digits for a phone or a card) anywhere
_PLAIN = {
    "time": re.compile(r"[0-9]{4}-[0-9]{2}(-[0-9]{2}([ T][0-9:.]+)?(Z|[+-][0-9:]+)?)?"),
    "number": re.compile(r"[0-9][0-9,]*"),
    "token": re.compile(r"[A-Za-z0-9_][A-Za-z0-9_-]{0,63}"),
}


def _plain(value: str, column_type: str) -> bool:
    if column_type in TIME_TYPES:
        return _PLAIN["time"].fullmatch(value) is not None
    if column_type in ("count", "integer", "year") and _PLAIN["number"].fullmatch(value):
        return True
    return _PLAIN["token"].fullmatch(value) is not None and \
        sum(c.isdigit() for c in value) < 9


@lru_cache(maxsize=1 << 16)
def scan(value: str, column_type: str) -> tuple[str, ...]:
    """The kinds of identifying data found in one delivered value (cached: labels repeat)."""
    if _plain(value, column_type):
        return ()
    found = ["formula"] if _FORMULA.match(value) else []
    number = column_type in ("count", "integer", "year") and \
        value.replace(",", "").replace(" ", "").isdigit()
    for name, maybe, test in DETECTORS:
        if column_type in TIME_TYPES and name in _SKIP_IN_TIMES:
            continue  # a time has digits, dashes and colons; its own rules check it
        if number and name in _SKIP_IN_NUMBERS:
            continue  # a bare number in a number column is a number
        if maybe(value) and test(value):
            found.append(name)
    if column_type == "pseudonym" and " " in value and _NAME.match(value):
        found.append("person_name")  # a key column holding "Firstname Lastname"
    return tuple(found)


def mask(found: tuple[str, ...] | list[str]) -> str:
    """What is stored instead of the value: what it was, never what it said."""
    return f"[masked {'/'.join(found)}]"
