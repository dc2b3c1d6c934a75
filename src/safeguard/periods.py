"""The period a delivered file's name declares, read one way for everyone who needs it.

Scheduled and backfill runs pick the file dated inside their data interval (``tasks``); the
GX gate checks that each row's year or month lies inside the period the name declares
(rule ``period_within_declared_range``). Names are read as:

- ``..._2020-03-31...``: that day; ``..._2020-03...``: that month;
- ``..._2019_2022...`` or ``..._2019-2022...``: those years, both included;
- ``..._2022...``: that year.

A name without such a date declares nothing, and nothing is checked against it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, timedelta

_DAY_OR_MONTH = re.compile(
    r"(?<![0-9])([12][0-9]{3})-(0[1-9]|1[0-2])(?:-([0-3][0-9]))?(?![0-9])")
_YEARS = re.compile(r"(?<![0-9])([12][0-9]{3})(?:[_-]([12][0-9]{3}))?(?![0-9])")


@dataclass(frozen=True)
class DeclaredPeriod:
    """[start, end): the first day of the period and the first day after it."""

    start: date
    end: date

    def __str__(self) -> str:
        return describe(self.start, self.end)


def describe(start: date, end: date) -> str:
    """The period as a person writes it: ``2022``, ``2019-2022``, ``2023-03``, ``2023-03-31``."""
    last = end - timedelta(days=1)
    if start.month == start.day == end.month == end.day == 1:
        return str(start.year) if last.year == start.year else f"{start.year}-{last.year}"
    if start.day == end.day == 1 and (end.year * 12 + end.month) - (
            start.year * 12 + start.month) == 1:
        return f"{start:%Y-%m}"
    if end - start == timedelta(days=1):
        return start.isoformat()
    return f"{start.isoformat()} to {last.isoformat()}"


def next_month(d: date) -> date:
    """The first day of the month after ``d``'s."""
    return date(d.year + d.month // 12, d.month % 12 + 1, 1)


def dated_in_name(name: str) -> date | None:
    """The day or month a name carries (``2020-03`` -> 2020-03-01, ``2020-03-31``): what a
    scheduled or backfill run matches against its data interval. Year-only names are not
    deliveries of one interval, so they give None here."""
    m = _DAY_OR_MONTH.search(name)
    if not m:
        return None
    try:
        return date(int(m[1]), int(m[2]), int(m[3] or 1))
    except ValueError:
        return None


def declared_period(name: str) -> DeclaredPeriod | None:
    """The period a file name declares (see the module docstring), or None."""
    m = _DAY_OR_MONTH.search(name)
    if m:
        day = dated_in_name(name)
        if day is None:
            return None
        if m[3]:
            return DeclaredPeriod(day, day + timedelta(days=1))
        return DeclaredPeriod(day, next_month(day))
    m = _YEARS.search(name)
    if not m:
        return None
    first, last = int(m[1]), int(m[2] or m[1])
    if last < first:  # "2022_2019" is not a period anyone means: declare nothing
        return None
    return DeclaredPeriod(date(first, 1, 1), date(last + 1, 1, 1))
