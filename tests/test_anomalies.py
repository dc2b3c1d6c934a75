"""Anomaly flags (issue 14, point 3): a point far from its series' pattern is flagged "check
this" where people look - in ``reporting``, on the dashboard and in ``safeguard status`` - from
published values only, and no figure changes.

Spikes are planted as real deliveries through the pipeline (``safeguard ingest`` then
``safeguard transform``): a partner hotline's monthly aggregate that multiplies one channel's
cases in one month, and a publisher's table of two yearly series, one with a spike and one
without. The flag logic on a series built to order is dbt's unit test
(``a_spike_is_flagged_and_a_steady_series_is_not``). The deliveries are removed and the
published layer rebuilt afterwards, so the tests that share the session's warehouse see only
the pipeline's own data.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from decimal import Decimal

import psycopg
import pytest
from psycopg.rows import dict_row

from conftest import ROOT, _remove_batches_since, safeguard_cli, transform_after_loads
from safeguard.superset.client import SupersetClient

pytest_plugins = ["safeguard.superset.testing"]

#: the planted monthly spike: a channel's month in the last year of the demo data, on a country
#: whose cell is published: a revision that would move a withheld cell to published is held
#: back by the release gate (safeguard.release), so the spike would never reach reporting
SPIKED_CHANNEL, SPIKED_CHANNEL_NAME, SPIKED_MONTH = "social_media", "Social media", "2024-09"
SPIKED_SERIES = "cases_monthly_by_channel:" + SPIKED_CHANNEL
PARTNER_HEADER = "month,country,channel,exploitation_type,grooming_stage,reporter_type,cases\n"
#: the chart that lists the flags of the monthly channel series on "Grooming stages and channels"
POINTS_TO_CHECK_CHART = "Points to check: cases per month by channel (SYNTHETIC)"

YEARLY_CONTRACT = """\
name: testpub_anomaly
kind: published_figures
publisher: testpub
series: anomaly_check
source_name: TESTPUB yearly series (test data)
is_synthetic: true
columns:
  year: {from: Year, type: year}
  category:
    from: Type
    values: {Luring: luring, Imagery: imagery}
  value: {from: Reports, type: count}
grain: [year, category]
on_row_failure: reject_batch
"""
#: luring jumps in 2019 and comes back; imagery rises steadily with a little noise
YEARLY_TABLE = ("Year,Type,Reports\n" + "".join(
    f"{year},Luring,{luring}\n{year},Imagery,{imagery}\n" for year, luring, imagery in (
        (2016, 100, 100), (2017, 112, 108), (2018, 119, 121), (2019, 400, 130),
        (2020, 141, 139), (2021, 148, 152))))
YEARLY_SERIES = "published_figures_yearly:testpub:anomaly_check:{}:-:-:-:-:-"


def _flags(settings, series_key: str | None = None) -> list[dict]:
    """rpt_anomaly_flags as dashboards read it: the viewer role."""
    with psycopg.connect(settings.url("viewer")) as conn, \
            conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(
            "select * from reporting.rpt_anomaly_flags where %(key)s::text is null"
            " or series_key = %(key)s order by series_key, period_start",
            {"key": series_key}).fetchall()


@pytest.fixture(scope="module")
def planted(pipeline_done, tmp_path_factory) -> Iterator[list[dict]]:
    """The two deliveries, loaded and published; yields the flags as they were before. Then
    removes the deliveries' batches and rebuilds, as ``scratch`` does for one test."""
    s = pipeline_done
    work = tmp_path_factory.mktemp("anomalies")
    contracts = work / "contracts"
    shutil.copytree(ROOT / "contracts", contracts)
    (contracts / "testpub_anomaly.yml").write_text(YEARLY_CONTRACT)
    previous = os.environ.get("SAFEGUARD_CONTRACTS_DIR")
    os.environ["SAFEGUARD_CONTRACTS_DIR"] = str(contracts)
    url = s.admin_url(s.warehouse_db)
    with psycopg.connect(url, autocommit=True) as conn:
        t0 = conn.execute("select clock_timestamp()").fetchone()[0]
    before = _flags(s)
    try:
        usual = sorted(p["value"] for p in before if p["series_key"] == SPIKED_SERIES
                       and p["value"] is not None)
        assert len(usual) > 24, usual  # the channel's series is published month by month
        spike = int(usual[len(usual) // 2] * 5) + 200  # five times a usual month, on top
        partner = work / f"partner_monthly_{SPIKED_MONTH}.csv"
        # a partner's month is delivered whole (the latest delivery of a month replaces it):
        # the sample's rows of the month again, with the spike on top of one of them, so that
        # only the spiked cell changes and the release publishes the revision (a month that
        # lost its other cells would move them from withheld to absent: held back)
        sample = next((s.drop_root / "sample_partner_aggregates").glob("partner_*.csv"))
        month = [line for line in sample.read_text().splitlines()
                 if line.startswith(f"{SPIKED_MONTH},")]
        spiked = next(i for i, line in enumerate(month)
                      if line.startswith(f"{SPIKED_MONTH},DE,{SPIKED_CHANNEL},"))
        *cells, cases = month[spiked].split(",")
        month[spiked] = ",".join([*cells, str(int(cases) + spike)])
        partner.write_text(PARTNER_HEADER + "".join(f"{line}\n" for line in month))
        yearly = work / "testpub_anomaly_2016_2021.csv"
        yearly.write_text(YEARLY_TABLE)
        for source, path in (("sample_partner_aggregates", partner),
                             ("testpub_anomaly", yearly)):
            out = safeguard_cli("ingest", "--source", source, str(path)).stdout
            assert out.startswith("loaded:"), out
        # as the transform DAG after the two loads; the dashboard's test asks Superset for the
        # chart's data past its cache (force)
        transform_after_loads("partner_aggregates", "published_figures")
        yield before
    finally:
        with psycopg.connect(url, autocommit=True) as warehouse:
            _remove_batches_since(warehouse, t0)
        if previous is None:
            os.environ.pop("SAFEGUARD_CONTRACTS_DIR", None)
        else:
            os.environ["SAFEGUARD_CONTRACTS_DIR"] = previous
        # warmed: the pipeline's figures back in Superset's cache for the tests that follow
        # (and the one `safeguard transform` of the suite that warms it, with Superset up)
        safeguard_cli("transform")


def test_a_planted_spike_is_flagged_in_reporting(pipeline_done, planted):
    before = {(p["series_key"], p["period_label"]): p for p in planted}
    monthly = {p["period_label"]: p for p in _flags(pipeline_done, SPIKED_SERIES)}
    point = monthly[SPIKED_MONTH]
    assert not before[(SPIKED_SERIES, SPIKED_MONTH)]["is_flagged"]
    assert point["is_flagged"] and point["robust_z"] > Decimal("3.5"), point
    assert point["value"] > point["expected_value"] * 3, point
    assert "robust z" in point["method"] and point["is_synthetic"]
    # a flag changes no figure: the month's cells in rpt_cases_monthly add up to the value
    with psycopg.connect(pipeline_done.url("viewer")) as conn:
        published = conn.execute(
            "select sum(cases) from reporting.rpt_cases_monthly where channel_code = %s"
            " and to_char(period_start, 'YYYY-MM') = %s",
            [SPIKED_CHANNEL, SPIKED_MONTH]).fetchone()[0]
    assert published == point["value"]

    spiked = {p["period_label"]: p for p in _flags(pipeline_done, YEARLY_SERIES.format("luring"))}
    steady = _flags(pipeline_done, YEARLY_SERIES.format("imagery"))
    assert [y for y, p in spiked.items() if p["is_flagged"]] == ["2019"], spiked
    assert spiked["2019"]["expected_value"] < 200, spiked["2019"]
    assert len(steady) == 6 and all(p["robust_z"] is not None for p in steady), steady
    assert not [p for p in steady if p["is_flagged"]], steady  # the unspiked series: no flag


def test_withheld_points_are_never_flagged(pipeline_done, planted):
    """A point with no published cell is withheld: no value, no score, no flag (a flag there
    would say something about a small count)."""
    flags = _flags(pipeline_done)
    withheld = [p for p in flags if p["is_suppressed"]]
    assert all(p["value"] is None and p["robust_z"] is None and not p["is_flagged"]
               for p in withheld), withheld[:3]
    assert all(p["value"] is not None for p in flags if p["is_flagged"])


def test_status_lists_the_spike_and_still_exits_on_the_pipeline_alone(pipeline_done, planted):
    before = safeguard_cli("status", check=False)
    out = before.stdout
    assert "points to check" in out, out
    listed = [line for line in out.splitlines() if line.startswith("?")]
    assert any(f"Cases per month, {SPIKED_CHANNEL_NAME} (hotline and partners)  {SPIKED_MONTH}"
               in line for line in listed), out
    assert any("luring" in line.lower() and " 2019 " in line for line in listed), out
    assert not any("imagery" in line.lower() for line in listed), out
    # the flags are not failures: the exit code says whether the pipeline needs attention
    assert before.returncode in (0, 1)
    needs_attention = any(line.startswith("!") for line in out.splitlines())
    assert needs_attention == (before.returncode == 1), out


def test_the_dashboard_shows_the_flag(pipeline_done, planted,
                                      superset_client: SupersetClient):
    """The chart of the flags beside "Cases per month by channel", through Superset's chart
    data API as the dashboard asks for it (its saved query, not from the cache)."""
    charts = superset_client.list_all("chart", ["id", "slice_name"])
    (chart_id,) = [c["id"] for c in charts if c["slice_name"] == POINTS_TO_CHECK_CHART]
    payload = superset_client.get_json(f"/api/v1/chart/{chart_id}/data/",
                                       params={"force": "true"})
    (result,) = payload["result"]
    assert result["status"] == "success", result.get("error")
    rows = result["data"]
    assert rows, "no flag on the chart"
    spiked = [r for r in rows if SPIKED_CHANNEL_NAME in r["series_name"]
              and SPIKED_MONTH in str(r["period_label"])]
    assert spiked and float(spiked[0]["robust_z"]) > 3.5, rows
    # the chart lists flags only, of the monthly channel series only
    assert all(r["series_name"].startswith("Cases per month, ") for r in rows), rows
    flagged = {(p["series_name"], p["period_label"]) for p in _flags(pipeline_done)
               if p["is_flagged"] and p["series_kind"] == "cases_monthly_by_channel"}
    assert {(r["series_name"], r["period_label"]) for r in rows} == flagged
