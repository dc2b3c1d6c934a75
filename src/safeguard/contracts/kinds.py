"""Kinds of source: each lands in one ``raw`` table with a fixed canonical shape.

A contract maps its file onto a kind; the kind decides the raw table, each column's logical
type (which decides its rules and its SQL type), which reference list a category is checked
against (``dbt/seeds/ref_<reference>.csv``), and the rules that tie columns of a row together.
The raw table also carries lineage on every row: ``batch_id`` (-> ``ops.batches``) and the
source row number.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from safeguard.contracts.predicates import as_timestamp

#: logical type -> SQL type in raw
SQL_TYPES = {
    "year": "integer",
    "integer": "integer",
    "count": "bigint",
    "category": "text",
    "country": "text",
    "category_list": "text[]",
    "boolean": "boolean",
    "month": "date",
    "date": "date",
    "timestamp": "timestamptz",
    "pseudonym": "text",
}


@dataclass(frozen=True)
class RowRule:
    """A rule across columns of one row, as SQL over the landing table's canonical columns.

    ``where`` selects the *failing* rows; it sees text columns as delivered, so casts must be
    guarded (the per-column rules report malformed values on their own), and ``code(col)``
    stands for the column's value mapped to our code.
    """

    rule: str
    column: str
    where: str
    message: str


@dataclass(frozen=True)
class Kind:
    name: str
    raw_table: str
    #: canonical column -> logical type (see SQL_TYPES)
    types: dict[str, str]
    #: contract-level fields copied onto every raw row (field -> SQL type)
    constants: dict[str, str]
    #: contract-level fields a contract may leave out: field -> (SQL type, default)
    optional_constants: dict[str, tuple[str, Any]] = field(default_factory=dict)
    #: contract-level fields that are codes (lower_snake_case), not free text
    code_constants: frozenset[str] = frozenset()
    #: contract-level fields limited to a set of values
    constant_choices: dict[str, tuple[str, ...]] = field(default_factory=dict)
    #: column -> the raw column that keeps the publisher's own label next to our code
    label_columns: dict[str, str] = field(default_factory=dict)
    #: column -> the raw column that keeps the display name the contract gives its code
    name_columns: dict[str, str] = field(default_factory=dict)
    #: category column -> reference list in dbt/seeds/ref_<name>.csv (first column = codes)
    references: dict[str, str] = field(default_factory=dict)
    #: columns a contract may leave out or leave empty
    optional: frozenset[str] = frozenset()
    row_rules: tuple[RowRule, ...] = ()
    #: whether a contract may declare published total rows, reconciled against their parts
    has_totals: bool = False
    #: bounds every contract gets for a column (column -> (min, max)), e.g. a quarter 1-4
    bounds: dict[str, tuple[int, int]] = field(default_factory=dict)
    #: columns whose value may come from the file's name (``from_file_name: true``)
    from_file_name: frozenset[str] = frozenset()
    #: a required timestamp column: the raw table is partitioned by its month (UTC), one
    #: partition per month, made by the load that first brings a row of it
    partition_by: str | None = None

    @property
    def all_constants(self) -> dict[str, str]:
        """Every contract-level field copied onto raw rows -> SQL type."""
        return {**self.constants, **{k: t for k, (t, _) in self.optional_constants.items()}}

    @property
    def columns(self) -> dict[str, str]:
        """canonical column -> SQL type in raw."""
        return {name: SQL_TYPES[t] for name, t in self.types.items()}


def _ts(col: str) -> str:
    """A guarded cast: the timestamp when the text is well formed, else null."""
    return as_timestamp(col)


def _not_before_received(col: str) -> RowRule:
    return RowRule(f"{col}_not_before_received", col,
                   f"{_ts(col)} < {_ts('received_at')}",
                   f"{col} must not be earlier than received_at")


#: a published figure is identified by what it is: publisher, series, measure (the
#: category), its dimensions and its period; the citation (source_name) is not part of it
PUBLISHED_FIGURES = Kind(
    name="published_figures",
    raw_table="published_figures",
    types={
        "year": "year",
        "quarter": "integer",
        "month": "integer",
        "category": "category",
        "value": "count",
        "country_code": "country",
        "region": "category",
        "age_group": "category",
        "sex": "category",
        "channel": "category",
    },
    constants={"publisher": "text", "series": "text", "source_name": "text",
               "is_synthetic": "boolean"},
    optional_constants={
        "publisher_name": ("text", None),
        "series_name": ("text", None),
        "source_url": ("text", None),
        "unit": ("text", "count"),
        # precedence when several sources deliver one figure: the publisher's own table
        # (primary) over a secondary source; then the later edition
        "source_role": ("text", "primary"),
        "edition": ("text", None),
    },
    code_constants=frozenset({"publisher", "series"}),
    constant_choices={"source_role": ("primary", "secondary")},
    label_columns={"category": "category_label"},
    name_columns={"category": "category_name"},
    references={"country_code": "countries", "channel": "channels"},
    optional=frozenset({"quarter", "month", "country_code", "region", "age_group", "sex",
                        "channel"}),
    has_totals=True,
    bounds={"quarter": (1, 4), "month": (1, 12)},
    from_file_name=frozenset({"year", "month"}),
)

CASE_EXTRACT = Kind(
    name="case_extract",
    raw_table="hotline_cases",
    partition_by="received_at",
    types={
        "case_key": "pseudonym",
        "received_at": "timestamp",
        "reporter_type": "category",
        "channel": "category",
        "exploitation_types": "category_list",
        "grooming_stage": "category",
        "victim_age_band": "category",
        "country_code": "country",
        "triaged_at": "timestamp",
        "assessment": "category",
        "referred_to": "category",
        "referred_at": "timestamp",
        "closed_at": "timestamp",
    },
    constants={"source_organisation": "text", "is_synthetic": "boolean"},
    references={
        "reporter_type": "reporter_types", "channel": "channels",
        "exploitation_types": "exploitation_types", "grooming_stage": "grooming_stages",
        "victim_age_band": "age_bands", "country_code": "countries",
        "assessment": "assessments", "referred_to": "referral_targets",
    },
    optional=frozenset({"triaged_at", "assessment", "referred_to", "referred_at", "closed_at"}),
    row_rules=(
        RowRule("not_in_future", "received_at", f"{_ts('received_at')} > now()",
                "received_at must not be in the future"),
        _not_before_received("triaged_at"),
        _not_before_received("referred_at"),
        _not_before_received("closed_at"),
        RowRule("referral_has_time", "referred_at",
                "code(referred_to) <> 'none' and referred_at is null",
                "a referred case needs referred_at"),
    ),
)

PARTNER_AGGREGATES = Kind(
    name="partner_aggregates",
    raw_table="partner_aggregates",
    types={
        "month": "month",
        "country_code": "country",
        "channel": "category",
        "exploitation_type": "category",
        "grooming_stage": "category",
        "reporter_type": "category",
        "case_count": "count",
    },
    constants={"source_organisation": "text", "is_synthetic": "boolean"},
    references={
        "country_code": "countries", "channel": "channels",
        "exploitation_type": "exploitation_types", "grooming_stage": "grooming_stages",
        "reporter_type": "reporter_types",
    },
)

LEGISLATION = Kind(
    name="legislation",
    raw_table="legislation_review",
    types={"country_code": "country", "edition": "integer", "has_dedicated_law": "boolean"},
    constants={"publisher": "text", "source_name": "text", "is_synthetic": "boolean"},
    optional_constants={"source_url": ("text", None)},
    references={"country_code": "countries"},
)

KINDS = {k.name: k for k in (PUBLISHED_FIGURES, CASE_EXTRACT, PARTNER_AGGREGATES, LEGISLATION)}

#: every column that holds a case's pseudonym, whichever kind it is in (rotations re-key them;
#: no relation an analyst reads may hold one)
PSEUDONYM_COLUMNS = tuple(sorted({name for kind in KINDS.values()
                                  for name, t in kind.types.items() if t == "pseudonym"}))
