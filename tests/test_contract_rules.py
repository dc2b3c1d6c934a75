"""Every rule of a contract, as the README's "Adding a source" documents it, with a wrong
contract and the message it gets; and the JSON Schema editors use, in step with the loader.

No service: contracts are read and checked before anything touches a database.
"""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import jsonschema
import pytest
import yaml

from conftest import ROOT
from safeguard.contracts import (
    COLUMN_KEYS,
    FILE_KEYS,
    TOP_KEYS,
    TOTALS_KEYS,
    UNPIVOT_KEYS,
    ContractError,
    load_contract,
)
from safeguard.contracts.kinds import KINDS
from safeguard.ingest.errors import FileRejected
from safeguard.ingest.landing import values_not_in_file
from safeguard.periods import DeclaredPeriod

SCHEMA = json.loads((ROOT / "contracts" / "contract.schema.json").read_text())

#: a published table that fits every rule; each case below breaks one
GOOD = """\
name: testpub_rules
kind: published_figures
publisher: testpub
series: reports_assessed
source_name: TESTPUB annual report (test data)
is_synthetic: true
file:
  format: csv
  header_row: 2
unpivot:
  columns: "^(19|20)[0-9][0-9]$"
  name_to: year
  value_to: value
columns:
  year: {type: year}
  category:
    from: Category
    values: {Self-generated imagery: self_generated, Total: reports_total}
    names: {self_generated: Self-generated imagery}
  value: {type: count, thousands_separator: ","}
grain: [year, category]
totals:
  when: {category: reports_total}
  sum_of: value
on_row_failure: reject_batch
"""


def _load(tmp_path: Path, text: str):
    path = tmp_path / "testpub_rules.yml"
    path.write_text(text)
    return load_contract(path, ROOT)


def test_the_good_contract_loads_and_fits_the_schema(tmp_path):
    contract = _load(tmp_path, GOOD)
    assert contract.constants["source_role"] == "primary"  # the default precedence
    assert contract.constants["unit"] == "count"
    jsonschema.validate(yaml.safe_load(GOOD), SCHEMA)


@pytest.mark.parametrize("edit, message", [
    # unknown keys are refused, naming the closest known one (a misspelt key was ignored)
    (lambda t: t.replace("totals:", "total:"), "unknown key 'total': did you mean 'totals'?"),
    (lambda t: t.replace("thousands_separator", "thousand_separator"),
     "column 'value': unknown key 'thousand_separator': did you mean 'thousands_separator'?"),
    (lambda t: t.replace("  header_row: 2", "  headers_row: 2"),
     "file: unknown key 'headers_row': did you mean 'header_row'?"),
    (lambda t: t.replace("  name_to: year", "  names_to: year"),
     "unpivot: unknown key 'names_to': did you mean 'name_to'?"),
    (lambda t: t.replace("  sum_of: value", "  sum_off: value"),
     "totals: unknown key 'sum_off': did you mean 'sum_of'?"),
    (lambda t: t.replace("  year: {type: year}", "  yeer: {type: year}"),
     "column 'yeer' is not a column of kind 'published_figures' (did you mean 'year'?)"),
    # a column the unpivot fills takes no 'from'
    (lambda t: t.replace("  year: {type: year}", "  year: {type: year, from: Year}"),
     "column 'year' takes its value one way only, not from from and the unpivot "
     "(the unpivot fills it: remove 'from')"),
    # one totals rule per contract
    (lambda t: t.replace("totals:\n  when: {category: reports_total}\n  sum_of: value",
                         "totals:\n  - when: {category: reports_total}\n    sum_of: value"),
     "totals is one rule (when: ..., sum_of: ...), not a list"),
    (lambda t: t.replace("when: {category: reports_total}", "when: {category: everything}"),
     "totals.when category: 'everything' is not a code of that column"),
    # publisher and series are codes: they identify a figure, whoever delivers it
    (lambda t: t.replace("publisher: testpub", "publisher: TESTPUB"),
     "publisher 'TESTPUB' must be a code in lower_snake_case"),
    (lambda t: t.replace("series: reports_assessed", "series: Reports assessed"),
     "series 'Reports assessed' must be a code in lower_snake_case (it identifies figures), "
     "e.g. 'reports_assessed'"),
    (lambda t: t.replace("is_synthetic: true", "is_synthetic: true\nsource_role: tertiary"),
     "source_role must be one of ['primary', 'secondary']"),
    (lambda t: t.replace("is_synthetic: true", "is_synthetic: true\nedition: last spring"),
     "edition is the date of the publication"),
    (lambda t: t.replace("is_synthetic: true", "is_synthetic: maybe"),
     "is_synthetic is true or false"),
    (lambda t: t.replace("source_name: TESTPUB annual report (test data)\n", ""),
     "kind 'published_figures' needs field 'source_name'"),
    # display names are for the codes the column has
    (lambda t: t.replace("names: {self_generated:", "names: {self_made:"),
     "column 'category': names are given for ['self_made'], which are not codes of its "
     "'values'"),
    (lambda t: t.replace("  value: {type: count,", "  value: {type: count, names: {a: b},"),
     "column 'value': 'names' (display names by code) are for categories"),
    (lambda t: t.replace("  value: {type: count,", "  value: {type: count, values: {a: b},"),
     "column 'value': 'values' maps labels to codes; a count has none"),
    # values the file does not hold: fixed, or from the file's name
    (lambda t: t.replace("    names: {self_generated: Self-generated imagery}",
                         "    names: {self_generated: Self-generated imagery}\n    value: other"),
     "column 'category' takes its value one way only, not from from and value"),
    (lambda t: t.replace("  value: {type: count,", "  value: {type: count, from_file_name: true,"),
     "column 'value' takes its value one way only"),
    (lambda t: t.replace("  year: {type: year}", "  year: {type: year}\n  quarter: "
                                                 "{from_file_name: true}"),
     "column 'quarter': only ['month', 'year'] can be read from the file name"),
    (lambda t: t.replace("  year: {type: year}", "  year: {type: year}\n  sex: "
                                                 "{value: girls, values: {F: female}}"),
     "column 'sex': value 'girls' is not one of its labels or codes"),
    # dimensions map their labels to codes like other categories
    (lambda t: t.replace("  year: {type: year}", "  year: {type: year}\n  region: {from: Region}"),
     "column 'region': a category needs its allowed 'values'"),
    (lambda t: t.replace("  year: {type: year}", "  year: {type: year}\n  channel: "
                                                 "{from: Platform, values: {Roblox: roblox}}"),
     "column 'channel': ['roblox'] are not codes of the reference list "
     "dbt/seeds/ref_channels.csv"),
    (lambda t: "name: testpub_rules\nkind: [published", "not valid YAML at line 2"),
])
def test_each_contract_rule_has_its_message(tmp_path, edit, message):
    with pytest.raises(ContractError) as e:
        _load(tmp_path, edit(GOOD))
    assert str(e.value).startswith("testpub_rules.yml: ")
    assert message in str(e.value), str(e.value)


def test_a_figure_can_take_its_year_from_the_file_name_or_fix_a_value(tmp_path):
    text = GOOD.replace("  year: {type: year}\n", "").replace(
        "unpivot:\n  columns: \"^(19|20)[0-9][0-9]$\"\n  name_to: year\n  value_to: value\n", "")
    text = text.replace("columns:\n", "columns:\n  year: {from_file_name: true}\n"
                                     "  country_code: {value: GB}\n", 1)
    text = text.replace("  value: {type: count,", "  value: {from: reports, type: count,")
    contract = _load(tmp_path, text)
    assert contract.column("year").source is None and contract.column("year").from_file_name
    one_year = DeclaredPeriod(date(2022, 1, 1), date(2023, 1, 1))
    assert values_not_in_file(contract, "t_2022.csv", one_year) == {"year": "2022",
                                                                    "country_code": "GB"}
    for declared in (None, DeclaredPeriod(date(2019, 1, 1), date(2023, 1, 1))):
        with pytest.raises(FileRejected) as e:
            values_not_in_file(contract, "t.csv", declared)
        assert "(rule: value_from_file_name)" in str(e.value)
        assert str(e.value).startswith("t.csv: the contract takes column 'year' from the file")


def test_bundled_contracts_fit_the_schema():
    for path in sorted((ROOT / "contracts").glob("*.yml")):
        jsonschema.validate(yaml.safe_load(path.read_text()), SCHEMA)
        assert path.read_text().startswith("# yaml-language-server: $schema=contract.schema.json")


def test_schema_and_loader_know_the_same_keys():
    """One list of keys per section; the schema (for editors) may not drift from it."""
    props = SCHEMA["properties"]
    constants = {k for kind in KINDS.values() for k in kind.all_constants}
    assert set(props) == TOP_KEYS | constants
    assert set(props["file"]["properties"]) == FILE_KEYS
    assert set(props["unpivot"]["properties"]) == UNPIVOT_KEYS
    assert set(props["totals"]["properties"]) == TOTALS_KEYS
    assert set(SCHEMA["$defs"]["column"]["properties"]) == COLUMN_KEYS
    for section in (SCHEMA, props["file"], props["unpivot"], props["totals"],
                    SCHEMA["$defs"]["column"]):
        assert section["additionalProperties"] is False


def test_schema_refuses_what_the_loader_refuses():
    doc = yaml.safe_load(GOOD)
    doc["total"] = doc.pop("totals")
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(doc, SCHEMA)


def test_an_unpivot_pattern_must_match_the_whole_header(tmp_path):
    """`^(19|20)[0-9][0-9]$` takes 2021, not "2021 (provisional)": such a header is not a year
    column, and the file is refused naming it, not read with the column dropped."""
    from safeguard.ingest.readers import file_facts, read_batches

    contract = _load(tmp_path, GOOD)
    path = tmp_path / "testpub_2020_2021.csv"
    path.write_text("Table 1 (test data)\nCategory,2020,2021 (provisional)\n"
                    "Self-generated imagery,10,20\nTotal,10,20\n")
    with pytest.raises(FileRejected) as e:
        list(read_batches(contract, path, file_facts(path), fast=False))
    assert "(rule: header_matches_contract)" in str(e.value)
    assert "Unknown: ['2021 (provisional)']" in str(e.value)
    path.write_text("Table 1 (test data)\nCategory,2020,2021\n"
                    "Self-generated imagery,10,\nTotal,10,20\n")
    batches = list(read_batches(contract, path, file_facts(path), fast=False))
    # skip_empty (the default): the empty 2021 cell is no row, since not published is not 0
    assert sum(len(b) for b in batches) == 3


def test_a_partitioned_kind_partitions_by_a_required_timestamp():
    """A row without the partition key's value, or with a value of another type, would have
    no month to go to: the key is a timestamp every contract of the kind must deliver."""
    partitioned = [k for k in KINDS.values() if k.partition_by]
    assert partitioned  # the case extracts (issue 15, point 5)
    for kind in partitioned:
        assert kind.types[kind.partition_by] == "timestamp", kind.name
        assert kind.partition_by not in kind.optional, kind.name
