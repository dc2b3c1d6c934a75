"""Task bodies for the Airflow DAGs: each is one call into the package, testable without a
scheduler. Failures that a retry cannot fix (a bad file) are raised as non-retryable."""

from __future__ import annotations

import os
from pathlib import Path

from safeguard.config import Settings, settings
from safeguard.contracts import Contract, get_contract


def drop_dir(s: Settings, contract: Contract) -> Path:
    base = Path(os.environ.get("SAFEGUARD_DROP_DIR", s.home / "drop"))
    return (base / contract.name).resolve()


def resolve_file(s: Settings, contract: Contract, requested: str | None) -> Path:
    """The file a run reads: the one asked for, else the newest in the drop folder, else the
    contract's bundled sample. Only files inside the drop folder or the sample folder."""
    drop = drop_dir(s, contract)
    allowed = [drop, (s.root / "data" / "sample").resolve()]
    if requested:
        path = Path(requested)
        path = (path if path.is_absolute() else drop / path).resolve()
    else:
        candidates = sorted(drop.glob("*"), key=lambda p: p.stat().st_mtime) \
            if drop.exists() else []
        path = candidates[-1].resolve() if candidates else contract.sample
        if path is None:
            raise FileNotFoundError(f"no file in {drop} and no sample for {contract.name}")
    if not any(path.is_relative_to(a) for a in allowed):
        raise PermissionError(f"{path} is outside the drop folder {drop}: refused")
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file")
    return path


def _non_retryable(e: Exception) -> Exception:
    from airflow.exceptions import AirflowFailException

    return AirflowFailException(str(e))


def land(contract_name: str, requested_file: str | None, run_by: str) -> dict:
    from safeguard.ingest.errors import FileRejected
    from safeguard.ingest.landing import land_file

    s = settings()
    contract = get_contract(s, contract_name)
    path = resolve_file(s, contract, requested_file)
    try:
        landed = land_file(s, contract, path, run_by)
    except FileRejected as e:
        raise _non_retryable(e) from e
    print(f"landed {landed.rows_read} rows of {path.name} as batch {landed.batch_id}")
    return {"batch_id": landed.batch_id, "rows_read": landed.rows_read,
            "duplicate_of": landed.duplicate_of, "file_name": landed.file_name}


def validate_and_load(contract_name: str, landed: dict) -> dict:
    from safeguard.ingest.errors import ValidationFailed
    from safeguard.ingest.load import validate_and_load as run

    if landed.get("duplicate_of"):
        print(f"{landed['file_name']}: same content as batch {landed['duplicate_of']}; skipped")
        return {"status": "duplicate", **landed}
    s = settings()
    try:
        result = run(s, get_contract(s, contract_name), landed["batch_id"])
    except ValidationFailed as e:
        raise _non_retryable(e) from e
    print(result.message)
    return {"status": result.status, "rows_loaded": result.rows_loaded,
            "rows_quarantined": result.rows_quarantined, "batch_id": result.batch_id}


def dbt_build(select: str | None = None) -> None:
    from safeguard.transform import build

    build(settings(), select)
