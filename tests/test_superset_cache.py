"""Superset for many readers (issue 15, point 4): its caches in the project's Redis, and the
dashboards' chart-data cache emptied and warmed after each release, with the new figures.

Real Superset (the session's, on the tests' Redis), a real release (``safeguard.release``) of a
change made in ``publish_candidate`` itself: a delivery and a dbt build would cost minutes and
test the pipeline, not the cache. The warm-up runs as the fact sheet DAG's task runs it
(``safeguard.tasks.warm_dashboards``); the charts are read as the Leadership user ``leader``
through the chart-data API, as a dashboard reads them.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from conftest import ROOT, republish_the_pipelines_release
from safeguard.config import Settings
from safeguard.superset.client import SupersetClient
from safeguard.superset.errors import SupersetError
from safeguard.superset.server import CACHE_REDIS_DB, DATA_CACHE_PREFIX, SupersetServer

pytest_plugins = ["safeguard.superset.testing"]

ENTICEMENT_CHART = "287dedd8-3564-4421-93cc-5d313c2070f4"  # Online enticement reports by year
#: the row of publish_candidate behind the chart's 2022 point
ENTICEMENT_2022 = ("publisher = 'ncmec' and series = 'cybertipline_reports' and category_code = "
                   "'online_enticement' and country_code is null and year = 2022")
#: what the test adds to it: k or more, so the revision gate lets the release publish it
ADDED = 1000
#: legacy charts, which a dashboard reads through /superset/explore_json/ (the world maps)
LEGACY = {"world_map"}


# --- which cache, without a server -----------------------------------------------------------
@pytest.fixture()
def bare(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Settings:
    for name in ("SAFEGUARD_SUPERSET_CACHE", "REDIS_URL", "SAFEGUARD_REPORTS"):
        monkeypatch.delenv(name, raising=False)
    return Settings(root=ROOT, home=tmp_path)


def test_the_cache_is_in_redis_when_the_projects_redis_runs_for_superset(
        bare: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    assert not SupersetServer(bare, reports=False).cache_in_redis()  # a fresh laptop: files
    assert SupersetServer(bare, reports=True).cache_in_redis()  # reports start our Redis
    monkeypatch.setenv("SAFEGUARD_SUPERSET_CACHE", "file")
    assert not SupersetServer(bare, reports=True).cache_in_redis()
    monkeypatch.setenv("SAFEGUARD_SUPERSET_CACHE", "redis")
    assert SupersetServer(bare, reports=False).cache_in_redis()
    monkeypatch.setenv("SAFEGUARD_SUPERSET_CACHE", "memcached")
    with pytest.raises(SupersetError, match="redis or file"):
        SupersetServer(bare, reports=False).cache_in_redis()
    monkeypatch.delenv("SAFEGUARD_SUPERSET_CACHE")
    monkeypatch.setenv("REDIS_URL", "redis://127.0.0.1:1/0")  # a Redis of the user's
    assert SupersetServer(bare, reports=False).cache_in_redis()


def test_emptying_the_file_cache_deletes_chart_results_only(bare: Settings) -> None:
    server = SupersetServer(bare, reports=False)
    data, metadata = (bare.home / "superset" / "cache" / k for k in ("data", "metadata"))
    for folder in (data, metadata):
        folder.mkdir(parents=True)
        for i in range(3):
            (folder / f"entry{i}").write_bytes(b"cached")
    assert server.empty_data_cache() == 3
    assert not list(data.iterdir()) and len(list(metadata.iterdir())) == 3


def test_the_warm_up_task_is_skipped_when_superset_is_not_running(
        bare: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    from airflow.sdk.exceptions import AirflowSkipException

    from safeguard.tasks import warm_dashboards

    monkeypatch.setenv("SAFEGUARD_HOME", str(bare.home))  # no Superset was started there
    with pytest.raises(AirflowSkipException, match="not running"):
        warm_dashboards()


# --- the session's Superset --------------------------------------------------------------------
@pytest.fixture()
def leader(superset_server: SupersetServer) -> Iterator[SupersetClient]:
    with SupersetClient(superset_server.url, "leader", superset_server.password("leader")) as c:
        yield c


def _leaders_charts(leader: SupersetClient) -> dict[int, tuple[str, str]]:
    """Every chart of every dashboard Leadership opens: its name and type."""
    charts = {}
    for board in leader.list_all("dashboard", ["id"]):
        for c in leader.get_json(f"/api/v1/dashboard/{board['id']}/charts")["result"]:
            charts[int(c["id"])] = (c["slice_name"], (c.get("form_data") or {}).get("viz_type"))
    return charts


def _results(leader: SupersetClient, chart_id: int, viz_type: str | None = None) -> list[dict]:
    """The chart's results as its dashboard asks for them (each with its status and whether
    it came from the cache): the chart-data API, or explore_json for a legacy chart."""
    if viz_type in LEGACY:
        r = leader.http.post("/superset/explore_json/",
                             data={"form_data": json.dumps({"slice_id": chart_id})})
        assert r.status_code == 200, (chart_id, r.status_code)
        return [r.json()]
    r = leader.http.get(f"/api/v1/chart/{chart_id}/data/")
    assert r.status_code == 200, (chart_id, r.status_code)
    return r.json()["result"]


def _enticement(leader: SupersetClient, chart_id: int) -> tuple[int, bool]:
    """The chart's 2022 value and whether it came from the cache."""
    (result,) = _results(leader, chart_id)
    (value,) = (row["reports"] for row in result["data"] if row["year"] == 2022)
    return value, bool(result["is_cached"])


def _enticement_2022_only(leader: SupersetClient, chart_id: int) -> tuple[int, bool]:
    """The same chart as a reader filtering it to 2022 sees it: another cache key."""
    context = json.loads(leader.get_json(f"/api/v1/chart/{chart_id}")["result"]
                         ["query_context"])
    context["queries"][0]["filters"].append({"col": "year", "op": "IN", "val": [2022]})
    r = leader.http.post("/api/v1/chart/data", json=context)
    assert r.status_code == 200, r.status_code
    (result,) = r.json()["result"]
    (row,) = result["data"]
    return row["reports"], bool(result["is_cached"])  # None when just computed


@pytest.mark.superset
def test_the_caches_are_in_the_projects_redis(superset_server: SupersetServer,
                                              leader: SupersetClient) -> None:
    """The session's Superset runs with reports, hence our Redis: a chart read twice comes from
    the cache the second time, and its entry is in Redis."""
    import redis

    assert superset_server.cache_in_redis()
    chart_id = next(i for i, (_, viz) in _leaders_charts(leader).items()
                    if viz not in LEGACY)
    _results(leader, chart_id)
    assert all(r["is_cached"] for r in _results(leader, chart_id))
    url = superset_server.report_workers.redis.url(CACHE_REDIS_DB)
    with redis.Redis.from_url(url) as client:
        assert next(client.scan_iter(match=f"{DATA_CACHE_PREFIX}*"), None) is not None


@pytest.mark.superset
def test_after_a_release_the_charts_answer_from_the_cache_with_its_figures(
        superset_server: SupersetServer, leader: SupersetClient, sg_settings: Settings) -> None:
    from safeguard.release import release
    from safeguard.tasks import warm_dashboards

    s = sg_settings
    ids = {str(r["uuid"]): r["id"] for r in leader.list_all("chart", ["id", "uuid"])}
    chart = ids[ENTICEMENT_CHART]
    before, _ = _enticement(leader, chart)  # both views cached with the pipeline's release
    assert _enticement_2022_only(leader, chart)[0] == before
    assert _enticement_2022_only(leader, chart) == (before, True)
    admin = psycopg.connect(s.admin_url(s.warehouse_db), autocommit=True)
    with admin:
        (first_no,) = admin.execute("select max(release_no) from ops.releases").fetchone()
        changed = admin.execute("update publish_candidate.rpt_published_figures_yearly set "
                                f"figure_value = figure_value + {ADDED} where {ENTICEMENT_2022}")
        assert changed.rowcount == 1
        try:
            assert release(s, run_by="test-superset-cache").release_no == first_no + 1
            warmed = warm_dashboards()  # as the fact sheet DAG runs it, on the release's Asset

            assert warmed["emptied"] >= 2 and warmed["charts"] >= len(_leaders_charts(leader))
            # every chart Leadership opens is in the cache already, with the release's figures
            for chart_id, (name, viz_type) in _leaders_charts(leader).items():
                results = _results(leader, chart_id, viz_type)
                assert all(r["status"] == "success" and r["is_cached"] for r in results), name
            assert _enticement(leader, chart) == (before + ADDED, True)
            # a filtered view was not warmed, but its old result is gone: computed afresh
            assert _enticement_2022_only(leader, chart) == (before + ADDED, False)
        finally:
            admin.execute("update publish_candidate.rpt_published_figures_yearly set "
                          f"figure_value = figure_value - {ADDED} where {ENTICEMENT_2022}")
            republish_the_pipelines_release(s, first_no)
            warm_dashboards()  # the tests that follow read the pipeline's figures again
    assert _enticement(leader, chart) == (before, True)
