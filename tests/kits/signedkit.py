"""Test kit: a local receiver of the hub's signed POSTs (webhooks, HTTP display-board controllers).

``async with SignedReceiver(secret) as rx``: an aiohttp server on 127.0.0.1 at ``rx.url`` that checks each request's
``X-Warnhub-Signature`` against ``secret`` (adapters.channels.boards.verify_signature), keeps the JSON bodies of good
ones in ``rx.got`` (answered 204) and the signatures of bad ones in ``rx.bad`` (answered 401).
"""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

from adapters.channels.boards import verify_signature
from tests.kits.hubproc import free_port


class SignedReceiver:
    def __init__(self, secret: str, path: str = "/hook") -> None:
        self.secret = secret
        self.path = path
        self.got: list[dict[str, Any]] = []
        self.bad: list[str] = []
        self.port = free_port()
        self.runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}{self.path}"

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        signature = request.headers.get("X-Warnhub-Signature", "")
        if not verify_signature(self.secret, request.headers.get("X-Warnhub-Timestamp", ""), body, signature):
            self.bad.append(signature)
            return web.Response(status=401)
        self.got.append(json.loads(body))
        return web.Response(status=204)

    async def __aenter__(self) -> SignedReceiver:
        app = web.Application()
        app.router.add_post(self.path, self.handle)
        self.runner = web.AppRunner(app)
        await self.runner.setup()
        await web.TCPSite(self.runner, "127.0.0.1", self.port).start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self.runner is not None
        await self.runner.cleanup()
