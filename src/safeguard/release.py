"""Releases: the only way the published tables (schema ``reporting``) change.

dbt builds the published models into ``publish_candidate``, which the viewer cannot read. A
release copies the candidate into an immutable, numbered snapshot and then makes ``reporting``
that snapshot, all in one transaction:

* **Embargo.** Each published model declares in its dbt YAML (``config.meta.release``) its
  period column and grain (``day``, ``week``, ``month``, ``year``; none: the table is one
  group). A row is released once its period has ended and ``release_embargo_days`` (14) more
  days have passed by the release's as-of date: late cases of a period arrive before its first
  release, so they are not revisions of it.
* **Revision gate.** A period published before is a protection group: the period across every
  table of the same grain (a table without a period is a group of its own). Its cells are the
  declared counts of each row, keyed by the declared key; an absent row is a published 0 (or,
  where the table declares ``absent: withheld``, a withheld count: a row missing there only
  inside a group withheld as a whole). The
  group is published again, revised, only when, comparing the candidate with the previous
  release, no count changes by 1 to k-1 and no count goes from withheld (NULL) to published or
  back (an absent count read as above). Otherwise the whole group keeps its previously released
  rows: a difference of two releases then shows only changes of k or more in published cells,
  and nothing at all of a withheld cell (a remainder row is a count like any other, so the
  withheld part of a breakdown changes by 0 or k or more too). The revision is recorded as held
  and waits until the change it brings passes.
* **Audit.** Every release's rows go into ``releases.release_rows`` (insert and select only for
  the transformer; the viewer cannot read it), the release itself into ``ops.releases`` and what
  it changed, per table, into ``ops.release_tables`` (counts only). *Pipeline health* lists them.
* **Nothing new, no release.** When the rows to publish are those of the latest release, no
  release is made.

Run by ``safeguard release`` and by Airflow at the end of ``safeguard_transform`` and daily
(``safeguard_release``), as the transformer role.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path

import psycopg
import yaml
from psycopg import sql
from psycopg.types.json import Jsonb

from safeguard.config import Settings
from safeguard.runs import run_by_default

CANDIDATE = "publish_candidate"
PUBLISHED = "reporting"
GRAINS = {"day": "1 day", "week": "7 days", "month": "1 month", "year": "1 year"}
#: reporting's one table that is not a dbt model: which release it is
RELEASE_INFO = "release_info"
#: serialises releases (pg_advisory_xact_lock key: "safeguard release")
LOCK_KEY = 0x5AFE_0011


class ReleaseFailed(RuntimeError):
    """A release could not be made; nothing was changed."""


class NothingBuilt(ReleaseFailed):
    """dbt has not built the published models yet: there is nothing to release."""


class CandidateIncomplete(NothingBuilt):
    """dbt has built some of the published models, not all (a first build on a new warehouse
    limited to what one load touched): a release publishes all of them or none, so that
    ``reporting`` never holds half a layer (the fact sheet and the dashboards read all of it)."""


def missing_from_candidate(conn: psycopg.Connection, rules: dict[str, TableRule]) -> list[str]:
    """The published models dbt has not built into the candidate yet."""
    present = {r[0] for r in conn.execute(
        "select table_name from information_schema.tables where table_schema = %s",
        [CANDIDATE])}
    return sorted(t for t in rules if t not in present)


@dataclass(frozen=True)
class TableRule:
    """What a published model declares in ``config.meta.release``."""

    name: str
    period: str | None = None
    grain: str | None = None
    key: tuple[str, ...] = ()
    counts: tuple[str, ...] = ()
    latest: str | None = None  # a flag true on the latest period released (recomputed)
    #: what a cell without a row published: "zero" where rows are there only where counts
    #: are, "withheld" where a row is missing only inside a group withheld as a whole (one row
    #: for the group: rpt_cases_monthly's countries, rpt_case_outcomes_monthly's outcomes)
    absent: str = "zero"

    def group_of(self, row: dict) -> tuple[str, str | None]:
        """The protection group of a row: (grain, period) shared by the tables of one grain,
        or the table itself when it has no period."""
        if self.period is None:
            return (f"table:{self.name}", None)
        return (str(self.grain), str(row.get(self.period)))

    def cell_key(self, row: dict) -> str:
        return json.dumps([row.get(c) for c in self.key], default=str)


def table_rules(root: Path) -> dict[str, TableRule]:
    """The published models and their release rules, from the dbt YAML of ``reporting``."""
    rules: dict[str, TableRule] = {}
    for path in sorted((root / "dbt" / "models" / "reporting").glob("_*__models.yml")):
        for model in (yaml.safe_load(path.read_text()) or {}).get("models") or []:
            meta = ((model.get("config") or {}).get("meta") or {})
            if "release" not in meta:
                continue
            r = meta["release"] or {}
            grain = r.get("grain")
            if r.get("period") and grain not in GRAINS:
                raise ReleaseFailed(f"{path.name}: model {model['name']}: release grain "
                                    f"{grain!r} is not one of {', '.join(GRAINS)}")
            if r.get("counts") and not r.get("key"):
                raise ReleaseFailed(f"{path.name}: model {model['name']}: release counts "
                                    "need a key (the columns that name a cell)")
            absent = r.get("absent", "zero")
            if absent not in ("zero", "withheld"):
                raise ReleaseFailed(f"{path.name}: model {model['name']}: release absent "
                                    f"{absent!r} is not 'zero' or 'withheld'")
            rules[model["name"]] = TableRule(
                name=model["name"], period=r.get("period"), grain=grain,
                key=tuple(r.get("key") or ()), counts=tuple(r.get("counts") or ()),
                latest=r.get("latest"), absent=absent)
    return rules


# --- the gate, on rows as dicts (to_jsonb), testable without a database ----------------------

@dataclass
class GroupOutcome:
    status: str  # new | revised | unchanged | held | dropped
    cells_changed: int = 0
    reasons: list[str] = field(default_factory=list)


def _count_cells(rule: TableRule, rows: Iterable[dict]) -> dict[tuple[str, str], object]:
    return {(rule.cell_key(r), c): r.get(c) for r in rows for c in rule.counts}


def compare_cells(rule: TableRule, before: list[dict], after: list[dict],
                  k: int) -> tuple[int, list[str]]:
    """Changed published counts, and why the change may not go out (empty: it may). An absent
    cell is a published 0, or a withheld one where the table says so (``absent``); None is a
    withheld count."""
    old, new = _count_cells(rule, before), _count_cells(rule, after)
    changed, reasons = 0, []
    missing = 0 if rule.absent == "zero" else None
    for cell in old.keys() | new.keys():
        a, b = old.get(cell, missing), new.get(cell, missing)
        if a == b:
            continue
        if (a is None) != (b is None):
            reasons.append(f"{cell[1]} withheld <-> published")
            continue
        if a is None:  # withheld before and after: nothing shows
            continue
        changed += 1
        if abs(float(b) - float(a)) < k:  # type: ignore[arg-type]
            reasons.append(f"{cell[1]} changed by less than {k}")
    return changed, sorted(set(reasons))


def _canon(rows: Iterable[dict], drop: str | None = None) -> list[str]:
    return sorted(json.dumps({c: v for c, v in r.items() if c != drop}, sort_keys=True,
                             default=str) for r in rows)


@dataclass
class Plan:
    """What a release publishes: rows per table, and per table the groups' outcomes."""

    rows: dict[str, list[dict]]
    outcomes: dict[str, dict[tuple[str, str | None], GroupOutcome]]
    embargoed: dict[str, int]


def plan_release(rules: dict[str, TableRule], candidate: dict[str, list[dict]],
                 previous: dict[str, list[dict]] | None, k: int,
                 embargoed: dict[str, int] | None = None) -> Plan:
    """The rows of the next release from the (embargo-filtered) candidate and the previous
    release's rows (None: there is none). A group held in any of its tables is held in all."""

    def by_group(table: str, rows: list[dict]) -> dict[tuple[str, str | None], list[dict]]:
        out: dict[tuple[str, str | None], list[dict]] = defaultdict(list)
        for r in rows:
            out[rules[table].group_of(r)].append(r)
        return out

    prev = previous or {}
    cand_groups = {t: by_group(t, rows) for t, rows in candidate.items()}
    prev_groups = {t: by_group(t, prev.get(t, [])) for t in candidate}
    held: set[tuple[str, str | None]] = set()
    outcomes: dict[str, dict[tuple[str, str | None], GroupOutcome]] = {}
    for t, rule in ((t, rules[t]) for t in candidate):
        outcomes[t] = {}
        for g in cand_groups[t].keys() | prev_groups[t].keys():
            before, after = prev_groups[t].get(g, []), cand_groups[t].get(g, [])
            # a period not released before, in this table or (for a table released before) in
            # any table of its grain: a first publication, which the single-release rules cover
            if g not in prev_groups[t] and (not prev.get(t) or not _group_in(prev_groups, g)):
                outcomes[t][g] = GroupOutcome("new")
                continue
            changed, reasons = compare_cells(rule, before, after, k)
            if reasons:
                held.add(g)
                outcomes[t][g] = GroupOutcome("held", changed, reasons)
            elif _canon(before, rule.latest) == _canon(after, rule.latest):
                outcomes[t][g] = GroupOutcome("unchanged")
            else:
                outcomes[t][g] = GroupOutcome("revised" if after else "dropped", changed)
    rows: dict[str, list[dict]] = {}
    for t, rule in ((t, rules[t]) for t in candidate):
        out: list[dict] = []
        for g, outcome in outcomes[t].items():
            if g in held:
                if outcome.status != "held":
                    outcome.status, outcome.reasons = "held", ["held with its period in "
                                                               "another table"]
                out += prev_groups[t].get(g, [])
            else:
                out += cand_groups[t].get(g, [])
        if rule.latest and rule.period:
            last = max((str(r.get(rule.period)) for r in out), default=None)
            out = [{**r, rule.latest: str(r.get(rule.period)) == last} for r in out]
        rows[t] = out
    return Plan(rows, outcomes, embargoed or {})


def _group_in(groups: dict[str, dict], g: tuple[str, str | None]) -> bool:
    """Was the period released before in any table of its grain?"""
    return g[1] is not None and any(g in by for by in groups.values())


# --- the database side ------------------------------------------------------------------------

@dataclass
class ReleaseResult:
    release_no: int | None  # None: nothing changed, no release made
    previous_no: int | None
    as_of: date
    tables: dict[str, dict[str, int | str]]

    def summary(self) -> str:
        if self.release_no is None:
            return (f"nothing to release as of {self.as_of}: the published tables are release "
                    f"{self.previous_no} already")
        lines = [f"release {self.release_no} as of {self.as_of}"
                 + (f" (previous: {self.previous_no})" if self.previous_no else "")]
        for t, c in sorted(self.tables.items()):
            lines.append(f"  {t:<34} {c['rows_published']:>7} rows; periods new "
                         f"{c['groups_new']}, revised {c['groups_revised']}, held "
                         f"{c['groups_held']}, under embargo {c['groups_embargoed']}")
        return "\n".join(lines)


def _columns(conn: psycopg.Connection, schema: str, table: str) -> list[tuple[str, str]]:
    return conn.execute(
        "select a.attname, format_type(a.atttypid, a.atttypmod) from pg_attribute a "
        "join pg_class c on c.oid = a.attrelid join pg_namespace n on n.oid = c.relnamespace "
        "where n.nspname = %s and c.relname = %s and a.attnum > 0 and not a.attisdropped "
        "order by a.attnum", [schema, table]).fetchall()


def _read_candidate(conn: psycopg.Connection, rule: TableRule, as_of: date,
                    embargo_days: int) -> tuple[list[dict], int]:
    """The candidate's rows whose period is out of embargo, and how many periods are not."""
    table = sql.Identifier(CANDIDATE, rule.name)
    if rule.period is None:
        rows = conn.execute(sql.SQL("select to_jsonb(t) from {} t").format(table)).fetchall()
        return [r[0] for r in rows], 0
    released = sql.SQL("({p}::date + {step}::interval + make_interval(days => %s))::date <= %s"
                       ).format(p=sql.Identifier(rule.period),
                                step=sql.Literal(GRAINS[str(rule.grain)]))
    rows = conn.execute(sql.SQL("select to_jsonb(t) from {} t where {}").format(table, released),
                        [embargo_days, as_of]).fetchall()
    (waiting,) = conn.execute(sql.SQL("select count(distinct {p}) from {t} where not {r}").format(
        p=sql.Identifier(rule.period), t=table, r=released), [embargo_days, as_of]).fetchone()
    return [r[0] for r in rows], int(waiting)


def _previous(conn: psycopg.Connection) -> tuple[int | None, date | None]:
    row = conn.execute("select release_no, as_of_date from ops.releases "
                       "order by release_no desc limit 1").fetchone()
    return (row[0], row[1]) if row else (None, None)


def released_rows(conn: psycopg.Connection, release_no: int) -> dict[str, list[dict]]:
    """A release's rows per table, from the audit copy (``releases.release_rows``)."""
    out: dict[str, list[dict]] = defaultdict(list)
    for table, row in conn.execute("select table_name, row_data from releases.release_rows "
                                   "where release_no = %s", [release_no]):
        out[table].append(row)
    return dict(out)


def _publish_table(conn: psycopg.Connection, table: str, release_no: int) -> None:
    """reporting.<table> := the release's rows: truncate and insert (grants and indexes kept),
    or created afresh from the candidate's columns when those changed."""
    target = sql.Identifier(PUBLISHED, table)
    columns = _columns(conn, CANDIDATE, table)
    existing = _columns(conn, PUBLISHED, table)
    if existing != columns:
        if existing:
            conn.execute(sql.SQL("drop table {}").format(target))
        conn.execute(sql.SQL("create table {} (like {} including defaults)").format(
            target, sql.Identifier(CANDIDATE, table)))
    else:
        conn.execute(sql.SQL("truncate {}").format(target))
    conn.execute(sql.SQL(
        "insert into {t} select (jsonb_populate_record(null::{t}, row_data)).* "
        "from releases.release_rows where release_no = %s and table_name = %s").format(
            t=target), [release_no, table])


def _publish_release_info(conn: psycopg.Connection, release_no: int, as_of: date,
                          embargo: int) -> None:
    """reporting.release_info: which release the published tables are, one row, so that a
    figure can be cited with its release (the fact sheet does). No count: nothing about the
    cases, and the viewer reads it like any published table."""
    info = sql.Identifier(PUBLISHED, RELEASE_INFO)
    conn.execute(sql.SQL(
        "create table if not exists {} (release_no int not null, as_of_date date not null, "
        "embargo_days int not null)").format(info))
    conn.execute(sql.SQL("comment on table {} is {}").format(info, sql.Literal(
        "The release the published tables are (safeguard release): its number, the date its "
        "embargo was counted to, and the embargo in days. One row.")))
    conn.execute(sql.SQL("truncate {}").format(info))
    conn.execute(sql.SQL("insert into {} values (%s, %s, %s)").format(info),
                 [release_no, as_of, embargo])


def release(settings: Settings, as_of: date | None = None, run_by: str | None = None,
            embargo_days: int | None = None, k: int | None = None) -> ReleaseResult:
    """Make the next release (see the module's docstring), as the transformer role.
    ``as_of``: the date the embargo is counted to (default: today, UTC)."""
    as_of = as_of or datetime.now(UTC).date()
    embargo = settings.release_embargo_days if embargo_days is None else embargo_days
    k = k or min_published_count(settings)
    rules = table_rules(settings.root)
    with psycopg.connect(settings.url("transformer"), connect_timeout=10) as conn:
        conn.execute("select pg_advisory_xact_lock(%s)", [LOCK_KEY])
        missing = missing_from_candidate(conn, rules)
        if len(missing) == len(rules):
            raise NothingBuilt(f"schema {CANDIDATE} holds none of the published models: run "
                                "`safeguard transform` (dbt build) first")
        if missing:
            raise CandidateIncomplete(
                f"schema {CANDIDATE} lacks {len(missing)} of the {len(rules)} published models "
                f"({', '.join(missing)}): a release publishes all of them or none; run "
                "`safeguard transform` (a build of everything) first")
        tables = list(rules)
        previous_no, previous_as_of = _previous(conn)
        if previous_as_of is not None and as_of < previous_as_of:
            raise ReleaseFailed(f"as of {as_of} is before release {previous_no} "
                                f"({previous_as_of}): a release never goes back in time")
        candidate, embargoed = {}, {}
        for t in tables:
            candidate[t], embargoed[t] = _read_candidate(conn, rules[t], as_of, embargo)
        previous = released_rows(conn, previous_no) if previous_no else None
        plan = plan_release(rules, candidate, previous, k, embargoed)
        counts = _table_counts(plan)
        changed = [t for t in tables
                   if previous is None or _canon(plan.rows[t]) != _canon(previous.get(t, []))]
        if previous_no is not None and not changed:
            conn.rollback()
            return ReleaseResult(None, previous_no, as_of, counts)
        release_no = (previous_no or 0) + 1
        run_id = conn.execute("select run_id from ops.publication_runs where status = 'success'"
                              " order by finished_at desc limit 1").fetchone()
        conn.execute(
            "insert into ops.releases (release_no, as_of_date, embargo_days, released_at, "
            "run_by, publication_run_id, tables_changed, rows_published) "
            "values (%s, %s, %s, %s, %s, %s, %s, %s)",
            [release_no, as_of, embargo, datetime.now(UTC), run_by or run_by_default(),
             run_id[0] if run_id else None, len(changed),
             sum(len(r) for r in plan.rows.values())])
        with conn.cursor() as cur, cur.copy(
                "copy releases.release_rows (release_no, table_name, row_data) from stdin") as cp:
            for t in tables:
                for row in plan.rows[t]:
                    cp.write_row([release_no, t, Jsonb(row)])
        for t in tables:
            c = counts[t]
            conn.execute(
                "insert into ops.release_tables (release_no, table_name, rows_published, "
                "groups_new, groups_revised, groups_held, groups_embargoed, cells_changed, "
                "cells_held, held_periods) values (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
                [release_no, t, c["rows_published"], c["groups_new"], c["groups_revised"],
                 c["groups_held"], c["groups_embargoed"], c["cells_changed"], c["cells_held"],
                 c["held_periods"] or None])
            _publish_table(conn, t, release_no)
        _publish_release_info(conn, release_no, as_of, embargo)
        conn.commit()
    return ReleaseResult(release_no, previous_no, as_of, counts)


def _table_counts(plan: Plan) -> dict[str, dict[str, int | str]]:
    out: dict[str, dict[str, int | str]] = {}
    for t, outcomes in plan.outcomes.items():
        held = sorted((g[1] or "whole table", o) for g, o in outcomes.items()
                      if o.status == "held")
        out[t] = {
            "rows_published": len(plan.rows[t]),
            "groups_new": sum(o.status == "new" for o in outcomes.values()),
            "groups_revised": sum(o.status in ("revised", "dropped") for o in outcomes.values()),
            "groups_held": len(held),
            "groups_embargoed": plan.embargoed.get(t, 0),
            "cells_changed": sum(o.cells_changed for o in outcomes.values()
                                 if o.status in ("revised", "dropped")),
            "cells_held": sum(o.cells_changed for _, o in held),
            "held_periods": "; ".join(f"{p}: {', '.join(o.reasons)}" for p, o in held)[:2000],
        }
    return out


def min_published_count(settings: Settings) -> int:
    """k, as dbt has it (``vars.min_published_count`` in dbt_project.yml)."""
    project = yaml.safe_load((settings.root / "dbt" / "dbt_project.yml").read_text())
    return int(project["vars"]["min_published_count"])
