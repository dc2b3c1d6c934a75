"""``make bench``: throughput of the ingest path (stream + COPY, GX gate, set-based load) on a
generated file, in its own home (``.local/bench``) so it never touches demo or test data.

Prints rows per second for each stage; it asserts nothing about time (that is what it
measures). Size with ``BENCH_ROWS`` (default 1,000,000).
"""

from __future__ import annotations

import csv
import os
import time
from pathlib import Path

import yaml

YEARS = list(range(1998, 2101))


def _write_inputs(folder: Path, rows: int) -> tuple[Path, Path]:
    categories = -(-rows // len(YEARS))
    labels = {f"Category {i:06d}": f"category_{i:06d}" for i in range(categories)}
    contract = folder / "bench_published.yml"
    contract.write_text(yaml.safe_dump({
        "name": "bench_published", "kind": "published_figures",
        "description": "Generated load for make bench", "publisher": "bench", "series": "bench",
        "source_name": "generated (benchmark)", "is_synthetic": True,
        "columns": {
            "year": {"from": "Year", "type": "year", "min": 1998},
            "category": {"from": "Category", "type": "category", "values": labels},
            "value": {"from": "Count", "type": "count", "thousands_separator": ","},
        },
        "grain": ["year", "category"], "on_row_failure": "quarantine_rows",
    }, sort_keys=False))
    data = folder / "bench_published.csv"
    with data.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["Year", "Category", "Count"])
        n = 0
        for label in labels:
            for year in YEARS:
                if n == rows:
                    break
                w.writerow([year, label, f"{(n * 7919) % 5_000_000:,}"])
                n += 1
    return contract, data


def main() -> None:
    root = Path(__file__).resolve().parents[2]
    os.environ.setdefault("SAFEGUARD_HOME", str(root / ".local" / "bench"))
    os.environ.setdefault("SAFEGUARD_PG_PORT", "55434")
    from safeguard.config import settings
    from safeguard.contracts import load_contract
    from safeguard.db.bootstrap import bootstrap
    from safeguard.ingest.landing import land_file
    from safeguard.ingest.load import load_batch
    from safeguard.ingest.validate import run_gate

    rows = int(os.environ.get("BENCH_ROWS", "1000000"))
    s = settings()
    bootstrap(s)
    folder = s.home / "inputs"
    folder.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    contract_path, data = _write_inputs(folder, rows)
    contract = load_contract(contract_path)
    print(f"generated {rows:,} rows ({data.stat().st_size / 1e6:.0f} MB) in "
          f"{time.perf_counter() - t0:.1f}s")
    stages = []
    t = time.perf_counter()
    landed = land_file(s, contract, data, "bench")
    stages.append(("land (stream + COPY)", time.perf_counter() - t))
    t = time.perf_counter()
    failures = run_gate(s, contract)
    stages.append(("GX gate", time.perf_counter() - t))
    t = time.perf_counter()
    result = load_batch(s, contract, landed.batch_id, failures)
    stages.append(("load (set-based insert)", time.perf_counter() - t))
    assert result.rows_loaded == rows, result.message
    for name, secs in stages:
        print(f"{name:<26} {secs:7.1f}s  {rows / secs:>12,.0f} rows/s")
    total = sum(secs for _, secs in stages)
    print(f"{'total':<26} {total:7.1f}s  {rows / total:>12,.0f} rows/s")
    if not s.external_url:
        from safeguard.db.embedded import EmbeddedPostgres

        EmbeddedPostgres(s).stop()


if __name__ == "__main__":
    main()
