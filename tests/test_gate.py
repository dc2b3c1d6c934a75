"""The exact gate: GX counts every rule, the rule pass sets aside every failing row, and the load
goes ahead only when the two agree rule by rule. Real PostgreSQL and real GX: the landing table
is changed between GX's count and the load (as a bug in either would), and the batch must be
rejected whole, nothing loaded, every row accounted for in quarantine."""

from __future__ import annotations

import pytest

PARTNER_HEADER = "month,country,channel,exploitation_type,grooming_stage,reporter_type,cases\n"
ROWS = "".join(f"2023-0{m},NL,gaming,online_enticement,trust_development,public,{m}\n"
               for m in range(1, 6))


@pytest.fixture()
def landed(sg_settings, tmp_path, scratch):
    """A clean partner delivery, landed and counted by GX, not yet loaded."""
    import psycopg

    from safeguard.contracts import get_contract
    from safeguard.ingest.landing import land_file
    from safeguard.ingest.validate import rules, run_gate

    contract = get_contract(sg_settings, "sample_partner_aggregates")
    path = tmp_path / "partner_gate.csv"
    path.write_text(PARTNER_HEADER + ROWS)
    with psycopg.connect(sg_settings.url("loader"), autocommit=True) as holder:
        batch = land_file(sg_settings, contract, path, "test", hold_with=holder)
        batch_rules = rules(contract)
        yield contract, batch, batch_rules, run_gate(sg_settings, contract, batch_rules)


def _outcome(warehouse, batch_id):
    status, read, loaded, quarantined = warehouse.execute(
        "select status, rows_read, rows_loaded, rows_quarantined from ops.batches "
        "where batch_id = %s", [batch_id]).fetchone()
    issues = {r for (r,) in warehouse.execute(
        "select rule from ops.batch_issues where batch_id = %s", [batch_id])}
    in_raw = warehouse.execute("select count(*) from raw.partner_aggregates where batch_id = %s",
                               [batch_id]).fetchone()[0]
    return status, read, loaded, quarantined, issues, in_raw


def test_gx_counts_each_rule_and_a_clean_batch_loads(sg_settings, warehouse, landed):
    from safeguard.ingest.load import load_batch

    contract, batch, batch_rules, counts = landed
    assert {(rule, column) for rule, column, _ in counts} == {
        (r.rule, r.column) for r in batch_rules}
    assert all(n == 0 for _, _, n in counts)
    result = load_batch(sg_settings, contract, batch.batch_id, counts, batch_rules)
    assert (result.status, result.rows_loaded) == ("loaded", 5)


def test_rows_failing_after_gx_counted_reject_the_batch_whole(sg_settings, warehouse, landed):
    """GX counted no empty channel; the rule pass then finds two (the landing table was
    changed in between). The counts differ: the batch is rejected, nothing reaches raw, and
    every row is in quarantine with the reason."""
    from safeguard.ingest.load import load_batch

    contract, batch, batch_rules, counts = landed
    warehouse.execute(f"update landing.{contract.landing_table} set channel = null "
                      "where source_row_number in (2, 4)")
    result = load_batch(sg_settings, contract, batch.batch_id, counts, batch_rules)
    status, read, loaded, quarantined, issues, in_raw = _outcome(warehouse, batch.batch_id)
    assert (status, read, loaded, quarantined, in_raw) == ("rejected", 5, 0, 5, 0)
    assert {"gate_counts_agree", "required"} <= issues
    assert ("rule required on channel: GX counted 0 failing rows, 2 were set aside"
            in result.message)
    reasons = warehouse.execute(
        "select source_row_number, reasons from quarantine.rows where batch_id = %s "
        "order by 1", [batch.batch_id]).fetchall()
    assert [n for n, _ in reasons] == [1, 2, 3, 4, 5]
    assert {r["rule"] for r in reasons[1][1]} == {"required"}
    assert {r["rule"] for r in reasons[0][1]} == {"batch_rejected"}
    assert warehouse.execute(
        f"select count(*) from landing.{contract.landing_table}").fetchone()[0] == 0


def test_a_gate_that_could_not_count_rejects_the_batch(sg_settings, warehouse, landed):
    from safeguard.ingest.load import load_batch

    contract, batch, batch_rules, _ = landed
    result = load_batch(sg_settings, contract, batch.batch_id, None, batch_rules)
    assert result.status == "rejected" and "GX could not count" in result.message
    assert _outcome(warehouse, batch.batch_id)[:4] == ("rejected", 5, 0, 5)


def test_gx_results_hold_counts_and_no_values_and_nothing_is_written(sg_settings, tmp_path,
                                                                    scratch):
    """GX's result for a batch with bad rows holds counts, never a delivered value or a row;
    and a run leaves nothing on disk (no validation store, no Data Docs folder)."""
    import json

    import psycopg

    from safeguard.contracts import get_contract
    from safeguard.ingest.landing import land_file
    from safeguard.ingest.load import _fail_batch
    from safeguard.ingest.validate import validate_landing

    contract = get_contract(sg_settings, "sample_partner_aggregates")
    path = tmp_path / "partner_values.csv"
    path.write_text(PARTNER_HEADER + ROWS + "2023-07,NL,Metaverse,online_enticement,"
                    "trust_development,public,-4\n2023-08,QQ,gaming,online_enticement,"
                    "trust_development,public,7\n")
    uncommitted = sg_settings.root / "expectations" / "gx" / "uncommitted"
    before = sorted(uncommitted.rglob("*")) if uncommitted.exists() else []
    with psycopg.connect(sg_settings.url("loader"), autocommit=True) as holder:
        batch = land_file(sg_settings, contract, path, "test", hold_with=holder)
        result = validate_landing(sg_settings, contract).to_json_dict()
        with psycopg.connect(sg_settings.url("loader")) as conn:
            _fail_batch(conn, contract, batch.batch_id, "test", "inspected only")
    failed = {(r["expectation_config"]["meta"]["rule"], r["expectation_config"]["meta"].get(
        "column")): r["result"]["unexpected_count"] for r in result["results"]
        if not r["success"]}
    assert failed == {("known_category", "channel"): 1, ("known_category", "country_code"): 1,
                      ("count_is_whole_non_negative", "case_count"): 1}
    text = json.dumps(result)
    for delivered in ("QQ", "[not a known label", "[not a count", "2023-07", "2023-08"):
        assert delivered not in text, delivered
    for r in result["results"]:
        assert not r["result"].get("partial_unexpected_list")
        for row in (r["result"].get("details") or {}).get("unexpected_rows") or []:
            assert set(row) == {"source_row_number"}
    assert (sorted(uncommitted.rglob("*")) if uncommitted.exists() else []) == before


def test_a_value_the_allow_list_admitted_but_the_server_refuses_rejects_the_batch(
        sg_settings, warehouse, tmp_path, scratch):
    """Defence in depth: were the allow-list ever to admit a time PostgreSQL cannot read (here
    put into landing by hand, as such a bug would), GX (counting markers) and the rule pass
    (also asking the server) disagree, and the batch is rejected whole instead of loading
    the case with no time."""
    import psycopg

    from safeguard.contracts import get_contract
    from safeguard.ingest.errors import ValidationFailed
    from safeguard.ingest.landing import land_file
    from safeguard.ingest.load import validate_and_load

    contract = get_contract(sg_settings, "sample_hotline_cases")
    path = tmp_path / "cases_gate.csv"
    path.write_text(
        "Case ID,Received,Reporter,Channel,Exploitation types,Highest grooming stage,"
        "Victim age band,Country,Triaged,Assessment,Referred to,Referred,Closed\n" + "".join(
            f"HL-G-{i},2021-05-0{i}T10:00:00Z,Industry,Messaging app,Sextortion,"
            f"Desensitization,14-15,DE,,,,,\n" for i in range(1, 4)))
    with psycopg.connect(sg_settings.url("loader"), autocommit=True) as holder:
        batch = land_file(sg_settings, contract, path, "test", hold_with=holder)
        warehouse.execute(f"update landing.{contract.landing_table} "
                          "set received_at = '2021-05-01T10:00:00+16:00' "
                          "where source_row_number = 2")
        with pytest.raises(ValidationFailed) as e:
            validate_and_load(sg_settings, contract, batch.batch_id, holder)
    assert e.value.result.status == "rejected"
    assert ("rule valid_timestamp on received_at: GX counted 0 failing rows, 1 were set aside"
            in str(e.value))
    assert _outcome(warehouse, batch.batch_id)[:4] == ("rejected", 3, 0, 3)
