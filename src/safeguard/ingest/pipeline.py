"""One file, all stages, through the same functions the Airflow tasks call."""

from __future__ import annotations

import dataclasses
import threading
from pathlib import Path

import psycopg

from safeguard.config import Settings
from safeguard.contracts import Contract
from safeguard.ingest.errors import IngestError
from safeguard.ingest.landing import land_file
from safeguard.ingest.load import BatchResult, validate_and_load
from safeguard.progress import Reporter


def ingest_file(settings: Settings, contract: Contract, path: Path,
                run_by: str | None = None, progress: Reporter | None = None) -> BatchResult:
    """Land, validate and load one file. Runs of the same source never interleave: landing
    waits while another batch of the source is in landing (see ``landing._open_batch``).
    One connection holds the batch from landing to loading, so if this process dies in
    between, the next run of the source takes over at once (``landing._release_abandoned``).
    ``progress``: told the rows landed so far, then each stage after landing."""
    # GX takes seconds to import: let it do so while the file is read
    warm = threading.Thread(target=_import_gx, daemon=True)
    warm.start()
    with psycopg.connect(settings.url("loader"), autocommit=True) as holder:
        landed = land_file(settings, contract, path, run_by, hold_with=holder,
                           progress=progress)
        if landed.duplicate_of:
            return BatchResult(landed.batch_id, "duplicate", 0, 0, 0,
                               f"{landed.file_name}: same content as batch "
                               f"{landed.duplicate_of}; not loaded again")
        if progress is not None:
            progress.stage(f"validating (Great Expectations) and loading {landed.rows_read:,} "
                           f"rows of {landed.file_name} ...")
        warm.join()
        try:
            result = validate_and_load(settings, contract, landed.batch_id, holder)
        except IngestError as e:
            if e.result is not None:
                e.result = dataclasses.replace(
                    e.result, timings={**landed.timings, **e.result.timings})
            raise
        return dataclasses.replace(result, timings={**landed.timings, **result.timings})


def _import_gx() -> None:
    import great_expectations  # noqa: F401
