"""The allow-list (``safeguard.ingest.admit``): a delivered value is stored as delivered only when
it conforms to its column's type and domain; anything else becomes a typed marker (or a mask
saying what identifying data it held) before it leaves the process. Pure tests: no database."""

from __future__ import annotations

import hashlib
import hmac
import random
import re
import string

import pyarrow as pa
import pytest

from conftest import ROOT
from hostile_corpus import CORPUS


@pytest.fixture(scope="module")
def contracts():
    from safeguard.contracts import load_contract

    return {name: load_contract(ROOT / "contracts" / f"{name}.yml") for name in (
        "sample_hotline_cases", "sample_partner_aggregates", "ncmec_cybertipline",
        "icmec_grooming_legislation")}


def admit(contract, column: str, values: list[str | None], key: str = "k"):
    """Admit one column's values (the other columns empty); (stored values, findings)."""
    from safeguard.ingest.admit import Admission

    raw = {c.name: pa.array([None] * len(values), pa.string()) for c in contract.columns}
    raw[column] = pa.array(values, pa.string())
    out = Admission(contract, key)(raw)
    return out.columns[column].to_pylist(), out.findings.to_pylist()


TIMESTAMPS_OK = ["2021-05-01T10:00:00Z", "2021-05-01 10:00:00+02:00", "2021-05-01T10:00",
                 "2024-02-29T00:00:00Z", "2000-02-29T12:00:00.123456+0530", "2021-05-01",
                 "2021-12-31T23:59:59-11:00"]
TIMESTAMPS_BAD = ["2021-02-30T10:00:00Z", "2023-02-29T10:00:00Z", "1900-02-29T00:00:00Z",
                  "2021-04-31T00:00:00Z", "2021-13-01T00:00:00Z", "2021-05-01T24:00:00Z",
                  "yesterday", "now", "epoch", "infinity", "2021-5-1",
                  "0999-01-01T00:00:00Z", "2021-05-01T10:00:00ZZ", "20210501T100000Z",
                  "2021-05-01T10:00:00+16:00"]


def test_well_formed_times_are_stored_as_delivered(contracts):
    stored, findings = admit(contracts["sample_hotline_cases"], "received_at",
                             [f"  {v} " for v in TIMESTAMPS_OK])
    assert stored == TIMESTAMPS_OK and findings == [None] * len(TIMESTAMPS_OK)


def test_malformed_or_impossible_times_become_markers(contracts):
    stored, findings = admit(contracts["sample_hotline_cases"], "received_at", TIMESTAMPS_BAD)
    assert stored == [f"[not a timestamp: {len(v)} chars]" for v in TIMESTAMPS_BAD]
    assert findings == [None] * len(TIMESTAMPS_BAD)


@pytest.mark.parametrize("contract, column, good, bad, what", [
    ("sample_partner_aggregates", "case_count", ["0", "17", "999999999"],
     ["-4", "2.5", "9" * 16, "1e5", "NaN", "seventeen", "0x1F", "0017", "1000000000"],
     "count"),
    ("sample_partner_aggregates", "month", ["2023-01", "2023-12-01"],
     ["2023-13", "2023-1", "2023-01-02", "Jan 2023"], "month"),
    ("icmec_grooming_legislation", "edition", ["2017", "-3"], ["1.0", "10000000000", "x"],
     "whole number"),
    ("ncmec_cybertipline", "year", ["2019"], ["19", "20190", "two thousand"], "year"),
])
def test_numbers_and_periods_are_admitted_by_their_form(contracts, contract, column, good, bad,
                                                         what):
    stored, _ = admit(contracts[contract], column, good + bad)
    article = "an" if what[0] in "aeiou" else "a"
    assert stored == good + [f"[not {article} {what}: {len(v)} chars]" for v in bad]


def test_an_identifier_written_as_digits_is_not_a_count(contracts):
    """A card or phone number delivered in a count column fits no count (no leading zero,
    under a billion): it is refused, and the detectors name it."""
    stored, findings = admit(contracts["sample_partner_aggregates"], "case_count",
                             ["07700900123", "378282246310005", "4111111111111111"])
    assert stored == ["[masked phone]", "[masked payment_card]", "[masked payment_card]"]
    assert findings == ["case_count:phone", "case_count:payment_card",
                        "case_count:payment_card"]


def test_thousands_separators_are_removed_only_from_grouped_digits(contracts):
    stored, _ = admit(contracts["ncmec_cybertipline"], "value",
                      ["21,669,264", "19,174", "1,2345", "12,34"])
    assert stored == ["21669264", "19174", "[not a count: 6 chars]", "[not a count: 5 chars]"]


def test_labels_are_admitted_only_from_the_contracts_mapping(contracts):
    stored, _ = admit(contracts["sample_hotline_cases"], "channel",
                      ["Social media", "Online gaming", "social media", "Metaverse",
                       "Social\x01media", "x'); drop table raw.hotline_cases; --"])
    assert stored[:2] == ["Social media", "Online gaming"]
    assert stored[2:] == ["[not a known label: 12 chars]", "[not a known label: 9 chars]",
                          "[not a known label: 12 chars]", "[not a known label: 37 chars]"]


def test_a_list_of_labels_is_admitted_only_when_every_element_is_known(contracts):
    stored, _ = admit(contracts["sample_hotline_cases"], "exploitation_types",
                      ["Sextortion", "CSAM; Self-generated", "Sextortion;", "CSAM;Metaverse",
                       ";"])
    assert stored[:2] == ["Sextortion", "CSAM; Self-generated"]
    assert all(v.startswith("[not a list of known labels: ") for v in stored[2:])


def test_empty_and_declared_null_values_are_null(contracts):
    stored, _ = admit(contracts["ncmec_cybertipline"], "value", ["", "   ", None])
    assert stored == [None, None, None]


def test_identifying_data_is_masked_and_noted_whatever_the_column(contracts):
    from safeguard.ingest.pii import detect

    hotline = contracts["sample_hotline_cases"]
    for column in ("received_at", "channel", "exploitation_types", "victim_age_band",
                   "country_code"):
        values = [v for _, v in CORPUS]
        stored, findings = admit(hotline, column, values)
        for value, kept, found in zip(values, stored, findings, strict=True):
            kinds = detect(value)
            assert kept == f"[masked {'/'.join(kinds)}]", (column, kinds)
            assert found == f"{column}:{'+'.join(kinds)}"


def test_the_case_id_is_stored_only_as_its_keyed_hash(contracts):
    stored, findings = admit(contracts["sample_hotline_cases"], "case_key",
                             ["HL-2021-0000123", " HL-P-12 ", None], key="secret")
    expected = [hmac.new(b"secret", v.encode(), hashlib.sha256).hexdigest()
                for v in ("HL-2021-0000123", "HL-P-12")]
    assert stored == [*expected, None] and findings == [None] * 3


def test_a_case_id_holding_identifying_data_is_masked_not_hashed(contracts):
    stored, findings = admit(contracts["sample_hotline_cases"], "case_key",
                             ["jane.doe@example.org", "Emily Johnson", "x" * 300, "HL\x07-1"])
    assert stored[0] == "[masked email]" and findings[0] == "case_key:email"
    assert stored[1] == "[masked person_name]"
    assert stored[2:] == ["[not a case id: 300 chars]", "[not a case id: 5 chars]"]


def test_whatever_is_delivered_is_stored_admitted_or_as_a_marker(contracts):
    """By construction: for random junk in every column of every contract, each stored value
    either conforms to its column (the allow-list's own test) or is a marker; no marker
    repeats a character of what it replaced beyond its type and length."""
    from safeguard.ingest.admit import PATTERNS

    rng = random.Random(7)
    alphabet = string.printable + "éü€\u200b\u00a0"
    junk = ["".join(rng.choice(alphabet) for _ in range(rng.randint(1, 40)))
            for _ in range(400)]
    marker = re.compile(r"\[(not an? [a-z /]+: \d+ chars|masked [a-z_/]+)\]")
    for contract in contracts.values():
        for c in contract.columns:
            if c.type == "pseudonym":
                continue
            stored, _ = admit(contract, c.name, junk)
            for original, kept in zip(junk, stored, strict=True):
                if kept is None:
                    assert original.strip() in {"", *contract.file.null_values}
                elif not marker.fullmatch(kept):
                    assert kept == original.strip()
                    if c.type in PATTERNS:
                        assert re.fullmatch(PATTERNS[c.type][1].strip("^$"), kept)
                    elif c.values:
                        assert kept in c.values or c.type == "category_list"


def test_a_label_may_not_look_like_a_marker(tmp_path):
    from safeguard.contracts import ContractError, load_contract

    text = (ROOT / "contracts" / "sample_partner_aggregates.yml").read_text()
    path = tmp_path / "sample_partner_aggregates.yml"
    path.write_text(text.replace("channel: {from: channel, type: category}",
                                 "channel: {from: channel, type: category, "
                                 "values: {'[x]': gaming}}", 1))
    with pytest.raises(ContractError, match="may not start with"):
        load_contract(path, ROOT)


def test_names_in_messages_are_masked_when_they_identify_someone():
    from safeguard.ingest.admit import shown, shown_file_name

    assert shown_file_name("hotline_cases_2023-03.csv") == "hotline_cases_2023-03.csv"
    assert shown_file_name("cases_jane.doe@example.org.csv") == "[masked email].csv"
    assert shown("Victim age band") == "Victim age band"
    assert shown("Emily Johnson") == "[masked person_name]"
    assert shown("x" * 200) == "[not shown: 200 chars]"
