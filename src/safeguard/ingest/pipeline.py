"""One file, all stages, through the same functions the Airflow tasks call."""

from __future__ import annotations

from pathlib import Path

import psycopg

from safeguard.config import Settings
from safeguard.contracts import Contract
from safeguard.ingest.landing import land_file
from safeguard.ingest.load import BatchResult, validate_and_load


def ingest_file(settings: Settings, contract: Contract, path: Path,
                run_by: str | None = None) -> BatchResult:
    """Land, validate and load one file. Runs of the same source never interleave: landing
    waits while another batch of the source is in landing (see ``landing._open_batch``).
    One connection holds the batch from landing to loading, so if this process dies in
    between, the next run of the source takes over at once (``landing._release_abandoned``)."""
    with psycopg.connect(settings.url("loader"), autocommit=True) as holder:
        landed = land_file(settings, contract, path, run_by, hold_with=holder)
        if landed.duplicate_of:
            return BatchResult(landed.batch_id, "duplicate", 0, 0, 0,
                               f"{path.name}: same content as batch {landed.duplicate_of}; "
                               "not loaded again")
        return validate_and_load(settings, contract, landed.batch_id, holder)
