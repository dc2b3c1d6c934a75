"""Source contracts: one YAML file per source in ``contracts/`` says how to read it.

A contract names the kind of data (which ``raw`` table it lands in), the file format, the
mapping from the file's own headers and labels to our canonical names and codes, each
column's type and rules, the grain, and what to do when rows break the rules. Everything
downstream (landing, the GX suite, the load into ``raw``) is derived from it, so a new source
is onboarded by adding a file, with no Python and no SQL.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from safeguard.config import Settings
from safeguard.contracts.kinds import KINDS, Kind

COLUMN_TYPES = {"year", "count", "category"}
ROW_FAILURE_POLICIES = {"reject_batch", "quarantine_rows"}


class ContractError(ValueError):
    """A contract file is malformed; the message names the file and the field."""


@dataclass(frozen=True)
class Column:
    name: str
    source: str
    type: str
    values: dict[str, str] = field(default_factory=dict)
    min: int | None = None
    max: int | None = None
    thousands_separator: str | None = None
    required: bool = True


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
    file_format: str
    encoding: str
    delimiter: str
    sample: Path | None
    schedule: str | None

    @property
    def landing_table(self) -> str:
        return f"landing__{self.name}"

    def column(self, name: str) -> Column:
        return next(c for c in self.columns if c.name == name)


def _fail(path: Path, what: str) -> ContractError:
    return ContractError(f"{path.name}: {what}")


def load_contract(path: Path, root: Path | None = None) -> Contract:
    doc = yaml.safe_load(path.read_text()) or {}
    for key in ("name", "kind", "columns", "grain"):
        if key not in doc:
            raise _fail(path, f"missing required field {key!r}")
    if doc["kind"] not in KINDS:
        raise _fail(path, f"kind {doc['kind']!r} is not one of {sorted(KINDS)}")
    kind = KINDS[doc["kind"]]
    if not str(doc["name"]).isidentifier() or doc["name"] != str(doc["name"]).lower():
        raise _fail(path, "name must be lower_snake_case (it names tables and DAGs)")
    columns = []
    for name, spec in doc["columns"].items():
        if spec.get("type") not in COLUMN_TYPES:
            raise _fail(path, f"column {name!r}: type must be one of {sorted(COLUMN_TYPES)}")
        if name not in kind.columns:
            raise _fail(path, f"column {name!r} is not a column of kind {kind.name!r}: "
                              f"use one of {sorted(kind.columns)}")
        if spec["type"] == "category" and not spec.get("values"):
            raise _fail(path, f"column {name!r}: a category needs its allowed 'values'")
        columns.append(Column(
            name=name, source=str(spec.get("from", name)), type=spec["type"],
            values={str(k): str(v) for k, v in (spec.get("values") or {}).items()},
            min=spec.get("min"), max=spec.get("max"),
            thousands_separator=spec.get("thousands_separator"),
            required=spec.get("required", True),
        ))
    missing = set(kind.columns) - {c.name for c in columns}
    if missing:
        raise _fail(path, f"kind {kind.name!r} needs columns {sorted(missing)}")
    grain = tuple(doc["grain"])
    if not set(grain) <= {c.name for c in columns}:
        raise _fail(path, f"grain {list(grain)} names columns the contract does not have")
    policy = doc.get("on_row_failure", "quarantine_rows")
    if policy not in ROW_FAILURE_POLICIES:
        raise _fail(path, f"on_row_failure must be one of {sorted(ROW_FAILURE_POLICIES)}")
    constants = {k: doc.get(k) for k in kind.constants}
    for k, v in constants.items():
        if v is None:
            raise _fail(path, f"kind {kind.name!r} needs field {k!r}")
    file = doc.get("file") or {}
    sample = doc.get("sample")
    return Contract(
        name=doc["name"], kind=kind, path=path, description=doc.get("description", ""),
        columns=tuple(columns), grain=grain, on_row_failure=policy, constants=constants,
        file_format=file.get("format", "csv"), encoding=file.get("encoding", "utf-8"),
        delimiter=file.get("delimiter", ","),
        sample=(root / sample) if (root and sample) else None,
        schedule=doc.get("schedule"),
    )


def contracts_dir(settings: Settings) -> Path:
    return settings.root / "contracts"


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
