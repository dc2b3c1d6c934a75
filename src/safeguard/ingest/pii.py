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


#: (name, test) in the order they are reported; name -> rule ``pii_<name>``
DETECTORS: tuple[tuple[str, Callable[[str], bool]], ...] = (
    ("email", lambda v: bool(_EMAIL.search(v))),
    ("url", lambda v: bool(_URL.search(v))),
    ("domain", lambda v: bool(_DOMAIN.search(v)) and not _EMAIL.search(v)),
    ("handle", lambda v: bool(_HANDLE.search(v))),
    ("ip_address", lambda v: bool(_IPV4.search(v) or _IPV6.search(v))),
    ("payment_card", _card),
    ("phone", _phone),
    ("street_address", lambda v: bool(_STREET.search(v) or _POSTCODE.search(v))),
    ("date_of_birth", lambda v: bool(_DOB.search(v))),
)

#: column types whose values may legitimately be dates
TIME_TYPES = {"date", "timestamp", "month"}


def scan(value: str, column_type: str) -> list[str]:
    """The kinds of identifying data found in one delivered value."""
    found = ["formula"] if _FORMULA.match(value) else []
    digits_only = value.replace(",", "").replace(" ", "").isdigit()
    for name, test in DETECTORS:
        if column_type in TIME_TYPES and name in ("date_of_birth", "phone", "ip_address",
                                                  "payment_card"):
            continue  # a time has digits, dashes and colons; its own rules check it
        if digits_only and name in ("phone", "payment_card") and column_type in (
                "count", "integer", "year"):
            continue  # a bare number in a number column is a number
        if test(value):
            found.append(name)
    if column_type == "pseudonym" and _NAME.match(value):
        found.append("person_name")  # a key column holding "Firstname Lastname"
    return found


def mask(found: list[str]) -> str:
    """What is stored instead of the value: what it was, never what it said."""
    return f"[masked {'/'.join(found)}]"
