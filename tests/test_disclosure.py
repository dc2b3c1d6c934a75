"""Nothing small gets out: the published layer, attacked the way an outsider would.

Leadership and public dashboards read the ``reporting`` schema as the viewer role, and so does
this test. It reads every table there and tries to learn a count the layer withheld:

* **primary**: no count below k (var ``min_published_count``) is published, in any numeric
  column that holds a count (each column says what it holds in the models' yml), and no
  percentage change stands on a side below 50 (``min_count_for_change``, NCMEC's practice) or
  on a withheld side;
* **the attacker**: every relation an outsider can derive from the published tables and their
  documentation becomes a linear equation or bound over the withheld cells -
  - the same population at two grains, within a table or across tables (cases per country vs
    per region, per month vs per year or per week, by channel vs by stage, hotline vs hotline
    and partners together, a total row): for every pair of tables of one population the
    attacker groups both by the dimensions they share and by the finest periods both tile
    (months into years; weeks and months into the runs of months that start on a Monday), and
    the two sums of each group are equal;
  - remainder rows (the withheld cells of a group published as one count);
  - shares that give a group's total away (rounded to 0.1%: an interval for the total);
  - published percentage changes with one side withheld (an interval for that side);
  and then attacks each withheld cell by **subtraction** (peeling equations with one unknown
  left, repeatedly), by **linear algebra** (a cell is determined when it is constant on the
  solution space: its coordinate vanishes in every null-space vector of the equations), and
  by **linear programming** (the least and most the cell can hold given every equation, bound
  and the floor of one case per published row; an interval narrower than k is a disclosure).
* **the attacker works**: planted weak tables in a scratch schema, and copies of the real tables
  with the cells that protect three real small counts put back, must be broken - so a green
  run is not a blind one.
"""

from __future__ import annotations

import csv
import json
import math
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import psycopg
import pytest
import yaml
from psycopg import sql
from psycopg.rows import dict_row
from scipy import optimize, sparse
from scipy.sparse import linalg as sparse_linalg

from safeguard.config import ROLES
from safeguard.release import RELEASE_INFO

ROOT = Path(__file__).resolve().parents[1]
DBT = ROOT / "dbt"
_VARS = yaml.safe_load((DBT / "dbt_project.yml").read_text())["vars"]
K = int(_VARS.get("min_published_count", 10))
MIN_FOR_CHANGE = int(_VARS.get("min_count_for_change", 50))
NUMERIC_TYPES = {"smallint", "integer", "bigint", "numeric", "real", "double precision"}
DISCLOSURE_ROLES = {"count", "metric", "statistic", "share", "pct_change", "ordinal"}
BEGINNING, END_OF_TIME = date(1900, 1, 1), date(2999, 1, 1)


# --- what the published tables say: read as the viewer reads them ----------------------------

Tables = dict[str, list[dict[str, Any]]]
#: per table, the numbers of the rows a release held at an earlier build's values
HeldRows = dict[str, set[int]]


def read_schema(conn: psycopg.Connection, schema: str) -> Tables:
    """Every table of a schema, every row, as the connection's role sees them."""
    names = [r[0] for r in conn.execute(
        "select table_name from information_schema.tables where table_schema = %s"
        " order by table_name", [schema])]
    with conn.cursor(row_factory=dict_row) as cur:
        return {name: cur.execute(sql.SQL("select * from {}.{}").format(
            sql.Identifier(schema), sql.Identifier(name))).fetchall() for name in names}


def numeric_columns(conn: psycopg.Connection, schema: str) -> dict[str, set[str]]:
    found: dict[str, set[str]] = defaultdict(set)
    for table, column, data_type in conn.execute(
            "select table_name, column_name, data_type from information_schema.columns"
            " where table_schema = %s", [schema]):
        if data_type in NUMERIC_TYPES:
            found[table].add(column)
    return found


def model_disclosure() -> dict[str, dict[str, Any]]:
    """What each reporting model's yml says it publishes: the whole model public, or per
    numeric column its role (config.meta.disclosure)."""
    models: dict[str, dict[str, Any]] = {}
    for path in sorted((DBT / "models" / "reporting").glob("*.yml")):
        for model in (yaml.safe_load(path.read_text()) or {}).get("models", []):
            meta = (model.get("config") or {}).get("meta") or {}
            columns = {}
            for column in model.get("columns", []):
                role = ((column.get("config") or {}).get("meta") or {}).get("disclosure")
                if role:
                    columns[column["name"]] = role
            models[model["name"]] = {"public": meta.get("disclosure") == "public",
                                     "columns": columns}
    # and the one table a release writes itself: which release it is (number, date, embargo)
    models[RELEASE_INFO] = {"public": True, "columns": {}}
    return models


# --- the attacker's model of the tables -------------------------------------------------------

@dataclass
class Cell:
    """One published (or withheld) count."""

    source: str  # the table, or the part of a table, that publishes it
    label: str  # which cell, in words
    dims: dict[str, Any]  # the categories it counts (incl. a source's fixed scope)
    span: tuple[date, date]  # the days its cases fall in, [start, end)
    value: int | None  # None when withheld
    floor: int  # the least an attacker may assume a withheld cell holds
    cap: int | None = None  # the most, where the table withholds small counts only (k - 1)
    held: bool = False  # an earlier build's value, which a release held back (HeldRows)


@dataclass
class Relation:
    """lo <= sum(coefficient * cell) <= hi, over cells of one population."""

    terms: dict[int, float]
    lo: float
    hi: float
    why: str


def month_span(d: date) -> tuple[date, date]:
    return d, (d.replace(year=d.year + 1, month=1) if d.month == 12
               else d.replace(month=d.month + 1))


def year_span(year: int) -> tuple[date, date]:
    return date(year, 1, 1), date(year + 1, 1, 1)


def week_span(d: date) -> tuple[date, date]:
    return d, d + timedelta(days=7)


@dataclass(frozen=True)
class Grain:
    """How the rows of one table become cells of a population.

    dims maps a dimension to the column holding it; scope fixes dimensions for the whole
    table (the table covers those values only, e.g. hotline cases). A row of a table published
    only where its count is positive has a floor of 1: the row itself says 'one case or more'.
    remainder: (flag column, group columns) - rows with the flag hold, as one count, the
    withheld cells of their group (same values in the group columns).
    cap: the most a withheld cell may hold, where the table withholds nothing but counts below
    k (primary suppression only): k - 1. There the attacker wins by learning anything beyond
    "withheld" - a bound that cuts [floor, k - 1] at all (that it is not 0, or not 9)."""

    table: str
    population: str
    count: str
    span: Callable[[dict[str, Any]], tuple[date, date]]
    dims: dict[str, str] = field(default_factory=dict)
    scope: dict[str, Any] = field(default_factory=dict)
    source: str | None = None
    rows: Callable[[dict[str, Any]], bool] = lambda row: True
    floor: int = 1
    remainder: tuple[str, tuple[str, ...]] | None = None
    withheld: Callable[[dict[str, Any], str], bool] = lambda row, count: row[count] is None
    cap: int | None = None


def _grains() -> list[Grain]:
    channel_breakdown = lambda row: row["breakdown"] == "channel"  # noqa: E731
    stage_breakdown = lambda row: row["breakdown"] == "grooming_stage"  # noqa: E731
    enticement = {"exploitation_type": "online_enticement"}
    grains = [
        # cases, each counted once: hotline cases and partner aggregates
        Grain("rpt_cases_monthly", "cases", "cases", lambda r: month_span(r["period_start"]),
              dims={"region": "region", "country": "country_code", "channel": "channel_code",
                    "source_kind": "source_kind", "is_synthetic": "is_synthetic"},
              remainder=("is_remainder", ("period_start", "region", "channel_code",
                                          "source_kind", "is_synthetic")), floor=0),
        # (a declared grid, GRIDS or GROUPED_GRIDS: a row may hold 0; a group withheld as a
        # whole is one row of its own, country 'XX' or outcome 'all', among the cells)
        Grain("rpt_stage_by_channel_yearly", "cases", "cases", lambda r: year_span(r["year"]),
              dims={"region": "region", "channel": "channel_code",
                    "stage": "grooming_stage_code", "is_synthetic": "is_synthetic"}, floor=0),
        Grain("rpt_case_outcomes_monthly", "cases", "cases",
              lambda r: month_span(r["period_start"]),
              dims={"region": "region", "channel": "channel_code", "assessment": "assessment",
                    "referred_to": "referred_to", "is_synthetic": "is_synthetic"},
              scope={"source_kind": "hotline"},
              remainder=("is_remainder", ("period_start", "region", "channel_code",
                                          "is_synthetic")), floor=0),
        # (is_synthetic is "any case synthetic" here, not a part of the cases: not a dimension)
        Grain("rpt_case_handling_weekly", "cases", "intake",
              lambda r: week_span(r["week_start"]), scope={"source_kind": "hotline"}, floor=0),
        Grain("rpt_headline_figures", "cases", "value", lambda r: (BEGINNING, END_OF_TIME),
              scope={"source_kind": "hotline"},
              rows=lambda r: r["metric_code"] == "hotline_cases_total",
              withheld=lambda r, c: r[c] is None or r["is_suppressed"]),
        # case-form pairs: a hotline case once per form of exploitation, partners as delivered
        Grain("rpt_exploitation_types_yearly", "case-forms", "cases",
              lambda r: year_span(r["year"]),
              dims={"region": "region", "channel": "channel_code",
                    "exploitation_type": "exploitation_type_code",
                    "is_synthetic": "is_synthetic"}, floor=0),
        # open cases at a date: a population of its own, no total published; the bands of a
        # date cover every age, and only a date with fewer than k open cases in all is
        # withheld (as one row): a withheld cell holds k - 1 at most; the weeks bound each
        # other (BACKLOG_FLOWS)
        Grain("rpt_case_backlog", "open cases", "open_cases",
              lambda r: (r["as_of_date"], r["as_of_date"] + timedelta(days=1)),
              dims={"age_bucket": "age_bucket"}, floor=0, cap=K - 1),
    ]
    for year in (2019, 2020):
        # rows are there when either year has a case: a count may be 0
        grains += [
            Grain("rpt_enticement_change_2019_2020", "case-forms", f"cases_{year}",
                  lambda r, y=year: year_span(y), source="rpt_enticement_change_2019_2020"
                  " by channel", dims={"channel": "code", "is_synthetic": "is_synthetic"},
                  scope=enticement, rows=channel_breakdown, floor=0),
            Grain("rpt_enticement_change_2019_2020", "case-forms", f"cases_{year}",
                  lambda r, y=year: year_span(y), source="rpt_enticement_change_2019_2020"
                  " by stage", dims={"stage": "code", "is_synthetic": "is_synthetic"},
                  scope=enticement, rows=stage_breakdown, floor=0),
        ]
    return grains


GRAINS = _grains()


@dataclass(frozen=True)
class ShareOf:
    """A share column that gives away the total of a group of cells of the same table."""

    table: str
    share: str
    count: str
    group: tuple[str, ...]


SHARES = [ShareOf("rpt_stage_by_channel_yearly", "share_of_channel_pct", "cases",
                  ("year", "region", "channel_code", "is_synthetic"))]


@dataclass(frozen=True)
class ChangeOf:
    """A percentage change between two counts: of two columns of a row, or of a row and the
    row of the year before (same values in `same`)."""

    table: str
    pct: str
    current: str
    previous: str | None = None  # a column of the same row
    same: tuple[str, ...] = ()  # else: the row of year - 1 with these columns equal


CHANGES = [
    ChangeOf("rpt_enticement_change_2019_2020", "pct_change", "cases_2020", "cases_2019"),
    ChangeOf("rpt_exploitation_types_yearly", "yoy_pct_change", "cases",
             same=("region", "channel_code", "exploitation_type_code", "is_synthetic")),
]


@dataclass(frozen=True)
class BacklogFlow:
    """Open cases by age band at dates, and each week's intake: stock and flow. A closed case
    stays closed, so a case open at d' aged a' >= g = d' - d days was open at d, aged a' - g;
    one aged less than g was received after d. For every band of d' starting at age t, the
    cases of d' aged t or more (that band and every older one):
      t >= g: open(aged t or more, d') <= the bands of d that reach age t - g;
      t < g:  open(aged t or more, d') <= open(d) + the intake of the weeks from d + 1 to d'
    (the second for the next date only: over longer spans it follows from a chain of them).
    Bands come from the rows (min_age, max_age; NULL max: no end), so merged bands too."""

    table: str
    date: str
    count: str
    min_age: str
    max_age: str
    intake_table: str
    week: str
    intake: str
    max_gap: int = 98  # days: past 91 + 7, every band of d reaches back to age 0


BACKLOG_FLOWS = [BacklogFlow("rpt_case_backlog", "as_of_date", "open_cases", "min_age_days",
                             "max_age_days", "rpt_case_handling_weekly", "week_start", "intake")]


@dataclass
class Population:
    name: str
    cells: list[Cell] = field(default_factory=list)
    relations: list[Relation] = field(default_factory=list)
    sources: dict[str, tuple[set[str], dict[str, Any]]] = field(default_factory=dict)


def _label(row: dict[str, Any], columns: Iterable[str]) -> str:
    return ", ".join(f"{c}={row[c]}" for c in columns)


def _key_columns(grain: Grain) -> list[str]:
    time = [c for c in ("period_start", "year", "week_start", "as_of_date", "metric_code",
                        "breakdown") if c not in grain.dims.values()]
    return time + list(grain.dims.values())


def build_populations(tables: Tables, grains: list[Grain], shares: list[ShareOf],
                      changes: list[ChangeOf], flows: list[BacklogFlow] | None = None,
                      held: HeldRows | None = None) -> dict[str, Population]:
    """Cells of every grain, and every relation between them the attacker can derive.

    held: rows a release held back at an earlier build's values. The relations of one build
    (a year is its months, a week's intake bounds the backlog) need not hold between cells of
    two builds, so a relation relates held cells to held cells only, and the others to the
    others; the releases' own attacker (test_releases) covers what changes between them."""
    held = held or {}
    populations: dict[str, Population] = {}
    # (table, count column, row number) -> (population, cell)
    where: dict[tuple[str, str, int], tuple[str, int]] = {}
    for grain in grains:
        if grain.table not in tables:
            continue
        pop = populations.setdefault(grain.population, Population(grain.population))
        source = grain.source or grain.table
        pop.sources.setdefault(source, (set(grain.dims) | set(grain.scope), dict(grain.scope)))
        rows = tables[grain.table]
        remainders: list[tuple[dict[str, Any], int]] = []
        members: dict[tuple, list[int]] = defaultdict(list)
        for number, row in enumerate(rows):
            if not grain.rows(row):
                continue
            if grain.remainder and row[grain.remainder[0]]:
                remainders.append((row, number))
                continue
            withheld = grain.withheld(row, grain.count)
            cell = Cell(source=source,
                        label=f"{grain.count} at " + _label(row, [
                            c for c in _key_columns(grain) if c in row]),
                        dims={**grain.scope, **{d: row[c] for d, c in grain.dims.items()}},
                        span=grain.span(row), value=None if withheld else int(row[grain.count]),
                        floor=grain.floor, cap=grain.cap,
                        held=number in held.get(grain.table, ()))
            where[(grain.table, grain.count, number)] = (pop.name, len(pop.cells))
            if grain.remainder and withheld:
                members[tuple(row[c] for c in grain.remainder[1])].append(len(pop.cells))
            pop.cells.append(cell)
        for row, _ in remainders:
            group = tuple(row[c] for c in grain.remainder[1])
            value = row[grain.count]
            if value is None:  # a withheld remainder says nothing
                continue
            pop.relations.append(Relation(
                {i: 1.0 for i in members.get(group, [])}, value, value,
                f"{grain.table}: the remainder row of {_label(row, grain.remainder[1])}"
                f" holds its withheld cells ({value})"))
    for pop in populations.values():
        pop.relations += _same_population_relations(pop)
    for share in shares:
        if share.table in tables:
            _add_share_bounds(populations, tables[share.table], share, where)
    for change in changes:
        if change.table in tables:
            _add_change_bounds(populations, tables[change.table], change, where)
    for flow in flows or []:
        if flow.table in tables:
            _add_backlog_flows(populations, tables, flow, where, held)
    for pop in populations.values():
        pop.relations = [r for r in pop.relations
                         if len({pop.cells[c].held for c in r.terms}) <= 1]
    return populations


def _components(spans: Iterable[tuple[date, date]]) -> dict[tuple[date, date], int]:
    """The finest periods two tilings of time share: overlapping spans, merged."""
    component: dict[tuple[date, date], int] = {}
    end, current = None, -1
    for span in sorted(set(spans)):
        if end is None or span[0] >= end:
            current += 1
            end = span[1]
        else:
            end = max(end, span[1])
        component[span] = current
    return component


def _same_population_relations(pop: Population) -> list[Relation]:
    """Two tables (or parts of one) that count the same population: grouped by what they
    share, their sums agree. A table may only stand for the part of the population its scope
    says; the other table is cut to that part when it can be, else the pair says nothing."""
    relations = []
    by_source: dict[str, list[int]] = defaultdict(list)
    for i, cell in enumerate(pop.cells):
        by_source[cell.source].append(i)
    names = sorted(by_source)
    for a_index, a in enumerate(names):
        for b in names[a_index + 1:]:
            (dims_a, scope_a), (dims_b, scope_b) = pop.sources[a], pop.sources[b]
            if not set(scope_a) <= dims_b or not set(scope_b) <= dims_a:
                continue  # one covers a part of the population the other cannot be cut to
            scope = {**scope_a, **scope_b}
            if any(scope_a.get(d, v) != v for d, v in scope_b.items()):
                continue
            shared = sorted(dims_a & dims_b)
            cells_a = [i for i in by_source[a]
                       if all(pop.cells[i].dims.get(d) == v for d, v in scope.items())]
            cells_b = [i for i in by_source[b]
                       if all(pop.cells[i].dims.get(d) == v for d, v in scope.items())]
            if not cells_a or not cells_b:
                continue
            periods = _components(pop.cells[i].span for i in cells_a + cells_b)
            covered_a = {periods[pop.cells[i].span] for i in cells_a}
            covered_b = {periods[pop.cells[i].span] for i in cells_b}
            groups: dict[tuple, dict[int, float]] = defaultdict(dict)
            for sign, cells in ((1.0, cells_a), (-1.0, cells_b)):
                for i in cells:
                    period = periods[pop.cells[i].span]
                    if period in covered_a and period in covered_b:  # both tables cover it
                        key = (period, *(pop.cells[i].dims.get(d) for d in shared))
                        groups[key][i] = sign
            for key, terms in groups.items():
                first = min(pop.cells[i].span[0] for i in terms)
                last = max(pop.cells[i].span[1] for i in terms)
                what = ", ".join(f"{d}={v}" for d, v in zip(shared, key[1:], strict=True))
                relations.append(Relation(
                    terms, 0.0, 0.0,
                    f"{a} and {b} count the same cases ({what or 'all'},"
                    f" {first} to {last - timedelta(days=1)})"))
    return relations


def _add_share_bounds(populations: dict[str, Population], rows: list[dict[str, Any]],
                      share: ShareOf, where: dict[tuple[str, str, int], tuple[str, int]]) -> None:
    """count / total = share (rounded to 0.1): every published share bounds the group total."""
    groups: dict[tuple, list[int]] = defaultdict(list)
    for number, row in enumerate(rows):
        groups[tuple(row[c] for c in share.group)].append(number)
    for key, numbers in groups.items():
        lo, hi = 0.0, math.inf
        for number in numbers:
            row = rows[number]
            if row[share.share] is None or row[share.count] is None:
                continue
            pct, count = float(row[share.share]), float(row[share.count])
            lo = max(lo, 100.0 * count / (pct + 0.05))
            if pct > 0.05:
                hi = min(hi, 100.0 * count / (pct - 0.05))
        cells = [where[(share.table, share.count, n)] for n in numbers
                 if (share.table, share.count, n) in where]
        if hi == math.inf or not cells:
            continue
        lo, hi = math.ceil(lo - 1e-9), math.floor(hi + 1e-9)
        populations[cells[0][0]].relations.append(Relation(
            {i: 1.0 for _, i in cells}, lo, hi,
            f"{share.table}: {share.share} gives the total of"
            f" {', '.join(f'{c}={v}' for c, v in zip(share.group, key, strict=True))}"
            f" away ({lo}..{hi})"))


def _add_change_bounds(populations: dict[str, Population], rows: list[dict[str, Any]],
                       change: ChangeOf, where: dict[tuple[str, str, int], tuple[str, int]]
                       ) -> None:
    """current = previous * (1 + pct/100), pct rounded to 0.1: two linear bounds."""
    index = {}
    if change.previous is None:
        index = {(row["year"], *(row[c] for c in change.same)): n for n, row in enumerate(rows)}
    for number, row in enumerate(rows):
        if row[change.pct] is None:
            continue
        pct = float(row[change.pct])
        if change.previous is not None:
            prev = where.get((change.table, change.previous, number))
        else:
            n = index.get((row["year"] - 1, *(row[c] for c in change.same)))
            prev = None if n is None else where.get((change.table, change.current, n))
        cur = where.get((change.table, change.current, number))
        if prev is None or cur is None:
            continue
        pop = populations[cur[0]]
        why = (f"{change.table}: {change.pct} = {pct} relates {pop.cells[cur[1]].label}"
               f" to {pop.cells[prev[1]].label}")
        # cur >= (1 + (pct - .05)/100) prev  and  cur <= (1 + (pct + .05)/100) prev
        pop.relations.append(Relation({cur[1]: 1.0, prev[1]: -(1 + (pct - 0.05) / 100)}, 0.0,
                                      math.inf, why))
        pop.relations.append(Relation({cur[1]: 1.0, prev[1]: -(1 + (pct + 0.05) / 100)},
                                      -math.inf, 0.0, why))


def _add_backlog_flows(populations: dict[str, Population], tables: Tables, flow: BacklogFlow,
                       where: dict[tuple[str, str, int], tuple[str, int]],
                       held: HeldRows | None = None) -> None:
    """The stock-and-flow inequalities of BacklogFlow between every two dates of the table."""
    by_date: dict[date, list[tuple[int, int, int | None]]] = defaultdict(list)
    name = None
    for number, row in enumerate(tables[flow.table]):
        found = where.get((flow.table, flow.count, number))
        if found is not None:
            name, cell = found
            by_date[row[flow.date]].append((cell, row[flow.min_age], row[flow.max_age]))
    if name is None:
        return
    pop = populations[name]
    held_weeks = held.get(flow.intake_table, set()) if held else set()
    intake = {row[flow.week]: (row[flow.intake], number in held_weeks)
              for number, row in enumerate(tables.get(flow.intake_table, []))}
    dates = sorted(by_date)
    for a, d in enumerate(dates):
        for b in range(a + 1, len(dates)):
            later_date = dates[b]
            gap = (later_date - d).days
            if gap > flow.max_gap:
                break
            for t in sorted({least for _, least, _ in by_date[later_date]}):
                terms = {c: 1.0 for c, least, _ in by_date[later_date] if least >= t}
                if t >= gap:
                    earlier = [c for c, _, most in by_date[d] if most is None or most >= t - gap]
                    bound, via = 0.0, f"aged {t - gap}+ then"
                elif b == a + 1:
                    weeks = [d + timedelta(days=1 + 7 * i) for i in range((gap + 6) // 7)]
                    received = [intake.get(w, (None, False)) for w in weeks]
                    if any(n is None for n, _ in received):
                        continue  # a week not published (or d not a Sunday): no bound
                    earlier = [c for c, _, _ in by_date[d]]
                    builds = {pop.cells[c].held for c in earlier} | {h for _, h in received}
                    if len(builds) > 1:
                        continue  # an intake of another build: no bound
                    received = [n for n, _ in received]
                    bound = float(sum(received))
                    via = f"or received since: {flow.intake_table} {bound:g}"
                else:
                    continue
                for c in earlier:
                    terms[c] = terms.get(c, 0.0) - 1.0
                if all(pop.cells[c].value is not None for c in terms):
                    continue
                pop.relations.append(Relation(
                    terms, -math.inf, bound,
                    f"{flow.table}: a case open {t}+ days at {later_date} was open at {d}"
                    f" ({via})"))


# --- the attacks --------------------------------------------------------------------------------

@dataclass
class Finding:
    cell: Cell
    how: str
    interval: tuple[float, float]
    relations: list[str]

    def __str__(self) -> str:
        lo, hi = self.interval
        got = f"= {lo:g}" if hi - lo < 1e-6 else (
            f"in [{lo:g}, {hi:g}] (fewer than {K} values)" if self.cell.cap is None else
            f"in [{lo:g}, {hi:g}] (withheld alone says {self.cell.floor}..{self.cell.cap})")
        return (f"{self.cell.source}: withheld {self.cell.label} recovered by {self.how}: {got}"
                f"\n      via " + "\n          ".join(self.relations[:4]))


@dataclass
class System:
    """The relations of a population over its withheld cells, published values moved over."""

    unknowns: list[int]  # cell index of each variable
    rows: list[tuple[dict[int, float], float, float, str]]  # variable -> coefficient

    @classmethod
    def of(cls, pop: Population) -> System:
        unknowns = sorted({i for rel in pop.relations for i in rel.terms
                           if pop.cells[i].value is None})
        column = {cell: j for j, cell in enumerate(unknowns)}
        rows = []
        for rel in pop.relations:
            known = sum(c * pop.cells[i].value for i, c in rel.terms.items()
                        if pop.cells[i].value is not None)
            terms = {column[i]: c for i, c in rel.terms.items() if pop.cells[i].value is None}
            rows.append((terms, rel.lo - known, rel.hi - known, rel.why))
        return cls(unknowns, rows)


def peel(pop: Population, system: System) -> dict[int, Finding]:
    """Subtraction: an equation with one unknown left gives it; repeat with what it gave."""
    found: dict[int, Finding] = {}
    value: dict[int, float] = {}
    why: dict[int, list[str]] = {}
    progress = True
    while progress:
        progress = False
        for terms, lo, hi, reason in system.rows:
            if lo != hi:
                continue
            left = [j for j in terms if j not in value]
            if len(left) != 1:
                continue
            (j,) = left
            v = (lo - sum(c * value[i] for i, c in terms.items() if i in value)) / terms[j]
            value[j] = v
            why[j] = [reason] + [r for i in terms if i in why and i != j for r in why[i]]
            cell = pop.cells[system.unknowns[j]]
            found[system.unknowns[j]] = Finding(cell, "subtraction", (v, v), why[j])
            progress = True
    return found


def _signature_classes(system: System) -> tuple[list[list[int]], sparse.csr_matrix]:
    """Variables in exactly the same relations with the same coefficients can only ever be
    told apart by their floors: merge each class into one variable (its sum)."""
    signature: dict[int, list[tuple[int, float]]] = defaultdict(list)
    for r, (terms, *_rest) in enumerate(system.rows):
        for j, c in terms.items():
            signature[j].append((r, c))
    classes: dict[tuple, list[int]] = defaultdict(list)
    for j in range(len(system.unknowns)):
        classes[tuple(signature[j])].append(j)
    merged = list(classes.values())
    data, rows, cols = [], [], []
    for k, members in enumerate(merged):
        for r, c in signature[members[0]]:
            rows.append(r)
            cols.append(k)
            data.append(c)
    matrix = sparse.csr_matrix((data, (rows, cols)), shape=(len(system.rows), len(merged)))
    return merged, matrix


def determined(matrix: sparse.csr_matrix, rhs: np.ndarray, equalities: np.ndarray,
               samples: int = 3, seed: int = 11) -> tuple[np.ndarray, np.ndarray]:
    """Linear algebra: which variables take one value on every solution of the equations -
    those whose coordinate vanishes in the whole null space - and that value. Projecting
    random vectors on the null space by least squares (r - A'y, y = argmin |A'y - r|) gives,
    with probability one, a nonzero coordinate to every variable the equations leave free;
    a least-squares solution of A x = b gives the value of the others."""
    a = matrix[equalities].tocsr()
    n = a.shape[1]
    if n == 0 or a.shape[0] == 0:
        return np.zeros(n, dtype=bool), np.full(n, np.nan)
    rng = np.random.default_rng(seed)
    largest = np.zeros(n)
    for _ in range(samples):
        r = rng.standard_normal(n)
        y = sparse_linalg.lsqr(a.T, r, atol=1e-14, btol=1e-14, iter_lim=50 * n)[0]
        np.maximum(largest, np.abs(r - a.T @ y), out=largest)
    x = sparse_linalg.lsqr(a, rhs[equalities], atol=1e-14, btol=1e-14, iter_lim=50 * n)[0]
    return largest < 1e-6, x


@dataclass
class Reduced:
    """The relations over fewer variables: every equation between two variables (x = y + c,
    x + y = c) substitutes one for the other, so each variable j is sign[j] * root + offset[j]
    and the LP runs over the roots only. Roots keep their members' floors as bounds."""

    root: np.ndarray
    sign: np.ndarray
    offset: np.ndarray
    a_eq: sparse.csr_matrix
    b_eq: np.ndarray
    a_ub: sparse.csr_matrix
    b_ub: np.ndarray
    bounds: list[tuple[float, float]]


def reduce_system(matrix: sparse.csr_matrix, lo: np.ndarray, hi: np.ndarray,
                  floors: np.ndarray, caps: np.ndarray | None = None) -> Reduced:
    n = matrix.shape[1]
    parent, sign, offset = list(range(n)), [1.0] * n, [0.0] * n

    def find(v: int) -> tuple[int, float, float]:
        if parent[v] == v:
            return v, 1.0, 0.0
        r, s, o = find(parent[v])
        parent[v], sign[v], offset[v] = r, sign[v] * s, sign[v] * o + offset[v]
        return r, sign[v], offset[v]

    kept = []
    for r in range(matrix.shape[0]):
        terms = list(zip(matrix.indices[matrix.indptr[r]:matrix.indptr[r + 1]],
                         matrix.data[matrix.indptr[r]:matrix.indptr[r + 1]], strict=True))
        if lo[r] == hi[r] and len(terms) == 2 and all(abs(c) == 1 for _, c in terms):
            (a, ca), (b, cb) = terms
            (ra, sa, oa), (rb, sb, ob) = find(a), find(b)
            if ra != rb:  # ca (sa ra + oa) + cb (sb rb + ob) = rhs: rb in terms of ra
                parent[rb] = ra
                sign[rb] = -(ca * sa) / (cb * sb)
                offset[rb] = (lo[r] - ca * oa - cb * ob) / (cb * sb)
                continue
        kept.append(r)
    found = [find(j) for j in range(n)]
    roots = sorted({r for r, _, _ in found})
    index = {r: i for i, r in enumerate(roots)}
    root = np.array([index[r] for r, _, _ in found])
    sign_ = np.array([s for _, s, _ in found])
    offset_ = np.array([o for _, _, o in found])
    bounds_lo = np.full(len(roots), -np.inf)
    bounds_hi = np.full(len(roots), np.inf)
    caps = np.full(n, np.inf) if caps is None else caps
    for j in range(n):  # floor <= sign * root + offset <= cap
        if sign_[j] > 0:
            bounds_lo[root[j]] = max(bounds_lo[root[j]], floors[j] - offset_[j])
            bounds_hi[root[j]] = min(bounds_hi[root[j]], caps[j] - offset_[j])
        else:
            bounds_hi[root[j]] = min(bounds_hi[root[j]], offset_[j] - floors[j])
            bounds_lo[root[j]] = max(bounds_lo[root[j]], offset_[j] - caps[j])
    coo = matrix[kept].tocoo()
    constant = np.zeros(len(kept))
    np.add.at(constant, coo.row, coo.data * offset_[coo.col])
    reduced = sparse.csr_matrix((coo.data * sign_[coo.col], (coo.row, root[coo.col])),
                                shape=(len(kept), len(roots)))
    reduced.sum_duplicates()
    reduced.eliminate_zeros()
    r_lo, r_hi = lo[kept] - constant, hi[kept] - constant
    eq = r_lo == r_hi
    upper, lower = (~eq) & np.isfinite(r_hi), (~eq) & np.isfinite(r_lo)
    return Reduced(root, sign_, offset_, reduced[eq], r_lo[eq],
                   sparse.vstack([reduced[upper], -reduced[lower]]).tocsr(),
                   np.concatenate([r_hi[upper], -r_lo[lower]]),
                   [(a, None if b == np.inf else b) for a, b in
                    zip(bounds_lo, bounds_hi, strict=True)])


def lp_bounds(system: Reduced, narrow: Callable[[int, float, float], bool]
              ) -> dict[int, tuple[float, float]]:
    """Linear programming: the least and the most each root can hold under every relation and
    its bounds; returns the roots `narrow` still calls narrow at the end. Cheap first: the
    feasible points of LPs that push a batch of roots up (or down) at once, as witnesses,
    prove most roots wide; only the rest get LPs of their own."""
    n = len(system.bounds)
    seen_lo, seen_hi = np.full(n, np.inf), np.full(n, -np.inf)
    has_eq, has_ub = system.a_eq.shape[0] > 0, system.a_ub.shape[0] > 0

    def witness(objective: np.ndarray, bounds: list[tuple[float, float | None]]) -> bool:
        result = optimize.linprog(objective, A_ub=system.a_ub if has_ub else None,
                                  b_ub=system.b_ub if has_ub else None,
                                  A_eq=system.a_eq if has_eq else None,
                                  b_eq=system.b_eq if has_eq else None,
                                  bounds=bounds, method="highs")
        if result.status == 3:
            return False
        assert result.status == 0, f"the relations have no solution: {result.message}"
        np.minimum(seen_lo, result.x, out=seen_lo)
        np.maximum(seen_hi, result.x, out=seen_hi)
        return True

    # a box that leaves every bounded root its whole range, for the batch LPs
    box = float(np.abs(system.b_eq).sum() + np.abs(system.b_ub).sum()
                + sum(abs(a) for a, _ in system.bounds if np.isfinite(a)) + 1)
    boxed = [(a, b if b is not None else a + box) for a, b in system.bounds]
    rng = np.random.default_rng(7)
    share = 1.0
    while True:
        open_ = [j for j in range(n) if narrow(j, seen_lo[j], seen_hi[j])]
        batch = rng.permutation(open_)[:max(8, int(len(open_) * share))]
        if len(batch) == 0:
            break
        objective = np.zeros(n)
        objective[batch] = rng.uniform(0.5, 1.5, len(batch))
        witness(-objective, boxed)
        witness(objective, boxed)
        proven = sum(1 for j in batch if not narrow(j, seen_lo[j], seen_hi[j]))
        if proven < 4:  # one LP a root is as cheap from here
            break
        if proven < len(batch) // 4:
            share /= 2
    kept: dict[int, tuple[float, float]] = {}
    for j in range(n):
        if not narrow(j, seen_lo[j], seen_hi[j]):
            continue
        objective = np.zeros(n)
        objective[j] = -1.0
        if not witness(objective, system.bounds):
            continue  # no most: as wide as can be
        if narrow(j, seen_lo[j], seen_hi[j]):
            objective[j] = 1.0
            witness(objective, system.bounds)
        if narrow(j, seen_lo[j], seen_hi[j]):
            kept[j] = (seen_lo[j], seen_hi[j])
    return kept


def attack(populations: dict[str, Population]) -> list[Finding]:
    """Every attack on every withheld cell; one finding per cell broken."""
    return [finding for pop in populations.values()
            for finding in attack_population(pop).values()]


def attack_population(pop: Population) -> dict[int, Finding]:
    findings: dict[int, Finding] = {}
    system = System.of(pop)
    if not system.unknowns:
        return findings
    findings.update(peel(pop, system))
    merged, matrix = _signature_classes(system)
    cells = [[system.unknowns[j] for j in members] for members in merged]
    floors = np.array([sum(pop.cells[i].floor for i in members) for members in cells],
                      dtype=float)
    caps = np.array([sum(pop.cells[i].cap for i in members)
                     if all(pop.cells[i].cap is not None for i in members) else np.inf
                     for members in cells], dtype=float)
    reasons = defaultdict(list)
    for terms, _lo, _hi, why in system.rows:
        for j in terms:
            reasons[j].append(why)
    lo = np.array([r[1] for r in system.rows])
    hi = np.array([r[2] for r in system.rows])
    fixed, solution = determined(matrix, lo, lo == hi)
    for k in np.flatnonzero(fixed):
        if len(cells[k]) == 1 and cells[k][0] not in findings:
            i = cells[k][0]
            value = round(float(solution[k]), 6)
            findings[i] = Finding(pop.cells[i], "linear algebra (null space of the equations)",
                                  (value, value), reasons[merged[k][0]])
    reduced = reduce_system(matrix, lo, hi, floors, caps)

    def interval(k: int, root_lo: float, root_hi: float) -> tuple[float, float]:
        a = reduced.sign[k] * root_lo + reduced.offset[k]
        b = reduced.sign[k] * root_hi + reduced.offset[k]
        return min(a, b), max(a, b)

    def cell_width(k: int, root_lo: float, root_hi: float) -> float:
        # a cell alone in its class: its own interval; one of a class of cells that only their
        # sum tells apart: from its floor to the class's most less the others' floors
        least, most = interval(k, root_lo, root_hi)
        return most - least if len(cells[k]) == 1 else most - floors[k]

    def capped_range(k: int, i: int, root_lo: float, root_hi: float) -> tuple[float, float]:
        # a cell of a capped class: what the class's interval leaves it, the others anywhere
        # between their floors and caps
        least, most = interval(k, root_lo, root_hi)
        cell = pop.cells[i]
        return (max(cell.floor, least - (caps[k] - cell.cap)),
                min(cell.cap, most - (floors[k] - cell.floor)))

    def class_narrow(k: int, root_lo: float, root_hi: float) -> bool:
        if not np.isfinite(caps[k]):
            return not (cell_width(k, root_lo, root_hi) >= K)
        # withheld says floor..cap: any bound inside that is learnt
        return any(least > pop.cells[i].floor + 1e-6 or most < pop.cells[i].cap - 1e-6
                   for i in cells[k]
                   for least, most in [capped_range(k, i, root_lo, root_hi)])

    members = defaultdict(list)
    for k in range(len(merged)):
        members[reduced.root[k]].append(k)

    def narrow(r: int, root_lo: float, root_hi: float) -> bool:
        return root_lo > root_hi or any(class_narrow(k, root_lo, root_hi) for k in members[r])

    for r, (root_lo, root_hi) in lp_bounds(reduced, narrow).items():
        for k in members[r]:
            if not class_narrow(k, root_lo, root_hi):
                continue
            least, most = interval(k, root_lo, root_hi)
            for i in cells[k]:
                if i in findings:
                    continue
                cell_floor = pop.cells[i].floor
                findings[i] = Finding(
                    pop.cells[i], "linear programming bounds",
                    capped_range(k, i, root_lo, root_hi) if np.isfinite(caps[k])
                    else (least, most) if len(cells[k]) == 1
                    else (cell_floor, most - floors[k] + cell_floor),
                    reasons[merged[k][0]])
    return findings


def withheld_cells(populations: dict[str, Population]) -> Iterator[Cell]:
    for pop in populations.values():
        yield from (c for c in pop.cells if c.value is None)


def report(findings: list[Finding], limit: int = 15) -> str:
    lines = [str(f) for f in findings[:limit]]
    more = len(findings) - limit
    return "\n".join(lines) + (f"\n... and {more} more" if more > 0 else "")


# --- the tests ------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def published(pipeline_done) -> Tables:
    """The reporting schema as the dashboards read it: the viewer role."""
    with psycopg.connect(pipeline_done.url("viewer")) as conn:
        return read_schema(conn, "reporting")


@pytest.fixture(scope="module")
def held(pipeline_done, published) -> HeldRows:
    """The published rows that are not what dbt built last: periods whose revision a release
    held back (safeguard.release), at the values of an earlier build. None after one build
    and one release; some once tests deliver more and release again."""
    from safeguard.release import table_rules

    rules = table_rules(ROOT)
    with psycopg.connect(pipeline_done.admin_url(pipeline_done.warehouse_db)) as admin:
        candidate = read_schema(admin, "publish_candidate")
    out: HeldRows = {}
    for table, rows in published.items():
        rule = rules.get(table)
        if rule is None or table not in candidate:
            continue

        def canon(row: dict[str, Any], rule=rule) -> str:
            return json.dumps({c: v for c, v in row.items() if c != rule.latest},
                              sort_keys=True, default=str)

        built = {canon(r) for r in candidate[table]}
        out[table] = {n for n, r in enumerate(rows) if canon(r) not in built}
    print("rows held at an earlier build:",
          {t: len(n) for t, n in out.items() if n} or "none")
    return out


@pytest.fixture(scope="module")
def published_numeric(pipeline_done) -> dict[str, set[str]]:
    with psycopg.connect(pipeline_done.url("viewer")) as conn:
        return numeric_columns(conn, "reporting")


def test_every_published_number_says_what_it_holds(published, published_numeric):
    """A new column cannot slip past the checks: every numeric column of a table on case data
    is classified in the yml (count, statistic, share, pct_change, ordinal, metric), and every
    count of every table is attacked below."""
    models = model_disclosure()
    assert set(published) <= set(models), f"tables with no model: {set(published) - set(models)}"
    for table, columns in published_numeric.items():
        if models[table]["public"]:
            continue
        roles = models[table]["columns"]
        unclassified = columns - set(roles)
        assert not unclassified, (
            f"{table}: say what {sorted(unclassified)} hold(s) in _reporting__models.yml"
            " (config.meta.disclosure)")
        assert set(roles.values()) <= DISCLOSURE_ROLES, f"{table}: {roles}"
        counts = {c for c, role in roles.items() if role in ("count", "metric")}
        attacked = {g.count for g in GRAINS if g.table == table}
        assert counts <= attacked, f"{table}: counts {counts - attacked} are not attacked"


def test_no_small_count_is_published(published):
    """Primary suppression: every count is withheld (NULL) or at least k - zero included."""
    models = model_disclosure()
    small = []
    for table, rows in published.items():
        if models[table]["public"]:
            continue
        for column, role in models[table]["columns"].items():
            for row in rows:
                value = row[column]
                if role == "metric" and row["unit"] != "cases":
                    continue
                if role in ("count", "metric") and value is not None and value < K:
                    small.append(f"{table}.{column} = {value} at {row}")
    assert not small, f"{len(small)} counts below {K} published:\n" + "\n".join(small[:10])
    assert sum(1 for rows in published.values() for row in rows
               if row.get("is_suppressed")) > 0, "nothing withheld at all: is this real data?"


def test_no_percentage_change_on_a_small_or_withheld_base(published):
    problems = []
    for change in CHANGES:
        rows = published[change.table]
        index = {(r["year"], *(r[c] for c in change.same)): r for r in rows} if change.same else {}
        for row in rows:
            if row[change.pct] is None:
                continue
            previous = (row[change.previous] if change.previous else
                        (index.get((row["year"] - 1, *(row[c] for c in change.same))) or {})
                        .get(change.current))
            sides = (row[change.current], previous)
            if any(s is None or s < MIN_FOR_CHANGE for s in sides):
                problems.append(f"{change.table}.{change.pct} = {row[change.pct]} on {sides}")
    for row in published["rpt_published_figures_yearly"]:
        if row["yoy_change_pct"] is not None and (
                row["figure_value"] < MIN_FOR_CHANGE
                or (row["previous_value"] or 0) < MIN_FOR_CHANGE):
            problems.append(f"rpt_published_figures_yearly: {row}")
    (headline,) = [r for r in published["rpt_headline_figures"]
                   if r["metric_code"] == "enticement_change_2019_2020_pct"]
    if headline["value"] is not None:
        assert any(
            r["category_code"] == "online_enticement" and r["year"] == 2020
            and r["yoy_change_pct"] == headline["value"]
            and r["figure_value"] >= MIN_FOR_CHANGE and r["previous_value"] >= MIN_FOR_CHANGE
            for r in published["rpt_published_figures_yearly"]), headline
    assert not problems, "\n".join(problems[:10])


def test_no_withheld_count_can_be_recovered(published, held):
    """The attacker, on the real published layer: no withheld cell is recovered exactly, or
    narrowed to fewer than k values, by subtraction, linear algebra or linear programming."""
    populations = build_populations(published, GRAINS, SHARES, CHANGES, BACKLOG_FLOWS, held)
    withheld = sum(1 for _ in withheld_cells(populations))
    relations = sum(len(p.relations) for p in populations.values())
    assert withheld > 1000 and relations > 1000, (withheld, relations)
    findings = attack(populations)
    assert not findings, (f"{len(findings)} of {withheld} withheld counts recovered"
                          f" from {relations} relations:\n{report(findings)}")


def test_shares_and_statistics_describe_k_cases_or_more(published, pipeline_done):
    """Derived numbers follow their counts: a share is published only with its count; the
    weekly medians and percentiles only over k cases or more, and the weekly shares only where
    the cases they count and the cases they leave out are k or more (checked against the
    unsuppressed facts, as the administrator)."""
    for row in published["rpt_stage_by_channel_yearly"]:
        assert row["share_of_channel_pct"] is None or row["cases"] is not None, row
    with psycopg.connect(pipeline_done.admin_url(pipeline_done.warehouse_db)) as conn, \
            conn.cursor(row_factory=dict_row) as cur:
        weeks = cur.execute(
            "select r.*, f.triaged_count, f.referred_count, f.actionable_count,"
            " f.referred_within_24h_count, f.referred_within_72h_count"
            " from reporting.rpt_case_handling_weekly r"
            " join marts.fct_case_handling_weekly f using (week_start)").fetchall()
        triaged = cur.execute("select count(*) as n from cases.fct_hotline_cases"
                              " where is_triaged").fetchone()["n"]
    assert weeks
    for w in weeks:
        bases = {"median_hours_to_triage": w["triaged_count"],
                 "p90_hours_to_triage": w["triaged_count"],
                 "median_hours_to_referral": w["referred_count"],
                 "p90_hours_to_referral": w["referred_count"]}
        for column, base in bases.items():
            assert w[column] is None or (base >= K and w["intake"] is not None), (column, w)
        for column, counted in (("share_referred_within_24h_pct", w["referred_within_24h_count"]),
                                ("share_referred_within_72h_pct", w["referred_within_72h_count"])):
            assert w[column] is None or (
                counted >= K and w["actionable_count"] - counted >= K), (column, w)
    (median,) = [r for r in published["rpt_headline_figures"]
                 if r["metric_code"] == "median_hours_to_triage"]
    assert median["value"] is None or triaged >= K


# --- the attacker is not blind: planted weaknesses it must find ----------------------------

ALL_TIME = lambda row: (BEGINNING, END_OF_TIME)  # noqa: E731

CANARY_TABLES = {
    # a lone withheld country under a region total published in another table (subtraction);
    # two small withheld countries under a total (7 cases: bounds); two that hold 15 (safe)
    "canary_by_country": ("region text, country_code text, cases int", [
        ("Europe", "FR", None), ("Europe", "DE", 40), ("Europe", "NL", 25),
        ("Americas", "US", None), ("Americas", "CA", None), ("Americas", "BR", 50),
        ("Oceania", "AU", None), ("Oceania", "NZ", None), ("Oceania", "FJ", 30)]),
    "canary_by_region": ("region text, cases int", [
        ("Europe", 68), ("Americas", 57), ("Oceania", 45)]),
    # two rectangles of withheld cells joined by one (r2, c3): no row or column has a single
    # unknown, yet the rows and columns of the first rectangle give the joining cell away
    "canary_grid": ("row_code text, col_code text, cases int", [
        ("r1", "c1", None), ("r1", "c2", None), ("r1", "c3", 11), ("r1", "c4", 12),
        ("r2", "c1", None), ("r2", "c2", None), ("r2", "c3", None), ("r2", "c4", 13),
        ("r3", "c1", 14), ("r3", "c2", 15), ("r3", "c3", None), ("r3", "c4", None),
        ("r4", "c1", 16), ("r4", "c2", 17), ("r4", "c3", None), ("r4", "c4", None)]),
    "canary_grid_rows": ("row_code text, cases int", [
        ("r1", 113), ("r2", 97), ("r3", 134), ("r4", 138)]),
    "canary_grid_cols": ("col_code text, cases int", [
        ("c1", 115), ("c2", 117), ("c3", 125), ("c4", 125)]),
    # a change published against a withheld year
    "canary_yearly": ("year int, cases int, pct_change numeric", [
        (2020, None, None), (2021, 75, 25.0)]),
    # shares that give the group total (100) away, one stage withheld
    "canary_shares": ("grp text, stage text, cases int, share_pct numeric", [
        ("g", "a", None, None), ("g", "b", 40, 40.0), ("g", "c", 57, 57.0)]),
    # a remainder of 2 over two withheld rows: one case each, exactly
    "canary_remainders": ("grp text, item text, cases int, is_remainder boolean", [
        ("g", "A", None, False), ("g", "B", None, False), ("g", "C", 30, False),
        ("g", "rest", 2, True)]),
}
CANARY_GRAINS = [
    Grain("canary_by_country", "canary", "cases", ALL_TIME,
          dims={"region": "region", "country": "country_code"}),
    Grain("canary_by_region", "canary", "cases", ALL_TIME, dims={"region": "region"}),
    Grain("canary_grid", "canary grid", "cases", ALL_TIME,
          dims={"row": "row_code", "col": "col_code"}),
    Grain("canary_grid_rows", "canary grid", "cases", ALL_TIME, dims={"row": "row_code"}),
    Grain("canary_grid_cols", "canary grid", "cases", ALL_TIME, dims={"col": "col_code"}),
    Grain("canary_yearly", "canary yearly", "cases", lambda r: year_span(r["year"])),
    Grain("canary_shares", "canary shares", "cases", ALL_TIME,
          dims={"grp": "grp", "stage": "stage"}),
    Grain("canary_remainders", "canary remainders", "cases", ALL_TIME,
          dims={"grp": "grp", "item": "item"}, remainder=("is_remainder", ("grp",))),
]
CANARY_SHARES = [ShareOf("canary_shares", "share_pct", "cases", ("grp",))]
CANARY_CHANGES = [ChangeOf("canary_yearly", "pct_change", "cases", same=())]


@pytest.fixture()
def scratch_schema(pipeline_done) -> Iterator[tuple[psycopg.Connection, str]]:
    """A schema the administrator fills and the viewer may read; dropped afterwards."""
    name = "disclosure_scratch"
    with psycopg.connect(pipeline_done.admin_url(pipeline_done.warehouse_db),
                         autocommit=True) as admin:
        admin.execute(sql.SQL("drop schema if exists {} cascade").format(sql.Identifier(name)))
        admin.execute(sql.SQL("create schema {}").format(sql.Identifier(name)))
        admin.execute(sql.SQL("grant usage on schema {} to {}").format(
            sql.Identifier(name), sql.Identifier(ROLES["viewer"])))
        try:
            yield admin, name
        finally:
            admin.execute(sql.SQL("drop schema if exists {} cascade").format(
                sql.Identifier(name)))


def _read_as_viewer(settings, admin: psycopg.Connection, schema: str) -> Tables:
    admin.execute(sql.SQL("grant select on all tables in schema {} to {}").format(
        sql.Identifier(schema), sql.Identifier(ROLES["viewer"])))
    with psycopg.connect(settings.url("viewer")) as viewer:
        return read_schema(viewer, schema)


def _found(findings: list[Finding]) -> dict[tuple[str, str], Finding]:
    return {(f.cell.source, f.cell.label): f for f in findings}


def test_the_attacker_breaks_planted_weak_tables(pipeline_done, scratch_schema):
    admin, schema = scratch_schema
    for table, (columns, rows) in CANARY_TABLES.items():
        admin.execute(sql.SQL("create table {}.{} ({})").format(
            sql.Identifier(schema), sql.Identifier(table), sql.SQL(columns)))
        width = len(rows[0])
        with admin.cursor() as cur:
            cur.executemany(sql.SQL("insert into {}.{} values ({})").format(
                sql.Identifier(schema), sql.Identifier(table),
                sql.SQL(", ").join([sql.Placeholder()] * width)), rows)
    tables = _read_as_viewer(pipeline_done, admin, schema)
    found = _found(attack(build_populations(tables, CANARY_GRAINS, CANARY_SHARES,
                                            CANARY_CHANGES)))

    def finding(table: str, label: str) -> Finding:
        assert (table, f"cases at {label}") in found, (
            f"the attacker missed {table} {label}; it found:\n{report(list(found.values()))}")
        return found[(table, f"cases at {label}")]

    fr = finding("canary_by_country", "region=Europe, country_code=FR")
    assert fr.how == "subtraction" and fr.interval == (3, 3), fr
    for country in ("US", "CA"):
        us = finding("canary_by_country", f"region=Americas, country_code={country}")
        assert us.how == "linear programming bounds" and us.interval[1] - us.interval[0] < K
    for country in ("AU", "NZ"):  # 3 + 12: each between 1 and 14 - protected
        assert ("canary_by_country", f"cases at region=Oceania, country_code={country}") \
            not in found
    bridge = finding("canary_grid", "row_code=r2, col_code=c3")
    assert bridge.how.startswith("linear algebra") and bridge.interval == (4, 4), bridge
    rectangles = [k for k in found if k[0] == "canary_grid" and "c3" not in k[1]]
    assert not rectangles, rectangles  # the rectangles themselves stay protected
    year = finding("canary_yearly", "year=2020")
    assert year.interval[0] <= 60 <= year.interval[1] and year.interval[1] - year.interval[0] < 1
    share = finding("canary_shares", "grp=g, stage=a")
    assert share.how == "subtraction" and share.interval == (3, 3), share
    for item in ("A", "B"):
        one = finding("canary_remainders", f"grp=g, item={item}")
        assert one.interval == (1, 1), one


def test_the_attacker_breaks_real_tables_with_one_withheld_cell_put_back(
        pipeline_done, scratch_schema):
    """The real published tables, copied, with the secondary cells that protect three real
    small counts put back (their true counts, as the administrator reads them): each of those
    small counts must fall - within a table (a country under its remainder row; a stage under
    its channel's share) and across tables (a month of rpt_cases_monthly under the channel
    total the stage table gives away)."""
    admin, schema = scratch_schema
    s = sql.Identifier(schema)
    for (table,) in admin.execute("select table_name from information_schema.tables"
                                  " where table_schema = 'reporting'").fetchall():
        admin.execute(sql.SQL("create table {}.{} as select * from reporting.{}").format(
            s, sql.Identifier(table), sql.Identifier(table)))
    targets = []

    # 1. a remainder row over withheld countries (zeros among them): put back all of them but
    # one, a small one
    row = admin.execute(sql.SQL("""
        with truth as (
            select month_start as period_start, country_code, channel_code, source_kind,
                is_synthetic, sum(case_count) as n
            from marts.fct_cases_monthly group by 1, 2, 3, 4, 5
        )
        select r.period_start, r.region, r.channel_code, r.source_kind, r.is_synthetic,
            array_agg(r.country_code order by coalesce(truth.n, 0) desc, r.country_code)
                as withheld,
            array_agg(coalesce(truth.n, 0) order by coalesce(truth.n, 0) desc, r.country_code)
                as counts
        from {}.rpt_cases_monthly r
        left join truth
            using (period_start, country_code, channel_code, source_kind, is_synthetic)
        where r.is_suppressed and exists (
            select 1 from {}.rpt_cases_monthly rest
            where rest.is_remainder and rest.period_start = r.period_start
              and rest.region = r.region and rest.channel_code = r.channel_code
              and rest.source_kind = r.source_kind and rest.is_synthetic = r.is_synthetic)
        group by 1, 2, 3, 4, 5
        having count(*) >= 2 and min(coalesce(truth.n, 0)) < %s
        order by 1, 2, 3, 4 limit 1""").format(s, s), [K]).fetchone()
    assert row, "no published remainder over withheld countries to probe"
    period, region, channel, kind, synthetic, countries, counts = row
    for country, count in zip(countries[:-1], counts[:-1], strict=True):
        admin.execute(sql.SQL(
            "update {}.rpt_cases_monthly set cases = %s, is_suppressed = false"
            " where period_start = %s and country_code = %s and channel_code = %s"
            " and source_kind = %s and is_synthetic = %s").format(s),
            [count, period, country, channel, kind, synthetic])
    targets.append(("rpt_cases_monthly", f"period_start={period}", f"country_code={countries[-1]}",
                    f"channel_code={channel}", f"source_kind={kind}"))

    # 2. a stage withheld with others under a published share: put back all of them but one
    row = admin.execute(sql.SQL("""
        select r.year, r.region, r.channel_code, r.is_synthetic,
            array_agg(r.grooming_stage_code order by f.case_count desc),
            array_agg(f.case_count order by f.case_count desc)
        from {}.rpt_stage_by_channel_yearly r
        join marts.fct_stage_distribution_by_channel f
            using (year, region, channel_code, grooming_stage_code, is_synthetic)
        where r.is_suppressed and exists (
            select 1 from {}.rpt_stage_by_channel_yearly o
            where o.share_of_channel_pct is not null and o.year = r.year
              and o.region = r.region and o.channel_code = r.channel_code
              and o.is_synthetic = r.is_synthetic)
        group by 1, 2, 3, 4
        having count(*) >= 2 and min(f.case_count) < %s
        order by 1, 2, 3 limit 1""").format(s, s), [K]).fetchone()
    assert row, "no withheld stages under a published share to probe"
    year, region2, channel2, synthetic2, stages, counts = row
    for stage, count in zip(stages[:-1], counts[:-1], strict=True):
        admin.execute(sql.SQL(
            "update {}.rpt_stage_by_channel_yearly set cases = %s, is_suppressed = false"
            " where year = %s and region = %s and channel_code = %s"
            " and grooming_stage_code = %s and is_synthetic = %s").format(s),
            [count, year, region2, channel2, stage, synthetic2])
    targets.append(("rpt_stage_by_channel_yearly", f"year={year}", f"region={region2}",
                    f"channel_code={channel2}", f"grooming_stage_code={stages[-1]}"))

    # 3. across tables: a year, region and channel whose stages publish a share (so its total
    # is known), with months withheld as a whole in rpt_cases_monthly (one row each): put the
    # other withheld months back, and the channel total less everything published gives the
    # one left away
    months = sql.SQL("""
        select period_start, source_kind, count(*) filter (where not is_remainder) as rows_
        from {}.rpt_cases_monthly
        where year = %s and region = %s and channel_code = %s and is_synthetic = %s
        group by 1, 2
        having bool_and(is_suppressed) and not bool_or(is_remainder)
        order by count(*), 1, 2""").format(s)
    row = admin.execute(sql.SQL("""
        with months as (
            select year, region, channel_code, is_synthetic, period_start, source_kind,
                count(*) filter (where not is_remainder) as rows_,
                bool_and(is_suppressed) and not bool_or(is_remainder) as withheld
            from {}.rpt_cases_monthly group by 1, 2, 3, 4, 5, 6
        )
        select year, region, channel_code, is_synthetic
        from months m
        where exists (select 1 from {}.rpt_stage_by_channel_yearly o
                      where o.share_of_channel_pct is not null and o.year = m.year
                        and o.region = m.region and o.channel_code = m.channel_code
                        and o.is_synthetic = m.is_synthetic)
        group by 1, 2, 3, 4
        having count(*) filter (where withheld) >= 2
            and count(*) filter (where withheld and rows_ = 1) >= 1
        order by 1, 2, 3 limit 1""").format(s, s)).fetchone()
    assert row, "no year with withheld months under a published share to probe"
    year3, region3, channel3, synthetic3 = row
    (kept_month, kept_kind, kept_rows), *others = admin.execute(
        months, [year3, region3, channel3, synthetic3]).fetchall()
    assert kept_rows == 1 and others
    for open_month, open_kind, _ in others:
        # the group's one row takes its true total (the cases of every country of the region)
        admin.execute(sql.SQL("""
            update {}.rpt_cases_monthly r set is_suppressed = false, cases = (
                select coalesce(sum(f.case_count), 0) from marts.fct_cases_monthly f
                join marts.dim_countries c using (country_code)
                where f.month_start = r.period_start and c.region = r.region
                  and f.channel_code = r.channel_code and f.source_kind = r.source_kind
                  and f.is_synthetic = r.is_synthetic)
            where r.period_start = %s and r.source_kind = %s and r.region = %s
              and r.channel_code = %s and r.is_synthetic = %s and not r.is_remainder
              """).format(s),
            [open_month, open_kind, region3, channel3, synthetic3])
    (country3,) = admin.execute(sql.SQL(
        "select country_code from {}.rpt_cases_monthly where period_start = %s"
        " and source_kind = %s and region = %s and channel_code = %s and is_synthetic = %s"
        " and not is_remainder").format(s),
        [kept_month, kept_kind, region3, channel3, synthetic3]).fetchone()
    targets.append(("rpt_cases_monthly", f"period_start={kept_month}",
                    f"country_code={country3}", f"channel_code={channel3}",
                    f"source_kind={kept_kind}"))

    tables = _read_as_viewer(pipeline_done, admin, schema)
    populations = build_populations(tables, GRAINS, SHARES, CHANGES)
    findings = attack({"cases": populations["cases"]})
    for table, *parts in targets:
        hits = [f for f in findings if f.cell.source == table
                and all(p in f.cell.label for p in parts)]
        assert hits, (f"the attacker missed the probe in {table} at {parts}; it found:\n"
                      f"{report(findings)}")


# --- the backlog's stock and flow ---------------------------------------------------------------

CANARY_BACKLOG_GRAINS = [Grain("canary_backlog", "canary backlog", "open_cases",
                               lambda r: (r["as_of_date"], r["as_of_date"] + timedelta(days=1)),
                               dims={"age_bucket": "age_bucket"}, floor=0, cap=K - 1)]
CANARY_BACKLOG_FLOWS = [BacklogFlow("canary_backlog", "as_of_date", "open_cases",
                                    "min_age_days", "max_age_days", "canary_backlog_weekly",
                                    "week_start", "intake")]
_BANDS = [(row["age_bucket"], int(row["bucket_order"]), int(row["min_days"]),
           int(row["max_days"]) if row["max_days"] else None)
          for row in csv.DictReader((DBT / "seeds" / "ref_backlog_age_buckets.csv").open())]


def _create_backlog(admin: psycopg.Connection, schema: str, rows: Iterable[tuple]) -> None:
    admin.execute(sql.SQL(
        "create table {}.canary_backlog (as_of_date date, age_bucket text, min_age_days int,"
        " max_age_days int, open_cases bigint)").format(sql.Identifier(schema)))
    with admin.cursor() as cur:
        cur.executemany(sql.SQL("insert into {}.canary_backlog values (%s, %s, %s, %s, %s)")
                        .format(sql.Identifier(schema)), list(rows))


def test_the_attacker_breaks_a_backlog_with_primary_suppression_only(pipeline_done,
                                                                      scratch_schema):
    """Planted, primary suppression only (withheld: below k). 3 to 10 March: over 90 days goes
    from 40 to 48 while 31-90 days of the 3rd is withheld - the 8 new ones were 31-90 days old
    a week before, so that cell is 8 or 9. 10 to 17 March, through the total and the newly
    received: 138 cases open on the 10th and 12 received in the week leave room for 5 at most
    beside the 145 published on the 17th, so 0-2 days there (withheld) is 0 to 5, not 0 to 9.
    (rpt_case_backlog withholds no band of a date: test_the_backlog_withholds_nothing_within_a_date,
    and the attacker on it, test_no_withheld_count_can_be_recovered.)"""
    admin, schema = scratch_schema
    counts = {date(2024, 3, 3): [20, 25, 30, None, 40],  # Sundays
              date(2024, 3, 10): [20, 25, 30, 15, 48],
              date(2024, 3, 17): [None, 22, 50, 28, 45]}
    _create_backlog(admin, schema, [(d, label, least, most, n)
                                    for d, ns in counts.items()
                                    for (label, _, least, most), n in zip(_BANDS, ns,
                                                                          strict=True)])
    admin.execute(sql.SQL("create table {}.canary_backlog_weekly (week_start date, intake int)")
                  .format(sql.Identifier(schema)))
    admin.execute(sql.SQL("insert into {}.canary_backlog_weekly values ('2024-03-04', 50),"
                          " ('2024-03-11', 12)").format(sql.Identifier(schema)))
    tables = _read_as_viewer(pipeline_done, admin, schema)
    found = _found(attack(build_populations(tables, CANARY_BACKLOG_GRAINS, [], [],
                                            CANARY_BACKLOG_FLOWS)))
    for day, band, interval in (("2024-03-03", "31-90 days", (8, 9)),
                                ("2024-03-17", "0-2 days", (0, 5))):
        key = ("canary_backlog", f"open_cases at as_of_date={day}, age_bucket={band}")
        assert key in found, f"the attacker missed {day} {band}; it found:\n{found}"
        assert found[key].interval == pytest.approx(interval), found[key]


def test_the_backlog_withholds_nothing_within_a_date(published):
    """The rule that makes the flows harmless, checked on what is published: every date's bands
    cover every age once, each published band holds k or more, and a date is withheld only as
    a whole (one row, 'all ages')."""
    by_date: dict[date, list[dict[str, Any]]] = defaultdict(list)
    for row in published["rpt_case_backlog"]:
        by_date[row["as_of_date"]].append(row)
    assert by_date
    for day, rows in by_date.items():
        rows.sort(key=lambda r: r["min_age_days"])
        assert rows[0]["min_age_days"] == 0 and rows[-1]["max_age_days"] is None, (day, rows)
        for younger, older in zip(rows, rows[1:], strict=False):
            assert younger["max_age_days"] + 1 == older["min_age_days"], (day, rows)
        withheld = [r for r in rows if r["open_cases"] is None]
        assert not withheld or len(rows) == 1, (day, rows)


# --- zeros and row existence -------------------------------------------------------------------

@dataclass(frozen=True)
class DeclaredGrid:
    """A table that publishes every cell of a declared grid (README, privacy model): one row
    for every combination of its key columns' domains - a zero withheld like any small count.
    The domains are public (the reference lists in dbt/seeds, the periods from the first to the
    last the table publishes), so where a table has rows only where there are cases, an absent
    combination is an exact 0 learnt, and a withheld row "at least one". ``domains``: columns ->
    the value tuples they take (columns that vary together, such as breakdown and code, share
    one entry); ``scope``: columns fixed for the whole table (the values it publishes)."""

    table: str
    domains: dict[tuple[str, ...], Callable[[list[dict[str, Any]]], set[tuple]]]
    scope: tuple[str, ...] = ()
    rows: Callable[[dict[str, Any]], bool] = lambda row: True


def seed_codes(seed: str, column: str) -> Callable[[list[dict[str, Any]]], set[tuple]]:
    with (DBT / "seeds" / f"{seed}.csv").open() as f:
        codes = {(row[column],) for row in csv.DictReader(f)}
    return lambda rows: codes


def every_period(column: str, step: str) -> Callable[[list[dict[str, Any]]], set[tuple]]:
    """Every period from the first to the last the table publishes (years, weeks, months)."""
    def domain(rows: list[dict[str, Any]]) -> set[tuple]:
        seen = [row[column] for row in rows]
        if not seen:
            return set()
        first, last = min(seen), max(seen)
        if step == "year":
            return {(y,) for y in range(first, last + 1)}
        if step == "week":
            return {(first + timedelta(days=7 * i),) for i in range((last - first).days // 7 + 1)}
        months, d = set(), first
        while d <= last:
            months.add((d,))
            d = month_span(d)[1]
        return months
    return domain


def grid_keys(domains: dict[tuple[str, ...], Callable[[list[dict[str, Any]]], set[tuple]]],
              scope: tuple[str, ...], rows: list[dict[str, Any]]
              ) -> tuple[list[str], list[tuple]]:
    """The key columns of a declared grid (scope first) and every key it declares: each scope
    the rows show, by every combination of the domains."""
    columns = [*scope, *(c for key in domains for c in key)]
    keys: list[tuple] = []
    for fixed in sorted({tuple(row[c] for c in scope) for row in rows}, key=str):
        combos: list[tuple] = [fixed]
        for key in domains:
            combos = [c + v for c in combos for v in domains[key](rows)]
        keys += combos
    return columns, keys


def _named(columns: Iterable[str], values: tuple) -> str:
    return ", ".join(f"{c}={v}" for c, v in zip(columns, values, strict=True))


def absent_rows(tables: Tables, grids: list[DeclaredGrid]) -> list[str]:
    """Every combination of a declared grid the table has no row for: each says 0."""
    out = []
    for grid in grids:
        rows = [row for row in tables.get(grid.table, []) if grid.rows(row)]
        columns, keys = grid_keys(grid.domains, grid.scope, rows)
        present = {tuple(row[c] for c in columns) for row in rows}
        out += [f"{grid.table}: no row for {_named(columns, key)}: 0 cases, learnt"
                for key in keys if key not in present]
    return out


REGIONS = seed_codes("ref_countries", "region")
CHANNELS = seed_codes("ref_channels", "channel_code")
GRIDS = [
    DeclaredGrid("rpt_case_handling_weekly", {("week_start",): every_period("week_start", "week")}),
    DeclaredGrid("rpt_enticement_change_2019_2020", {
        ("breakdown", "code"): lambda rows: (
            {("channel", c) for (c,) in CHANNELS(rows)}
            | {("grooming_stage", c) for (c,) in seed_codes("ref_grooming_stages",
                                                             "stage_code")(rows)})},
        scope=("is_synthetic",)),
    DeclaredGrid("rpt_stage_by_channel_yearly", {
        ("year",): every_period("year", "year"), ("region",): REGIONS,
        ("channel_code",): CHANNELS,
        ("grooming_stage_code",): seed_codes("ref_grooming_stages", "stage_code")},
        scope=("is_synthetic",)),
    DeclaredGrid("rpt_exploitation_types_yearly", {
        ("year",): every_period("year", "year"), ("region",): REGIONS,
        ("channel_code",): CHANNELS,
        ("exploitation_type_code",): seed_codes("ref_exploitation_types",
                                                "exploitation_type_code")},
        scope=("is_synthetic",)),
]


@dataclass(frozen=True)
class GroupedGrid:
    """A table published in two levels: every group of a declared grid (``groups``, scoped as
    in DeclaredGrid) has rows - one withheld row for a group withheld as a whole (``whole``),
    or, for a published group, a row for every cell of its breakdown (``cells``: the
    breakdown's columns, and the value tuples a group's cells take given one of its rows),
    with ``extra`` rows (its remainder) beside them. Anything else says something: a group
    without a row is an exact 0, a published group without one of its cells a 0 there."""

    table: str
    groups: dict[tuple[str, ...], Callable[[list[dict[str, Any]]], set[tuple]]]
    cells: tuple[tuple[str, ...], Callable[[dict[str, Any]], set[tuple]]]
    whole: Callable[[dict[str, Any]], bool]
    scope: tuple[str, ...] = ()
    extra: Callable[[dict[str, Any]], bool] = lambda row: False


def absent_grouped_rows(tables: Tables, grids: list[GroupedGrid]) -> list[str]:
    """Every group of a grouped grid without rows, every cell of a published group without
    its row, and every group withheld whole that has other rows too."""
    out = []
    for grid in grids:
        rows = tables.get(grid.table, [])
        columns, keys = grid_keys(grid.groups, grid.scope, rows)
        members: dict[tuple, list[dict[str, Any]]] = defaultdict(list)
        for row in rows:
            members[tuple(row[c] for c in columns)].append(row)
        cell_columns, cell_domain = grid.cells
        for key in keys:
            group, label = members.get(key, []), _named(columns, key)
            if not group:
                out.append(f"{grid.table}: no row for {label}: 0 cases, learnt")
            elif any(grid.whole(r) for r in group):
                if len(group) > 1:
                    out.append(f"{grid.table}: {label} is withheld whole and has other "
                               "rows: they say what it holds")
            else:
                present = {tuple(r[c] for c in cell_columns) for r in group
                           if not grid.extra(r)}
                out += [f"{grid.table}: no row for {label}, {_named(cell_columns, cell)}: "
                        "0 cases, learnt"
                        for cell in sorted(cell_domain(group[0]) - present, key=str)]
    return out


def _countries_of_region() -> Callable[[dict[str, Any]], set[tuple]]:
    with (DBT / "seeds" / "ref_countries.csv").open() as f:
        by_region: dict[str, set[tuple]] = defaultdict(set)
        for row in csv.DictReader(f):
            by_region[row["region"]].add((row["country_code"],))
    return lambda row: by_region[row["region"]]


def _outcomes() -> Callable[[dict[str, Any]], set[tuple]]:
    assessed = {a for (a,) in seed_codes("ref_assessments", "assessment_code")([])} | {"pending"}
    referred = {r for (r,) in seed_codes("ref_referral_targets", "referral_target_code")([])} \
        | {"pending"}
    outcomes = {(a, r) for a in assessed for r in referred}
    return lambda row: outcomes


MONTHLY_GROUPS = {("period_start",): every_period("period_start", "month"),
                  ("region",): REGIONS, ("channel_code",): CHANNELS}
GROUPED_GRIDS = [
    GroupedGrid("rpt_cases_monthly", MONTHLY_GROUPS, (("country_code",), _countries_of_region()),
                whole=lambda r: r["country_code"] == "XX" and not r["is_remainder"],
                scope=("source_kind", "is_synthetic"), extra=lambda r: r["is_remainder"]),
    GroupedGrid("rpt_case_outcomes_monthly", MONTHLY_GROUPS,
                (("assessment", "referred_to"), _outcomes()),
                whole=lambda r: r["assessment"] == "all",
                scope=("is_synthetic",), extra=lambda r: r["is_remainder"]),
]


def test_no_absent_row_says_zero(published):
    """Row existence, on the real published layer: every table declared a grid has a row for
    every cell of it, so zero looks like any other small count (withheld); the monthly
    breakdowns have every group of their grid, as one row withheld whole or as every cell of
    its breakdown. (The backlog's bands cover every age at every date:
    test_the_backlog_withholds_nothing_within_a_date.)"""
    found = absent_rows(published, GRIDS) + absent_grouped_rows(published, GROUPED_GRIDS)
    assert not found, f"{len(found)} absent rows:\n" + "\n".join(found[:15])
    for grid in GROUPED_GRIDS:  # not a vacuous pass: groups of both kinds are there
        rows = published[grid.table]
        assert any(grid.whole(r) for r in rows), grid.table
        assert any(not grid.whole(r) and not grid.extra(r) for r in rows), grid.table


def test_the_grid_check_finds_a_missing_group_or_cell(published):
    """The check above is not blind: the real monthly tables with one withheld zero of a
    published group taken out, and one group withheld whole taken out, are each found."""
    for grid in GROUPED_GRIDS:
        rows = published[grid.table]
        zero = next(r for r in rows if not grid.whole(r) and not grid.extra(r)
                    and r["cases"] is None)
        whole = next(r for r in rows if grid.whole(r))
        for gone in (zero, whole):
            found = absent_grouped_rows({grid.table: [r for r in rows if r is not gone]},
                                        [grid])
            assert len(found) == 1 and "0 cases, learnt" in found[0], (grid.table, found)


def test_the_attacker_learns_zeros_from_absent_rows(pipeline_done, scratch_schema):
    """Planted: a small country's month and channel with rows only where there are cases -
    the attacker must learn the absent one's exact 0; the same table as a full grid, zeros
    withheld like small counts, gives nothing away."""
    admin, schema = scratch_schema
    s = sql.Identifier(schema)
    counts = {("2024-01-01", "gaming"): None, ("2024-01-01", "messaging"): 25,
              ("2024-02-01", "messaging"): 31}  # FR, 2024-02 gaming: no case, no row
    admin.execute(sql.SQL("create table {}.canary_sparse (period_start date, country_code text,"
                          " channel_code text, cases int)").format(s))
    admin.execute(sql.SQL("create table {}.canary_grid (period_start date, country_code text,"
                          " channel_code text, cases int)").format(s))
    with admin.cursor() as cur:
        for (month, channel), n in counts.items():
            cur.execute(sql.SQL("insert into {}.canary_sparse values (%s, 'FR', %s, %s)")
                        .format(s), [month, channel, n])
        for month in ("2024-01-01", "2024-02-01"):
            for channel in ("gaming", "messaging"):
                cur.execute(sql.SQL("insert into {}.canary_grid values (%s, 'FR', %s, %s)")
                            .format(s), [month, channel, counts.get((month, channel))])
    tables = _read_as_viewer(pipeline_done, admin, schema)
    domains = {("period_start",): every_period("period_start", "month"),
               ("country_code",): lambda rows: {("FR",)},
               ("channel_code",): lambda rows: {("gaming",), ("messaging",)}}
    found = absent_rows(tables, [DeclaredGrid("canary_sparse", domains)])
    assert found == ["canary_sparse: no row for period_start=2024-02-01, country_code=FR,"
                     " channel_code=gaming: 0 cases, learnt"], found
    assert absent_rows(tables, [DeclaredGrid("canary_grid", domains)]) == []


# --- two shares over one base ---------------------------------------------------------------

@dataclass(frozen=True)
class NestedShares:
    """Two shares of one unpublished base, the outer counting every case the inner does (within
    72 h, within 24 h): their rounding can give the base away, and with it the cases between
    them. ``bound``: a published column the base cannot exceed (the week's intake)."""

    table: str
    key: tuple[str, ...]
    inner: str
    outer: str
    bound: str


NESTED = [NestedShares("rpt_case_handling_weekly", ("week_start",),
                       "share_referred_within_24h_pct", "share_referred_within_72h_pct",
                       "intake")]


def _counts_for(share: float, base: int) -> range:
    """The counts whose share of ``base`` rounds (to 0.1%) to ``share``, that the publication
    rule lets out (k or more, and k or more left out)."""
    lo = math.ceil(base * (share - 0.05) / 100 - 1e-9)
    hi = math.floor(base * (share + 0.05) / 100 + 1e-9)
    return range(max(lo, K), min(hi, base - K) + 1)


def nested_share_findings(tables: Tables, nested: list[NestedShares]) -> list[str]:
    """Every row where the attacker, trying every base the bound allows and every pair of
    counts the two rounded shares and the publication rule allow, finds that fewer than k
    cases lie between the two shares. (Learning a number of k or more exactly is no finding:
    such a count could be published.)"""
    out = []
    for n in nested:
        for row in tables.get(n.table, []):
            inner, outer, bound = row[n.inner], row[n.outer], row[n.bound]
            if inner is None or outer is None or bound is None:
                continue
            between = set()
            for base in range(K, int(bound) + 1):
                for a in _counts_for(float(inner), base):
                    for b in _counts_for(float(outer), base):
                        if b >= a:
                            between.add(b - a)
            if between and max(between) < K:
                label = ", ".join(f"{c}={row[c]}" for c in n.key)
                out.append(f"{n.table} {label}: {n.inner} {inner}% and {n.outer} {outer}% "
                           f"leave {sorted(between)} case(s) between them")
    return out


def test_two_shares_of_one_base_leave_k_cases_between_them(published):
    """The published weekly shares, attacked: no week gives away how many cases were referred
    between 24 and 72 hours."""
    found = nested_share_findings(published, NESTED)
    assert not found, "\n".join(found)


def test_the_attacker_breaks_planted_nested_shares(pipeline_done, scratch_schema):
    """Planted: 47.6% and 52.4% of a base of at most 30 fit 21 alone (10 and 11 cases: one
    between them) - the attacker must find it; 40% and 60% of up to 60 leave 5 to 12 between
    them - protected."""
    admin, schema = scratch_schema
    admin.execute(sql.SQL("create table {}.canary_weekly (week_start text, intake int, "
                          "inner_pct numeric, outer_pct numeric)").format(
                              sql.Identifier(schema)))
    admin.execute(sql.SQL("insert into {}.canary_weekly values ('w1', 30, 47.6, 52.4), "
                          "('w2', 60, 40.0, 60.0)").format(sql.Identifier(schema)))
    tables = _read_as_viewer(pipeline_done, admin, schema)
    found = nested_share_findings(tables, [NestedShares(
        "canary_weekly", ("week_start",), "inner_pct", "outer_pct", "intake")])
    assert len(found) == 1 and "week_start=w1" in found[0] and "[1]" in found[0], found
