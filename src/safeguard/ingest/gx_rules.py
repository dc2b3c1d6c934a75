"""Our one Great Expectations expectation: a row rule counted, never sampled.

GX's ``UnexpectedRowsExpectation`` runs its query twice: once to count the rows, once to fetch
up to 200 of them as a sample. The gate needs the count only (the rows set aside are selected
by the load's own rule pass, and GX's results must hold no rows), so this subclass depends on
the count alone: one query per rule instead of two. Imported where GX is (GX registers an
expectation class when it is defined, by its name).
"""

from __future__ import annotations

from typing import Any, ClassVar

from great_expectations.expectations.core.unexpected_rows_expectation import (
    UnexpectedRowsExpectation,
)


class ExpectNoRowsBreakingRule(UnexpectedRowsExpectation):
    """The rows ``unexpected_rows_query`` selects break a rule: there must be none. The
    result is their number (``observed_value``), exact, and nothing else."""

    metric_dependencies: ClassVar[tuple[str, ...]] = ("unexpected_rows_query.row_count",)

    def _validate(self, metrics: dict, runtime_configuration: dict | None = None,
                  execution_engine: Any = None) -> dict:
        count = metrics["unexpected_rows_query.row_count"]
        return {"success": count == 0, "result": {"observed_value": count}}
