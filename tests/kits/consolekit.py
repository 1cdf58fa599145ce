"""Test helper: an operator signed in to the console of a real daemon (tests/hubproc.py), for the operator JSON API
(``/console/api/alerts``, ``/console/api/publications/{thread}/status``), which answers nobody without a session.

:func:`add_reader` puts a console user with the ``viewer`` role into the daemon's SQLite file (before the daemon
starts or while it runs); :class:`Operator` signs in over HTTP like a script would and keeps the session cookie.
"""

from __future__ import annotations

import http.cookiejar
import json
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from hub.access import auth
from hub.geo.geography import geography
from hub.store.db import Store

READER = "leserin"
PASSWORD = "Nur-lesen-im-Test-2026!"


def add_reader(db: Path, *, district: str = "033540000000", name: str = READER) -> None:
    store = Store(db)
    try:
        auth.add_user(store, name, ("viewer",), (district,), PASSWORD, actor="test", registry=geography().registry)
    finally:
        store.close()


class Operator:
    """A signed-in console session (cookie) against ``base``."""

    def __init__(self, base: str, name: str = READER, password: str = PASSWORD) -> None:
        self.base, self.name, self.password = base, name, password
        self.opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar()))
        self.signed_in = False

    def _open(self, path: str, data: bytes | None = None) -> tuple[int, bytes]:
        req = urllib.request.Request(self.base + path, data=data, headers={"Accept": "application/json",
                                                                           "Content-Type": "application/json"})
        try:
            with self.opener.open(req, timeout=10) as resp:
                return resp.status, resp.read()
        except urllib.error.HTTPError as err:
            return err.code, err.read()

    def login(self) -> Operator:
        body = json.dumps({"name": self.name, "password": self.password}).encode()
        status, answer = self._open("/console/login", body)
        assert status == 200, (status, answer[:300])
        self.signed_in = True
        return self

    def get(self, path: str) -> tuple[int, bytes]:
        if not self.signed_in:
            self.login()
        return self._open(path)

    def get_json(self, path: str) -> Any:
        status, body = self.get(path)
        assert status == 200, (path, status, body[:500])
        return json.loads(body)

    def threads(self, *, all: bool = True) -> list[dict[str, Any]]:
        """Every stored thread from ``/console/api/alerts``, page after page."""
        out: list[dict[str, Any]] = []
        cursor = None
        while True:
            query = ("?all=1&" if all else "?") + "limit=500" + (f"&cursor={cursor}" if cursor else "")
            page = self.get_json("/console/api/alerts" + query)
            out += page["threads"]
            cursor = page["next"]
            if cursor is None:
                return out
