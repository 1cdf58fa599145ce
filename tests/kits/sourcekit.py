"""Test kit for sources: a local HTTP server that replays payloads, and a real hub behind a SourceContext.

``ReplayServer`` serves whatever a test puts in ``routes`` (changeable between polls): bodies with ETag and
Last-Modified (answering conditional GETs with 304), HTTP errors, slow answers (for timeouts), bodies cut off
mid-way (a Content-Length larger than what is sent), bodies trickled a byte at a time (slowloris: every read
gets a byte, only the whole answer takes long), and counts every request with its time (``times``). ``HubKit`` is a real
:class:`hub.daemon.Hub` on a real SQLite file in a temp folder, validating in-thread, with the SourceContext the
daemon would hand a source.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import socket
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

from hub.app import basic_services, open_store
from hub.config import load as config_mod
from hub.intake.sensors import SensorIntake
from hub.ports import SourceContext
from hub.store.db import AsyncStore


@dataclass
class Route:
    body: bytes = b""
    status: int = 200
    content_type: str = "application/octet-stream"
    etag: bool = True
    """Send an ETag (sha256 of the body) and answer a matching If-None-Match with 304."""
    last_modified: str | None = None
    delay_s: float = 0.0
    """Wait this long before answering (a hung server)."""
    truncate_to: int | None = None
    """Announce the full length but send only this many bytes, then close the connection."""
    trickle_s: float = 0.0
    """Send the body one byte at a time, this long apart (a slowloris server: no single read ever waits long)."""
    headers: dict[str, str] = field(default_factory=dict)


class ReplayServer:
    def __init__(self) -> None:
        self.routes: dict[str, Route] = {}
        self.hits: Counter[str] = Counter()
        self.not_modified: Counter[str] = Counter()
        self.requests: list[tuple[str, dict[str, str]]] = []
        self.times: list[tuple[str, float]] = []
        """(path, time.monotonic()) of every request as it arrived: the sources' own poll times."""
        self._runner: web.AppRunner | None = None
        self.port = 0

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def set(self, path: str, body: bytes | str | None = None, **kw: Any) -> Route:
        """Serve ``body`` at ``path`` (replacing what was there)."""
        if isinstance(body, str):
            body = body.encode()
        route = Route(body=body or b"", **kw)
        self.routes[path] = route
        return route

    def remove(self, path: str) -> None:
        self.routes.pop(path, None)

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        path = request.path
        self.hits[path] += 1
        self.requests.append((path, dict(request.headers)))
        self.times.append((path, time.monotonic()))
        route = self.routes.get(path)
        if route is None:
            return web.Response(status=404, text="not found")
        if route.delay_s:
            await asyncio.sleep(route.delay_s)
        if route.status != 200:
            return web.Response(status=route.status, text=f"status {route.status}")
        headers = dict(route.headers)
        etag = f'"{hashlib.sha256(route.body).hexdigest()[:16]}"'
        if route.etag:
            headers["ETag"] = etag
            if request.headers.get("If-None-Match") == etag:
                self.not_modified[path] += 1
                return web.Response(status=304, headers=headers)
        if route.last_modified:
            headers["Last-Modified"] = route.last_modified
            if not route.etag and request.headers.get("If-Modified-Since") == route.last_modified:
                self.not_modified[path] += 1
                return web.Response(status=304, headers=headers)
        if route.trickle_s:
            resp = web.StreamResponse(status=200, headers={**headers, "Content-Type": route.content_type})
            resp.content_length = len(route.body)
            await resp.prepare(request)
            for i in range(len(route.body)):
                try:
                    await resp.write(route.body[i:i + 1])
                except ConnectionResetError:  # the client gave up: what the slowloris test wants
                    break
                await asyncio.sleep(route.trickle_s)
            return resp
        if route.truncate_to is not None:
            resp = web.StreamResponse(status=200, headers={**headers, "Content-Type": route.content_type})
            resp.content_length = len(route.body)
            await resp.prepare(request)
            await resp.write(route.body[:route.truncate_to])
            assert request.transport is not None
            request.transport.close()
            return resp
        return web.Response(body=route.body, headers=headers, content_type=route.content_type)

    async def __aenter__(self) -> ReplayServer:
        app = web.Application()
        app.router.add_route("GET", "/{tail:.*}", self._handle)
        # a hung route's request is cut at the end, not waited for (aiohttp's default: 60 s)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
        await self._runner.setup()
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        self.port = sock.getsockname()[1]
        site = web.SockSite(self._runner, sock)
        await site.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._runner is not None:
            await self._runner.cleanup()


CONFIG = """
[hub]
name = "Landkreis Lüchow-Dannenberg"
district_ars = "033540000000"
db = "hub.db"

[validation]
workers = 1
"""


class HubKit:
    """The hub's basic services (store on a SQLite file in ``tmp``) and the SourceContext the daemon would give a
    source."""

    def __init__(self, tmp: Path, extra_config: str = "") -> None:
        cfg_file = tmp / "config.toml"
        cfg_file.write_text(CONFIG + extra_config, encoding="utf-8")
        self.loaded = config_mod.load(cfg_file)
        self.store = open_store(self.loaded)
        self.astore = AsyncStore(self.store)
        self.hub = basic_services(self.loaded, self.astore)
        self.session: aiohttp.ClientSession | None = None

    def context(self, name: str, kind: str = "") -> SourceContext:
        self.hub.health.register(name, kind)
        intake = self.hub.intake
        return SourceContext(ingest=intake.ingest, health=self.hub.health,
                             log=logging.getLogger(f"warnhub.source.{name}"), ingest_alert=intake.ingest_alert,
                             snapshot=intake.snapshot, known=intake.known, http=self.session,
                             readings=SensorIntake(self.astore), metrics=self.hub.metrics)

    async def __aenter__(self) -> HubKit:
        self.session = aiohttp.ClientSession()
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self.session is not None:
            await self.session.close()
        await self.hub.recorder.drain()
        self.hub.intake.close()
        self.astore.close()
