"""Stage 2: the Great Expectations gate on a landed batch.

The suite is derived from the contract (one suite and one checkpoint per source, kept in the
file context under ``expectations/gx``), so the rules a data engineer reads in the contract are
the rules GX runs. Failures are turned into row-level reasons: every expectation reports the
``source_row_number`` of each failing row (``unexpected_index_column_names``).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from safeguard.config import Settings
from safeguard.contracts import Contract
from safeguard.contracts.predicates import (
    MONTH_RE,
    TYPED,
    as_month,
    as_number,
    ident,
    literal,
    valid_date,
)

ROW_KEY = "source_row_number"
#: a row whose year or month lies outside the period its file's name declares
PERIOD_RULE = "period_within_declared_range"
DATASOURCE = "warehouse_landing"


@dataclass
class RuleFailure:
    rule: str
    column: str | None
    message: str
    rows: list[int] = field(default_factory=list)


def _code_of(column) -> str:
    """SQL mapping a column's delivered label to our code (for cross-column rules)."""
    if not column.values:
        return ident(column.name)
    whens = " ".join(f"when {literal(k)} then {literal(v)}" for k, v in column.values.items())
    return f"(case {ident(column.name)} {whens} end)"


def _expectations(contract: Contract) -> list[Any]:
    import great_expectations as gx

    E = gx.expectations
    out: list[Any] = []

    def meta(rule: str, message: str, column: str | None = None) -> dict[str, str]:
        m = {"rule": rule, "message": message}
        return {**m, "column": column} if column else m

    def failing_rows(rule: str, column: str, where: str, message: str) -> None:
        out.append(E.UnexpectedRowsExpectation(
            unexpected_rows_query=f"select * from {{batch}} where {where}",
            description=message, meta=meta(rule, message, column)))

    for c in contract.columns:
        col, label = ident(c.name), repr(c.label)
        if c.required:
            out.append(E.ExpectColumnValuesToNotBeNull(
                column=c.name, meta=meta("required", f"{label} must not be empty")))
        if c.type == "count":
            out.append(E.ExpectColumnValuesToMatchRegex(
                column=c.name, regex=r"^[0-9]{1,15}$",
                meta=meta("count_is_whole_non_negative",
                          f"{label} must be a whole number, 0 or more")))
        elif c.type == "year":
            out.append(E.ExpectColumnValuesToMatchRegex(
                column=c.name, regex=r"^[0-9]{4}$",
                meta=meta("year_is_four_digits", f"{label} must be a year like 2020")))
            failing_rows("not_in_future", c.name,
                         f"{as_number(col)} > extract(year from current_date)",
                         f"{label} must not be a year still to come")
        elif c.type == "integer":
            out.append(E.ExpectColumnValuesToMatchRegex(
                column=c.name, regex=r"^-?[0-9]{1,9}$",
                meta=meta("integer_is_whole", f"{label} must be a whole number")))
        elif c.type == "month":
            out.append(E.ExpectColumnValuesToMatchRegex(
                column=c.name, regex=MONTH_RE,
                meta=meta("valid_month", f"{label} must be a month like 2020-03")))
        elif c.type in ("date", "timestamp"):
            with_time = c.type == "timestamp"
            example = "2020-03-14T09:30:00Z" if with_time else "2020-03-14"
            failing_rows(f"valid_{c.type}", c.name,
                         f"{col} is not null and not {valid_date(col, with_time)}",
                         f"{label} must be a real {c.type.replace('timestamp', 'date and time')}"
                         f" in ISO 8601, like {example}")
        elif c.type in ("category", "country", "boolean"):
            out.append(E.ExpectColumnValuesToBeInSet(
                column=c.name, value_set=sorted(c.values),
                meta=meta("known_category",
                          f"{label} must be one of the contract's values "
                          f"{_shown(sorted(c.values))}")))
        elif c.type == "category_list":
            labels = ", ".join(literal(v) for v in sorted(c.values))
            failing_rows("known_categories", c.name,
                         f"{col} is not null and exists (select 1 from unnest(string_to_array("
                         f"{col}, {literal(c.separator)})) as e(v) where trim(e.v) not in "
                         f"({labels}))",
                         f"{label} must list values from {_shown(sorted(c.values))}, "
                         f"separated by {c.separator!r}")
        if (c.min is not None or c.max is not None) and c.type in TYPED:
            typed, bound_type = TYPED[c.type]
            bounds = []
            if c.min is not None:
                bounds.append(f"{typed(col)} < {literal(c.min)}::{bound_type}")
            if c.max is not None:
                bounds.append(f"{typed(col)} > {literal(c.max)}::{bound_type}")
            if c.min is not None and c.max is not None:
                bound = f"between {c.min} and {c.max}"
            elif c.min is not None:
                bound = f"{c.min} or more" if c.type in ("count", "integer") \
                    else f"{c.min} or later"
            else:
                bound = f"{c.max} or less" if c.type in ("count", "integer") \
                    else f"{c.max} or earlier"
            rule = "year_in_range" if c.type == "year" else "in_range"
            failing_rows(rule, c.name, " or ".join(bounds), f"{label} must be {bound}")
        if c.type in ("year", "month"):
            # the period the file's name declares (landing's declared_from/_before, null
            # when the name declares none): a row outside it was filed in the wrong delivery
            if c.type == "year":
                y = as_number(col)
                outside = (f"{y} < extract(year from declared_from) or "
                           f"{y} > extract(year from declared_before - 1)")
            else:
                m = as_month(col)
                outside = (f"{m} < date_trunc('month', declared_from)::date or "
                           f"{m} >= declared_before")
            failing_rows(PERIOD_RULE, c.name, f"declared_from is not null and ({outside})",
                         f"{label} must lie within the period the file's name declares")
    out.append(E.ExpectColumnValuesToBeNull(
        column="pii_findings", meta=meta(
            "no_identifying_data", "a value identifies a person: masked, row quarantined")))
    columns = {c.name: c for c in contract.columns}
    for r in contract.kind.row_rules:
        if r.column not in columns:
            continue
        where = re.sub(r"code\((\w+)\)",
                       lambda m: _code_of(columns[m.group(1)]) if m.group(1) in columns
                       else "null", r.where)
        failing_rows(r.rule, r.column, where, r.message)
    # one row per grain; a window count names every row of a repeated key (GX's compound
    # uniqueness does not say which rows on PostgreSQL)
    keys = ", ".join(ident(g) for g in contract.grain)
    failing_rows("unique_grain", " x ".join(contract.grain),
                 f"source_row_number in (select source_row_number from (select "
                 f"source_row_number, count(*) over (partition by {keys}) as copies "
                 f"from {{batch}}) as k where copies > 1)",
                 f"one row per {' x '.join(contract.grain)}")
    return out


def _shown(values: list[str], limit: int = 12) -> str:
    more = f" and {len(values) - limit} more" if len(values) > limit else ""
    return f"{values[:limit]}{more}"


def _rules(suite: Any) -> list[dict[str, Any]]:
    """A suite's expectations without their generated ids, for comparison."""
    out = []
    for e in suite.expectations:
        d = e.configuration.to_json_dict()
        d.pop("id", None)
        out.append(d)
    return sorted(out, key=repr)


def gx_project_dir(settings: Settings, contract: Contract) -> Path:
    """Suites of the bundled contracts live in git (``expectations/gx``), reviewed like code;
    a contract kept elsewhere (SAFEGUARD_CONTRACTS_DIR, a test) gets a context under the home,
    so running it never edits the checkout."""
    bundled = (settings.root / "contracts").resolve()
    if contract.path.resolve().is_relative_to(bundled):
        return settings.root / "expectations"
    return settings.home / "expectations"


def gx_context(settings: Settings, contract: Contract):
    import great_expectations as gx

    os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
    os.environ["SAFEGUARD_GX_LANDING_URL"] = settings.url("loader", driver="postgresql+psycopg2")
    root = gx_project_dir(settings, contract)
    root.mkdir(parents=True, exist_ok=True)
    context = gx.get_context(mode="file", project_root_dir=str(root))
    context.variables.progress_bars = {"globally": False}  # non-interactive runs: no bars
    return context


def sync_checkpoint(settings: Settings, contract: Contract):
    """Get-or-update the datasource, asset, suite, validation definition and checkpoint."""
    import great_expectations as gx

    context = gx_context(settings, contract)
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
