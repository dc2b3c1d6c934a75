"""Contracts are checked when read, with messages that name the file and the field."""

from __future__ import annotations

import hashlib

import pytest

from conftest import ROOT, safeguard_cli


def test_bundled_contracts_load(sg_settings):
    from safeguard.contracts import all_contracts

    contracts = all_contracts(sg_settings)
    c = contracts["ncmec_cybertipline"]
    assert c.kind.raw_table == "published_figures"
    assert c.sample == ROOT / "data/sample/ncmec_cybertipline_2019_2022.csv"


@pytest.mark.parametrize("edit, message", [
    (lambda t: t.replace("kind: published_figures", "kind: gossip"), "kind 'gossip'"),
    (lambda t: t.replace("    type: count", "    type: text"), "column 'value': type"),
    (lambda t: t.replace("grain: [year, category]", "grain: [year, colour]"), "grain"),
    (lambda t: t.replace("on_row_failure: reject_batch", "on_row_failure: shrug"),
     "on_row_failure"),
])
def test_malformed_contract_is_refused_with_a_clear_message(tmp_path, edit, message):
    from safeguard.contracts import ContractError, load_contract

    text = (ROOT / "contracts/ncmec_cybertipline.yml").read_text()
    path = tmp_path / "ncmec_cybertipline.yml"
    path.write_text(edit(text))
    with pytest.raises(ContractError) as e:
        load_contract(path)
    assert str(e.value).startswith("ncmec_cybertipline.yml: ") and message in str(e.value)


def test_committed_gx_suites_are_the_ones_the_contracts_derive(sg_settings):
    """The suites in git (expectations/gx) are reviewed with their contract: a contract edited
    without committing its regenerated suite (`safeguard gx sync`) fails here."""
    from safeguard.contracts import all_contracts
    from safeguard.ingest.validate import _rules, gx_context, suite_of

    context = gx_context(sg_settings)
    for contract in all_contracts(sg_settings).values():
        committed = context.suites.get(contract.name)
        assert _rules(committed) == _rules(suite_of(contract)), (
            f"{contract.name}: run `safeguard gx sync` and commit expectations/gx")


def test_gx_sync_on_a_clean_checkout_changes_nothing(sg_settings):
    """`safeguard gx sync` rewrites the committed context only where a contract changed: run on
    the suites in git, it leaves every file of expectations/gx as it was (no new ids, no
    reordering), so a clean clone stays clean."""
    folder = ROOT / "expectations" / "gx"

    def files() -> dict[str, str]:
        return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
                for p in sorted(folder.rglob("*")) if p.is_file()
                and "uncommitted" not in p.parts}

    before = files()
    out = safeguard_cli("gx", "sync").stdout
    assert "updated" not in out, out
    assert files() == before
