"""``safeguard sources check CONTRACT FILE``: what a delivery would do, writing nothing.

The file is read and admitted exactly as ``ingest`` would (the same readers, allow-list and
rules), into a temporary table of the checking session, inside a transaction that is rolled
back: no batch, no landing table, no quarantine row, no raw row is written, and nothing of
the file outlives the session. The rule pass (the one the load sets rows aside by) says
which rows would be set aside and why; GX, which counts the same rules at load, is not run.
Totals are reconciled at load, against the loaded rows, so a check does not report them.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from pathlib import Path

import psycopg
from psycopg import sql

from safeguard.config import Settings
from safeguard.contracts import Contract
from safeguard.ingest.admit import Admission, shown_file_name
from safeguard.ingest.landing import copy_admitted, values_not_in_file
from safeguard.ingest.readers import NotSimple, file_facts, read_batches
from safeguard.ingest.tables import recreate_landing_table
from safeguard.periods import declared_period


@dataclass(frozen=True)
class CheckReport:
    file_name: str
    rows_read: int
    rows_set_aside: int
    #: one line per rule broken, as ``ingest`` would print it
    message: str

    def outcome(self, contract: Contract) -> tuple[str, int, int]:
        """What ingest would do, and the rows it would load and set aside."""
        if not self.rows_set_aside:
            return "load", self.rows_read, 0
        if contract.on_row_failure == "reject_batch":
            return ("reject the file whole (on_row_failure: reject_batch)", 0, self.rows_read)
        return ("load the good rows and quarantine the others",
                self.rows_read - self.rows_set_aside, self.rows_set_aside)


def check_file(settings: Settings, contract: Contract, path: Path) -> CheckReport:
    """Read, admit and judge the file as ``ingest`` would; roll everything back. Raises
    ``FileRejected`` when the file as a whole cannot be read under its contract."""
    from safeguard.ingest.load import (
        _declared,
        _failures,
        _locations,
        describe_failures,
    )
    from safeguard.ingest.validate import FAILURES, find_failures, rules

    path = Path(path)
    facts = file_facts(path)
    name = shown_file_name(path.name)
    declared = declared_period(path.name)
    given = values_not_in_file(contract, name, declared)
    table = sql.Identifier("pg_temp", f"check__{contract.name}")
    with psycopg.connect(settings.url("loader")) as conn:
        with conn.transaction(force_rollback=True):
            recreate_landing_table(conn, contract, str(uuid.uuid4()), declared, table=table)
            admission = Admission(contract, settings.pseudonym_keys())
            try:
                with conn.transaction():  # a savepoint: the fast reader may give up
                    rows = copy_admitted(conn, contract, admission,
                                         read_batches(contract, path, facts), given, table)
            except NotSimple:
                rows = copy_admitted(conn, contract, admission,
                                     read_batches(contract, path, facts, fast=False), given,
                                     table)
            conn.execute("select set_config('timezone', %s, true)", [contract.file.timezone])
            batch_rules = rules(contract)
            find_failures(conn, contract, table, batch_rules)
            failures = _declared(conn, table, _failures(
                conn, batch_rules, {c.name: c.label for c in contract.columns}))
            set_aside = conn.execute(sql.SQL(
                "select count(distinct source_row_number) from {}").format(FAILURES)
            ).fetchone()[0]
            locations = _locations(conn, table, sorted({r for f in failures for r in f.rows}))
            message = describe_failures(name, failures, locations) if failures else ""
    return CheckReport(name, rows, set_aside, message)
