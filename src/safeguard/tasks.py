"""Task bodies for the Airflow DAGs: each is one call into the package, testable without a
scheduler. Failures that a retry cannot fix (a bad file) are raised as non-retryable."""

from __future__ import annotations

import sys
from datetime import date
from pathlib import Path

from safeguard.config import Settings, settings
from safeguard.contracts import Contract, get_contract
from safeguard.periods import dated_in_name


def drop_dir(s: Settings, contract: Contract) -> Path:
    base = s.drop_root
    return (base / contract.name).resolve()


def delivered_files(drop: Path) -> list[Path]:
    """Files in a drop folder, without the ones still being written (dot-files, ``*.tmp``,
    ``*.part``)."""
    if not drop.exists():
        return []
    return [p for p in drop.iterdir() if p.is_file() and not p.name.startswith(".")
            and p.suffix not in (".tmp", ".part")]


def period_of(path: Path) -> date | None:
    """The period a delivered file covers, from a date in its name (``..._2020-03.csv``,
    ``..._2020-03-31.csv``); None when its name carries no day or month (see
    ``safeguard.periods``, which the GX gate reads the same way)."""
    return dated_in_name(path.name)


class NoFileForPeriod(FileNotFoundError):
    """A scheduled or backfill run found no delivery for its data interval."""


def resolve_file(s: Settings, contract: Contract, requested: str | None,
                 interval: tuple[date, date] | None = None) -> Path:
    """The file a run reads: the one asked for; for a scheduled or backfill run, the file
    whose name dates it inside the run's data interval [start, end); else the newest in the
    drop folder, else the contract's bundled sample. Only files inside the drop folder or the
    sample folder are read."""
    drop = drop_dir(s, contract)
    allowed = [drop, (s.root / "data" / "sample").resolve()]
    dated = [(period_of(p), p) for p in delivered_files(drop)]
    dated = [(d, p) for d, p in dated if d is not None]
    if requested:
        path = Path(requested)
        path = (path if path.is_absolute() else drop / path).resolve()
    elif interval and dated:
        start, end = interval
        due = sorted((p.name, p) for d, p in dated if start <= d < end)
        if not due:
            raise NoFileForPeriod(f"no file in {drop} dated from {start} to before {end}")
        path = due[-1][1].resolve()
    else:
        candidates = sorted(delivered_files(drop), key=lambda p: p.stat().st_mtime)
        path = candidates[-1].resolve() if candidates else contract.sample
        if path is None:
            hint = ("; `safeguard generate` writes its synthetic sample" if contract.generated_by
                    else "")
            raise FileNotFoundError(f"no file in {drop} and no sample for {contract.name}{hint}")
    if not any(path.is_relative_to(a) for a in allowed):
        raise PermissionError(f"{path} is outside the drop folder {drop}: refused")
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file")
    return path


def _non_retryable(e: Exception) -> Exception:
    from airflow.exceptions import AirflowFailException

    return AirflowFailException(str(e))


def land(contract_name: str, requested_file: str | None, run_by: str,
         interval: tuple[date, date] | None = None) -> dict:
    from safeguard.ingest.errors import FileRejected
    from safeguard.ingest.landing import land_file

    s = settings()
    contract = get_contract(s, contract_name)
    try:
        path = resolve_file(s, contract, requested_file, interval)
    except NoFileForPeriod as e:
        from airflow.sdk.exceptions import AirflowSkipException

        raise AirflowSkipException(str(e)) from e
    from safeguard.ingest.admit import shown_file_name
    from safeguard.progress import RowProgress

    try:
        # the task log is no terminal: a timestamped line every few seconds
        with RowProgress(f"landing {shown_file_name(path.name)}", stream=sys.stdout,
                         interactive=False) as progress:
            landed = land_file(s, contract, path, run_by, progress=progress)
    except FileRejected as e:
        raise _non_retryable(e) from e
    print(f"landed {landed.rows_read} rows of {landed.file_name} as batch {landed.batch_id}")
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
    """dbt build of ``select``, or of everything while the release candidate lacks a published
    model (a new warehouse: the first load's selection would leave the others unbuilt, and a
    release waits for all of them)."""
    from safeguard.transform import build, selection_or_all

    build(settings(), selection_or_all(settings(), select))


def release(as_of: date | None = None) -> None:
    """A release of what dbt built (safeguard.release), with the embargo counted to ``as_of``.

    Nothing new: the task ends skipped, so the published tables' Asset is not updated and
    nothing downstream of it (the fact sheet) runs for a release that was not made."""
    from airflow.sdk.exceptions import AirflowSkipException

    from safeguard.release import NothingBuilt
    from safeguard.release import release as run

    try:
        result = run(settings(), as_of=as_of)
    except NothingBuilt as e:  # the daily DAG's first run on a new warehouse, before dbt's
        raise AirflowSkipException(str(e)) from None
    print(result.summary())
    if result.release_no is None:
        raise AirflowSkipException("nothing new to release")


def factsheet() -> dict:
    """The fact sheet of the published tables (safeguard.factsheet): the names of the files
    written, never a figure."""
    from airflow.sdk.exceptions import AirflowSkipException

    from safeguard.factsheet import FactSheetError, NothingPublished, make_factsheet

    try:
        html, pdf = make_factsheet(settings())
    except NothingPublished as e:  # a release of withheld cells only: nothing to print
        raise AirflowSkipException(str(e)) from None
    except FactSheetError as e:
        raise RuntimeError(str(e)) from None
    print(f"fact sheet written: {pdf} (and {html.name})")
    return {"html": html.name, "pdf": pdf.name}


def warm_dashboards() -> dict:
    """The dashboards' chart-data cache after a release (safeguard.superset.warm): emptied,
    every chart of the published dashboards computed again. Superset not running (or no
    dashboard there yet): the task ends skipped. A chart that fails fails the task."""
    from airflow.sdk.exceptions import AirflowSkipException

    from safeguard.superset.warm import NothingToWarm, warm_after_release

    try:
        warmed = warm_after_release(settings())
    except NothingToWarm as e:
        raise AirflowSkipException(str(e)) from None
    print(warmed.summary())
    if warmed.failed:
        raise RuntimeError(f"{len(warmed.failed)} of the dashboards' charts failed after the "
                           "release; see the lines above")
    return {"charts": len(warmed.charts), "emptied": warmed.emptied}
