"""What identifies a person (or would run as a formula), named in a delivered value.

Storage is an allow-list: a value is stored only when it conforms to its column's declared
type or domain (a known label, a count, an ISO time...); anything else is replaced by a marker.
These detectors do not decide what is stored. They *name* what a non-conforming value held, so
its marker can say ``[masked email]`` and the row's issue can say ``pii_email``; and they scan
what is never compared with an allow-list: every case id (hashed before storage, but a case id
that is an e-mail address means the extract is wrong), file names, sheet names and headers.

So :func:`detect` is context-free: it runs on any text, whatever its column, and must stay quiet
on what ordinary deliveries are made of (case ids, ISO dates and times, counts, age bands,
labels, file names, headers). Detectors are eager where the shape is specific (an ``@``, a
checksum that holds, a known first name followed by a known last name) and deliberately blind
where a value cannot be told from an ordinary one (see each detector).

:data:`SUSPECT` is one regular expression, valid in Python and in RE2 (pyarrow), that every
value :func:`detect` names anything in matches: a vectorised prefilter, so that a column of a
million case ids needs no Python call per value.
"""

from __future__ import annotations

import hashlib
import importlib
import ipaddress
import pkgutil
import re
import unicodedata
from collections.abc import Callable, Iterable
from functools import lru_cache

import phonenumbers
from stdnum import iban as _iban
from stdnum.br import cpf as _cpf
from stdnum.de import idnr as _idnr
from stdnum.es import dni as _dni
from stdnum.es import nie as _nie
from stdnum.fi import hetu as _hetu
from stdnum.fr import nir as _nir
from stdnum.in_ import aadhaar as _aadhaar
from stdnum.it import codicefiscale as _codicefiscale
from stdnum.se import personnummer as _personnummer
from stdnum.us import ssn as _ssn

#: every kind :func:`detect` can name, in the order it names them
KINDS = ("email", "url", "domain", "handle", "ip_address", "payment_card", "phone", "iban",
         "national_id", "crypto_wallet", "street_address", "postcode", "date_of_birth",
         "person_name", "formula")

#: only this many leading characters of a value are scanned. Bounds the work on a hostile
#: value (a 100 MB cell); nothing is flagged for being long: a value that long conforms to no
#: column type, so it is replaced by a marker whatever it holds, and a case id that long is
#: refused by its own length rule. What lies past the limit is simply not named.
LIMIT = 4096


def mask(found: tuple[str, ...] | list[str]) -> str:
    """What is stored instead of the value: what it was, never what it said."""
    return f"[masked {'/'.join(found)}]"


def rule_of(kind: str) -> str:
    """The quality rule a kind is reported under: ``pii_<kind>``, but ``no_formula`` for a
    formula (it is not identifying data, it is a value a spreadsheet would run)."""
    return "no_formula" if kind == "formula" else f"pii_{kind}"


def _alt(words: Iterable[str]) -> str:
    """A regex matching any of ``words`` in any letter case, for both regex engines: a trie
    ("[sS](?:[nN][aA][pP]...|[tT][eE][aA][mM])") rather than a flat alternation, which Python's
    engine tries word by word at every position (several times slower on case ids)."""
    words = set(words)
    branches = []
    for head in sorted({w[0] for w in words if w}):
        rest = _alt(w[1:] for w in words if w and w[0] == head)
        other = head.swapcase()
        char = f"[{head}{other}]" if head.isalpha() and len(other) == 1 and other != head \
            else re.escape(head).replace("\\ ", " ")
        branches.append(char + rest)  # rest is one unit: atoms, a group, or an optional group
    alternation = "|".join(branches)
    if "" in words and branches:
        return f"(?:{alternation})?"
    return alternation if len(branches) <= 1 else f"(?:{alternation})"


# --- Each detector below comes with its NEED: a regex (the same text for Python `re` and RE2:
# no lookaround, no backreference, [0-9] rather than \d, ASCII classes) that matches every
# value the detector can flag. The argument for each is given next to it; mostly it is this:
# the detector only flags a text that contains a match of one of its own patterns, and the
# NEED is that pattern's consuming core with its lookarounds dropped (dropping a lookaround
# only makes a pattern match more). Any non-ASCII character is itself a NEED
# (_NON_ASCII below): so the arguments only have to hold for ASCII text, where Python's
# Unicode-aware \b, \w and case folding agree with RE2's ASCII ones. No NEED ends in an
# assertion (\b, $): so a NEED that matches the first LIMIT characters of a value matches the
# value, and scanning only those (see detect) keeps the promise.

_NON_ASCII = r"[^\x00-\x7F]"

# --- email: local@domain.tld, and the bracketed spelling "jane [at] example [dot] org".
_EMAIL = re.compile(r"(?<![A-Za-z0-9._%+-])[A-Za-z0-9._%+-]+"
                    r"@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}")
_EMAIL_SPELLED = re.compile(
    r"(?<![A-Za-z0-9._%+-])[A-Za-z0-9._%+-]+ *[\[(] *(?i:at) *[\])] *[A-Za-z0-9-]+"
    r"(?: *[\[(] *(?i:dot) *[\])] *[A-Za-z0-9-]+)+")
_EMAIL_NEED = r"@|[\[(] *(?i:at) *[\])]"  # every match holds its "@" or its "[at]"

# --- url: a scheme and "://" (any scheme: https, ftp, hxxp, tg, snapchat...), or "www.".
_URL = re.compile(r"(?i)\b(?:[a-z][a-z0-9+.-]{0,15}://|www\.)[^\s\"'<>]*")
_URL_NEED = r"://|(?i:www\.)"

# --- domain: name.tld with a known top-level domain: the two-letter country codes (those
# phonenumbers knows, but not the ones that are more often file extensions: .py .md .sh .ps
# .rs .so .pm .mk) and common generic ones. Spelled with "." or defanged "[.]" / "(.)". A file
# name ("cases.xlsx", "extract_2023-03.csv") has no such ending. A domain inside an e-mail
# address or a URL is reported as that, not again as a domain.
_NOT_TLDS = {"py", "md", "sh", "ps", "rs", "so", "pm", "mk"}
_TLDS = ({r.lower() for r in phonenumbers.SUPPORTED_REGIONS} - _NOT_TLDS) | {
    "uk", "eu", "su", "com", "net", "org", "info", "biz", "io", "app", "dev", "xyz", "online",
    "site", "club", "live", "chat", "link", "top", "shop", "store", "tech", "cloud", "blog",
    "fun", "games", "social", "vip", "pro", "mobi", "onion", "icu", "buzz", "space",
    "website", "world", "life", "news", "email", "gov", "edu", "int", "mil"}
_DOT = r"(?:\.|\[\.\]|\(\.\))"
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_DOMAIN = re.compile(  # starting where a run of name characters starts: linear time
    rf"(?<![A-Za-z0-9.-]){_LABEL}(?:{_DOT}{_LABEL})*{_DOT}(?:{_alt(_TLDS)})\b(?!-)")
_DOMAIN_NEED = rf"[A-Za-z0-9]{_DOT}(?:{_alt(_TLDS)})"  # a label's last character, the dot and
# the top-level domain are in every match

# --- handle: "@name" (not the "@" of an e-mail address), and a platform named with a name:
# "snapchat: lily_rose09", "Instagram = lily.rose", "kik: @name" in any letter case; "discord
# darkfox_99" (platform, space, name) only when the name looks like a handle (letters and a
# digit, "_", "." or "#"), so that "Facebook Messenger", "Discord server" or "Snapchat 2021"
# (labels, headers) are not handles. Short or ambiguous platform names (x, ig, fb, sc, tt...)
# count only with ":" or "=".
_PLATFORMS = ("snapchat", "instagram", "insta", "tiktok", "discord", "telegram", "kik",
              "whatsapp", "facebook", "messenger", "twitter", "roblox", "minecraft", "fortnite",
              "xbox", "psn", "playstation", "twitch", "youtube", "reddit", "skype", "wechat",
              "viber", "wickr", "omegle", "onlyfans", "tumblr", "pinterest", "tinder", "grindr",
              "yubo", "threema", "bluesky", "mastodon", "steam", "signal", "snap")
_SHORT_PLATFORMS = ("ig", "fb", "sc", "tt", "tg", "wa", "vk", "x")
_NOT_HANDLES = {"unknown", "none", "n/a", "na", "yes", "no", "other", "user", "users", "account",
                "accounts", "profile", "group", "groups", "chat", "chats", "dm", "dms", "message",
                "messages", "messaging", "story", "stories", "live", "video", "videos", "call",
                "calls", "post", "posts", "comment", "comments", "server", "servers", "channel",
                "channels", "app", "web", "reels", "feed", "game", "games", "platform", "private",
                "public", "deleted", "removed", "blocked", "reported", "banned",
                *_PLATFORMS}
_HANDLE_AT = re.compile(r"(?<![\w@.+-])@([A-Za-z0-9_][A-Za-z0-9_.]{1,29})")
_HANDLE_NAMED = re.compile(
    rf"\b(?:{_alt(_PLATFORMS + _SHORT_PLATFORMS)})\b"
    r" *(?i:handle|user ?name|user|id|name|account|acc)? *[:=] *@?([A-Za-z0-9_][\w.#-]{2,31})")
_HANDLE_SPACED = re.compile(
    rf"\b(?:{_alt(p for p in _PLATFORMS if len(p) >= 5)})\b"
    r" +@?([A-Za-z0-9_]*[0-9_.#][\w.#-]*)")
# "@", or the platform's name (a short one only before ":" or "=", as the detector has it)
_HANDLE_NEED = (rf"@|\b(?:{_alt(_PLATFORMS)})"
                rf"|\b(?:{_alt(_SHORT_PLATFORMS)})\b[ A-Za-z]*[:=]")


def _handle_name(name: str, spaced: bool = False) -> bool:
    """Whether what follows a platform's name is a user name (not "Facebook: Messenger"); after
    a mere space it must also look like one: letters and a digit, "_", "." or "#"."""
    name = name.rstrip(".-")
    if name.lower() in _NOT_HANDLES or len(name) < 3:
        return False
    return not spaced or (any(c.isalpha() for c in name)
                          and any(c.isdigit() or c in "_.#" for c in name))


# --- ip_address: dotted-quad IPv4; IPv6 as validated by the standard library, with at least
# three groups written ("2001:db8::1"; not "fe80::1" or "::1", which name no one; and a time
# like "10:00:00" is no IPv6 address).
_OCTET = r"(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])"
_IPV4 = re.compile(rf"(?<![0-9.]){_OCTET}(?:\.{_OCTET}){{3}}(?![0-9]|\.[0-9])")
_IPV6_RUN = re.compile(r"(?<![0-9A-Fa-f:.])[0-9A-Fa-f:.]*:[0-9A-Fa-f:.%]*")
_IP_NEED = (r"[0-9]\.[0-9]{1,3}\.[0-9]{1,3}\.[0-9]"  # in every IPv4 match
            # valid IPv6 text either elides zeros with "::" or spells out 8 groups (or 6 and
            # an IPv4 tail): so it holds "::" or six groups each followed by ":"
            r"|::|[0-9A-Fa-f]{1,4}(?::[0-9A-Fa-f]{1,4}){5}:")


def _ip_address(text: str) -> bool:
    if _IPV4.search(text):
        return True
    for m in _IPV6_RUN.finditer(text):
        run = m.group().split("%")[0].rstrip(".")
        if run.count(":") < 2:
            continue
        # a ":" of the text around it ("address:2001:db8::1", "2001:db8::1: next") is not
        # part of the address
        head = run[1:] if run.startswith(":") and not run.startswith("::") else run
        tail = head[:-1] if head.endswith(":") and not head.endswith("::") else head
        for candidate in {run, head, tail}:
            try:
                ipaddress.IPv6Address(candidate)
            except ValueError:
                continue
            if sum(1 for g in candidate.split(":") if g) >= 3:
                return True
    return False


# --- payment_card: 13 to 19 digits, in groups separated by one or two spaces or dashes, that
# pass the Luhn check and start like a card (2-6): a bare run of digits as a whole, or groups
# as cards are written (a first group of four, none longer than six: 4-4-4-4, Amex 4-6-5;
# not the 8-4-4 of a UUID). Inside a longer run of groups (an age band or a reference written
# before it: "16-17 5500 0000 0000 0004") any stretch of whole groups counts.
_DIGIT_GROUPS = re.compile(r"(?<![0-9A-Za-z])[0-9]+(?:[ -]{1,2}[0-9]+)*(?![0-9A-Za-z])")
# a card starts a run of groups (after no letter or digit) or a group within one (after a
# space or dash), and holds 13 digits or more
_CARD_NEED = r"(?:^|[^0-9A-Za-z])[0-9](?:[- ]{0,2}[0-9]){12}"


def _luhn(digits: str) -> bool:
    total, parity = 0, len(digits) % 2
    for i, ch in enumerate(digits):
        d = ord(ch) - 48
        if i % 2 == parity:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


def _is_card(digits: str) -> bool:
    return 13 <= len(digits) <= 19 and digits[0] in "23456" and _luhn(digits)


def _payment_card(text: str) -> bool:
    for m in _DIGIT_GROUPS.finditer(text):
        groups = re.split(r"[ -]+", m.group())
        if sum(len(g) for g in groups) < 13:
            continue
        if len(groups) == 1:
            if _is_card(groups[0]):
                return True
            continue
        for i in range(len(groups)):
            if len(groups[i]) != 4:
                continue  # a grouped card number starts with a group of four
            digits = ""
            for g in groups[i:]:
                digits += g
                if len(digits) > 19 or len(g) > 6:
                    break
                if _is_card(digits):
                    return True
    return False


# --- phone: Google's libphonenumber (the phonenumbers package) finds the numbers, for an
# international number ("+44 ...", checked as possible for its country) and as written in a
# handful of countries (checked as valid there). It knows each country's lengths and ranges,
# and leaves out dates it recognises. It only looks at PHONE WINDOWS: stretches of digits that
# have the shape of a written phone number, not of an ISO date or time, a count or a case id.
# A window starts a value or follows a character that is not a letter, digit, "_", "." or "-"
# (so not inside an identifier: "HL-2021-0000123", a UUID's groups); the windows (the NEED):
#   "+" and 7 digits, in groups;                 "+44 7700 900123", "+12025550143"
#   a leading 0 (trunk or international prefix) and 8 digits in all, with or without
#   separators (not dots);                        "07700 900123", "0612345678", "(030) 1234567"
#   1-3 digits, a separator (not a dot), and 6 more digits;       "202-555-0143", "612 345 678"
#   4 digits, a space, "/" or ")" (not "-": 2021-05-01), and 3 more digits;      "9876 5432"
#   5 or more digits, a separator (not a dot), 2 more digits;     "98765 43210", "91234-5678"
#   dotted groups with at least two dots (one dot is a decimal or fractional second);
#                                                 "01.23.45.67.89", "202.555.0143"
# So no ISO date or time has one ("2021-05-01 10:00:00+02:00": 4-2-2 digits then ":"; the
# fraction of "10:00:00.123456" has one dot), nor does a count ("21669264", "21,669,264") or a
# case id ("HL-2021-0000123"). Limitation, deliberately: a bare run of digits that does not
# start with 0 or "+" is never a phone number here ("2025550143" is a US number, but
# indistinguishable from a count or a numeric case id).
_SEP = r"[- ()/]"
_START = r"(?:^|[^0-9A-Za-z_.-])"
_PHONE_NEED = (
    r"\+[-. ()/]{0,4}[0-9](?:[-. ()/]{0,3}[0-9]){6}"
    rf"|{_START}0(?:{_SEP}{{0,3}}[0-9]){{7}}"
    rf"|{_START}[0-9]{{1,3}}{_SEP}{{1,3}}[0-9](?:{_SEP}{{0,3}}[0-9]){{5}}"
    rf"|{_START}[0-9]{{4}}[ ()/]{{1,3}}[0-9](?:{_SEP}{{0,3}}[0-9]){{2}}"
    rf"|{_START}[0-9]{{5,}}{_SEP}{{1,3}}[0-9]{{2}}"
    rf"|{_START}[0-9]{{1,4}}\.[0-9]{{2,4}}\.[0-9]{{2,4}}")
_PHONE_WINDOW = re.compile(_PHONE_NEED)
#: where libphonenumber checks numbers written without "+": countries whose numbers are likely
#: in a European NGO's deliveries, and the largest others
PHONE_REGIONS = ("GB", "US", "DE", "FR", "NL", "IN", "BR", "ES", "IT", "AU")
_NUMERIC_DATE = re.compile(r"[0-9]{1,2}[./-][0-9]{1,2}[./-][0-9]{2,4}")


#: how many phone windows of one value are checked, and how far each reaches: bounds the work on
#: a value made of thousands of digit groups (a real value holds one or two numbers)
PHONE_WINDOWS, PHONE_REACH = 8, 64
_PHONE_CHARS = frozenset("0123456789 -./()")
#: a number joined by "-", "_" or "." to more letters or digits is part of an identifier (the
#: groups of a UUID: "03923845-0264-4491-a2a9-..."), not a phone number
_GLUED_BEFORE = re.compile(r"[0-9A-Za-z][-_.]$")
_GLUED_AFTER = re.compile(r"[-_.][0-9A-Za-z]")


def _phone(text: str) -> bool:
    for n, m in enumerate(_PHONE_WINDOW.finditer(text)):
        if n == PHONE_WINDOWS:
            break
        # the window's matched part may stop short of the number's end: extend it over what
        # follows the same way, and give libphonenumber one character of context each side
        # (it refuses a number run into letters: "ref0612345678x")
        end = m.end()
        while end < len(text) and end - m.start() < PHONE_REACH and text[end] in _PHONE_CHARS:
            end += 1
        window = text[max(m.start() - 1, 0):end + 1]
        regions = ((None, phonenumbers.Leniency.POSSIBLE),) if "+" in window else ()
        regions += tuple((r, phonenumbers.Leniency.VALID) for r in PHONE_REGIONS)
        try:
            for region, leniency in regions:
                for found in phonenumbers.PhoneNumberMatcher(window, region, leniency=leniency):
                    if not (_IPV4.fullmatch(found.raw_string)
                            or _NUMERIC_DATE.fullmatch(found.raw_string)
                            or _GLUED_BEFORE.search(window, 0, found.start)
                            or _GLUED_AFTER.match(window, found.end)):
                        return True
        except Exception:  # noqa: BLE001 - a library's bug on hostile text must not stop a
            continue       # load (none is known: the tests feed it junk)
    return False


# --- iban: country code, two check digits and the account, with or without spaces,
# validated by python-stdnum (the country's length and format, and the mod-97 check).
_IBAN = re.compile(r"\b[A-Za-z]{2}[0-9]{2}(?: ?[A-Za-z0-9]){11,30}")
_IBAN_NEED = r"\b[A-Za-z]{2}[0-9]{2}(?: ?[A-Za-z0-9]){11}"  # the shortest IBAN has 15


def _iban_found(text: str) -> bool:
    for m in _IBAN.finditer(text):
        compact = m.group().replace(" ", "").upper()
        # the match may run on into following words: try each length an IBAN can have
        if any(_iban.is_valid(compact[:n]) for n in range(len(compact), 14, -1)):
            return True
    return False


# --- national_id: personal identity numbers in the written forms that are specific enough
# not to be mistaken for an ordinary number, each checked by python-stdnum's validator:
#   US SSN 123-45-6789 (dashed only), UK National Insurance AB 12 34 56 C (HMRC's letter
#   rules), French NIR (15 digits, key mod 97), Spanish DNI 12345678Z and NIE X1234567L
#   (check letter), Italian codice fiscale (16 characters, check letter), Brazilian CPF
#   123.456.789-09 (dotted), Indian Aadhaar 2341 2341 2346 (grouped, Verhoeff), German
#   Steuer-ID 36 574 261 809 (grouped), Swedish personnummer 880320-0016, Finnish HETU
#   131052-308T;
# and any of these (or a BSN, PESEL, passport... number) after its name: "BSN 111222333",
# "passport no. 123456789". Not recognised on their own, deliberately: ids that are a bare
# run of 9-12 digits (Dutch BSN, Polish PESEL, undotted CPF, ungrouped Aadhaar or Steuer-ID,
# Danish CPR, which has no check digit): a bare number is a count or a case id as often.
def _nino(number: str) -> bool:
    number = number.replace(" ", "").upper()
    return (number[0] not in "DFIQUV" and number[1] not in "DFIOQUV"
            and number[:2] not in {"BG", "GB", "KN", "NK", "NT", "TN", "ZZ"})


_ID_FORMS: tuple[tuple[str, Callable[[str], bool]], ...] = (
    (r"[0-9]{3}-[0-9]{2}-[0-9]{4}", _ssn.is_valid),
    (r"[A-Z]{2} ?[0-9]{2} ?[0-9]{2} ?[0-9]{2} ?[A-D]", _nino),
    (r"[12] ?[0-9]{2} ?[0-9]{2} ?(?:[0-9]{2}|2[ABab]) ?[0-9]{3} ?[0-9]{3} ?[0-9]{2}",
     _nir.is_valid),
    (r"[0-9]{8}-?[A-Za-z]", _dni.is_valid),
    (r"[XYZxyz]-?[0-9]{7}-?[A-Za-z]", _nie.is_valid),
    (r"[A-Za-z]{6}[0-9LMNP-Vlmnp-v]{2}[A-Za-z][0-9LMNP-Vlmnp-v]{2}[A-Za-z]"
     r"[0-9LMNP-Vlmnp-v]{3}[A-Za-z]", _codicefiscale.is_valid),
    (r"[0-9]{3}\.[0-9]{3}\.[0-9]{3}-[0-9]{2}", _cpf.is_valid),
    (r"[2-9][0-9]{3}[ -][0-9]{4}[ -][0-9]{4}", _aadhaar.is_valid),
    (r"[1-9][0-9] [0-9]{3} [0-9]{3} [0-9]{3}", _idnr.is_valid),
    (r"(?:[0-9]{2})?[0-9]{6}[-+][0-9]{4}", _personnummer.is_valid),
    (r"[0-9]{6}[-+A-FU-Ya-fu-y][0-9]{3}[0-9A-Ya-y]", _hetu.is_valid),
)
_IDS = tuple((re.compile(rf"(?<![\w.-]){form}(?![\w-])"), valid) for form, valid in _ID_FORMS)
_ID_NAMES = ("ssn", "social security", "social security number", "nino",
             "national insurance", "national insurance number", "bsn", "burgerservicenummer",
             "sofinummer", "nir", "insee", "dni", "nie", "nif", "cpf", "aadhaar", "aadhar",
             "uidai", "idnr", "steuer-id", "steuerid", "steueridentifikationsnummer",
             "personnummer", "pesel", "hetu", "cpr", "passport", "national id",
             "national identity", "identity card", "id card", "personal id", "tax id")
_ID_NAMED = re.compile(
    rf"\b(?:{_alt(_ID_NAMES)})\b[^0-9A-Za-z]{{0,3}}(?:(?i:no|nr|number|num)\b[^0-9A-Za-z]{{0,3}})?"
    r"[A-Za-z]{0,3}([0-9](?:[ ./-]?[0-9A-Za-z]){5,24})")
_ID_NEED = rf"(?:^|[^0-9A-Za-z_.-])(?:{'|'.join(form for form, _ in _ID_FORMS)})" \
    rf"|\b(?:{_alt(_ID_NAMES)})"


def _national_id(text: str) -> bool:
    for pattern, valid in _IDS:
        if any(valid(m.group()) for m in pattern.finditer(text)):
            return True
    return any(sum(c.isdigit() for c in m.group(1)) >= 6 for m in _ID_NAMED.finditer(text))


# --- crypto_wallet: Bitcoin addresses (base58 "1..."/"3..." with a valid base58check
# checksum; bech32/bech32m "bc1..." with a valid checksum) and Ethereum "0x" + 40 hex digits.
_B58 = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"
_BASE58 = re.compile(r"(?<![0-9A-Za-z])[13][1-9A-HJ-NP-Za-km-z]{25,34}(?![0-9A-Za-z])")
_BECH32_CHARS = "qpzry9x8gf2tvdw0s3jn54khce6mua7l"
_BECH32 = re.compile(r"(?<![0-9A-Za-z])(?i:bc1[02-9ac-hj-np-z]{11,71})(?![0-9A-Za-z])")
_ETH = re.compile(r"(?<![0-9A-Za-z])0x[0-9a-fA-F]{40}(?![0-9A-Za-z])")
_WALLET_NEED = (r"[13][1-9A-HJ-NP-Za-km-z]{25}|[bB][cC]1[02-9ac-hj-np-zAC-HJ-NP-Z]{11}"
                r"|0x[0-9a-fA-F]{40}")


def _base58check(address: str) -> bool:
    n = 0
    for ch in address:
        n = n * 58 + _B58.index(ch)
    raw = n.to_bytes(25, "big") if n.bit_length() <= 200 else b""
    if not raw or raw[0] not in (0, 5):
        return False
    return hashlib.sha256(hashlib.sha256(raw[:21]).digest()).digest()[:4] == raw[21:]


def _bech32(address: str) -> bool:
    if address != address.lower() and address != address.upper():
        return False
    hrp, _, data = address.lower().rpartition("1")
    values = [ord(c) >> 5 for c in hrp] + [0] + [ord(c) & 31 for c in hrp] + \
        [_BECH32_CHARS.index(c) for c in data]
    chk = 1
    for v in values:
        top = chk >> 25
        chk = (chk & 0x1ffffff) << 5 ^ v
        for i, g in enumerate((0x3b6a57b2, 0x26508e6d, 0x1ea119fa, 0x3d4233dd, 0x2a1462b3)):
            chk ^= g if (top >> i) & 1 else 0
    return chk in (1, 0x2bc830a3)  # bech32 (segwit v0), bech32m (v1+)


def _crypto_wallet(text: str) -> bool:
    return bool(any(_base58check(m.group()) for m in _BASE58.finditer(text))
                or any(_bech32(m.group()) for m in _BECH32.finditer(text))
                or _ETH.search(text))


# --- street_address: a house number and a street: "221B Baker Street", "742 Evergreen
# Terrace" (number, up to four words, a street word); "12 rue de la Paix" (number, street word,
# name); "Calle Falsa 123", "Via Roma 10" (street word, name, number); "Musterstraße 12",
# "Kalverstraat 92" (a compound ending in a street word, number).
_STREET_EN = ("street", "st", "road", "rd", "avenue", "ave", "lane", "ln", "drive", "dr",
              "boulevard", "blvd", "way", "close", "court", "ct", "place", "pl", "square", "sq",
              "terrace", "crescent", "grove", "gardens", "mews", "parade", "highway", "hwy",
              "row", "walk")
_STREET_FIRST = ("rue", "avenue", "av", "boulevard", "bd", "place", "chemin", "impasse",
                 "calle", "avenida", "rua", "via", "viale", "piazza", "corso", "plaza",
                 "travessa", "ulica", "ul")
_STREET_SUFFIX = ("strasse", "straße", "str.", "straat", "weg", "laan", "gasse", "allee",
                  "platz", "plein", "gracht", "vej", "gatan", "gata", "vagen", "vägen", "veien",
                  "gade", "katu", "utca")
_STREET = re.compile(
    rf"\b[0-9]{{1,5}}[A-Za-z]?,? +(?:[A-Za-z][A-Za-z'.-]* +){{1,4}}(?:{_alt(_STREET_EN)})\b"
    rf"|\b[0-9]{{1,5}}(?:bis|ter)?,? +(?:{_alt(_STREET_FIRST)})\b +[A-Za-z]"
    rf"|\b(?:{_alt(_STREET_FIRST)})\b +(?:[A-Za-z'.-]+ +){{0,3}}[0-9]{{1,5}}\b"
    rf"|[A-Za-z](?:{_alt(_STREET_SUFFIX)}) *[0-9]{{1,5}}[A-Za-z]?\b")
# the house number and the next word's first letter (first two forms), the street word and
# the space after it (third), the suffix and the number (last)
_STREET_NEED = (r"[0-9][A-Za-z]{0,3},? +[A-Za-z]"
                rf"|\b(?:{_alt(_STREET_FIRST)})\b +|(?:{_alt(_STREET_SUFFIX)}) *[0-9]")

# --- postcode: only the shapes that cannot be mistaken for something else: a UK postcode
# with its space ("SW1A 1AA"), a Canadian one ("K1A 0B1"), a US ZIP+4 ("90210-1234"). A
# five-digit code (DE, FR, US ZIP) or the Dutch "1234 AB" is a number or a year as often; they
# are caught within a street address.
_POSTCODE_FORMS = (r"[A-Z]{1,2}[0-9][A-Z0-9]? [0-9][A-Z]{2}", r"[A-Z][0-9][A-Z] [0-9][A-Z][0-9]",
                   r"[0-9]{5}-[0-9]{4}")
_POSTCODE = re.compile("|".join(rf"\b{form}\b" for form in _POSTCODE_FORMS))
_POSTCODE_NEED = "|".join(rf"\b{form}" for form in _POSTCODE_FORMS)

# --- date_of_birth: a birth keyword (DOB, born, date of birth...; a column or a value saying
# so is identifying whatever follows), or a calendar date written day/month/year or
# month/day/year (12/04/2009, 12.04.2009, 4-12-2009). Not a bare ISO date or time
# (2009-04-12, 2021-05-01T10:00:00Z): those are the ordinary values of date and time columns
# and appear in file names ("cases_2023-03.csv").
_DOB_WORDS = ("dob", "d.o.b", "date of birth", "birth date", "birthdate", "birthday", "born",
              "year of birth", "geburtsdatum", "geboren", "geb.", "date de naissance",
              "fecha de nacimiento", "data di nascita", "data de nascimento", "geboortedatum")
_DOB_WORD = re.compile(rf"\b(?:{_alt(_DOB_WORDS)})(?![A-Za-z])")
_DATE = re.compile(r"(?<![0-9])([0-9]{1,2})([./-])([0-9]{1,2})\2(?:19|20)[0-9]{2}(?![0-9])")
_DOB_NEED = rf"\b(?:{_alt(_DOB_WORDS)})|[0-9]{{1,2}}[./-][0-9]{{1,2}}[./-](?:19|20)[0-9]{{2}}"


def _date_of_birth(text: str) -> bool:
    if _DOB_WORD.search(text):
        return True
    for m in _DATE.finditer(text):
        a, b = int(m.group(1)), int(m.group(3))
        if 1 <= a <= 31 and 1 <= b <= 31 and min(a, b) <= 12:
            return True
    return False


# --- person_name: a known first name followed by a known last name ("Emily Johnson",
# "EMILY JOHNSON", "contact Emily Johnson tonight"), or a known last name, a comma and a
# known first name ("JOHNSON, Emily"); each word starting with a capital, separated by
# spaces (or the comma). Known: in the name lists of Faker's person providers, every locale
# (about 26,000 first and 23,000 last names). Both words must be known: "Online Enticement", "Law
# enforcement", "Case ID" are not names even though "Case" is a first name somewhere; nor are
# country names ("Sierra Leone") or streets ("Baker Street"). A first name alone is not flagged
# (it does not identify; it is a label word as often: "Grace").
_STREET_WORDS = frozenset(w for w in _STREET_EN + _STREET_FIRST if len(w) > 3)
_WORD = re.compile(r"[^\W\d_]+(?:['’-][^\W\d_]+)*")
_NAME_SEP = re.compile(r" +|, *")
# the last letter of the first word, the separator and the capital of the second (a non-ASCII
# letter is a NEED of its own)
_NAME_NEED = rf"[A-Za-z](?:{_NAME_SEP.pattern})[A-Z]"


@lru_cache(maxsize=1)
def known_names() -> tuple[frozenset[str], frozenset[str]]:
    """(first names, last names), lowercased, from every locale of Faker's person provider.
    Built once, on first use (about a second)."""
    from faker.providers import person

    first: set[str] = set()
    last: set[str] = set()
    for module in pkgutil.iter_modules(person.__path__):
        try:
            provider = importlib.import_module(f"{person.__name__}.{module.name}").Provider
        except (ImportError, AttributeError):
            continue
        for attr, into in (("first_names", first), ("first_names_male", first),
                           ("first_names_female", first), ("last_names", last)):
            names = getattr(provider, attr, None)  # on the class: a property stays a property
            if isinstance(names, dict):
                names = list(names)  # {name: weight}
            if not isinstance(names, (list, tuple, set, frozenset)):
                continue
            into.update(n.lower() for n in names
                        if isinstance(n, str) and len(n) > 1 and n.isalpha())
    return frozenset(first), frozenset(last)


@lru_cache(maxsize=1)
def _place_pairs() -> frozenset[tuple[str, str]]:
    """Adjacent word pairs of country names ("sierra leone", "saint martin"), which would
    otherwise read as a first and a last name."""
    from faker.providers.address.en_US import Provider

    pairs = set()
    for country in getattr(Provider, "countries", ()):
        words = country.lower().replace(",", " ").split()
        pairs.update(zip(words, words[1:], strict=False))
    return frozenset(pairs)


def _person_name(text: str) -> bool:
    words = [(m.group(), m.start(), m.end()) for m in _WORD.finditer(text)]
    if len(words) < 2:
        return False
    first, last = known_names()
    places = _place_pairs()
    for (a, _, a_end), (b, b_start, _) in zip(words, words[1:], strict=False):
        between = text[a_end:b_start]
        if not (_NAME_SEP.fullmatch(between) and a[0].isupper() and b[0].isupper()) or \
                (a.lower(), b.lower()) in places or {a.lower(), b.lower()} & _STREET_WORDS:
            continue
        if "," not in between and a.lower() in first and b.lower() in last:
            return True
        if "," in between and a.lower() in last and b.lower() in first:
            return True
    return False


# --- formula: what a spreadsheet would run when the value is opened in one: a value that
# starts with "=", with "+", "-" or "@" and then a letter or "(", or with a tab or a CR.
_FORMULA = re.compile(r"=|[+\-@] *[A-Za-z(]|[\t\r]")
_FORMULA_NEED = r"^[-=+@\t\r]"


def _email(text: str) -> bool:
    return bool(_EMAIL.search(text) or _EMAIL_SPELLED.search(text))


def _spans(pattern: re.Pattern[str], text: str) -> list[tuple[int, int]]:
    return [m.span() for m in pattern.finditer(text)]


_DASHES = str.maketrans(dict.fromkeys("\u2010\u2011\u2012\u2013\u2014\u2015\u2212\ufe58\ufe63",
                                      "-"))


def _folded(text: str) -> str:
    """Text with look-alikes made plain, so that "＋４４ ７７００ ９００１２３" (full-width),
    "jane\u200b@example.org" (a zero-width space) or "0612–345–678" (en dashes) are seen as what
    they are: compatibility forms normalised (NFKC: full-width letters and digits, no-break
    spaces), invisible format characters dropped, dashes made "-". ASCII text is left as it is
    (so the NEEDs only have to hold for ASCII text: anything else is suspect anyway)."""
    if text.isascii():
        return text
    text = "".join(c for c in unicodedata.normalize("NFKC", text)
                   if unicodedata.category(c) != "Cf")
    return text.translate(_DASHES)[:LIMIT]


def _scan(text: str) -> tuple[str, ...]:
    """Every kind found in ``text``, without the prefilter (the tests check the prefilter
    against this)."""
    text = _folded(text)
    found: list[str] = []
    email = _email(text)
    if email:
        found.append("email")
    if _URL.search(text):
        found.append("url")
    taken = _spans(_EMAIL, text) + _spans(_URL, text)  # a domain or "@" of these is theirs
    if any(not any(s <= m.start() and m.end() <= e for s, e in taken)
           for m in _DOMAIN.finditer(text)):
        found.append("domain")
    if (any(not any(s <= m.start() and m.end() <= e for s, e in taken)
            for m in _HANDLE_AT.finditer(text))
            or any(_handle_name(m.group(1)) for m in _HANDLE_NAMED.finditer(text))
            or any(_handle_name(m.group(1), spaced=True)
                   for m in _HANDLE_SPACED.finditer(text))):
        found.append("handle")
    for kind, test in (("ip_address", _ip_address), ("payment_card", _payment_card),
                       ("phone", _phone), ("iban", _iban_found), ("national_id", _national_id),
                       ("crypto_wallet", _crypto_wallet),
                       ("street_address", lambda t: bool(_STREET.search(t))),
                       ("postcode", lambda t: bool(_POSTCODE.search(t))),
                       ("date_of_birth", _date_of_birth), ("person_name", _person_name),
                       ("formula", lambda t: bool(_FORMULA.match(t)))):
        if test(text):
            found.append(kind)
    return tuple(found)


#: The prefilter: every value that :func:`detect` names anything in matches it (Python ``re``
#: and RE2 alike), because it is the alternation of every detector's NEED (see each one).
#: It is broad (a value it matches usually holds nothing) but ordinary case ids, ISO dates and
#: times, counts, age bands, country codes and most labels do not match it. :func:`detect`
#: applies it too, so the promise holds by construction; the tests check the argument behind
#: each NEED against the detectors themselves.
SUSPECT = "|".join(f"(?:{need})" for need in (
    _NON_ASCII, _EMAIL_NEED, _URL_NEED, _DOMAIN_NEED, _HANDLE_NEED, _IP_NEED, _CARD_NEED,
    _PHONE_NEED, _IBAN_NEED, _ID_NEED, _WALLET_NEED, _STREET_NEED, _POSTCODE_NEED, _DOB_NEED,
    _NAME_NEED, _FORMULA_NEED))
_SUSPECT = re.compile(SUSPECT)


@lru_cache(maxsize=1 << 12)  # labels and headers repeat; junk does not (memory stays small)
def _detect_short(value: str) -> tuple[str, ...]:
    return _scan(value) if _SUSPECT.search(value) else ()


def detect(value: str) -> tuple[str, ...]:
    """Every kind of identifying data (and ``formula``) found in ``value``, in the order of
    :data:`KINDS`; ``()`` for an ordinary value. Context-free: the same answer whatever column
    the value came from. Never raises on a str; scans at most :data:`LIMIT` characters.
    Cached for short values (labels and headers repeat)."""
    if len(value) <= 256:
        return _detect_short(value)
    text = value[:LIMIT]
    return _scan(text) if _SUSPECT.search(text) else ()


def scan(value: str, column_type: str = "") -> tuple[str, ...]:
    """Deprecated: :func:`detect` (no column type changes what is found any more)."""
    return detect(value)
