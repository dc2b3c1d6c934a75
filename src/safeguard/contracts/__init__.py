"""Source contracts: one YAML file per source in ``contracts/`` says how to read it.

A contract names the kind of data (which ``raw`` table it lands in), the file format, the
mapping from the file's own headers and labels to our canonical names and codes, each
column's type and rules, the grain, wide tables to unpivot, published total rows to reconcile,
and what to do when rows break the rules. Everything downstream (landing, the GX suite, the
load into ``raw``) is derived from it, so a new source is onboarded by adding a file, with no
Python and no SQL. ``docs`` for each field: README, "Add a source".
"""

from __future__ import annotations

import difflib
import re
import zoneinfo
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from safeguard.config import Settings, env, repo_root
from safeguard.contracts.kinds import KINDS, SQL_TYPES, Kind
from safeguard.contracts.reference import reference_codes

COLUMN_TYPES = set(SQL_TYPES)
#: types whose values are labels mapped to codes
LABELLED_TYPES = {"category", "category_list", "country", "boolean"}
ROW_FAILURE_POLICIES = {"reject_batch", "quarantine_rows"}
FILE_FORMATS = {"csv", "xlsx", "json", "jsonl"}


class ContractError(ValueError):
    """A contract file is malformed; the message names the file and the field."""


#: the keys a contract may use, per section (anything else is refused: a misspelt key would
#: otherwise be ignored, and its rule silently not applied). The JSON Schema in
#: ``contracts/contract.schema.json`` says the same for editors; a test keeps them in step.
TOP_KEYS = frozenset({"name", "kind", "description", "columns", "grain", "on_row_failure",
                      "file", "unpivot", "totals", "sample", "generated_by", "schedule"})
COLUMN_KEYS = frozenset({"from", "type", "values", "names", "min", "max",
                         "thousands_separator", "required", "separator", "value",
                         "from_file_name"})
FILE_KEYS = frozenset({"format", "encoding", "delimiter", "sheet", "header_row",
                       "footer_starts_with", "null_values", "timezone", "records_path"})
UNPIVOT_KEYS = frozenset({"columns", "name_to", "value_to", "skip_empty"})
TOTALS_KEYS = frozenset({"when", "sum_of", "tolerance"})
_CODE = re.compile(r"[a-z][a-z0-9_]*")
_EDITION = re.compile(r"[12][0-9]{3}(-[01][0-9](-[0-3][0-9])?)?")


@dataclass(frozen=True)
class Column:
    name: str
    #: the file's own header (None for the columns an unpivot fills)
    source: str | None
    type: str
    #: accepted label -> our code
    values: dict[str, str] = field(default_factory=dict)
    min: Any = None
    max: Any = None
    thousands_separator: str | None = None
    required: bool = True
    separator: str = ";"
    #: our code -> the display name dashboards show (for category-like columns)
    names: dict[str, str] = field(default_factory=dict)
    #: the same value on every row, as if delivered (``value:``), checked like any other
    fixed: str | None = None
    #: the value the file's name declares (``from_file_name: true``), e.g. its year
    from_file_name: bool = False

    @property
    def label(self) -> str:
        if self.fixed is not None:
            return f"{self.name} (fixed by the contract)"
        if self.from_file_name:
            return f"{self.name} (from the file name)"
        return self.source or self.name


@dataclass(frozen=True)
class Unpivot:
    """Wide tables: headers matching ``columns`` become values of ``name_to``, cells of
    ``value_to`` (e.g. years as columns -> year, value)."""

    columns: str
    name_to: str
    value_to: str
    skip_empty: bool = True

    def matches(self, header: str) -> bool:
        return re.fullmatch(self.columns, header) is not None


@dataclass(frozen=True)
class Totals:
    """Rows the publisher gives as totals: ``when`` (column -> code) marks them; each must
    equal the sum of ``sum_of`` over the other rows of its group (the grain minus ``when``)."""

    when: dict[str, str]
    sum_of: str
    tolerance: int = 0


@dataclass(frozen=True)
class FileSpec:
    format: str = "csv"
    encoding: str = "utf-8"
    delimiter: str = ","
    sheet: str | None = None
    header_row: int = 1
    footer_starts_with: tuple[str, ...] = ()
    null_values: tuple[str, ...] = ()
    timezone: str = "UTC"
    records_path: str = "item"


@dataclass(frozen=True)
class Contract:
    name: str
    kind: Kind
    path: Path
    description: str
    columns: tuple[Column, ...]
    grain: tuple[str, ...]
    on_row_failure: str
    constants: dict[str, Any]
    file: FileSpec
    unpivot: Unpivot | None
    totals: Totals | None
    sample: Path | None
    generated_by: str | None
    schedule: str | None

    @property
    def landing_table(self) -> str:
        return f"landing__{self.name}"

    @property
    def encoding(self) -> str:
        return self.file.encoding

    @property
    def delimiter(self) -> str:
        return self.file.delimiter

    @property
    def file_format(self) -> str:
        return self.file.format

    @property
    def read_columns(self) -> tuple[Column, ...]:
        """Columns read from a header of their own (not filled by the unpivot)."""
        return tuple(c for c in self.columns if c.source is not None)

    def column(self, name: str) -> Column:
        return next(c for c in self.columns if c.name == name)

    def has_column(self, name: str) -> bool:
        return any(c.name == name for c in self.columns)


def _fail(path: Path, what: str) -> ContractError:
    return ContractError(f"{path.name}: {what}")


def _only_known(path: Path, where: str, given: Any, allowed: frozenset[str]) -> None:
    """Refuse a key the section does not have, naming the closest one it does."""
    if not isinstance(given, dict):
        raise _fail(path, f"{where or 'the contract'} must be a mapping of settings")
    for key in given:
        if key in allowed:
            continue
        close = difflib.get_close_matches(str(key), sorted(allowed), n=1, cutoff=0.6)
        hint = f": did you mean {close[0]!r}?" if close else f"; known: {sorted(allowed)}"
        raise _fail(path, f"{where}unknown key {key!r}{hint}")


def _column(path: Path, kind: Kind, name: str, spec: dict, seeds: Path,
            unpivoted: bool) -> Column:
    if not isinstance(spec, dict):
        raise _fail(path, f"column {name!r}: expected a mapping of settings")
    _only_known(path, f"column {name!r}: ", spec, COLUMN_KEYS)
    if name not in kind.types:
        close = difflib.get_close_matches(name, sorted(kind.types), n=1, cutoff=0.6)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise _fail(path, f"column {name!r} is not a column of kind {kind.name!r}{hint}: "
                          f"use one of {sorted(kind.types)}")
    expected = kind.types[name]
    typ = spec.get("type", expected)
    if typ not in COLUMN_TYPES:
        raise _fail(path, f"column {name!r}: type must be one of {sorted(COLUMN_TYPES)}")
    if typ != expected:
        raise _fail(path, f"column {name!r}: type must be {expected!r} for kind {kind.name!r}")
    fixed = spec.get("value")
    from_file_name = spec.get("from_file_name", False)
    if not isinstance(from_file_name, bool):
        raise _fail(path, f"column {name!r}: from_file_name is true or false")
    ways = [w for w, given in (("from", "from" in spec), ("value", fixed is not None),
                               ("from_file_name", from_file_name), ("the unpivot", unpivoted))
            if given]
    if len(ways) > 1:
        raise _fail(path, f"column {name!r} takes its value one way only, not from "
                          f"{' and '.join(ways)}" + (
                              " (the unpivot fills it: remove 'from')" if unpivoted else ""))
    if from_file_name and name not in kind.from_file_name:
        raise _fail(path, f"column {name!r}: only {sorted(kind.from_file_name)} can be read "
                          f"from the file name")
    values = {str(k): str(v) for k, v in (spec.get("values") or {}).items()}
    for label in values:
        if "{" in label or "}" in label:
            raise _fail(path, f"column {name!r}: label {label!r} may not contain braces")
        if label.startswith("["):  # what the allow-list stores in place of a refused value
            raise _fail(path, f"column {name!r}: label {label!r} may not start with '['")
    reference = kind.references.get(name)
    if typ in LABELLED_TYPES:
        if reference:
            try:
                codes = reference_codes(seeds, reference)
            except FileNotFoundError as e:
                raise _fail(path, f"column {name!r}: {e}") from e
            bad = sorted(set(values.values()) - codes)
            if bad:
                raise _fail(path, f"column {name!r}: {bad} are not codes of the reference list "
                                  f"dbt/seeds/ref_{reference}.csv")
            if not values or typ == "country":  # codes delivered as they are
                values = {**{c: c for c in sorted(codes)}, **values}
        elif typ == "boolean":
            values = values or {"true": "true", "false": "false"}
            if not set(values.values()) <= {"true", "false"}:
                raise _fail(path, f"column {name!r}: a boolean maps its labels to true/false")
        elif not values:
            raise _fail(path, f"column {name!r}: a category needs its allowed 'values' "
                              f"(the file's label: our code)")
        if fixed is not None and str(fixed) not in values:
            if str(fixed) not in set(values.values()):
                raise _fail(path, f"column {name!r}: value {str(fixed)!r} is not one of its "
                                  f"labels or codes")
            values = {**values, str(fixed): str(fixed)}  # a code given as it is
    elif "values" in spec:
        raise _fail(path, f"column {name!r}: 'values' maps labels to codes; a {typ} has none")
    names = {str(k): str(v) for k, v in (spec.get("names") or {}).items()}
    if names:
        if typ not in ("category", "country"):
            raise _fail(path, f"column {name!r}: 'names' (display names by code) are for "
                              f"categories")
        unknown = sorted(set(names) - set(values.values()))
        if unknown:
            raise _fail(path, f"column {name!r}: names are given for {unknown}, which are not "
                              f"codes of its 'values'")
    required = spec.get("required", True)
    if not required and name not in kind.optional:
        raise _fail(path, f"column {name!r} is required by kind {kind.name!r}")
    low, high = kind.bounds.get(name, (None, None))
    source = None if unpivoted or fixed is not None or from_file_name \
        else spec.get("from", name)
    return Column(
        name=name, source=None if source is None else str(source), type=typ, values=values,
        min=spec.get("min", low), max=spec.get("max", high),
        thousands_separator=spec.get("thousands_separator"), required=required,
        separator=str(spec.get("separator", ";")), names=names,
        fixed=None if fixed is None else str(fixed), from_file_name=from_file_name,
    )


def _file_spec(path: Path, doc: dict) -> FileSpec:
    f = doc.get("file") or {}
    _only_known(path, "file: ", f, FILE_KEYS)
    spec = FileSpec(
        format=f.get("format", "csv"), encoding=f.get("encoding", "utf-8"),
        delimiter=f.get("delimiter", ","), sheet=f.get("sheet"),
        header_row=int(f.get("header_row", 1)),
        footer_starts_with=tuple(str(s) for s in f.get("footer_starts_with") or ()),
        null_values=tuple(str(s) for s in f.get("null_values") or ()),
        timezone=f.get("timezone", "UTC"), records_path=f.get("records_path", "item"),
    )
    if spec.format not in FILE_FORMATS:
        raise _fail(path, f"file.format must be one of {sorted(FILE_FORMATS)}")
    if spec.header_row < 1:
        raise _fail(path, "file.header_row counts from 1")
    try:
        zoneinfo.ZoneInfo(spec.timezone)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError) as e:
        raise _fail(path, f"file.timezone {spec.timezone!r} is not a time zone") from e
    return spec


def load_contract(path: Path, root: Path | None = None) -> Contract:
    root = root or repo_root()
    seeds = root / "dbt" / "seeds"
    try:
        doc = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark else ""
        raise _fail(path, f"not valid YAML{where}") from None
    if not isinstance(doc, dict):
        raise _fail(path, "a contract is a mapping of fields (name, kind, columns, ...)")
    for key in ("name", "kind", "columns", "grain"):
        if key not in doc:
            raise _fail(path, f"missing required field {key!r}")
    if doc["kind"] not in KINDS:
        raise _fail(path, f"kind {doc['kind']!r} is not one of {sorted(KINDS)}")
    kind = KINDS[doc["kind"]]
    _only_known(path, "", doc, TOP_KEYS | set(kind.all_constants))
    if not str(doc["name"]).isidentifier() or doc["name"] != str(doc["name"]).lower():
        raise _fail(path, "name must be lower_snake_case (it names tables and DAGs)")

    unpivot = None
    if doc.get("unpivot"):
        u = doc["unpivot"]
        _only_known(path, "unpivot: ", u, UNPIVOT_KEYS)
        try:
            unpivot = Unpivot(columns=str(u["columns"]), name_to=u["name_to"],
                              value_to=u["value_to"], skip_empty=u.get("skip_empty", True))
            re.compile(unpivot.columns)
        except (KeyError, TypeError) as e:
            raise _fail(path, "unpivot needs columns (a pattern), name_to and value_to") from e
        except re.error as e:
            raise _fail(path, f"unpivot.columns is not a valid pattern: {e}") from e
    filled = {unpivot.name_to, unpivot.value_to} if unpivot else set()

    if not isinstance(doc["columns"], dict):
        raise _fail(path, "columns must be a mapping: canonical column -> its settings")
    columns = [_column(path, kind, name, spec, seeds, name in filled)
               for name, spec in doc["columns"].items()]
    names = {c.name for c in columns}
    missing = set(kind.types) - set(kind.optional) - names
    if missing:
        raise _fail(path, f"kind {kind.name!r} needs columns {sorted(missing)}")
    if filled - names:
        raise _fail(path, f"unpivot fills {sorted(filled - names)}, which the contract lacks")
    sources = [c.source for c in columns if c.source is not None]
    if len(sources) != len(set(sources)):
        raise _fail(path, "two columns read the same header ('from')")

    grain = tuple(doc["grain"])
    if not set(grain) <= names:
        raise _fail(path, f"grain {list(grain)} names columns the contract does not have")
    policy = doc.get("on_row_failure", "quarantine_rows")
    if policy not in ROW_FAILURE_POLICIES:
        raise _fail(path, f"on_row_failure must be one of {sorted(ROW_FAILURE_POLICIES)}")
    constants = {k: doc.get(k) for k in kind.constants}
    for k, v in constants.items():
        if v is None:
            raise _fail(path, f"kind {kind.name!r} needs field {k!r}")
    for k, (_, default) in kind.optional_constants.items():
        constants[k] = doc.get(k, default)
    for k, v in constants.items():
        typ = kind.all_constants[k]
        if typ == "boolean" and not isinstance(v, bool):
            raise _fail(path, f"{k} is true or false")
        if typ == "text" and v is not None:
            constants[k] = v = str(v)
        if k in kind.code_constants and not _CODE.fullmatch(v):
            raise _fail(path, f"{k} {v!r} must be a code in lower_snake_case (it identifies "
                              f"figures), e.g. {_as_code(v)!r}; put the display name in "
                              f"{k}_name")
        if k in kind.constant_choices and v not in kind.constant_choices[k]:
            raise _fail(path, f"{k} must be one of {list(kind.constant_choices[k])}")
    if constants.get("edition") is not None and not _EDITION.fullmatch(constants["edition"]):
        raise _fail(path, "edition is the date of the publication the figures come from: "
                          "a year (2023), a month (2023-04) or a day (2023-04-30)")

    totals = None
    if doc.get("totals"):
        t = doc["totals"]
        if not kind.has_totals:
            raise _fail(path, f"kind {kind.name!r} has no total rows to reconcile")
        if isinstance(t, list):
            raise _fail(path, "totals is one rule (when: ..., sum_of: ...), not a list: a "
                              "contract reconciles one kind of total row")
        _only_known(path, "totals: ", t, TOTALS_KEYS)
        if not isinstance(t.get("when"), dict) or "sum_of" not in t:
            raise _fail(path, "totals needs when: {column: code} and sum_of: column")
        totals = Totals(when={str(k): str(v) for k, v in t["when"].items()},
                        sum_of=str(t["sum_of"]), tolerance=int(t.get("tolerance", 0)))
        for col, code in totals.when.items():
            if col not in names or code not in set(next(
                    c for c in columns if c.name == col).values.values()):
                raise _fail(path, f"totals.when {col}: {code!r} is not a code of that column")
        if totals.sum_of not in names:
            raise _fail(path, f"totals.sum_of {totals.sum_of!r} is not a column")

    sample = doc.get("sample")
    return Contract(
        name=doc["name"], kind=kind, path=path, description=doc.get("description", ""),
        columns=tuple(columns), grain=grain, on_row_failure=policy, constants=constants,
        file=_file_spec(path, doc), unpivot=unpivot, totals=totals,
        sample=(root / sample) if sample else None,
        generated_by=doc.get("generated_by"), schedule=doc.get("schedule"),
    )


def _as_code(text: Any) -> str:
    return re.sub(r"[^a-z0-9]+", "_", str(text).lower()).strip("_") or "code"


def contracts_dir(settings: Settings) -> Path:
    """``contracts/`` in the checkout, or ``SAFEGUARD_CONTRACTS_DIR`` (e.g. a deployment's own
    set of sources kept outside the code)."""
    chosen = env("SAFEGUARD_CONTRACTS_DIR")
    return Path(chosen).resolve() if chosen else settings.root / "contracts"


def all_contracts(settings: Settings) -> dict[str, Contract]:
    found = {}
    for path in sorted(contracts_dir(settings).glob("*.yml")):
        contract = load_contract(path, settings.root)
        if contract.name != path.stem:
            raise _fail(path, f"name {contract.name!r} must match the file name")
        found[contract.name] = contract
    return found


def get_contract(settings: Settings, name: str) -> Contract:
    contracts = all_contracts(settings)
    if name not in contracts:
        raise ContractError(f"no contract named {name!r}; known: {sorted(contracts)}")
    return contracts[name]
