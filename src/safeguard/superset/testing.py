"""Pytest fixtures for tests that need a real Superset: one server per test session.

Loaded as a plugin (``pytest_plugins = ["safeguard.superset.testing"]``) so that the API tests
and the browser tests share one server: the same fixture defined in two test modules would
start two. The server runs on a free port for the isolated test home that the ``pipeline_done``
fixture (tests/conftest.py) provides, with the bundle from ``dashboards/`` imported, and is
stopped, process group and all, when the session ends. Reports are on (their Redis runs, the
``ALERT_REPORTS`` flag and the schedules of ``dashboards/reports/`` are there), but Celery's
worker and beat start only for the tests that ask for them (``tests/test_reports.py``).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from safeguard.config import Settings
from safeguard.ports import free_port
from safeguard.superset.bundle import publish
from safeguard.superset.client import SupersetClient
from safeguard.superset.server import SupersetServer


@pytest.fixture(scope="session")
def superset_server(pipeline_done: Settings) -> Iterator[SupersetServer]:
    """Superset bootstrapped and started for the test home, the bundle imported once."""
    # a free port: tests run their own Superset beside a developer's
    server = SupersetServer(pipeline_done, port=free_port(), reports=True)
    server.bootstrap()
    server.start(workers=False)
    try:
        publish(server, prune=False)
        yield server
    finally:
        server.stop()


@pytest.fixture()
def superset_client(superset_server: SupersetServer) -> Iterator[SupersetClient]:
    """An API client logged in as the admin user (JWT, session cookie and CSRF token)."""
    with SupersetClient.for_server(superset_server) as client:
        yield client
