"""The pure parts of the readers' benchmark (``safeguard.bench_readers``; the bench itself runs
in `make bench`, not in the suite)."""

from __future__ import annotations

import pytest

from safeguard.bench_readers import percentile, reading_orders, summary


def test_percentiles_are_nearest_rank() -> None:
    samples = [float(x) for x in range(1, 101)]  # 1..100
    assert percentile(samples, 0.5) == 51.0
    assert percentile(samples, 0.95) == 95.0
    assert percentile(list(reversed(samples)), 0.95) == 95.0  # order does not matter
    assert percentile([7.0], 0.95) == 7.0
    with pytest.raises(ValueError):
        percentile([], 0.5)


def test_summary_counts_answers_and_failures_per_second_of_the_burst() -> None:
    figures = summary([0.1] * 19 + [1.0], failed=2, wall=4.0)
    assert figures == {"requests": 22, "failed": 2, "seconds": 4.0, "p50_ms": 100.0,
                       "p95_ms": 100.0, "max_ms": 1000.0, "requests_per_s": 5.0}
    assert summary([], failed=3, wall=1.0) == {"requests": 3, "failed": 3, "seconds": 1.0}


def test_every_reader_reads_every_chart_once_in_an_order_of_its_own() -> None:
    charts = list(range(10, 40))
    orders = reading_orders(charts, readers=20, seed=15)
    assert len(orders) == 20 and all(sorted(o) == charts for o in orders)
    assert len({tuple(o) for o in orders}) == 20
    assert orders == reading_orders(charts, readers=20, seed=15)  # seeded: runs compare
