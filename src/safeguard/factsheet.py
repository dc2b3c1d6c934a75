"""The advocacy fact sheet: headline figures, a few charts and their sources, as HTML and PDF.

An advocacy officer quotes figures in print, far from the dashboards that hold them, so every
figure on the page carries its source with it: publisher, report and URL for a published
figure; for a figure from hotline data the deliveries it stands on (batch, the file's SHA-256
prefix, the day it was loaded), and "synthetic" where that data was generated. A withheld
count prints as "withheld" with the reason, never as 0 or a blank, which a reader would take
for a count.

It reads the published layer only (schema ``reporting``), as the viewer role: a fact sheet is
publication, so it can say nothing the dashboards do not. Sums shown here are sums of
published cells; cells withheld are left out and the figure says so.
"""

from __future__ import annotations

import subprocess
import tempfile
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

import yaml

from safeguard.config import HEADLESS_CHROMIUM_ARGS, Settings, chromium_path

#: the themes a fact sheet can be about (one so far: online grooming, the product's focus)
THEMES = {"grooming": "Online grooming of children"}

#: the published series the grooming theme quotes (rpt_published_figures_yearly's identity)
ENTICEMENT = {"publisher": "ncmec", "series": "cybertipline_reports",
              "category_code": "online_enticement"}

WITHHELD = "withheld"


class FactSheetError(RuntimeError):
    """What stopped the fact sheet, in one line for the user."""


class NothingPublished(FactSheetError):
    """No hotline count is published yet (too few cases, all withheld): no fact sheet."""


# --- what the published layer says --------------------------------------------------------

@dataclass
class Published:
    """The rows of ``reporting`` the fact sheet uses, as the viewer reads them. Tests may build
    one by hand (e.g. with a withheld cell planted) and render it."""

    headline: list[dict[str, Any]]
    figures: list[dict[str, Any]]  # world-wide yearly published figures
    legislation: list[dict[str, Any]]
    cases_monthly: list[dict[str, Any]]  # per month and channel: sums of published cells
    stages: list[dict[str, Any]]  # per year, channel and stage: sums of published cells
    enticement_by_channel: list[dict[str, Any]]
    deliveries: list[dict[str, Any]]
    # the release these rows are (reporting.release_info: its number and as-of date)
    release: list[dict[str, Any]] = field(default_factory=list)


_QUERIES = {
    "headline": """
        select metric_code, metric_name, value, unit, period_label, source_name,
               is_synthetic, is_suppressed
        from reporting.rpt_headline_figures order by sort_order""",
    "figures": """
        select publisher, publisher_name, series, series_name, category_code, category_name,
               year, figure_value, previous_value, yoy_change_pct, unit, source_name,
               source_url, is_synthetic, has_warning, warning_note
        from reporting.rpt_published_figures_yearly
        where period_type = 'year' and not is_total and country_code is null
          and region is null and age_group is null and sex is null and channel_code is null
        order by publisher, series, category_code, year""",
    "legislation": """
        select edition, edition_label, region, is_overall, countries_reviewed,
               countries_with_law, share_with_law_pct, is_synthetic, source_name
        from reporting.rpt_legislation_coverage order by edition, is_overall, region""",
    # a group of countries (month, region, channel, source) is withheld as a whole when none
    # of its rows is published (no remainder row either): the month's sum then leaves it out
    "cases_monthly": """
        with groups as (
            select period_start, year, region, channel_code, channel_name, source_kind,
                   is_synthetic, sum(cases) as cases, count(cases) = 0 as is_withheld
            from reporting.rpt_cases_monthly
            group by 1, 2, 3, 4, 5, 6, 7)
        select period_start, year, channel_code, channel_name,
               sum(cases) as cases,
               count(*) filter (where is_withheld) as withheld_cells,
               bool_or(is_synthetic) as is_synthetic
        from groups group by 1, 2, 3, 4 order by 1, 3""",
    "stages": """
        select year, channel_code, channel_name, grooming_stage_code, grooming_stage_name,
               stage_order, sum(cases) as cases,
               count(*) filter (where cases is null) as withheld_cells,
               bool_or(is_synthetic) as is_synthetic
        from reporting.rpt_stage_by_channel_yearly
        group by 1, 2, 3, 4, 5, 6 order by 1, 3, 6""",
    "enticement_by_channel": """
        select code, name, sort_order, cases_2019, cases_2020, pct_change, is_suppressed,
               is_synthetic
        from reporting.rpt_enticement_change_2019_2020
        where breakdown = 'channel' order by sort_order, code""",
    "deliveries": """
        select batch_id, source_name, source_kind, file_name, file_sha256_prefix,
               loaded_date, is_synthetic
        from reporting.rpt_source_deliveries order by source_kind, loaded_date, batch_id""",
    "release": "select release_no, as_of_date from reporting.release_info",
}


def read_published(s: Settings) -> Published:
    """The published tables, read as the viewer (who can read ``reporting`` and nothing
    else: a query that strayed would fail, not leak)."""
    import psycopg
    from psycopg.rows import dict_row

    try:
        with psycopg.connect(s.url("viewer"), connect_timeout=10) as conn, \
                conn.cursor(row_factory=dict_row) as cur:
            return Published(**{name: cur.execute(query).fetchall()
                                for name, query in _QUERIES.items()})
    except psycopg.errors.UndefinedTable as e:
        raise FactSheetError(f"the published layer lacks a table ({e.diag.message_primary}): "
                             "run the pipeline first (`safeguard run`)") from None
    except psycopg.OperationalError as e:
        host, port = s.server_address()
        raise FactSheetError(f"cannot read the published tables at {host}:{port}: "
                             f"{str(e).strip().splitlines()[-1]} (is the database up? "
                             "`safeguard db up`)") from None


# --- the page: figures with their footnotes -------------------------------------------------

@dataclass
class Note:
    number: int
    text: str
    url: str | None = None


@dataclass
class Notes:
    """Footnotes, numbered in order of first use; the same text is one note."""

    items: list[Note] = field(default_factory=list)

    def add(self, text: str, url: str | None = None) -> int:
        for note in self.items:
            if note.text == text and note.url == url:
                return note.number
        self.items.append(Note(len(self.items) + 1, text, url))
        return len(self.items)


def count_text(value: Any, withheld: bool = False) -> str:
    """A count as printed: withheld is a word, never 0 or a blank."""
    if withheld or value is None:
        return WITHHELD
    return f"{int(value):,}"


def pct_text(value: Any) -> str:
    return "not published" if value is None else f"{float(value):+.1f}%"


def min_published_count(s: Settings) -> int:
    """k, the publication threshold the dbt project applies (var ``min_published_count``)."""
    project = yaml.safe_load((s.root / "dbt" / "dbt_project.yml").read_text())
    return int(project.get("vars", {}).get("min_published_count", 10))


def default_year(published: Published) -> int:
    """The latest year with a published count of hotline trends."""
    years = [r["year"] for r in published.stages if r["cases"] is not None]
    years += [r["year"] for r in published.cases_monthly if r["cases"] is not None]
    if not years:
        raise NothingPublished("no hotline count is published yet (none delivered, or all "
                               "withheld as small): run the pipeline first (`safeguard run`)")
    return max(years)


def _contracts_meta(s: Settings) -> dict[str, dict[str, Any]]:
    """Source metadata the contracts carry (publisher, report name, URL), by contract name."""
    from safeguard.contracts import all_contracts

    return {name: {**c.constants, "kind": c.kind.name, "description": c.description}
            for name, c in all_contracts(s).items()}


def _delivery_note(deliveries: list[dict[str, Any]], contracts: dict[str, dict[str, Any]],
                   kinds: tuple[str, ...], release: list[dict[str, Any]] = ()) -> str:
    """The deliveries a hotline figure stands on, in words a reader can check a file against."""
    parts = []
    synthetic = False
    for d in deliveries:
        if d["source_kind"] not in kinds:
            continue
        meta = contracts.get(d["source_name"], {})
        who = meta.get("source_organisation") or d["source_name"]
        synthetic |= bool(d["is_synthetic"])
        parts.append(f"{who}: delivery {d['source_name']}, batch {d['batch_id'][:8]}, "
                     f"file SHA-256 {d['file_sha256_prefix']}, loaded {d['loaded_date']}"
                     + (" (SYNTHETIC)" if d["is_synthetic"] else ""))
    if not parts:
        return "Hotline data: no delivery is published yet."
    lead = ("SYNTHETIC sample data, generated for the demonstration: not real cases, do not "
            "cite. " if synthetic else "")
    released = "".join(f" Published in release {r['release_no']} (as of {r['as_of_date']})."
                       for r in release[:1])
    return lead + "; ".join(parts) + "." + released


def _published_note(notes: Notes, row: dict[str, Any] | None, fallback: str) -> int:
    if row is None:
        return notes.add(fallback)
    return notes.add(f"{row['publisher_name']}, {row['source_name']}"
                     + (" (illustrative sample)" if row.get("is_synthetic") else ""),
                     row.get("source_url"))


@dataclass
class Headline:
    value: str
    label: str
    notes: list[int]
    is_synthetic: bool = False
    is_withheld: bool = False


def build(published: Published, *, theme: str = "grooming", year: int | None = None,
          contracts: dict[str, dict[str, Any]] | None = None, k: int = 10) -> dict[str, Any]:
    """Everything the template shows, with each figure's footnotes."""
    if theme not in THEMES:
        raise FactSheetError(f"unknown theme {theme!r}; known: {', '.join(THEMES)}")
    contracts = contracts or {}
    default_year(published)  # anything published at all (else NothingPublished)
    # the year of the monthly trends: the stage table may publish a year whose months all
    # stay withheld (a small sample), so the default is the latest year with a monthly count
    years = {r["year"] for r in published.cases_monthly if r["cases"] is not None}
    if not years:
        raise NothingPublished("no monthly hotline count is published yet (all withheld as "
                               "small): no fact sheet")
    year = year or max(years)
    if year not in years:
        raise FactSheetError(f"no hotline figure is published for {year}; years with published "
                             f"data: {min(years)} to {max(years)}")
    notes = Notes()  # numbered in the order the page first cites them
    headlines: list[Headline] = []

    # published: NCMEC's online-enticement reports, 2019 -> 2020
    enticement = [r for r in published.figures
                  if all(r[key] == value for key, value in ENTICEMENT.items())]
    by_year = {r["year"]: r for r in enticement}
    row_2020 = by_year.get(2020)
    ncmec_note = _published_note(notes, row_2020, "NCMEC CyberTipline data: not loaded")
    metric = {r["metric_code"]: r for r in published.headline}
    # registered in the order the page first cites them
    legislation_meta = next((m for m in contracts.values() if m.get("kind") == "legislation"),
                            {})
    overall = [r for r in published.legislation if r["is_overall"]]
    legislation_note = notes.add(
        next((r["source_name"] for r in overall), "ICMEC global review")
        + f", published by {legislation_meta.get('publisher', 'ICMEC')}",
        legislation_meta.get("source_url"))
    hotline_note = notes.add(_delivery_note(published.deliveries, contracts,
                                            ("case_extract", "partner_aggregates"),
                                            published.release))
    withheld_note = notes.add(
        f"Withheld: fewer than {k} cases, or withheld with such a count so that it cannot be "
        "worked out from a total. Never a zero. Sums on this page add up published cells only.")
    change = metric.get("enticement_change_2019_2020_pct", {}).get("value")
    if row_2020 is not None and change is not None:
        headlines.append(Headline(
            pct_text(change),
            f"Reports of online enticement of children to NCMEC's CyberTipline, 2019 to 2020 "
            f"({count_text(row_2020['previous_value'])} to {count_text(row_2020['figure_value'])})",
            [ncmec_note]))

    # published: countries with dedicated online-grooming legislation, per edition (ICMEC)
    if overall:
        latest, first = overall[-1], overall[0]
        headlines.append(Headline(
            f"{latest['countries_with_law']} of {latest['countries_reviewed']}",
            f"Countries with dedicated online-grooming legislation, {latest['edition_label']}"
            + (f" (up from {first['countries_with_law']} in the {first['edition_label']})"
               if first is not latest else ""), [legislation_note]))

    # hotline: cases of the year and the year before, by channel
    channels = _channel_years(published, year)
    this_year = _sum_cells(r for r in published.cases_monthly if r["year"] == year)
    last_year = _sum_cells(r for r in published.cases_monthly if r["year"] == year - 1)
    months = sorted(r["period_start"] for r in published.cases_monthly
                    if r["year"] == year and r["cases"] is not None)
    period = _months_label(year, months)
    headlines.append(Headline(
        count_text(this_year["cases"], this_year["cases"] is None),
        f"Cases reported to our hotline and partner hotlines, {period}"
        + (f" ({_change(this_year, last_year)} on {year - 1})"
           if _change(this_year, last_year)[0] in "+-" else ""),
        [hotline_note] + ([withheld_note] if this_year["withheld"] else []),
        is_synthetic=this_year["is_synthetic"], is_withheld=this_year["cases"] is None))
    top = max((c for c in channels if c["cases"] is not None), key=lambda c: c["cases"],
              default=None)
    if top and this_year["cases"]:
        headlines.append(Headline(
            f"{100 * top['cases'] / this_year['cases']:.0f}%",
            f"of those cases came through {top['channel_name'].lower()}, the largest channel "
            f"in {year}", [hotline_note], is_synthetic=top["is_synthetic"]))
    stage_rows = _stage_totals(published, year)
    for m in ("hotline_cases_total", "median_hours_to_triage"):
        if m in metric:
            r = metric[m]
            value = (WITHHELD if r["is_suppressed"] or r["value"] is None
                     else f"{float(r['value']):,.0f}" if r["unit"] == "cases"
                     else f"{float(r['value']):,.1f} {r['unit']}")
            headlines.append(Headline(
                value, f"{r['metric_name']}, {r['period_label']}",
                [hotline_note] + ([withheld_note] if value == WITHHELD else []),
                is_synthetic=r["is_synthetic"], is_withheld=value == WITHHELD))

    from safeguard import factsheet_charts as charts

    chart_list = [c for c in (
        charts.enticement_chart(enticement, [ncmec_note]),
        charts.legislation_chart(published.legislation, [legislation_note]),
        charts.monthly_chart(published.cases_monthly, year, [hotline_note, withheld_note]),
        charts.stage_chart(published.stages, year, [hotline_note, withheld_note]),
    ) if c is not None]

    enticement_rows = [{
        "name": r["name"],
        "cases_2019": count_text(r["cases_2019"]),
        "cases_2020": count_text(r["cases_2020"]),
        "change": pct_text(r["pct_change"]),
        "withheld": r["cases_2019"] is None or r["cases_2020"] is None,
    } for r in published.enticement_by_channel]
    synthetic = any(d["is_synthetic"] for d in published.deliveries
                    if d["source_kind"] in ("case_extract", "partner_aggregates"))
    return {
        "theme": theme, "theme_title": THEMES[theme], "year": year, "period": period, "k": k,
        "headlines": headlines, "charts": chart_list, "channels": channels,
        "stages": stage_rows, "enticement_rows": enticement_rows,
        "notes": notes.items, "hotline_note": hotline_note, "withheld_note": withheld_note,
        "ncmec_note": ncmec_note, "hotline_synthetic": synthetic,
        "legislation_illustrative": any(r["is_synthetic"] for r in published.legislation),
        "legislation_note": legislation_note,
        "deliveries": published.deliveries,
    }


def _sum_cells(rows) -> dict[str, Any]:
    """A sum of published cells: None (withheld) when every cell was withheld."""
    total, published, withheld, synthetic = 0, 0, 0, False
    for r in rows:
        synthetic |= bool(r["is_synthetic"])
        withheld += r["withheld_cells"]
        if r["cases"] is not None:
            total += int(r["cases"])
            published += 1
    return {"cases": total if published else None, "withheld": withheld,
            "is_synthetic": synthetic}


def _change(now: dict[str, Any], before: dict[str, Any]) -> str:
    if now["cases"] is None or not before["cases"] or now["withheld"] or before["withheld"]:
        return "not computed: cells withheld"
    return f"{100 * (now['cases'] - before['cases']) / before['cases']:+.1f}%"


def _months_label(year: int, months: list[date]) -> str:
    if not months or (months[0].month == 1 and months[-1].month == 12):
        return str(year)
    return f"{year} ({months[0]:%B} to {months[-1]:%B})"


def _channel_years(published: Published, year: int) -> list[dict[str, Any]]:
    grouped: dict[tuple[str, str], dict[int, list]] = defaultdict(lambda: defaultdict(list))
    for r in published.cases_monthly:
        if r["year"] in (year - 1, year):
            grouped[(r["channel_code"], r["channel_name"])][r["year"]].append(r)
    out = []
    for (code, name), years in sorted(grouped.items(), key=lambda kv: kv[0][1]):
        now, before = _sum_cells(years[year]), _sum_cells(years[year - 1])
        out.append({"channel_code": code, "channel_name": name,
                    "cases": now["cases"], "cases_text": count_text(now["cases"]),
                    "previous_text": count_text(before["cases"]),
                    "change": _change(now, before),
                    "partial": bool(now["withheld"]) and now["cases"] is not None,
                    "previous_partial": bool(before["withheld"]) and before["cases"] is not None,
                    "is_synthetic": now["is_synthetic"]})
    return out


def _stage_totals(published: Published, year: int) -> list[dict[str, Any]]:
    grouped: dict[tuple[int, str], list] = defaultdict(list)
    for r in published.stages:
        if r["year"] == year:
            grouped[(r["stage_order"], r["grooming_stage_name"])].append(r)
    sums = {key: _sum_cells(rows) for key, rows in grouped.items()}
    total = sum(v["cases"] or 0 for v in sums.values())
    return [{"stage_name": name, "cases_text": count_text(v["cases"]),
             "share": (f"{100 * v['cases'] / total:.1f}%" if v["cases"] and total
                       else WITHHELD if v["cases"] is None else "0.0%"),
             "partial": bool(v["withheld"]) and v["cases"] is not None,
             "withheld": v["cases"] is None}
            for (_, name), v in sorted(sums.items())]


# --- HTML and PDF ---------------------------------------------------------------------------

def render_html(context: dict[str, Any]) -> str:
    from jinja2 import Environment, PackageLoader, select_autoescape

    jinja = Environment(loader=PackageLoader("safeguard", "templates"),
                        autoescape=select_autoescape(["html", "j2"]),
                        trim_blocks=True, lstrip_blocks=True)
    return jinja.get_template("factsheet.html.j2").render(**context)


def print_pdf(html: Path, pdf: Path, timeout: int = 120) -> None:
    """Print the HTML with headless Chromium (Debian's; no network: every asset is inline)."""
    browser = chromium_path()
    with tempfile.TemporaryDirectory(prefix="safeguard-chromium-") as profile:
        try:
            proc = subprocess.run(
                [browser, *HEADLESS_CHROMIUM_ARGS, f"--user-data-dir={profile}",
                 f"--print-to-pdf={pdf}", "--no-pdf-header-footer", html.resolve().as_uri()],
                capture_output=True, text=True, timeout=timeout)
        except FileNotFoundError:
            raise FactSheetError(f"no Chromium at {browser}: `make setup` installs Debian's "
                                 "chromium, or set SAFEGUARD_CHROMIUM") from None
        except subprocess.TimeoutExpired:
            raise FactSheetError(f"Chromium did not print {html} within {timeout} s") from None
    if proc.returncode != 0 or not pdf.exists() or pdf.stat().st_size == 0:
        last = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        raise FactSheetError(f"Chromium could not print {html} to PDF "
                             f"(exit {proc.returncode}): {last}")


def write(context: dict[str, Any], out: Path) -> tuple[Path, Path]:
    """Write ``factsheet-<theme>-<year>.html`` and ``.pdf`` into ``out``: under temporary
    names first, renamed when both are complete, so a reader (or a second writer: the DAG and
    the CLI) never sees half a fact sheet, and a failed print leaves the previous one."""
    out.mkdir(parents=True, exist_ok=True)
    stem = f"factsheet-{context['theme']}-{context['year']}"
    html, pdf = out / f"{stem}.html", out / f"{stem}.pdf"
    with tempfile.TemporaryDirectory(prefix=f".{stem}-", dir=out) as tmp:
        new_html, new_pdf = Path(tmp) / html.name, Path(tmp) / pdf.name
        new_html.write_text(render_html(context), encoding="utf-8")
        print_pdf(new_html, new_pdf)
        new_html.replace(html)
        new_pdf.replace(pdf)
    return html, pdf


def make_factsheet(s: Settings, theme: str = "grooming", year: int | None = None,
                   out: Path | None = None) -> tuple[Path, Path]:
    """The fact sheet from the published layer: (HTML path, PDF path)."""
    published = read_published(s)
    context = build(published, theme=theme, year=year, contracts=_contracts_meta(s),
                    k=min_published_count(s))
    return write(context, out or s.reports_dir)
