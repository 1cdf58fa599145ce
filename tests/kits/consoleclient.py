"""A console session over HTTP as a script (or the console's own pages) would hold it: the session cookie from
``POST /console/login`` and its CSRF token on every change.

    client = await ConsoleClient(base, password).login("anna")
    status, body = await client.call("POST", "/console/api/warnings", form)   # body: JSON, else the text
    status, sent = await client.approve(warning_id)                            # preview, then approve with its token
    await client.close()
"""

from __future__ import annotations

import json
from typing import Any

import aiohttp


class ConsoleClient:
    def __init__(self, base: str, password: str) -> None:
        self.base = base
        self.password = password
        self.http = aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True))
        self.csrf = ""

    async def login(self, name: str) -> ConsoleClient:
        async with self.http.post(f"{self.base}/console/login", json={"name": name, "password": self.password}) as r:
            assert r.status == 200, await r.text()
            self.csrf = (await r.json())["csrf"]
        return self

    async def raw(self, method: str, path: str, body: Any = None) -> tuple[int, str, str]:
        """Status, body text and every header as text."""
        headers = {"Accept": "application/json"}
        if method != "GET":
            headers["X-CSRF-Token"] = self.csrf
        async with self.http.request(method, self.base + path, json=body, headers=headers,
                                     allow_redirects=False) as r:
            return r.status, await r.text(), "\n".join(f"{k}: {v}" for k, v in r.headers.items())

    async def call(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        """Status and the body as JSON (the text where it is none, e.g. a page)."""
        status, text, _ = await self.raw(method, path, body)
        try:
            return status, json.loads(text)
        except ValueError:
            return status, text

    async def approve(self, wid: int) -> tuple[int, Any]:
        """Preview the warning and approve (send) it with the preview's token, confirming what the preview shows."""
        status, prev = await self.call("GET", f"/console/api/warnings/{wid}/preview")
        if status != 200:
            return status, prev
        w = prev["warning"]
        return await self.call("POST", f"/console/api/warnings/{wid}/approve", {
            "token": prev["token"], "confirm": {"status": w["status"], "audience": w["audience"], "topic": w["topic"],
                                                "channels": w["channels"]}})

    async def close(self) -> None:
        await self.http.close()
