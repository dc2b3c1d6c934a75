"""The dashboards' chart-data cache after a release: emptied, then filled with the new figures.

A release changes the published tables under the same SQL, so a chart's cache key stays the
same and its cached result would show the previous release until it expired (a day). After each
release (the fact sheet DAG, on the published tables' Asset; ``safeguard release``) the
chart-data cache is emptied, filtered views' entries included, and every chart of every
published dashboard is computed again through Superset's own warm-up
(``PUT /api/v1/chart/warm_up_cache``: the chart's saved query, forced past the cache, its
result stored under the key a dashboard asks for: the chart-data API's, or for a legacy chart,
a world map, explore_json's), so the first readers after a release get the
new figures from the cache rather than all at once from the database. Superset not running:
nothing to do (its start empties the cache). Messages name charts and statuses, never a value.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from safeguard.config import Settings
from safeguard.superset.client import SupersetClient
from safeguard.superset.errors import SupersetError
from safeguard.superset.server import SupersetServer


class NothingToWarm(SupersetError):
    """Superset does not run for this home, or shows no published dashboard yet."""


@dataclass
class Warmed:
    """What a warm-up did: cached results deleted, charts computed, and the ones that failed
    (``chart <id> <name>: <status>``)."""

    emptied: int
    charts: list[int] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)

    def summary(self) -> str:
        line = (f"Superset's chart-data cache: {self.emptied} cached results deleted, "
                f"{len(self.charts) - len(self.failed)} of {len(self.charts)} charts of the "
                "published dashboards computed again")
        return "\n".join([line, *(f"  failed: {f}" for f in self.failed)])


def published_charts(client: SupersetClient) -> dict[int, str]:
    """Every chart of every dashboard Superset shows as published, by id (with its name),
    in dashboard order; a chart on two dashboards once."""
    q = ("(columns:!(id,dashboard_title),filters:!((col:published,opr:eq,value:!t)),"
         "order_column:dashboard_title,order_direction:asc,page:0,page_size:100)")
    dashboards = client.get_json("/api/v1/dashboard/", params={"q": q})["result"]
    charts: dict[int, str] = {}
    for board in dashboards:
        for chart in client.get_json(f"/api/v1/dashboard/{board['id']}/charts")["result"]:
            charts.setdefault(int(chart["id"]), str(chart.get("slice_name") or ""))
    return charts


def warm_up(server: SupersetServer) -> Warmed:
    """Empty the chart-data cache, then compute every chart of the published dashboards
    again, as the admin (no row-level security here, so every user's cache key is the same)."""
    emptied = server.empty_data_cache()
    warmed = Warmed(emptied)
    with SupersetClient.for_server(server) as client:
        charts = published_charts(client)
        if not charts:
            raise NothingToWarm("Superset shows no published dashboard yet (`safeguard superset "
                                "import` puts them there): nothing to warm")
        for chart_id, name in charts.items():
            warmed.charts.append(chart_id)
            r = client.http.put("/api/v1/chart/warm_up_cache", json={"chart_id": chart_id})
            status = (r.json().get("result") or [{}])[0] if r.status_code == 200 else {}
            if r.status_code != 200 or status.get("viz_error"):
                # the error's text may quote the data: its status only, the rest in the log
                said = f"HTTP {r.status_code}" if r.status_code != 200 else status.get(
                    "viz_status") or "error"
                warmed.failed.append(f"chart {chart_id} {name}: {said} (Superset's log: "
                                     f"{server.log})")
    return warmed


def warm_after_release(settings: Settings) -> Warmed:
    """:func:`warm_up` of this home's running Superset; :class:`NothingToWarm` when none runs."""
    server = SupersetServer.running(settings)
    if server is None:
        raise NothingToWarm("Superset is not running for this home: no cache to warm (it "
                            "empties its chart-data cache when it starts)")
    return warm_up(server)
