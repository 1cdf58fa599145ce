"""Webhooks against local receivers: an aiohttp receiver that checks the signature and de-duplicates by
Idempotency-Key as a real multiplier should, and a raw TCP receiver that never answers.

Invariants: every body arrives byte for byte and signed; a redelivery carries the same key (no duplicate per
receiver and version); a webhook is config, so 404/410 are failed, never gone, and a redirect is not followed;
bounded latency: a hung receiver delays no other webhook in the same batch.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from adapters.channels.boards import verify_signature
from adapters.channels.webhooks import Webhooks
from hub import __version__
from hub.config.sections import WebhookConfig
from hub.ports import Delivery, WebhookBody
from tests.kits import paths

CAP = (paths.DATA / "cap" / "de_dwd_kweathercore_update-MUL.xml").read_bytes()
JSON = '{"headline":"Amtliche WARNUNG vor STARKEM GEWITTER","severity":"Moderate","area":"Lüneburg"}'.encode()
SECRET = "hook-secret"


def delivery(hook: str, key: str | None = None) -> Delivery:
    return Delivery(id=1, key=key or f"pub7/v2/webhooks/{hook}", publication_id=7, thread="dwd/gewitter",
                    channel="webhooks", recipient=hook, priority=5, attempts=0, not_after_ms=None, host="")


def hook(id: str, url: str, **extra: Any) -> WebhookConfig:
    return WebhookConfig(id=id, url=url, secret=SECRET, **extra)


class Bodies:
    """The pipeline's resolve: a rendered body per webhook id."""

    def __init__(self, bodies: dict[str, WebhookBody | None]) -> None:
        self.bodies = bodies

    async def __call__(self, batch: Sequence[Delivery]) -> list[WebhookBody | None]:
        return [self.bodies.get(d.recipient) for d in batch]


class Receiver:
    """A multiplier's endpoint: refuses bad signatures, processes each Idempotency-Key once."""

    def __init__(self) -> None:
        self.processed: dict[str, tuple[str, bytes]] = {}
        self.requests: list[dict[str, str]] = []
        self.moved_to_hits = 0
        self.gate: asyncio.Event | None = None
        """If set, requests wait for it (to order events in a test)."""
        self.events: list[str] = []

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        if self.gate is not None:
            await self.gate.wait()
        self.events.append("fast: delivered")
        self.requests.append(dict(request.headers))
        if not verify_signature(SECRET, request.headers.get("X-Warnhub-Timestamp", ""), body,
                                request.headers.get("X-Warnhub-Signature", "")):
            return web.Response(status=401, text="bad signature")
        key = request.headers.get("Idempotency-Key", "")
        if not key:
            return web.Response(status=400, text="no idempotency key")
        if key in self.processed:
            return web.Response(status=200, text="duplicate, ignored")
        self.processed[key] = (request.headers["Content-Type"], body)
        return web.Response(status=202)

    async def gone(self, request: web.Request) -> web.Response:
        return web.Response(status=410, text="this hook was removed")

    async def moved(self, request: web.Request) -> web.Response:
        raise web.HTTPTemporaryRedirect("/moved-to")

    async def moved_to(self, request: web.Request) -> web.Response:
        self.moved_to_hits += 1
        return web.Response(status=200)


@pytest.fixture
async def receiver() -> AsyncIterator[tuple[Receiver, TestServer, aiohttp.ClientSession]]:
    rec = Receiver()
    app = web.Application()
    app.router.add_post("/hook", rec.handle)
    app.router.add_post("/gone", rec.gone)
    app.router.add_post("/moved", rec.moved)
    app.router.add_post("/moved-to", rec.moved_to)
    server = TestServer(app)
    await server.start_server()
    async with aiohttp.ClientSession() as session:
        yield rec, server, session
    await server.close()


async def test_cap_and_json_bodies_arrive_signed(receiver: tuple[Receiver, TestServer, aiohttp.ClientSession]) \
        -> None:
    rec, server, session = receiver
    url = str(server.make_url("/hook"))
    bodies = Bodies({"portal": WebhookBody("application/cap+xml", CAP),
                     "taxi": WebhookBody("application/json", JSON)})
    channel = Webhooks([hook("portal", url, format="cap"), hook("taxi", url)], session, bodies)
    async with channel:
        out = await channel.deliver([delivery("portal"), delivery("taxi")])
    assert [o.kind for o in out] == ["done", "done"]
    assert rec.processed == {"pub7/v2/webhooks/portal": ("application/cap+xml", CAP),
                             "pub7/v2/webhooks/taxi": ("application/json", JSON)}
    assert all(h["User-Agent"] == f"warnhub/{__version__}" for h in rec.requests)


async def test_redelivery_carries_the_same_key(receiver: tuple[Receiver, TestServer, aiohttp.ClientSession]) -> None:
    rec, server, session = receiver
    bodies = Bodies({"taxi": WebhookBody("application/json", JSON)})
    async with Webhooks([hook("taxi", str(server.make_url("/hook")))], session, bodies) as channel:
        first = await channel.deliver([delivery("taxi")])
        again = await channel.deliver([delivery("taxi")])  # the PUBACK-less case: the hub could not record done
    assert [first[0].kind, again[0].kind] == ["done", "done"]
    assert len(rec.requests) == 2 and len(rec.processed) == 1
    assert rec.requests[0]["Idempotency-Key"] == rec.requests[1]["Idempotency-Key"] == "pub7/v2/webhooks/taxi"


async def test_wrong_secret_is_refused_and_failed(receiver: tuple[Receiver, TestServer, aiohttp.ClientSession]) \
        -> None:
    rec, server, session = receiver
    bodies = Bodies({"taxi": WebhookBody("application/json", JSON)})
    config = WebhookConfig(id="taxi", url=str(server.make_url("/hook")), secret="not-the-secret")
    async with Webhooks([config], session, bodies) as channel:
        (out,) = await channel.deliver([delivery("taxi")])
    assert out.kind == "failed" and "401" in out.reason and not rec.processed


async def test_gone_and_moved_hooks_are_failed(receiver: tuple[Receiver, TestServer, aiohttp.ClientSession]) -> None:
    rec, server, session = receiver
    bodies = Bodies({"alt": WebhookBody("application/json", JSON), "umgezogen": WebhookBody("application/json", JSON)})
    hooks = [hook("alt", str(server.make_url("/gone"))), hook("umgezogen", str(server.make_url("/moved")))]
    async with Webhooks(hooks, session, bodies) as channel:
        gone, moved = await channel.deliver([delivery("alt"), delivery("umgezogen")])
    assert gone.kind == "failed" and "410" in gone.reason, "a webhook is config: never gone"
    assert moved.kind == "failed" and "/moved-to" in moved.reason
    assert rec.moved_to_hits == 0, "redirects are not followed"


async def test_unknown_hook_missing_body_and_broken_resolve(
        receiver: tuple[Receiver, TestServer, aiohttp.ClientSession]) -> None:
    _, server, session = receiver
    bodies = Bodies({"taxi": None})
    async with Webhooks([hook("taxi", str(server.make_url("/hook")))], session, bodies) as channel:
        out = await channel.deliver([delivery("nirgends"), delivery("taxi")])
    assert [o.kind for o in out] == ["failed", "failed"]

    async def broken(batch: Sequence[Delivery]) -> list[WebhookBody | None]:
        raise RuntimeError("store busy")

    async with Webhooks([hook("taxi", str(server.make_url("/hook")))], session, broken) as channel:
        out = await channel.deliver([delivery("taxi"), delivery("taxi")])
    assert [o.kind for o in out] == ["retry", "retry"]


async def test_5xx_and_429_are_retried_with_retry_after(receiver: tuple[Receiver, TestServer, aiohttp.ClientSession]) \
        -> None:
    _, _, session = receiver
    app = web.Application()
    answers = iter([web.Response(status=503, headers={"Retry-After": "30"}), web.Response(status=429)])

    async def busy(request: web.Request) -> web.Response:
        return next(answers)

    app.router.add_post("/busy", busy)
    server = TestServer(app)
    await server.start_server()
    try:
        bodies = Bodies({"taxi": WebhookBody("application/json", JSON)})
        async with Webhooks([hook("taxi", str(server.make_url("/busy")))], session, bodies) as channel:
            (first,) = await channel.deliver([delivery("taxi")])
            (second,) = await channel.deliver([delivery("taxi")])
    finally:
        await server.close()
    assert (first.kind, first.retry_after_s) == ("retry", 30)
    assert (second.kind, second.retry_after_s) == ("retry", None)


async def test_hung_receiver_does_not_block_the_other_hook(
        receiver: tuple[Receiver, TestServer, aiohttp.ClientSession]) -> None:
    """Bounded latency: the hung hook times out (retry) while the other one in the batch is delivered meanwhile."""
    rec, server, session = receiver
    events = rec.events
    rec.gate = opened = asyncio.Event()  # the hung request is in flight before the other one is answered

    async def hang(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        events.append("hung: request open")
        opened.set()
        while await reader.read(65536):  # never answer; the client closes the connection when it gives up
            pass
        events.append("hung: client gave up")
        writer.close()

    hung = await asyncio.start_server(hang, "127.0.0.1", 0)
    port = hung.sockets[0].getsockname()[1]
    bodies = Bodies({"haengt": WebhookBody("application/json", JSON), "taxi": WebhookBody("application/json", JSON)})
    hooks = [hook("haengt", f"http://127.0.0.1:{port}/hook", timeout_s=1.0),
             hook("taxi", str(server.make_url("/hook")))]
    try:
        async with Webhooks(hooks, session, bodies) as channel:
            slow, fast = await channel.deliver([delivery("haengt"), delivery("taxi")])
        for _ in range(500):  # the server side notices the closed connection shortly after
            if "hung: client gave up" in events:
                break
            await asyncio.sleep(0.01)
    finally:
        hung.close()
        await hung.wait_closed()
    assert slow.kind == "retry" and "1 s" in slow.reason
    assert fast.kind == "done"
    assert events == ["hung: request open", "fast: delivered", "hung: client gave up"]
