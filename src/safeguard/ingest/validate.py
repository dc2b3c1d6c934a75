"""Stage 2: the Great Expectations gate on a landed batch.

The suite is derived from the contract (one suite and one checkpoint per source, kept in the
file context under ``expectations/gx``), so the rules a data engineer reads in the contract are
the rules GX runs. Failures are turned into row-level reasons: every expectation reports the
``source_row_number`` of each failing row (``unexpected_index_column_names``).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

from safeguard.config import Settings
from safeguard.contracts import Contract

ROW_KEY = "source_row_number"
DATASOURCE = "warehouse_landing"


@dataclass
class RuleFailure:
    rule: str
    column: str | None
    message: str
    rows: list[int] = field(default_factory=list)


def _expectations(contract: Contract) -> list[Any]:
    import great_expectations as gx

    E = gx.expectations
    out: list[Any] = []

    def meta(rule: str, message: str) -> dict[str, str]:
        return {"rule": rule, "message": message}

    for c in contract.columns:
        if c.required:
            out.append(E.ExpectColumnValuesToNotBeNull(
                column=c.name, meta=meta("required", f"{c.source!r} must not be empty")))
        if c.type == "count":
            out.append(E.ExpectColumnValuesToMatchRegex(
                column=c.name, regex=r"^[0-9]{1,15}$",
                meta=meta("count_is_whole_non_negative",
                          f"{c.source!r} must be a whole number, 0 or more")))
        elif c.type == "year":
            out.append(E.ExpectColumnValuesToMatchRegex(
                column=c.name, regex=r"^[0-9]{4}$",
                meta=meta("year_is_four_digits", f"{c.source!r} must be a year like 2020")))
            lo, hi = c.min or 1900, c.max or 2100
            out.append(E.UnexpectedRowsExpectation(
                unexpected_rows_query=(
                    f"select * from {{batch}} where {c.name} ~ '^[0-9][0-9][0-9][0-9]$' "
                    f"and {c.name}::integer not between {int(lo)} and {int(hi)}"),
                description=f"{c.name} between {lo} and {hi}",
                meta={**meta("year_in_range", f"{c.source!r} must be between {lo} and {hi}"),
                      "column": c.name}))
        elif c.type == "category":
            out.append(E.ExpectColumnValuesToBeInSet(
                column=c.name, value_set=sorted(c.values),
                meta=meta("known_category",
                          f"{c.source!r} must be one of the contract's values "
                          f"{sorted(c.values)}")))
    if len(contract.grain) > 1:
        out.append(E.ExpectCompoundColumnsToBeUnique(
            column_list=list(contract.grain),
            meta=meta("unique_grain", f"one row per {' x '.join(contract.grain)}")))
    else:
        out.append(E.ExpectColumnValuesToBeUnique(
            column=contract.grain[0], meta=meta("unique_grain",
                                                f"one row per {contract.grain[0]}")))
    return out


def _rules(suite: Any) -> list[dict[str, Any]]:
    """A suite's expectations without their generated ids, for comparison."""
    out = []
    for e in suite.expectations:
        d = e.configuration.to_json_dict()
        d.pop("id", None)
        out.append(d)
    return sorted(out, key=repr)


def gx_context(settings: Settings):
    import great_expectations as gx

    os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
    os.environ["SAFEGUARD_GX_LANDING_URL"] = settings.url("loader", driver="postgresql+psycopg2")
    context = gx.get_context(mode="file", project_root_dir=str(settings.root / "expectations"))
    context.variables.progress_bars = {"globally": False}  # non-interactive runs: no bars
    return context


def sync_checkpoint(settings: Settings, contract: Contract):
    """Get-or-update the datasource, asset, suite, validation definition and checkpoint."""
    import great_expectations as gx

    context = gx_context(settings)
    try:
        ds = context.data_sources.get(DATASOURCE)
    except (KeyError, ValueError):
        ds = context.data_sources.add_postgres(
            name=DATASOURCE, connection_string="${SAFEGUARD_GX_LANDING_URL}")
    asset_name = contract.landing_table
    if asset_name in ds.get_asset_names():
        asset = ds.get_asset(asset_name)
    else:
        asset = ds.add_table_asset(name=asset_name, table_name=asset_name, schema_name="raw")
    try:
        batch_def = asset.get_batch_definition("whole_batch")
    except (KeyError, ValueError):
        batch_def = asset.add_batch_definition_whole_table("whole_batch")
    wanted = gx.ExpectationSuite(name=contract.name, expectations=_expectations(contract),
                                 meta={"generated_from": f"contracts/{contract.path.name}"})
    try:
        suite = context.suites.get(contract.name)
        if _rules(suite) != _rules(wanted):
            suite = context.suites.add_or_update(wanted)
    except Exception:  # not there yet (GX raises its own not-found errors)
        suite = context.suites.add_or_update(wanted)
    vd = context.validation_definitions.add_or_update(
        gx.ValidationDefinition(name=f"{contract.name}__landing", data=batch_def, suite=suite))
    return context.checkpoints.add_or_update(gx.Checkpoint(
        name=f"{contract.name}__landing", validation_definitions=[vd],
        result_format={"result_format": "COMPLETE", "unexpected_index_column_names": [ROW_KEY],
                       "return_unexpected_index_query": False}))


def _rows_of(result: dict[str, Any]) -> list[int]:
    rows: list[int] = []
    for item in result.get("unexpected_index_list") or []:
        if isinstance(item, dict) and ROW_KEY in item:
            rows.append(int(item[ROW_KEY]))
    for item in (result.get("details") or {}).get("unexpected_rows") or []:
        if isinstance(item, dict) and ROW_KEY in item:
            rows.append(int(item[ROW_KEY]))
    return sorted(set(rows))


def run_gate(settings: Settings, contract: Contract) -> list[RuleFailure]:
    """Run the checkpoint on the landing table; return the failed rules with their rows."""
    checkpoint = sync_checkpoint(settings, contract)
    result = checkpoint.run()
    failures: list[RuleFailure] = []
    for run_result in result.run_results.values():
        for r in run_result.results:
            if r.success:
                continue
            cfg = r.expectation_config
            m = cfg.meta or {}
            failures.append(RuleFailure(
                rule=m.get("rule", cfg.type), column=m.get("column", cfg.kwargs.get("column")),
                message=m.get("message", cfg.type), rows=_rows_of(r.result or {})))
    return failures
