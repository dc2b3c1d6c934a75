"""The identifying-data detectors on their own (safeguard.ingest.pii): every planted value of
the hostile corpus is named, alone and inside other text; nothing ordinary is; the vectorised
prefilter SUSPECT lets through every value a detector could name, means the same in RE2
(pyarrow) as in Python, and stops nearly every case id and time; junk never breaks a detector.
Pure: no database, no server."""

from __future__ import annotations

import csv
import functools
import random
import re
import uuid
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pytest
import yaml

from hostile_corpus import CORPUS, EMBEDDED, ORDINARY
from safeguard.ingest import pii

ROOT = Path(__file__).resolve().parents[1]
SUSPECT = re.compile(pii.SUSPECT)


def test_the_corpus_covers_every_kind_with_distinctive_values():
    kinds = {kind for kind, _ in CORPUS}
    assert len(CORPUS) >= 40
    assert kinds == set(pii.KINDS)
    for _, value in CORPUS:
        assert len(value) >= 8, value
        assert not any(value in ordinary for ordinary in ORDINARY), value
    assert len({v for _, v in CORPUS}) == len(CORPUS)
    assert {kind for kind, _ in EMBEDDED} == kinds - {"formula"}


@pytest.mark.parametrize("kind, value", CORPUS)
def test_an_identifying_value_is_named(kind, value):
    assert kind in pii.detect(value)


@pytest.mark.parametrize("kind, text", EMBEDDED)
def test_an_identifying_value_inside_other_text_is_named(kind, text):
    assert kind in pii.detect(text)


@pytest.mark.parametrize("value", ORDINARY)
def test_an_ordinary_value_is_not_taken_for_identifying_data(value):
    assert pii.detect(value) == ()


@pytest.mark.parametrize("value", [
    "Sierra Leone", "Saint Martin", "Facebook Messenger", "Discord server", "Snapchat 2021",
    "Instagram: DM", "2021-05-01/2021-05-31", "c0a8012e-7f3b-4b8e-9d1a-2f6c3e4b5a69",
    "21808263-4061-4375-b1eb-fe27eea55af9", "03923845-0264-4491-a2a9-908ceebb6118",
    "HL-2021-00001234", "Cases 2023 DE", "Total: 1,234", "10.5", "v1.2.3", "12:30:45",
    "fe80::1", "Grace", "Unknown Unknown", "export (1).xlsx", "report.final.v2.xlsx",
    "2025550143",  # a US number without separators: indistinguishable from a count
])
def test_look_alikes_are_not_identifying(value):
    assert pii.detect(value) == ()


def _contract_strings() -> set[str]:
    """The headers and labels the contracts declare, and the sample files' names and cells."""
    found: set[str] = set()
    for path in (ROOT / "contracts").glob("*.yml"):
        columns = (yaml.safe_load(path.read_text()) or {}).get("columns") or {}
        for column in columns.values():
            if isinstance(column, dict):
                found.add(str(column.get("from", "")))
                values = column.get("values") or {}
                found.update(str(v) for v in (values if isinstance(values, dict) else values))
    for path in (ROOT / "data" / "sample").glob("*.csv"):
        found.add(path.name)
        with path.open(newline="") as f:
            found.update(cell for row in csv.reader(f) for cell in row)
    return found - {""}


def test_what_the_contracts_and_samples_hold_is_ordinary():
    strings = _contract_strings()
    assert len(strings) > 50
    assert {s: pii.detect(s) for s in strings if pii.detect(s)} == {}


def test_a_generated_extract_is_ordinary(tmp_path):
    from safeguard.generate import generate_files

    generate_files(tmp_path, 3000, seed=11)
    files = sorted(tmp_path.rglob("*.csv"))
    assert files
    for path in files:
        with path.open(newline="") as f:
            rows = list(csv.reader(f))
        cells = {cell for row in rows for cell in row} | {path.name}
        assert {c: pii.detect(c) for c in cells if pii.detect(c)} == {}


# --- the prefilter ---

def _fuzz(n: int, seed: int) -> list[str]:
    """Strings built from pieces of the corpus and of ordinary values, digits, separators,
    words the detectors look for, and now and then a non-ASCII character: many of them hold
    something a detector names, at every kind of boundary."""
    rng = random.Random(seed)
    fragments = [v for _, v in CORPUS] + ORDINARY
    words = ["Street", "st", "snapchat", "x", "DOB", "born", "Emily", "Johnson", "BSN",
             "passport", "rue", "Calle", "strasse", "weg", "www", "http", "example", "org",
             "io", "at", "dot", "SW1A", "1AA", "bc1", "0x", "db8", "JOHNSON", "kik", "IBAN"]
    seps = list(" -./()+:@,#_=[]\t;") + ["  ", ", ", " - ", "::", "://"]

    def piece() -> str:
        r = rng.random()
        if r < 0.15:  # a whole corpus value, its case changed or a character replaced
            v = rng.choice(fragments)
            if v and rng.random() < 0.5:
                i = rng.randrange(len(v))
                v = v[:i] + rng.choice("0123456789 -.aZ") + v[i + 1:]
            return v.upper() if rng.random() < 0.2 else v
        if r < 0.4:
            v = rng.choice(fragments)
            i = rng.randrange(len(v) + 1)
            return v[i:rng.randrange(i, len(v) + 1)]
        if r < 0.6:
            return "".join(rng.choice("0123456789") for _ in range(rng.randint(1, 12)))
        if r < 0.72:
            return rng.choice(seps)
        if r < 0.86:
            return rng.choice(words)
        if r < 0.96:
            return "".join(rng.choice("abcdefABCDEFXYZxyz0123456789")
                           for _ in range(rng.randint(1, 8)))
        return rng.choice(["é", "\u00a0", "ß", "０", "–", "\u200b", "!", "$", "%", "'", '"'])

    return ["".join(piece() for _ in range(rng.randint(1, 6))) for _ in range(n)]


FUZZ = _fuzz(6000, seed=20240501)


@functools.cache
def _named() -> dict[str, tuple[str, ...]]:
    """What the detectors name without the prefilter (pii._scan) in the corpus and the fuzz."""
    texts = [v for _, v in CORPUS] + [t for _, t in EMBEDDED] + FUZZ
    return {text: pii._scan(text) for text in texts}


def test_the_fuzz_set_exercises_every_detector():
    assert {kind for text in FUZZ for kind in _named()[text]} == set(pii.KINDS)


def test_every_value_a_detector_names_passes_the_prefilter():
    """Whatever the detectors name without the prefilter, SUSPECT matches. detect() applies
    SUSPECT itself, so this is what shows that the prefilter costs no finding."""
    named = {text: kinds for text, kinds in _named().items() if kinds}
    assert len(named) > 500
    assert {text: kinds for text, kinds in named.items() if not SUSPECT.search(text)} == {}
    assert {text: kinds for text, kinds in named.items() if pii.detect(text) != kinds} == {}


def test_the_prefilter_means_the_same_in_re2():
    texts = [v for _, v in CORPUS] + [t for _, t in EMBEDDED] + ORDINARY + FUZZ
    in_re2 = pc.match_substring_regex(pa.array(texts, pa.string()), pii.SUSPECT).to_pylist()
    in_python = [SUSPECT.search(t) is not None for t in texts]
    assert in_re2 == in_python
    assert sum(in_python) > len(CORPUS)  # not vacuous


def _case_ids_and_times(n: int) -> list[str]:
    rng = random.Random(7)
    values = []
    for i in range(n):
        year, day, minute = rng.randint(2018, 2024), rng.randint(1, 28), rng.randint(0, 1439)
        month, h, m, s = rng.randint(1, 12), minute // 60, minute % 60, rng.randint(0, 59)
        date, time = f"{year}-{month:02d}-{day:02d}", f"{h:02d}:{m:02d}:{s:02d}"
        values += [f"HL-{year}-{rng.randint(0, 9_999_999):07d}", f"CASE_{i:06d}",
                   f"HL-P-{rng.randint(1, 99_999)}", f"{date}T{h:02d}:{m:02d}:00Z",
                   f"{date} {time}+02:00", f"{date}T{time}.{rng.randint(0, 999_999):06d}+00:00",
                   date, f"{year}-{month:02d}", str(year),
                   str(rng.randint(0, 50_000_000)), f"{rng.randint(0, 50_000_000):,}"]
    return values


def test_the_prefilter_passes_over_case_ids_and_times():
    values = _case_ids_and_times(2000)
    assert len(values) >= 20_000
    suspect = pc.match_substring_regex(pa.array(values), pii.SUSPECT)
    assert pc.sum(suspect).as_py() < len(values) / 100
    assert [v for v in values[:2000] if pii.detect(v)] == []


def test_the_prefilter_passes_over_most_uuids():
    rng = random.Random(3)
    ids = [str(uuid.UUID(int=rng.getrandbits(128), version=4)) for _ in range(5000)]
    suspect = pc.match_substring_regex(pa.array(ids), pii.SUSPECT)
    assert pc.sum(suspect).as_py() < len(ids) * 5 / 100  # those led by a group of digits
    assert [i for i in ids if pii.detect(i)] == []


# --- robustness ---

def _junk(seed: int) -> list[str]:
    rng = random.Random(seed)
    junk = [bytes(rng.getrandbits(8) for _ in range(rng.randint(0, 300))).decode(
        "utf-8", errors="replace") for _ in range(300)]
    junk += ["".join(chr(rng.randint(0, 0x10FFFF)) for _ in range(rng.randint(1, 200)))
             .encode("utf-8", "surrogatepass").decode("utf-8", "replace") for _ in range(200)]
    junk += ["".join(chr(c) for c in range(32)) * 10, "\x00" * 5000, "\ufeff" * 10, "",
             " ", "+", "@", "=", "0" * 5000, "1 " * 5000, "1-" * 5000, "a:" * 5000,
             "@a" * 5000, "::" * 5000, "a." * 5000, "Emily Johnson " * 2000,
             "+44 7700 900123 " * 1000, "\U0001F600" * 3000, "x" * 100_000]
    return junk


def test_junk_never_breaks_a_detector():
    for text in _junk(5):
        found = pii.detect(text)
        assert isinstance(found, tuple)
        assert set(found) <= set(pii.KINDS)


def test_only_the_start_of_a_long_value_is_scanned():
    tail = " jane.doe@example.org"
    assert pii.detect("x" * (pii.LIMIT - len(tail)) + tail) == ("email",)
    assert pii.detect("x" * pii.LIMIT + tail) == ()
    assert pii.detect("jane.doe@example.org " + "x" * 1_000_000) == ("email",)


def test_names_of_rules_and_masks():
    assert pii.rule_of("email") == "pii_email"
    assert pii.rule_of("formula") == "no_formula"
    assert pii.mask(("email", "phone")) == "[masked email/phone]"
    assert pii.scan("jane.doe@example.org", "category") == pii.detect("jane.doe@example.org")


def test_results_come_in_a_stable_order():
    found = pii.detect("jane.doe@example.org, +44 7700 900123, Emily Johnson")
    assert found == ("email", "phone", "person_name")
    assert list(found) == sorted(found, key=pii.KINDS.index)
