"""The fact sheet's charts: matplotlib figures as inline SVG, each with alternative text that
says what the chart shows in words (a screen reader, and a reader of the PDF's text, get the
numbers too). Text stays text (``svg.fonttype = none``): searchable, selectable, and printed
with the page's fonts rather than drawn as paths."""

from __future__ import annotations

import io
import re
from collections import defaultdict
from dataclasses import dataclass
from html import escape
from typing import Any

import matplotlib
import matplotlib.dates

matplotlib.use("Agg")  # no display: figures are only ever written to SVG

import matplotlib.pyplot as plt  # noqa: E402

plt.rcParams.update({
    "svg.fonttype": "none",
    "font.family": "sans-serif",
    "font.size": 9,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.titlesize": 10,
})


@dataclass
class Chart:
    title: str
    alt: str
    svg: str
    notes: list[int]
    is_synthetic: bool = False


def svg_inline(figure: Any, title: str, alt: str) -> str:
    """A matplotlib figure as inline SVG with real text (fonts are the reader's, nothing
    embedded or fetched) and its alternative text as the SVG's <title> (screen readers)."""
    buffer = io.StringIO()
    figure.savefig(buffer, format="svg", bbox_inches="tight", metadata={"Date": None})
    plt.close(figure)
    svg = buffer.getvalue()
    svg = svg[svg.index("<svg"):]
    ident = "chart-" + re.sub(r"[^a-z0-9]+", "-", title.lower()).strip("-")
    svg = svg.replace("<svg ", f'<svg role="img" aria-labelledby="{ident}" ', 1)
    open_end = svg.index(">") + 1
    return svg[:open_end] + f'<title id="{ident}">{escape(alt)}</title>' + svg[open_end:]


#: colour-blind safe (Okabe-Ito)
COLOURS = ["#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#F0E442",
           "#000000"]


def enticement_chart(rows: list[dict[str, Any]], notes: list[int]) -> Chart | None:
    """NCMEC's online-enticement reports per year, as published."""
    if not rows:
        return None
    years = [r["year"] for r in rows]
    values = [int(r["figure_value"]) for r in rows]
    fig, ax = plt.subplots(figsize=(6.2, 2.6))
    bars = ax.bar([str(y) for y in years], values, color=COLOURS[0])
    ax.bar_label(bars, labels=[f"{v:,}" for v in values], padding=2)
    ax.set_ylabel(rows[0]["unit"])
    ax.yaxis.set_major_formatter(matplotlib.ticker.StrMethodFormatter("{x:,.0f}"))
    title = "Online-enticement reports to NCMEC's CyberTipline, per year"
    points = "; ".join(f"{y}: {v:,}" for y, v in zip(years, values, strict=True))
    alt = f"Bar chart: {title}. {points}. Source: NCMEC, as published."
    return Chart(title, alt, svg_inline(fig, title, alt), notes)


def legislation_chart(rows: list[dict[str, Any]], notes: list[int]) -> Chart | None:
    """Countries with dedicated grooming legislation by region, one bar per edition."""
    regional = [r for r in rows if not r["is_overall"]]
    if not regional:
        return None
    regions = sorted({r["region"] for r in regional}, reverse=True)
    editions = sorted({(r["edition"], r["edition_label"]) for r in regional})
    fig, ax = plt.subplots(figsize=(6.2, 0.45 * len(regions) * len(editions) + 0.8))
    height = 0.8 / len(editions)
    for i, (edition, label) in enumerate(editions):
        got = {r["region"]: r for r in regional if r["edition"] == edition}
        ys = [n + (i - (len(editions) - 1) / 2) * height for n in range(len(regions))]
        values = [got[g]["countries_with_law"] if g in got else 0 for g in regions]
        bars = ax.barh(ys, values, height=height, label=label, color=COLOURS[i])
        ax.bar_label(bars, labels=[f"{got[g]['countries_with_law']} of "
                                   f"{got[g]['countries_reviewed']}" if g in got else "not reviewed"
                                   for g in regions], padding=2, fontsize=8)
    ax.set_yticks(range(len(regions)), regions)
    ax.set_xlabel("countries with dedicated online-grooming legislation")
    ax.legend(frameon=False, loc="lower right")
    title = "Countries with dedicated online-grooming legislation, by region"
    alt = (f"Horizontal bar chart: {title}. " + "; ".join(
        f"{r['region']}, {r['edition_label']}: {r['countries_with_law']} of "
        f"{r['countries_reviewed']}" for r in regional)
        + ". Which countries are marked is illustrative in the sample; totals as published.")
    return Chart(title, alt, svg_inline(fig, title, alt), notes,
                 is_synthetic=any(r["is_synthetic"] for r in regional))


def monthly_chart(rows: list[dict[str, Any]], year: int, notes: list[int]) -> Chart | None:
    """Cases per month by channel over the year and the two before (published cells)."""
    shown = [r for r in rows if year - 2 <= r["year"] <= year]
    if not shown:
        return None
    series: dict[str, dict] = defaultdict(dict)
    for r in shown:
        series[r["channel_name"]][r["period_start"]] = r["cases"]
    fig, ax = plt.subplots(figsize=(6.2, 2.8))
    for i, (name, points) in enumerate(sorted(series.items())):
        months = sorted(points)
        ax.plot(months, [points[m] if points[m] is not None else float("nan") for m in months],
                label=name, color=COLOURS[i % len(COLOURS)], linewidth=1.4)
    ax.set_ylabel("cases (published cells)")
    ax.xaxis.set_major_locator(matplotlib.dates.YearLocator())
    ax.xaxis.set_major_formatter(matplotlib.dates.DateFormatter("%Y"))
    ax.legend(frameon=False, fontsize=7, ncols=3, loc="upper left", bbox_to_anchor=(0, -0.12))
    title = f"Cases per month by channel, {year - 2} to {year} (SYNTHETIC)"
    totals = {name: sum(v for v in points.values() if v is not None)
              for name, points in sorted(series.items())}
    withheld = sum(r["withheld_cells"] for r in shown)
    alt = (f"Line chart: {title}, hotline and partner hotlines together. Cases over the "
           "period by channel: " + "; ".join(f"{n}: {v:,}" for n, v in totals.items())
           + (f". {withheld} withheld cells are left out (gaps where a month has none "
              "published)." if withheld else "."))
    return Chart(title, alt, svg_inline(fig, title, alt), notes, is_synthetic=True)


def stage_chart(rows: list[dict[str, Any]], year: int, notes: list[int]) -> Chart | None:
    """How far grooming went within each channel in the year: shares of published cases."""
    shown = [r for r in rows if r["year"] == year and r["cases"] is not None]
    if not shown:
        return None
    stages = sorted({(r["stage_order"], r["grooming_stage_name"]) for r in shown})
    channels = sorted({r["channel_name"] for r in shown}, reverse=True)
    cases = {(r["channel_name"], r["stage_order"]): int(r["cases"]) for r in shown}
    totals = {c: sum(v for (ch, _), v in cases.items() if ch == c) for c in channels}
    fig, ax = plt.subplots(figsize=(6.2, 0.42 * len(channels) + 1.2))
    left = [0.0] * len(channels)
    for i, (order, name) in enumerate(stages):
        shares = [100 * cases.get((c, order), 0) / totals[c] if totals[c] else 0
                  for c in channels]
        ax.barh(channels, shares, left=left, label=name, color=COLOURS[i % len(COLOURS)])
        left = [a + b for a, b in zip(left, shares, strict=True)]
    ax.set_xlim(0, 100)
    ax.set_xlabel("share of the channel's published cases (%)")
    ax.legend(frameon=False, fontsize=7, ncols=3, loc="upper left", bbox_to_anchor=(0, -0.22))
    title = f"Highest grooming stage reached, within each channel, {year} (SYNTHETIC)"
    alt = (f"Stacked bar chart: {title}. " + "; ".join(
        f"{c}: " + ", ".join(f"{name} {100 * cases.get((c, order), 0) / totals[c]:.0f}%"
                             for order, name in stages if totals[c])
        for c in reversed(channels)) + ". Withheld cells are left out of the shares.")
    return Chart(title, alt, svg_inline(fig, title, alt), notes, is_synthetic=True)
