"""``make bench``: throughput of the ingest path (stream + PII scan + COPY, GX gate, set-based
load) on a generated hotline case extract (13 columns, the widest source), in its own home
(``.local/bench``) so it never touches demo or test data.

Prints rows per second for each stage and the process's peak memory; it asserts nothing about
time (that is what it measures). Size with ``BENCH_ROWS`` (default 1,000,000 cases).
"""

from __future__ import annotations

import os
import resource
import time
from pathlib import Path


def main() -> None:
    root = Path(__file__).resolve().parents[2]
    os.environ.setdefault("SAFEGUARD_HOME", str(root / ".local" / "bench"))
    os.environ.setdefault("SAFEGUARD_PG_PORT", "55434")
    from safeguard.config import settings
    from safeguard.contracts import get_contract
    from safeguard.db.bootstrap import bootstrap
    from safeguard.generate import generate
    from safeguard.ingest.landing import land_file
    from safeguard.ingest.load import load_batch
    from safeguard.ingest.validate import run_gate

    rows = int(os.environ.get("BENCH_ROWS", "1000000"))
    s = settings()
    bootstrap(s)
    contract = get_contract(s, "sample_hotline_cases")
    t0 = time.perf_counter()
    # a new seed each run: the same content would be recognised and not loaded again
    files = generate(s.home / "inputs", cases=rows, seed=int(time.time()))
    data = next(p for p in files if p.parent.name == contract.name)
    print(f"generated {rows:,} cases ({data.stat().st_size / 1e6:.0f} MB) in "
          f"{time.perf_counter() - t0:.1f}s")
    stages = []
    t = time.perf_counter()
    landed = land_file(s, contract, data, "bench")
    stages.append(("land (read, scan, COPY)", time.perf_counter() - t))
    t = time.perf_counter()
    failures = run_gate(s, contract)
    stages.append(("GX gate", time.perf_counter() - t))
    t = time.perf_counter()
    result = load_batch(s, contract, landed.batch_id, failures)
    stages.append(("load (set-based insert)", time.perf_counter() - t))
    print(f"{result.status}: read {result.rows_read:,} = loaded {result.rows_loaded:,} + "
          f"quarantined {result.rows_quarantined:,}")
    for name, secs in stages:
        print(f"{name:<26} {secs:7.1f}s  {rows / secs:>12,.0f} rows/s")
    total = sum(secs for _, secs in stages)
    print(f"{'total':<26} {total:7.1f}s  {rows / total:>12,.0f} rows/s")
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak memory of this process: {peak:,.0f} MB (streaming: it does not grow with "
          f"BENCH_ROWS)")
    if not s.external_url:
        from safeguard.db.embedded import EmbeddedPostgres

        EmbeddedPostgres(s).stop()


if __name__ == "__main__":
    main()
