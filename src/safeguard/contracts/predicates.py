"""SQL fragments over the landing table's text columns, shared by the GX rules and the load.

The landing table holds values as delivered (text). These fragments test and convert them
without ever failing on a malformed value: a cast only happens under a guard, so a rule can
report the bad row instead of the whole query erroring. No ``{n}`` quantifiers: GX formats
its row queries with ``str.format``.
"""

from __future__ import annotations

_D = "[0-9]"
DATE_RE = f"[1-9]{_D}{_D}{_D}-(0[1-9]|1[0-2])-(0[1-9]|[12]{_D}|3[01])"
TIME_RE = f"([ T]([01]{_D}|2[0-3]):[0-5]{_D}(:[0-5]{_D}([.]{_D}+)?)?)?"
ZONE_RE = f"(Z|[+-]([01]{_D}|2[0-3])(:?[0-5]{_D})?)?"
MONTH_RE = f"^[1-9]{_D}{_D}{_D}-(0[1-9]|1[0-2])(-01)?$"
WHOLE_RE = "^-?[0-9]+$"


def literal(value: object) -> str:
    """A SQL string literal (contract values are trusted less than code: always quoted)."""
    return "'" + str(value).replace("'", "''") + "'"


def ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _day_exists(col: str) -> str:
    return (f"substr({col}, 9, 2)::int <= extract(day from make_date(substr({col}, 1, 4)::int, "
            f"substr({col}, 6, 2)::int, 1) + interval '1 month' - interval '1 day')")


def valid_date(col: str, with_time: bool) -> str:
    pattern = f"^{DATE_RE}{TIME_RE}{ZONE_RE}$" if with_time else f"^{DATE_RE}$"
    return f"(case when {col} ~ '{pattern}' then {_day_exists(col)} else false end)"


# Guarded casts: PostgreSQL 16's pg_input_is_valid() tries the input without raising, so a
# malformed value becomes null here and never an error (whose text, and the server's log, would
# quote it). What counts as well formed (ISO 8601 only, whole numbers only) is the allow-list's
# to decide (``safeguard.ingest.admit``): by the time these run, a value in landing is either
# one it admitted or a marker, which no type accepts.

def as_timestamp(col: str) -> str:
    return f"(case when pg_input_is_valid({col}, 'timestamptz') then {col}::timestamptz end)"


def as_date(col: str) -> str:
    return f"(case when pg_input_is_valid({col}, 'date') then {col}::date end)"


def as_month(col: str) -> str:
    month = f"(left({col}, 7) || '-01')"
    return (f"(case when {col} ~ '{MONTH_RE}' and pg_input_is_valid({month}, 'date') "
            f"then {month}::date end)")


def as_number(col: str) -> str:
    return f"(case when pg_input_is_valid({col}, 'numeric') then {col}::numeric end)"


def as_bigint(col: str) -> str:
    return f"(case when pg_input_is_valid({col}, 'bigint') then {col}::bigint end)"


def as_integer(col: str) -> str:
    return f"(case when pg_input_is_valid({col}, 'integer') then {col}::integer end)"


#: logical type -> (guarded typed value, SQL type of a bound)
TYPED = {
    "year": (as_number, "numeric"), "integer": (as_number, "numeric"),
    "count": (as_number, "numeric"), "month": (as_month, "date"), "date": (as_date, "date"),
    "timestamp": (as_timestamp, "timestamptz"),
}
