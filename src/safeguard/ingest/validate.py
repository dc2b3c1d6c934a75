"""Stage 2: the rules of a landed batch, and the Great Expectations gate that counts them.

Every rule is derived from the contract (``rules``), once, with two readings of it:

- **GX** runs the rule as an expectation on the landing table (the source's suite, kept in git
  under ``expectations/gx`` and run in an ephemeral context, so a run writes nothing to disk),
  and reports how many rows fail it. Column rules use GX's own expectations (regex, value set,
  not null), so GX counts them by its own SQL, not ours.
- **The rule pass** (``find_failures``) selects the failing rows set-based, in one scan of the
  landing table for all row rules (plus one for the grain), into a temporary table.

The load sets aside exactly the rows the rule pass selected, and only after checking, rule by
rule, that their number equals GX's count (``compare``): no list in a validation result is
trusted to be complete (GX's lists are samples), and any difference rejects the batch. GX's
results hold counts only: ``partial_unexpected_count`` is 0 and the row queries select the
record number alone.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import psycopg
from psycopg import sql

from safeguard.config import Settings, export_env
from safeguard.contracts import Contract
from safeguard.contracts.predicates import TYPED as _TYPED
from safeguard.contracts.predicates import (
    as_date,
    as_month,
    as_number,
    as_timestamp,
    ident,
    literal,
)
from safeguard.ingest.admit import PSEUDONYM_MAX

ROW_KEY = "source_row_number"
#: a row whose year or month lies outside the period its file's name declares
PERIOD_RULE = "period_within_declared_range"
#: the rule of identifying data found (and masked) in a row; broken down as pii_<kind>
PII_RULE = "no_identifying_data"
#: GX and the rule pass disagreed on a rule's count: the batch is rejected (fail closed)
MISMATCH_RULE = "gate_counts_agree"
DATASOURCE = "warehouse_landing"
#: what GX returns per expectation: counts, never values or rows
RESULT_FORMAT = {"result_format": "BASIC", "partial_unexpected_count": 0,
                 "include_unexpected_rows": False, "return_unexpected_index_query": False}


@dataclass
class RuleFailure:
    """A rule some rows of a batch broke: ``count`` rows, of which ``rows`` are examples
    (record numbers, at most a few: the full set is in the rule pass's table)."""

    rule: str
    column: str | None
    message: str
    rows: list[int] = field(default_factory=list)
    count: int | None = None

    @property
    def row_count(self) -> int:
        return self.count if self.count is not None else len(self.rows)


@dataclass(frozen=True)
class Rule:
    """One rule: the SQL that selects the failing rows of the landing table (``where``; None
    for the grain, which the rule pass selects with a window) and GX's expectation of it."""

    rule: str
    column: str | None
    message: str
    where: str | None
    expectation: Callable[[], Any]


def _code_of(column) -> str:
    """SQL mapping a column's delivered label to our code (for cross-column rules)."""
    if not column.values:
        return ident(column.name)
    whens = " ".join(f"when {literal(k)} then {literal(v)}" for k, v in column.values.items())
    return f"(case {ident(column.name)} {whens} end)"


def _in_set(col: str, values: list[str]) -> str:
    return f"{col} = any(array[{', '.join(literal(v) for v in values)}]::text[])"


def rules(contract: Contract) -> list[Rule]:
    """The contract's rules, in the order they are reported."""
    import great_expectations as gx

    E = gx.expectations
    out: list[Rule] = []

    def meta(rule: str, message: str, column: str | None) -> dict[str, str]:
        m = {"rule": rule, "message": message}
        return {**m, "column": column} if column else m

    def add(rule: str, column: str | None, message: str, where: str | None,
            expectation: Callable[[dict[str, str]], Any]) -> None:
        m = meta(rule, message, column)
        out.append(Rule(rule, column, message, where, lambda: expectation(m)))

    from safeguard.ingest.gx_rules import ExpectNoRowsBreakingRule

    def failing_rows(rule: str, column: str | None, where: str, message: str) -> None:
        add(rule, column, message, where, lambda m: ExpectNoRowsBreakingRule(
            unexpected_rows_query=f"select {ROW_KEY} from {{batch}} where {where}",
            description=message, meta=m))

    def admitted(rule: str, column: str, message: str, sql_type: str | None = None) -> None:
        """A typed value is well formed when the allow-list admitted it: landing then holds
        it as delivered; otherwise a marker (``[not a timestamp: 19 chars]``), which begins
        with a bracket as no admitted value can (see ``admit``). The rule pass also asks the
        server whether an admitted value is one of its type: should the allow-list ever
        admit one it is not, the two counts differ and the batch is rejected whole."""
        col = ident(column)
        where = f"{col} like '[%'"
        if sql_type:
            where += f" or not pg_input_is_valid({col}, {literal(sql_type)})"
        add(rule, column, message, f"({where})",
            lambda m: E.ExpectColumnValuesToNotMatchLikePattern(
                column=column, like_pattern="[%", meta=m))

    for c in contract.columns:
        label = repr(c.label)
        col = ident(c.name)
        if c.required:
            add("required", c.name, f"{label} must not be empty", f"{col} is null",
                lambda m, n=c.name: E.ExpectColumnValuesToNotBeNull(column=n, meta=m))
        if c.type == "count":
            admitted("count_is_whole_non_negative", c.name,
                     f"{label} must be a whole number, 0 or more, under a billion, "
                     f"without leading zeros",
                     "bigint")
        elif c.type == "year":
            admitted("year_is_four_digits", c.name, f"{label} must be a year like 2020",
                     "integer")
            failing_rows("not_in_future", c.name,
                         f"{as_number(col)} > extract(year from current_date)",
                         f"{label} must not be a year still to come")
        elif c.type == "integer":
            admitted("integer_is_whole", c.name, f"{label} must be a whole number", "integer")
        elif c.type == "month":
            admitted("valid_month", c.name, f"{label} must be a month like 2020-03")
        elif c.type in ("date", "timestamp"):
            example = "2020-03-14T09:30:00Z" if c.type == "timestamp" else "2020-03-14"
            admitted(f"valid_{c.type}", c.name,
                     f"{label} must be a real {c.type.replace('timestamp', 'date and time')}"
                     f" in ISO 8601, like {example}",
                     TYPED_ONCE[c.type][1])
        elif c.type == "pseudonym":
            admitted("valid_id", c.name, f"{label} must be an id of at most "
                     f"{PSEUDONYM_MAX} printable characters")
        elif c.type in ("category", "country", "boolean"):
            values = sorted(c.values)
            add("known_category", c.name,
                f"{label} must be one of the contract's values {_shown(values)}",
                f"{col} is not null and not {_in_set(col, values)}",
                lambda m, n=c.name, v=values: E.ExpectColumnValuesToBeInSet(
                    column=n, value_set=v, meta=m))
        elif c.type == "category_list":
            admitted("known_categories", c.name,
                     f"{label} must list values from {_shown(sorted(c.values))}, "
                     f"separated by {c.separator!r}")
        if (c.min is not None or c.max is not None) and c.type in _TYPED:
            typed, bound_type = _TYPED[c.type]
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
            failing_rows(rule, c.name, f"({' or '.join(bounds)})", f"{label} must be {bound}")
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
    add(PII_RULE, None, "a value identifies a person: masked, row quarantined",
        "pii_findings is not null",
        lambda m: E.ExpectColumnValuesToBeNull(column="pii_findings", meta=m))
    columns = {c.name: c for c in contract.columns}
    for r in contract.kind.row_rules:
        if r.column not in columns:
            continue
        where = re.sub(r"code\((\w+)\)",
                       lambda m: _code_of(columns[m.group(1)]) if m.group(1) in columns
                       else "null", r.where)
        failing_rows(r.rule, r.column, f"({where})", r.message)
    # one row per grain; a window count names every row of a repeated key (GX's compound
    # uniqueness does not say which rows on PostgreSQL)
    keys = ", ".join(ident(g) for g in contract.grain)
    grain = " x ".join(contract.grain)
    message = f"one row per {grain}"
    add("unique_grain", grain, message, None, lambda m: ExpectNoRowsBreakingRule(
        unexpected_rows_query=(
            f"select {ROW_KEY} from {{batch}} where ({keys}) in (select {keys} from {{batch}} "
            f"group by {keys} having count(*) > 1)"),
        description=message, meta=m))
    return out


def _expectations(contract: Contract) -> list[Any]:
    return [r.expectation() for r in rules(contract)]


def _shown(values: list[str], limit: int = 12) -> str:
    more = f" and {len(values) - limit} more" if len(values) > limit else ""
    return f"{values[:limit]}{more}"


# --- the rule pass: every failing row, set-based ------------------------------------------

#: time columns the rule pass parses once per row, for all the rules that compare them
TYPED_ONCE = {"timestamp": (as_timestamp, "timestamptz"), "date": (as_date, "date")}

#: the rule pass's table: one row per (record, rule, column) that failed; dropped at commit
FAILURES = sql.Identifier("pg_temp", "gate_failures")


def find_failures(conn: psycopg.Connection, contract: Contract, landing: sql.Composable,
                  batch_rules: list[Rule]) -> None:
    """Fill ``pg_temp.gate_failures`` with every failing (record, rule, column) of the batch:
    one scan for the row rules, one for the grain, one for the identifying data found."""
    conn.execute(sql.SQL("analyze {}").format(landing))  # a fresh table: plan with its size
    conn.execute(sql.SQL(
        "create temporary table {} (source_row_number bigint not null, rule text not null, "
        "column_name text) on commit drop").format(FAILURES))
    row_rules = [(i, r) for i, r in enumerate(batch_rules)
                 if r.where is not None and r.rule != PII_RULE]
    if row_rules:
        # each time column is parsed once per row, not once per rule that reads it
        typed = {c.name: TYPED_ONCE[c.type] for c in contract.columns if c.type in TYPED_ONCE}
        shared = ", ".join(f"{cast(ident(n))} as {ident('__typed_' + n)}"
                           for n, (cast, _) in typed.items())

        def once(where: str) -> str:
            for n, (cast, sql_type) in typed.items():
                parsed = ident("__typed_" + n)
                for spelled in (n, ident(n)):
                    where = where.replace(cast(spelled), parsed)
                    # "not a value of its type" is "given, but its typed value is null"
                    where = where.replace(
                        f"not pg_input_is_valid({spelled}, {literal(sql_type)})",
                        f"({spelled} is not null and {parsed} is null)")
            return where

        cases = ", ".join(f"case when {once(r.where)} then {i} end" for i, r in row_rules)
        names = ", ".join(f"({i}, {literal(r.rule)}, {literal(r.column) if r.column else 'null'})"
                          for i, r in row_rules)
        failing = " or ".join(f"({once(r.where)})" for _, r in row_rules)
        # "offset 0" keeps the subquery whole: flattened, the planner would copy each typed
        # value's expression into every rule that reads it, and parse the column once per rule
        source = (f"(select l.*{', ' + shared if shared else ''} from {{landing}} as l "
                  f"offset 0)")
        # the rows that fail anything (most pass: one test each), then which rules they fail
        conn.execute(sql.SQL(
            "insert into {failures} select l.source_row_number, r.rule, r.column_name "
            "from (select * from " + source + " as l where " + _braces(failing) + ") as l "
            "cross join lateral unnest(array[" + _braces(cases) + "]::int[]) as f(i) "
            "join (values " + _braces(names) + ") as r(i, rule, column_name) on r.i = f.i"
            ).format(failures=FAILURES, landing=landing))
    keys = sql.SQL(", ").join(map(sql.Identifier, contract.grain))
    conn.execute(sql.SQL(
        "insert into {failures} select source_row_number, 'unique_grain', {grain} from "
        "{landing} where ({keys}) in (select {keys} from {landing} group by {keys} "
        "having count(*) > 1)").format(
            failures=FAILURES, landing=landing, keys=keys,
            grain=sql.Literal(" x ".join(contract.grain))))
    # identifying data, per column and kind, as the reader noted it ("column:kind+kind; ...")
    conn.execute(sql.SQL(
        "insert into {failures} select l.source_row_number, case k.kind when 'formula' then "
        "'no_formula' else 'pii_' || k.kind end, split_part(item.v, ':', 1) from {landing} "
        "as l cross join lateral string_to_table(l.pii_findings, '; ') as item(v) "
        "cross join lateral string_to_table(split_part(item.v, ':', 2), '+') as k(kind) "
        "where l.pii_findings is not null").format(failures=FAILURES, landing=landing))
    conn.execute(sql.SQL("analyze {}").format(FAILURES))


def _braces(text: str) -> str:
    """SQL text inside psycopg's ``sql.SQL`` format string: braces doubled."""
    return text.replace("{", "{{").replace("}", "}}")


def counted(conn: psycopg.Connection) -> dict[tuple[str, str | None], int]:
    """Rows set aside per (rule, column); identifying data also as PII_RULE (rows with any)."""
    out = {(rule, column): n for rule, column, n in conn.execute(sql.SQL(
        "select rule, column_name, count(distinct source_row_number) from {} "
        "group by 1, 2").format(FAILURES))}
    out[(PII_RULE, None)] = conn.execute(sql.SQL(
        "select count(distinct source_row_number) from {} where rule like 'pii\\_%%' "
        "or rule = 'no_formula'").format(FAILURES)).fetchone()[0]
    return out


def compare(gx_counts: list[tuple[str, str | None, int]],
            sql_counts: dict[tuple[str, str | None], int]) -> list[str]:
    """Each rule as GX counted it against the rows set aside under it; the differences."""
    return [f"rule {rule}{f' on {column}' if column else ''}: GX counted {n:,} failing rows, "
            f"{sql_counts.get((rule, column), 0):,} were set aside"
            for rule, column, n in gx_counts if sql_counts.get((rule, column), 0) != n]


# --- GX ------------------------------------------------------------------------------------

def gx_context(settings: Settings):
    """The committed file context (suites and checkpoints as code); runs do not use it."""
    import great_expectations as gx

    import safeguard.ingest.gx_rules  # noqa: F401  (its suites name our expectation)

    export_env("GX_ANALYTICS_ENABLED", "false", default_only=True)
    export_env("SAFEGUARD_GX_LANDING_URL", settings.url("loader", driver="postgresql+psycopg2"))
    root = settings.root / "expectations"
    context = gx.get_context(mode="file", project_root_dir=str(root))
    context.variables.progress_bars = {"globally": False}
    return context


def suite_of(contract: Contract):
    import great_expectations as gx

    return gx.ExpectationSuite(name=contract.name, expectations=_expectations(contract),
                               meta={"generated_from": f"contracts/{contract.path.name}"})


def _rules(suite: Any) -> list[dict[str, Any]]:
    """A suite's expectations without their generated ids, for comparison."""
    out = []
    for e in suite.expectations:
        d = e.configuration.to_json_dict()
        d.pop("id", None)
        out.append(d)
    return sorted(out, key=repr)


def sync_suite(settings: Settings, contract: Contract) -> bool:
    """Write the contract's suite, validation definition and checkpoint into the committed
    context (``safeguard gx sync``); True when something changed."""
    import great_expectations as gx

    from safeguard.ingest.tables import LANDING_SCHEMA

    _ensure_landing_table(settings, contract)  # GX checks an asset's table exists
    context = gx_context(settings)
    try:
        ds = context.data_sources.get(DATASOURCE)
    except (KeyError, ValueError):
        ds = context.data_sources.add_postgres(
            name=DATASOURCE, connection_string="${SAFEGUARD_GX_LANDING_URL}")
    name = contract.landing_table
    if name in ds.get_asset_names():
        asset = ds.get_asset(name)
        if getattr(asset, "schema_name", LANDING_SCHEMA) != LANDING_SCHEMA:
            ds.delete_asset(name)
            asset = ds.add_table_asset(name=name, table_name=name, schema_name=LANDING_SCHEMA)
    else:
        asset = ds.add_table_asset(name=name, table_name=name, schema_name=LANDING_SCHEMA)
    try:
        batch_def = asset.get_batch_definition("whole_batch")
    except (KeyError, ValueError):
        batch_def = asset.add_batch_definition_whole_table("whole_batch")
    wanted = suite_of(contract)
    changed = True
    try:
        current = context.suites.get(contract.name)
        changed = _rules(current) != _rules(wanted)
    except gx.exceptions.DataContextError:
        pass
    suite = context.suites.add_or_update(wanted) if changed else context.suites.get(
        contract.name)
    vd = context.validation_definitions.add_or_update(
        gx.ValidationDefinition(name=f"{contract.name}__landing", data=batch_def, suite=suite))
    context.checkpoints.add_or_update(gx.Checkpoint(
        name=f"{contract.name}__landing", validation_definitions=[vd],
        result_format=RESULT_FORMAT))
    return changed


def _ensure_landing_table(settings: Settings, contract: Contract) -> None:
    from safeguard.ingest.tables import landing_table, recreate_landing_table

    with psycopg.connect(settings.url("loader")) as conn:
        exists = conn.execute("select to_regclass(%s)", [
            landing_table(contract).as_string(conn)]).fetchone()[0]
        if not exists:
            recreate_landing_table(conn, contract, "00000000-0000-0000-0000-000000000000")


def run_gate(settings: Settings, contract: Contract,
             batch_rules: list[Rule] | None = None) -> list[tuple[str, str | None, int]]:
    """GX on the landing table, in an ephemeral context (nothing written to disk): per rule,
    (rule, column, rows GX counted failing it)."""
    result = validate_landing(settings, contract, batch_rules)
    counts: list[tuple[str, str | None, int]] = []
    for r in result.results:
        cfg = r.expectation_config
        m = cfg.meta or {}
        res = r.result or {}
        if _raised(r.exception_info):
            raise GateError(f"GX could not evaluate rule {m.get('rule', cfg.type)}")
        n = res.get("unexpected_count", res.get("observed_value"))
        if n is None and res.get("element_count") == 0:
            n = 0  # an empty batch: GX has nothing to count
        if not isinstance(n, int):
            raise GateError(f"GX returned no count for rule {m.get('rule', cfg.type)}")
        counts.append((m.get("rule", cfg.type), m.get("column"), n))
    return counts


def validate_landing(settings: Settings, contract: Contract,
                     batch_rules: list[Rule] | None = None):
    """GX's validation result for the batch in landing (counts; no values, no rows)."""
    import great_expectations as gx
    from great_expectations.data_context.types.base import (
        DataContextConfig,
        InMemoryStoreBackendDefaults,
    )

    from safeguard.ingest.tables import LANDING_SCHEMA

    export_env("GX_ANALYTICS_ENABLED", "false", default_only=True)
    # in memory only: no stores on disk, no temporary Data Docs folder
    context = gx.get_context(mode="ephemeral", project_config=DataContextConfig(
        store_backend_defaults=InMemoryStoreBackendDefaults(init_temp_docs_sites=False)))
    context.variables.progress_bars = {"globally": False}
    ds = context.data_sources.add_postgres(
        name=DATASOURCE, connection_string=settings.url("loader", driver="postgresql+psycopg2"))
    asset = ds.add_table_asset(name=contract.landing_table, table_name=contract.landing_table,
                               schema_name=LANDING_SCHEMA)
    batch_def = asset.add_batch_definition_whole_table("whole_batch")
    suite = context.suites.add(gx.ExpectationSuite(
        name=contract.name,
        expectations=[r.expectation() for r in (batch_rules or rules(contract))]))
    vd = context.validation_definitions.add(gx.ValidationDefinition(
        name=f"{contract.name}__landing", data=batch_def, suite=suite))
    return vd.run(result_format=RESULT_FORMAT)


def _raised(info: Any) -> bool:
    """Whether a result's exception info (flat, or keyed by metric) says something raised."""
    if not isinstance(info, dict):
        return False
    return bool(info.get("raised_exception")) or any(_raised(v) for v in info.values())


class GateError(RuntimeError):
    """GX did not count a rule: the batch cannot be judged and is rejected."""
