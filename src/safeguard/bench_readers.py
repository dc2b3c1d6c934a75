"""``make bench``, Superset for many readers (issue 15): the dashboards' chart-data latency under
``READERS`` concurrent readers, with 1 and with 4 gunicorn workers.

Each reader is the Leadership user, logged in on a connection of its own, and reads every chart
Leadership opens once, in an order of its own (seeded), all readers starting together: first
with the cache warm (as readers find it after a release: ``safeguard.superset.warm``), then with
it off (``force=true``: every request a query, the worst case). Per setting: p50 and p95 of the
requests' latency, requests per second over the whole burst, and the requests that failed.
The readers run on the same machine as Superset and PostgreSQL, so they take CPU from them: the
figures compare the settings, they are no capacity of a server of its own.
"""

from __future__ import annotations

import random
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

READERS = 20
WORKER_SETTINGS = (1, 4)
MODES = ("cached", "cache off")


def percentile(samples: Sequence[float], q: float) -> float:
    """The nearest-rank ``q`` quantile (0..1) of ``samples`` (``bench._p95`` too)."""
    if not samples:
        raise ValueError("no samples")
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def summary(latencies: Sequence[float], failed: int, wall: float) -> dict[str, Any]:
    """One burst's figures: requests, failed, p50/p95/max latency in ms, requests per second
    (answered ones over the burst's wall time)."""
    out: dict[str, Any] = {"requests": len(latencies) + failed, "failed": failed,
                           "seconds": round(wall, 2)}
    if latencies:
        out |= {"p50_ms": round(1000 * percentile(latencies, 0.50), 1),
                "p95_ms": round(1000 * percentile(latencies, 0.95), 1),
                "max_ms": round(1000 * max(latencies), 1),
                "requests_per_s": round(len(latencies) / wall, 1) if wall > 0 else None}
    return out


def reading_orders(chart_ids: Sequence[int], readers: int, seed: int) -> list[list[int]]:
    """Every chart once per reader, each reader in a shuffled order of its own (seeded), so
    the readers do not ask for the same chart in step."""
    orders = []
    for i in range(readers):
        order = list(chart_ids)
        random.Random(seed + i).shuffle(order)
        orders.append(order)
    return orders


def burst(clients: Sequence[Any], orders: Sequence[Sequence[int]],
          params: dict[str, str]) -> dict[str, Any]:
    """All readers at once, each on its client (a logged-in ``SupersetClient``): every chart
    of its order through ``GET /api/v1/chart/<id>/data/``; their figures (:func:`summary`)."""
    start = threading.Barrier(len(clients))
    lock = threading.Lock()
    latencies: list[float] = []
    failures: Counter[str] = Counter()  # why: an HTTP status or the exception's kind

    def read(client: Any, order: Sequence[int]) -> None:
        start.wait()
        for chart_id in order:
            t = time.perf_counter()
            try:
                code = client.http.get(f"/api/v1/chart/{chart_id}/data/",
                                       params=params).status_code
                why = None if code == 200 else f"HTTP {code}"
            except Exception as e:  # a timeout or a dropped connection: counted, not raised
                why = type(e).__name__
            took = time.perf_counter() - t
            with lock:
                if why is None:
                    latencies.append(took)
                else:
                    failures[why] += 1

    t0 = time.perf_counter()
    with ThreadPoolExecutor(len(clients)) as pool:
        list(pool.map(read, clients, orders))
    out = summary(latencies, sum(failures.values()), time.perf_counter() - t0)
    return out | ({"failures": dict(failures)} if failures else {})


def run(server: Any, chart_ids: Sequence[int], login: Callable[[], Any],
        log: Callable[[str], None], seed: int = 15) -> dict[str, Any]:
    """For each of ``WORKER_SETTINGS``: restart ``server`` (a ``SupersetServer``) with that many
    gunicorn workers, warm its cache, and time a burst of ``READERS`` readers in each mode.
    ``login``: a new logged-in Leadership client. The server is left running."""
    from safeguard.superset.warm import warm_up

    orders = reading_orders(chart_ids, READERS, seed)
    out: dict[str, Any] = {"readers": READERS, "charts": len(chart_ids), "settings": {}}
    for workers in WORKER_SETTINGS:
        log(f"readers: Superset with {workers} gunicorn worker(s), {READERS} readers x "
            f"{len(chart_ids)} charts ...")
        server.stop()
        server.workers = workers
        server.start(workers=False)
        warm_up(server)
        clients = [login() for _ in range(READERS)]
        try:
            figures = {}
            for mode in MODES:
                figures[mode] = burst(clients, orders, {"force": "true"}
                                      if mode == "cache off" else {})
                f = figures[mode]
                log(f"readers: {workers} worker(s), {mode}: p50 {f.get('p50_ms')} ms, p95 "
                    f"{f.get('p95_ms')} ms, {f.get('requests_per_s')} requests/s, "
                    f"{f['failed']} failed {f.get('failures') or ''}".rstrip())
        finally:
            for c in clients:
                c.close()
        out["settings"][str(workers)] = figures
    out["cache"] = "redis" if server.cache_in_redis() else "file"
    return out


def print_table(r: dict[str, Any]) -> None:
    """The readers' figures, one line per gunicorn workers and cache mode."""
    print(f"  dashboards under {r['readers']} concurrent Leadership readers ({r['charts']} "
          f"charts each; cache in {r['cache']}; readers on this machine too):")
    print(f"    {'gunicorn workers':<18}{'cache':<11}{'p50 ms':>8}{'p95 ms':>8}"
          f"{'requests/s':>12}{'failed':>8}")
    for workers, modes in r["settings"].items():
        for mode, f in modes.items():
            p50, p95 = f.get("p50_ms"), f.get("p95_ms")
            rps = f.get("requests_per_s")
            print(f"    {workers:<18}{mode:<11}"
                  f"{'-' if p50 is None else format(p50, '.0f'):>8}"
                  f"{'-' if p95 is None else format(p95, '.0f'):>8}"
                  f"{'-' if rps is None else format(rps, '.1f'):>12}{f['failed']:>8}")
