"""A logged-in HTTP client for Superset's REST API.

Superset's API takes a JWT from ``/api/v1/security/login``, but its POSTs are also CSRF
protected: the token from ``/api/v1/security/csrf_token/`` is tied to the session cookie that
comes with it, and Flask-WTF checks the Referer. The client keeps all three together so
callers only say what they want.
"""

from __future__ import annotations

from types import TracebackType
from typing import TYPE_CHECKING, Any

import httpx

from safeguard.superset.access import ADMIN_USERNAME
from safeguard.superset.errors import SupersetError

if TYPE_CHECKING:  # a type only: the server module comes after this one
    from safeguard.superset.server import SupersetServer


class SupersetClient:
    def __init__(self, base_url: str, username: str, password: str, timeout: float = 120.0):
        self.base_url = base_url.rstrip("/")
        self.http = httpx.Client(base_url=self.base_url, timeout=timeout,
                                 headers={"Referer": f"{self.base_url}/"})
        self._login(username, password)

    @classmethod
    def for_server(cls, server: SupersetServer) -> SupersetClient:
        """The admin client of a server started by :class:`SupersetServer`."""
        return cls(server.url, ADMIN_USERNAME, server.admin_password)

    def _login(self, username: str, password: str) -> None:
        r = self.http.post("/api/v1/security/login", json={
            "username": username, "password": password, "provider": "db", "refresh": False,
        })
        if r.status_code != 200:
            raise SupersetError(
                f"Login to {self.base_url} as {username!r} failed (HTTP {r.status_code}). "
                "Run `safeguard superset up` to create the admin user from secrets.env."
            )
        self.http.headers["Authorization"] = f"Bearer {r.json()['access_token']}"
        csrf = self.http.get("/api/v1/security/csrf_token/")
        csrf.raise_for_status()
        self.http.headers["X-CSRFToken"] = csrf.json()["result"]

    def request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        r = self.http.request(method, path, **kwargs)
        if r.is_error:
            raise SupersetError(f"{method} {path} -> HTTP {r.status_code}: {r.text[:2000]}")
        return r

    def get_json(self, path: str, **kwargs: Any) -> Any:
        return self.request("GET", path, **kwargs).json()

    def list_all(self, resource: str, columns: list[str]) -> list[dict[str, Any]]:
        """Every row of ``/api/v1/<resource>/`` (paged), with the given columns."""
        rows: list[dict[str, Any]] = []
        page = 0
        while True:
            q = f"(columns:!({','.join(columns)}),page:{page},page_size:100)"
            result = self.get_json(f"/api/v1/{resource}/", params={"q": q})["result"]
            rows.extend(result)
            if len(result) < 100:
                return rows
            page += 1

    def close(self) -> None:
        self.http.close()

    def __enter__(self) -> SupersetClient:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()
