"""The advocacy fact sheet (issue 14), built from the test pipeline's published tables and read
back the way a reader meets it: as the PDF's text (``pdftotext``) and as page images
(``pdftoppm``, kept in the test's folder for a person to look at).

What must hold on the page: each headline figure is there with a footnote that names its
source - publisher and URL for a published figure, the delivery's batch and file hash for a
hotline figure, marked synthetic where the data was generated - and a withheld count prints
as "withheld", never as 0 or a blank.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from dataclasses import replace
from pathlib import Path

import psycopg
import pytest
from psycopg.rows import dict_row

from conftest import safeguard_cli
from safeguard import factsheet as fs

POPPLER = ("pdftotext", "pdftoppm")


def pdf_text(pdf: Path, layout: bool = False) -> str:
    return subprocess.run(["pdftotext", *(["-layout"] if layout else []), str(pdf), "-"],
                          check=True, capture_output=True, text=True).stdout


def squash(text: str) -> str:
    """Whitespace gone: a URL or hash the PDF broke over two lines reads whole again."""
    return re.sub(r"\s+", "", text)


def footnotes(text: str) -> dict[int, str]:
    """The numbered notes of the 'Sources and notes' section, whitespace collapsed."""
    sources = " ".join(text.split("Sources and notes", 1)[1].split())
    starts = [(int(m.group(1)), m.start(), m.end())
              for m in re.finditer(r"(?:^| )(\d{1,2})\. ", sources)]
    notes, expected = {}, 1
    kept = []
    for number, start, end in starts:  # the notes are 1, 2, 3, ...: skip a "2019. " in a note
        if number == expected:
            kept.append((number, start, end))
            expected += 1
    for i, (number, _, end) in enumerate(kept):
        stop = kept[i + 1][1] if i + 1 < len(kept) else len(sources)
        notes[number] = sources[end:stop]
    return notes


def notes_after(text: str, figure: str) -> list[int]:
    """The footnote numbers printed right after a figure, e.g. '+97.5%[1]' -> [1]."""
    found = re.search(re.escape(figure) + r"((?:\[\d+\])+)", text)
    assert found, f"{figure!r} with a footnote mark is not in the PDF's text"
    return [int(n) for n in re.findall(r"\d+", found.group(1))]


@pytest.fixture(scope="module")
def poppler() -> None:
    missing = [tool for tool in POPPLER if shutil.which(tool) is None]
    if missing:
        pytest.fail(f"{missing} missing: `make setup` installs Debian's poppler-utils")


@pytest.fixture(scope="module")
def factsheet(pipeline_done, poppler, tmp_path_factory) -> dict:
    """`safeguard factsheet`, once, as an advocacy officer runs it."""
    out = tmp_path_factory.mktemp("factsheet")
    proc = safeguard_cli("factsheet", "--out", str(out))
    html, pdf = (Path(line.split(":", 1)[1].strip()) for line in proc.stdout.splitlines()
                 if line.startswith("fact sheet ("))
    return {"out": out, "stdout": proc.stdout, "html": html, "pdf": pdf,
            "text": pdf_text(pdf)}


def viewer_rows(settings, query: str) -> list[dict]:
    with psycopg.connect(settings.url("viewer")) as conn, \
            conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(query).fetchall()


def test_writes_html_and_pdf_and_prints_both_paths(factsheet):
    assert factsheet["html"].parent == factsheet["out"] == factsheet["pdf"].parent
    assert factsheet["html"].read_text().lstrip().lower().startswith("<!doctype html>")
    assert factsheet["pdf"].read_bytes().startswith(b"%PDF")
    assert str(factsheet["pdf"]) in factsheet["stdout"] and str(factsheet["html"]) \
        in factsheet["stdout"]


def test_published_headlines_carry_publisher_and_url(factsheet, pipeline_done):
    text, notes = factsheet["text"], footnotes(factsheet["text"])
    enticement = viewer_rows(pipeline_done, """
        select h.value, f.publisher_name, f.source_name, f.source_url
        from reporting.rpt_headline_figures h, reporting.rpt_published_figures_yearly f
        where h.metric_code = 'enticement_change_2019_2020_pct' and f.publisher = 'ncmec'
          and f.series = 'cybertipline_reports' and f.category_code = 'online_enticement'
          and f.year = 2020 and f.period_type = 'year' and f.country_code is null""")[0]
    figure = f"{float(enticement['value']):+.1f}%"
    assert figure == "+97.5%"  # NCMEC's published rise, 19,174 -> 37,872
    cited = " ".join(notes[n] for n in notes_after(text, figure))
    assert enticement["publisher_name"] in cited and enticement["source_name"] in cited
    assert squash(enticement["source_url"]) in squash(cited)

    law = viewer_rows(pipeline_done, """
        select countries_with_law, countries_reviewed, source_name
        from reporting.rpt_legislation_coverage where is_overall order by edition desc""")[0]
    cited = " ".join(notes[n] for n in notes_after(
        text, f"{law['countries_with_law']} of {law['countries_reviewed']}"))
    assert law["source_name"] in cited and "icmec.org" in squash(cited)


def test_hotline_headlines_name_batch_and_file_hash_and_say_synthetic(factsheet, pipeline_done):
    text, notes = factsheet["text"], footnotes(factsheet["text"])
    total = viewer_rows(pipeline_done, "select value, is_suppressed from "
                        "reporting.rpt_headline_figures where metric_code = 'hotline_cases_total'")
    figure = fs.WITHHELD if total[0]["is_suppressed"] else f"{int(total[0]['value']):,}"
    cited = " ".join(notes[n] for n in notes_after(text, figure))
    deliveries = viewer_rows(pipeline_done, "select batch_id, file_sha256_prefix, loaded_date, "
                             "is_synthetic from reporting.rpt_source_deliveries where "
                             "source_kind in ('case_extract', 'partner_aggregates')")
    assert deliveries, "no hotline delivery is published"
    for d in deliveries:
        assert f"batch {d['batch_id'][:8]}" in cited, cited
        assert d["file_sha256_prefix"] in squash(cited), cited
        assert str(d["loaded_date"]) in cited
    assert all(d["is_synthetic"] for d in deliveries)  # the test data is generated
    assert "SYNTHETIC" in cited and "SYNTHETIC SAMPLE DATA" in text


def test_a_withheld_cell_prints_as_withheld_never_as_zero(pipeline_done, poppler, tmp_path):
    """Planted: the published rows as the viewer reads them, with one channel's enticement
    counts and the hotline total withheld, rendered and printed to PDF."""
    published = fs.read_published(pipeline_done)
    planted = dict(published.enticement_by_channel[0], cases_2019=None, cases_2020=None,
                   pct_change=None, is_suppressed=True)
    headline = [dict(r, value=None, is_suppressed=True) if r["metric_code"] ==
                "hotline_cases_total" else r for r in published.headline]
    published = replace(published, enticement_by_channel=[
        planted, *published.enticement_by_channel[1:]], headline=headline)
    context = fs.build(published, contracts=fs._contracts_meta(pipeline_done),
                       k=fs.min_published_count(pipeline_done))
    _, pdf = fs.write(context, tmp_path)
    layout = pdf_text(pdf, layout=True)
    table = layout.split("Online enticement in our data", 1)[1].split("Charts", 1)[0]
    row = next(line for line in table.splitlines() if line.strip().startswith(planted["name"]))
    assert row.split(planted["name"], 1)[1].split()[:2] == ["withheld", "withheld"] or \
        row.count("withheld") == 2, row
    assert not re.search(r"(?<![\d,.])0(?![\d,.%])", row), row
    text = pdf_text(pdf)
    why = {n: t for n, t in footnotes(text).items() if t.startswith("Withheld")}
    assert len(why) == 1 and f"fewer than {context['k']} cases" in next(iter(why.values()))
    heads = text.split("Headline figures", 1)[1].split("Hotline trends by channel", 1)[0]
    marks = [re.findall(r"\d+", m) for m in re.findall(r"withheld((?:\[\d+\])+)", heads)]
    assert any(str(next(iter(why))) in m for m in marks), heads  # withheld, and why
    real = next(r for r in fs.read_published(pipeline_done).headline
                if r["metric_code"] == "hotline_cases_total")
    assert f"{int(real['value']):,}" not in heads  # the planted total is not shown after all


def test_charts_are_inline_svg_with_alt_text_and_real_text(factsheet):
    html = factsheet["html"].read_text()
    svgs = re.findall(r"<svg .*?</svg>", html, flags=re.S)
    assert 3 <= len(svgs) <= 5
    for svg in svgs:
        assert 'role="img"' in svg and re.search(r"<title id=\"[^\"]+\">[^<]{20,}</title>", svg)
        assert "<text" in svg  # labels as text, not as drawn paths
    assert "2019" in factsheet["text"] and "Online-enticement reports to NCMEC" in factsheet["text"]


def test_nothing_is_fetched_when_the_page_is_opened(factsheet):
    html = factsheet["html"].read_text()
    for fetch in ("<script", "<link", "@import", "<img", "@font-face"):
        assert fetch not in html, fetch
    assert not re.search(r"url\((?!#)", html)  # the charts' clip paths point into the page
    assert not re.search(r"""(src|href)=["']https?:""", html)


def test_it_reads_only_the_published_tables():
    """Every query names tables of schema reporting only (and runs as the viewer, who can read
    nothing else: read_published connects with settings.url('viewer'))."""
    for name, query in fs._QUERIES.items():
        tables = re.findall(r"\b(?:from|join)\s+([a-z_][a-z_.]*)", query)
        assert tables and all(t.startswith("reporting.") or t == "groups" for t in tables), \
            (name, tables)


def test_a_year_with_nothing_published_is_one_clear_line(pipeline_done, tmp_path):
    proc = safeguard_cli("factsheet", "--year", "1990", "--out", str(tmp_path), check=False)
    assert proc.returncode == 1
    assert "Traceback" not in proc.stderr and "no hotline figure is published for 1990" \
        in proc.stderr
    assert not list(tmp_path.iterdir())


def test_pages_as_png_for_a_person(factsheet, tmp_path):
    subprocess.run(["pdftoppm", "-r", "80", "-png", str(factsheet["pdf"]),
                    str(tmp_path / "factsheet-page")], check=True)
    pages = sorted(tmp_path.glob("factsheet-page*.png"))
    assert pages and all(p.stat().st_size > 10_000 for p in pages)
    print(f"\nthe fact sheet's pages, to look at: {tmp_path}/factsheet-page-*.png "
          f"({len(pages)} pages; the PDF: {factsheet['pdf']})")


def test_the_pipeline_writes_the_fact_sheet_after_its_release(pipeline_done,
                                                              pipeline_run_output, poppler):
    """`make run` (and, on the published tables' Asset, the scheduler) runs the fact sheet
    DAG after the release: its run succeeded, the PDF it wrote into the reports folder is
    newer than the last release, holds the headline and is the one the run's output names."""
    from safeguard.dag_ids import FACTSHEET_DAG

    s = pipeline_done
    with psycopg.connect(s.url("airflow", s.airflow_db)) as conn:
        state, started, ended = conn.execute(
            "select state, start_date, end_date from dag_run where dag_id = %s "
            "order by end_date desc nulls last limit 1", [FACTSHEET_DAG]).fetchone()
    assert state == "success"
    sheets = sorted(s.reports_dir.glob("factsheet-grooming-*.pdf"))
    assert sheets, f"nothing in {s.reports_dir}"
    pdf = sheets[-1]
    assert f"fact sheet: {pdf}" in pipeline_run_output.stdout
    assert pdf.stat().st_mtime <= ended.timestamp() + 1
    with psycopg.connect(s.admin_url(s.warehouse_db)) as conn:
        # the release it followed (later tests may release again, through the CLI)
        release_no, released = conn.execute(
            "select release_no, released_at from ops.releases where released_at <= %s "
            "order by release_no desc limit 1", [started]).fetchone()
    assert pdf.stat().st_mtime >= released.timestamp()
    text = " ".join(pdf_text(pdf).split())
    assert "+97.5%" in text
    # the hotline figures' footnote names the release they were published in
    assert f"Published in release {release_no} (as of" in text
