"""One file, all stages, through the same functions the Airflow tasks call."""

from __future__ import annotations

import zlib
from pathlib import Path

import psycopg

from safeguard.config import Settings
from safeguard.contracts import Contract
from safeguard.ingest.landing import land_file
from safeguard.ingest.load import BatchResult, validate_and_load


def source_lock_key(contract: Contract) -> int:
    return zlib.crc32(f"safeguard:{contract.name}".encode())


def ingest_file(settings: Settings, contract: Contract, path: Path,
                run_by: str | None = None) -> BatchResult:
    """Land, validate and load one file, holding the source's lock so runs never interleave."""
    with psycopg.connect(settings.url("loader"), autocommit=True) as lock_conn:
        lock_conn.execute("select pg_advisory_lock(%s)", [source_lock_key(contract)])
        landed = land_file(settings, contract, path, run_by)
        if landed.duplicate_of:
            return BatchResult(landed.batch_id, "duplicate", 0, 0, 0,
                               f"{path.name}: same content as batch {landed.duplicate_of}; "
                               "not loaded again")
        return validate_and_load(settings, contract, landed.batch_id)
