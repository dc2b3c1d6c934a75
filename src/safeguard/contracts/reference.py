"""Reference lists (grooming stages, channels, countries, ...) live once, as dbt seeds in
``dbt/seeds/ref_<name>.csv``; the loader checks categories against their first column, so
the codes a contract may map to are the codes the models join on."""

from __future__ import annotations

import csv
from functools import lru_cache
from pathlib import Path


@lru_cache(maxsize=64)
def _codes(path: Path, mtime: float) -> frozenset[str]:
    with path.open(newline="", encoding="utf-8") as f:
        reader = csv.reader(f)
        next(reader, None)
        return frozenset(row[0] for row in reader if row and row[0])


def reference_codes(seeds_dir: Path, name: str) -> frozenset[str]:
    path = seeds_dir / f"ref_{name}.csv"
    if not path.exists():
        raise FileNotFoundError(f"reference list {path} is missing")
    return _codes(path, path.stat().st_mtime)
