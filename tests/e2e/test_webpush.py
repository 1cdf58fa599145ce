"""Web Push channel against a local push service that checks VAPID and decrypts with the subscription's key.

Invariants: what a subscriber decrypts is byte for byte what the hub sent; a dead subscription (404/410) is reported
gone, a busy push service (429/5xx) is retried no earlier than it asked; one hanging push service delays no other
recipient of the batch; nothing larger than one Web Push record is sent.
"""

from __future__ import annotations

import asyncio
import base64
import json
import multiprocessing
import os
import signal
import ssl
import stat
import subprocess
import sys
from collections import Counter
from collections.abc import AsyncIterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path

import aiohttp
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from adapters.channels.pushcheck import Address, check_endpoint, check_keys
from adapters.channels.pushcrypto import MAX_PLAINTEXT, encrypt_batch
from adapters.channels.pushhttp import BODY_KEEP, HttpError, PushClient, Response
from adapters.channels.vapid import VapidKey
from adapters.channels.webpush import MAX_TTL_S, WebPushChannel, WebPushSender
from hub.deliver.setup import topic_for, urgency_for
from hub.errors import ConfigError
from hub.ports import Delivery, PushTarget
from tests.kits import paths
from tests.kits.pushkit import PushReceiver, TestSubscription

SUBJECT = "mailto:leitstelle@example.invalid"
ROOT = paths.REPO


@pytest.fixture
async def rx() -> AsyncIterator[PushReceiver]:
    async with PushReceiver() as receiver:
        yield receiver
        assert receiver.errors == []


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


@pytest.fixture
def vapid() -> VapidKey:
    return VapidKey.generate()


_senders: list[WebPushSender] = []


@pytest.fixture(autouse=True)
async def close_senders() -> AsyncIterator[None]:
    yield
    while _senders:
        await _senders.pop().aclose()  # the event loop's keep-alive connections, the sender's own pool


def sender(http: aiohttp.ClientSession, vapid: VapidKey, **kw: object) -> WebPushSender:
    push = WebPushSender(http, vapid, SUBJECT, executor=None, allow_http=True, **kw)  # type: ignore[arg-type]
    _senders.append(push)
    return push


def target(sub: TestSubscription, payload: bytes = b'{"key":"k"}', *, ttl_s: int = 3600, urgency: str = "normal",
           topic: str | None = None) -> PushTarget:
    return PushTarget(sub.endpoint, sub.p256dh, sub.auth, payload, ttl_s, urgency, topic)


# --- delivery against the receiver ----------------------------------------------------------------------------------


async def test_payload_round_trips_byte_exact(rx: PushReceiver, http: aiohttp.ClientSession, vapid: VapidKey) -> None:
    subs = [rx.subscribe() for _ in range(3)]
    payloads = [json.dumps({"key": "v1/a", "text": "Unwetter: Orkanböen über 120 km/h"}).encode(),
                os.urandom(MAX_PLAINTEXT), b""]
    outcomes = await sender(http, vapid).send_many([target(s, p) for s, p in zip(subs, payloads, strict=True)])
    assert [o.kind for o in outcomes] == ["done"] * 3
    for sub, payload in zip(subs, payloads, strict=True):
        [got] = rx.received(sub.id)
        assert got.raw == payload
    assert rx.received(subs[0].id)[0].body["text"].startswith("Unwetter")


async def test_vapid_token_cached_per_origin(http: aiohttp.ClientSession, vapid: VapidKey) -> None:
    async with PushReceiver() as rx1, PushReceiver() as rx2:
        a, b, c = rx1.subscribe(), rx1.subscribe(), rx2.subscribe()
        push = sender(http, vapid)
        assert [o.kind for o in await push.send_many([target(a)])] == ["done"]
        assert [o.kind for o in await push.send_many([target(b), target(c)])] == ["done", "done"]
        assert rx1.errors == rx2.errors == []  # both receivers checked signature, aud and exp
        ta, tb, tc = (r.received(s.id)[0].token for r, s in ((rx1, a), (rx1, b), (rx2, c)))
    assert ta == tb
    assert tc != ta
    claims = json.loads(base64.urlsafe_b64decode(tc.split(".")[1] + "=="))
    assert claims["aud"] == rx2.origin and claims["sub"] == SUBJECT


def test_vapid_token_renewed_near_expiry(vapid: VapidKey) -> None:
    first = vapid.token("https://push.example.net", SUBJECT, now=1_000_000)
    assert vapid.token("https://push.example.net", SUBJECT, now=1_000_000 + 10 * 3600) == first
    assert vapid.token("https://push.example.net", SUBJECT, now=1_000_000 + 11.5 * 3600) != first
    header = vapid.authorization("https://push.example.net", SUBJECT)
    assert header.startswith("vapid t=") and header.endswith(f", k={vapid.public_key_b64url}")


async def test_headers_arrive_as_set(rx: PushReceiver, http: aiohttp.ClientSession, vapid: VapidKey) -> None:
    a, b, c = rx.subscribe(), rx.subscribe(), rx.subscribe()
    topic = topic_for("dwd/2.49.0.0.276.0.DWD.PVW.1/thread")
    outcomes = await sender(http, vapid).send_many([
        target(a, ttl_s=600, urgency="high", topic=topic),
        target(b, ttl_s=10**9, urgency="very-low"),
        target(c, ttl_s=-5, urgency="low"),
    ])
    assert [o.kind for o in outcomes] == ["done"] * 3
    assert rx.received(a.id)[0].headers == {"TTL": "600", "Urgency": "high", "Topic": topic}
    assert rx.received(b.id)[0].headers == {"TTL": str(MAX_TTL_S), "Urgency": "very-low"}
    assert rx.received(c.id)[0].headers == {"TTL": "0", "Urgency": "low"}


@pytest.mark.parametrize("status", [404, 410])
async def test_dead_subscription_is_gone(rx: PushReceiver, http: aiohttp.ClientSession, vapid: VapidKey,
                                         status: int) -> None:
    dead, alive = rx.subscribe(), rx.subscribe()
    rx.behave(dead.id, status=status)
    outcomes = await sender(http, vapid).send_many([target(dead), target(alive)])
    assert [o.kind for o in outcomes] == ["gone", "done"]
    assert str(status) in outcomes[0].reason


async def test_busy_push_service_is_retried_after_its_wish(rx: PushReceiver, http: aiohttp.ClientSession,
                                                           vapid: VapidKey) -> None:
    limited, broken, plain, dated = rx.subscribe(), rx.subscribe(), rx.subscribe(), rx.subscribe()
    rx.behave(limited.id, status=429, retry_after=120)
    rx.behave(broken.id, status=500)
    rx.behave(plain.id, status=503, retry_after="soon")
    rx.behave(dated.id, status=503, retry_after=format_datetime(datetime.now(UTC) + timedelta(minutes=10),
                                                                usegmt=True))
    outcomes = await sender(http, vapid).send_many([target(s) for s in (limited, broken, plain, dated)])
    assert [o.kind for o in outcomes] == ["retry"] * 4
    assert outcomes[0].retry_after_s == 120
    assert outcomes[1].retry_after_s is None and "500" in outcomes[1].reason
    assert outcomes[2].retry_after_s is None  # unreadable Retry-After: the outbox's own backoff applies
    assert outcomes[3].retry_after_s is not None and 500 < outcomes[3].retry_after_s <= 600


async def test_hanging_endpoint_delays_no_other(rx: PushReceiver, http: aiohttp.ClientSession,
                                                vapid: VapidKey) -> None:
    subs = [rx.subscribe() for _ in range(6)]
    rx.behave(subs[2].id, hang_s=60)
    outcomes = await sender(http, vapid, timeout_s=0.3, concurrency=2).send_many([target(s) for s in subs])
    assert [o.kind for o in outcomes] == ["done", "done", "retry", "done", "done", "done"]
    assert "0.3 s" in outcomes[2].reason
    assert rx.in_flight == 1  # the hung request is still waiting on its 60 s: the sender did not wait for it
    assert {r.sub_id for r in rx.received()} == {s.id for i, s in enumerate(subs) if i != 2}


async def test_refused_request_fails_with_status_and_excerpt(rx: PushReceiver, http: aiohttp.ClientSession,
                                                             vapid: VapidKey) -> None:
    subs = [rx.subscribe() for _ in range(3)]
    for sub, status in zip(subs, (400, 403, 413), strict=True):
        rx.behave(sub.id, status=status)
    outcomes = await sender(http, vapid).send_many([target(s) for s in subs])
    assert [o.kind for o in outcomes] == ["failed"] * 3
    assert [o.reason for o in outcomes] == [f"push service answered {s}: status {s}" for s in (400, 403, 413)]


async def test_unreachable_push_service_is_retried(http: aiohttp.ClientSession, vapid: VapidKey) -> None:
    async with PushReceiver() as rx:
        sub = rx.subscribe()
    [outcome] = await sender(http, vapid).send_many([target(sub)])  # the receiver is gone: connection refused
    assert outcome.kind == "retry" and "connection failed" in outcome.reason


async def test_oversized_payload_fails_without_a_request(rx: PushReceiver, http: aiohttp.ClientSession,
                                                         vapid: VapidKey) -> None:
    big, ok = rx.subscribe(), rx.subscribe()
    outcomes = await sender(http, vapid).send_many([target(big, b"x" * (MAX_PLAINTEXT + 1)), target(ok)])
    assert outcomes[0].kind == "failed" and str(MAX_PLAINTEXT) in outcomes[0].reason
    assert outcomes[1].kind == "done"
    assert rx.hits[big.id] == 0


async def test_bad_targets_fail_without_a_request(rx: PushReceiver, http: aiohttp.ClientSession,
                                                  vapid: VapidKey) -> None:
    sub = rx.subscribe()
    other = ec.generate_private_key(ec.SECP256R1()).public_key().public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.CompressedPoint)
    bad = [
        PushTarget(sub.endpoint, sub.p256dh[:-4], sub.auth, b"x", 60, "normal", None),
        PushTarget(sub.endpoint, base64.urlsafe_b64encode(other).decode(), sub.auth, b"x", 60, "normal", None),
        PushTarget(sub.endpoint, sub.p256dh, sub.auth[:-2], b"x", 60, "normal", None),
        PushTarget(sub.endpoint, sub.p256dh, sub.auth, b"x", 60, "urgent", None),
        PushTarget(sub.endpoint, sub.p256dh, sub.auth, b"x", 60, "normal", "not/a topic"),
        PushTarget(sub.endpoint.replace("127.0.0.1", "10.0.0.1"), sub.p256dh, sub.auth, b"x", 60, "normal", None),
    ]
    outcomes = await sender(http, vapid).send_many(bad)
    assert [o.kind for o in outcomes] == ["failed"] * len(bad)
    assert "p256dh" in outcomes[0].reason and "p256dh" in outcomes[1].reason and "auth" in outcomes[2].reason
    assert "urgency" in outcomes[3].reason and "topic" in outcomes[4].reason and "loopback" in outcomes[5].reason
    assert rx.hits[sub.id] == 0


async def test_process_pool_encrypts_decryptably(rx: PushReceiver, http: aiohttp.ClientSession,
                                                 vapid: VapidKey) -> None:
    subs = [rx.subscribe() for _ in range(9)]
    with ProcessPoolExecutor(2, mp_context=multiprocessing.get_context("spawn")) as pool:
        push = WebPushSender(http, vapid, SUBJECT, executor=pool, allow_http=True)
        outcomes = await push.send_many([target(s, json.dumps({"key": s.id}).encode()) for s in subs])
    assert [o.kind for o in outcomes] == ["done"] * len(subs)
    assert sorted(r.body["key"] for r in rx.received()) == sorted(s.id for s in subs)


async def test_sender_owned_pool_is_shut_down(rx: PushReceiver, http: aiohttp.ClientSession,
                                              vapid: VapidKey) -> None:
    sub = rx.subscribe()
    async with sender(http, vapid, workers=1) as push:
        assert [o.kind for o in await push.send_many([target(sub)])] == ["done"]
        pool = push._executor
        assert isinstance(pool, ProcessPoolExecutor)
    with pytest.raises(RuntimeError):
        pool.submit(encrypt_batch, [])


async def test_dead_encryption_worker_loses_no_row(rx: PushReceiver, http: aiohttp.ClientSession,
                                                  vapid: VapidKey) -> None:
    subs = [rx.subscribe() for _ in range(3)]
    async with sender(http, vapid, workers=1) as push:
        assert [o.kind for o in await push.send_many([target(subs[0])])] == ["done"]
        pool = push._executor
        assert isinstance(pool, ProcessPoolExecutor)
        for pid in list(pool._processes):  # type: ignore[attr-defined]
            os.kill(pid, signal.SIGKILL)
        await asyncio.sleep(0.2)
        first = await push.send_many([target(subs[1])])
        assert first[0].kind == "retry" and "encryption failed" in first[0].reason
        assert push._executor is not pool  # the sender started a new pool
        assert [o.kind for o in await push.send_many([target(subs[1]), target(subs[2])])] == ["done", "done"]
    assert {r.sub_id for r in rx.received()} == {s.id for s in subs}


def test_encrypt_batch_answers_every_item() -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    public = key.public_key().public_bytes(serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint)
    auth = os.urandom(16)
    b64 = base64.urlsafe_b64encode
    good = (b"hello", b64(public).decode().rstrip("="), b64(auth).decode().rstrip("="))
    off_curve = b64(b"\x04" + b"\x01" * 64).decode()
    bodies = encrypt_batch([good, (b"x", off_curve, good[2]), (b"x" * (MAX_PLAINTEXT + 1), *good[1:]), good])
    assert bodies[1] == bodies[2] == b""
    sub = TestSubscription("s", "", good[1], good[2], key)
    assert sub.decrypt(bodies[0]) == sub.decrypt(bodies[3]) == b"hello"
    assert bodies[0] != bodies[3]  # fresh salt and key per message
    assert len(encrypt_batch([(b"x" * MAX_PLAINTEXT, *good[1:])])[0]) == 4096


# --- encrypting and sending in worker processes ---------------------------------------------------------------------


async def test_workers_send_and_answer_every_status(rx: PushReceiver, http: aiohttp.ClientSession,
                                                    vapid: VapidKey) -> None:
    """With a process pool the workers POST themselves; the outcomes are the same as from the event loop."""
    ok, dead, busy, refused, bad = (rx.subscribe() for _ in range(5))
    rx.behave(dead.id, status=410)
    rx.behave(busy.id, status=429, retry_after=90)
    rx.behave(refused.id, status=403)
    rx.behave(bad.id, status=400)
    async with sender(http, vapid, workers=2) as push:
        await push.warm()
        origin = rx.origin
        vapid.token(origin, SUBJECT)
        outcomes = await push.send_many([target(s, json.dumps({"key": s.id}).encode())
                                         for s in (ok, dead, busy, refused, bad)])
        assert [o.kind for o in outcomes] == ["done", "gone", "retry", "failed", "failed"]
        assert outcomes[2].retry_after_s == 90
        assert outcomes[3].reason == "push service answered 403: status 403"
        assert all(k[0] != origin for k in vapid._tokens)  # the refused token is dropped in the hub process
        many = [rx.subscribe() for _ in range(40)]
        again = await push.send_many([target(s, json.dumps({"key": s.id}).encode()) for s in many])
        assert [o.kind for o in again] == ["done"] * len(many)
    assert sorted(r.body["key"] for r in rx.received()) == sorted(s.id for s in (ok, *many))


async def test_warm_starts_every_worker(http: aiohttp.ClientSession, vapid: VapidKey) -> None:
    async with sender(http, vapid, workers=2) as push:
        pool = push._executor
        assert isinstance(pool, ProcessPoolExecutor)
        await push.warm()
        processes = dict(pool._processes)  # type: ignore[attr-defined]
        assert len(processes) == 2 and all(p.is_alive() for p in processes.values())
        await push.warm()  # again: nothing new
        assert dict(pool._processes) == processes  # type: ignore[attr-defined]
    await sender(http, vapid).warm()  # no process pool: nothing to do


async def test_hanging_endpoint_in_a_worker_delays_no_other(rx: PushReceiver, http: aiohttp.ClientSession,
                                                            vapid: VapidKey) -> None:
    subs = [rx.subscribe() for _ in range(6)]
    rx.behave(subs[1].id, hang_s=60)
    async with sender(http, vapid, workers=1, timeout_s=0.5, concurrency=3) as push:
        outcomes = await push.send_many([target(s) for s in subs])
    assert [o.kind for o in outcomes] == ["done", "retry", "done", "done", "done", "done"]
    assert outcomes[1].reason == "no answer within 0.5 s"


async def test_closing_ends_workers_stuck_on_hanging_endpoints(rx: PushReceiver, http: aiohttp.ClientSession,
                                                               vapid: VapidKey) -> None:
    subs = [rx.subscribe() for _ in range(4)]
    for sub in subs:
        rx.behave(sub.id, hang_s=60)
    push = sender(http, vapid, workers=1, timeout_s=1.0, concurrency=1)  # the chunk would take 4 s
    await push.warm()
    sending = asyncio.create_task(push.send_many([target(s) for s in subs]))
    await asyncio.sleep(0.3)
    started = asyncio.get_running_loop().time()
    await push.aclose()
    assert asyncio.get_running_loop().time() - started < 3.5  # 1 s + 1 s of grace, then the worker is ended
    outcomes = await sending
    assert [o.kind for o in outcomes] == ["retry"] * 4


@pytest.mark.parametrize("workers", [None, 2], ids=["event-loop", "worker-processes"])
async def test_slow_push_host_gets_its_limit_and_delays_no_other_host(http: aiohttp.ClientSession, vapid: VapidKey,
                                                                     workers: int | None) -> None:
    """A flood of subscriptions on one slow push host (first in the batch, as a flood would come): that host never
    sees more than ``per_host_concurrency`` requests at once, and the other host's pushes arrive while the slow
    host's are still unanswered."""
    async with PushReceiver(host="127.0.0.2") as slow, PushReceiver() as normal:
        flood = [slow.subscribe() for _ in range(40)]
        citizens = [normal.subscribe() for _ in range(10)]
        slow.hold()
        push = sender(http, vapid, workers=workers, concurrency=16, per_host_concurrency=4, timeout_s=120)
        await push.warm()
        sending = asyncio.create_task(push.send_many([target(s) for s in flood + citizens]))
        await normal.wait_for(len(citizens), timeout=60)  # every citizen's push, while the flood is held
        assert not sending.done()
        await slow.wait_in_flight(4, timeout=60)
        assert slow.received() == [] and slow.in_flight == 4
        slow.release()
        outcomes = await asyncio.wait_for(sending, 120)
        assert [o.kind for o in outcomes] == ["done"] * 50
        assert {r.sub_id for r in slow.received()} == {s.id for s in flood}
        assert slow.most_in_flight == 4  # never more than the limit at once
        assert normal.most_in_flight <= 16 and slow.errors == [] and normal.errors == []


async def test_items_waiting_for_a_slow_host_are_retried_later(http: aiohttp.ClientSession,
                                                               vapid: VapidKey) -> None:
    """A slow host cannot stretch a batch without end: what could not start within three request timeouts (its
    host at the limit all along) is answered retry; the outbox sends it again later, and its circuit breaker
    learns about that host. Rounds of the slow host's requests end by timing out (1 s each), so at most three
    rounds start before the batch's 3 s are up, whatever the machine's speed."""
    async with PushReceiver(host="127.0.0.2") as slow, PushReceiver() as normal:
        flood = [slow.subscribe() for _ in range(10)]
        citizens = [normal.subscribe() for _ in range(2)]
        slow.hold()
        push = sender(http, vapid, concurrency=8, per_host_concurrency=2, timeout_s=1.0)
        outcomes = await push.send_many([target(s) for s in flood + citizens])
        assert [o.kind for o in outcomes] == ["retry"] * 10 + ["done"] * 2
        reasons = Counter(o.reason for o in outcomes[:10])
        busy = "not started within 3 s of its batch (push host 127.0.0.2: at most 2 requests at once)"
        assert set(reasons) == {"no answer within 1 s", busy}, reasons
        assert reasons["no answer within 1 s"] in (2, 4, 6) and reasons[busy] >= 4
        assert sum(slow.hits.values()) == reasons["no answer within 1 s"]  # the others were never sent
        assert len(normal.received()) == 2


# --- the HTTP client ------------------------------------------------------------------------------------------------


class RawServer:
    """A TCP server that reads HTTP requests and answers each with the next scripted reply.

    A reply is raw bytes, ``CLOSE`` (close without answering), ``HANG`` (never answer) or a tuple of bytes written
    with a short pause between them; ``then_close`` replies close the connection after writing."""

    CLOSE = b"<close>"
    HANG = b"<hang>"

    def __init__(self, replies: Sequence[bytes | tuple[bytes, ...]], *, then_close: Sequence[int] = (),
                 tls: ssl.SSLContext | None = None) -> None:
        self.replies = list(replies)
        self.then_close = set(then_close)
        self.tls = tls
        self.requests: list[tuple[int, bytes, bytes]] = []
        """(connection number, head, body) as received."""
        self.connections = 0
        self.port = 0
        self._server: asyncio.Server | None = None

    async def __aenter__(self) -> RawServer:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0, ssl=self.tls)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()

    def address(self, scheme: str = "http") -> Address:
        return Address(scheme, "127.0.0.1" if scheme == "http" else "localhost", self.port, f"127.0.0.1:{self.port}")

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        number = self.connections
        try:
            while True:
                try:
                    head = await reader.readuntil(b"\r\n\r\n")
                except (asyncio.IncompleteReadError, ConnectionError):
                    return
                length = int(next(line.split(b":", 1)[1] for line in head.split(b"\r\n")
                                  if line.lower().startswith(b"content-length:")))
                body = await reader.readexactly(length)
                index = len(self.requests)
                self.requests.append((number, head, body))
                reply = self.replies[index]
                if reply == self.CLOSE:
                    return
                if reply == self.HANG:
                    await asyncio.sleep(3600)
                for part in reply if isinstance(reply, tuple) else (reply,):
                    writer.write(part)
                    await writer.drain()
                    await asyncio.sleep(0.01)
                if index in self.then_close:
                    return
        finally:
            writer.close()


CREATED = b"HTTP/1.1 201 Created\r\nContent-Length: 0\r\n\r\n"


async def post(client: PushClient, server: RawServer, body: bytes = b"body", *, scheme: str = "http",
               timeout_s: float = 5.0, path: str = "/push/1") -> Response:
    address = server.address(scheme)
    return await client.post(address, client.request_head(address, path, b"TTL: 60\r\n"), body, timeout_s)


async def test_client_keeps_the_connection_alive() -> None:
    async with RawServer([CREATED, b"HTTP/1.1 202 Accepted\r\ncontent-length: 2\r\n\r\nok", CREATED]) as server:
        client = PushClient()
        assert await post(client, server, b"one") == Response(201, None, b"")
        assert await post(client, server, b"two") == Response(202, None, b"ok")
        assert await post(client, server, b"x" * 4096) == Response(201, None, b"")
        client.close()
    assert server.connections == 1
    heads = [head.decode() for _, head, _ in server.requests]
    assert heads[0] == (f"POST /push/1 HTTP/1.1\r\nHost: 127.0.0.1:{server.port}\r\nTTL: 60\r\n"
                        "Content-Length: 3\r\n\r\n")
    assert [body for _, _, body in server.requests] == [b"one", b"two", b"x" * 4096]


async def test_client_reads_chunked_answers_to_the_end() -> None:
    chunked = (b"HTTP/1.1 400 Bad Request\r\nTransfer-Encoding: chunked\r\n\r\n",
               b"5;ext=1\r\nhello\r\n", b"6\r\n world\r\n0\r\nX-Trailer: 1\r\n\r\n")
    async with RawServer([chunked, CREATED]) as server:
        client = PushClient()
        assert await post(client, server) == Response(400, None, b"hello world")
        assert await post(client, server) == Response(201, None, b"")
        client.close()
    assert server.connections == 1  # the chunked body was read completely: the connection stays usable


async def test_client_honours_connection_close_and_reads_until_close() -> None:
    replies = [b"HTTP/1.1 201 Created\r\nConnection: close\r\nContent-Length: 0\r\n\r\n",
               b"HTTP/1.0 500 Oops\r\nRetry-After: 30\r\n\r\nbody until the end",
               b"HTTP/1.0 201 Created\r\nConnection: keep-alive\r\nContent-Length: 0\r\n\r\n",
               CREATED]
    async with RawServer(replies, then_close=[0, 1]) as server:
        client = PushClient()
        assert await post(client, server) == Response(201, None, b"")
        assert await post(client, server) == Response(500, "30", b"body until the end")
        assert await post(client, server) == Response(201, None, b"")
        assert await post(client, server) == Response(201, None, b"")
        client.close()
    assert [n for n, _, _ in server.requests] == [1, 2, 3, 3]


async def test_client_retries_once_when_an_idle_connection_was_closed() -> None:
    # the server takes the second request on the kept connection and closes without answering (a keep-alive race)
    async with RawServer([CREATED, RawServer.CLOSE, CREATED, CREATED, RawServer.CLOSE]) as server:
        client = PushClient()
        assert (await post(client, server)).status == 201
        assert (await post(client, server)).status == 201
        assert [n for n, _, _ in server.requests] == [1, 1, 2]
        assert (await post(client, server)).status == 201
        client.close()
        fresh = PushClient()  # a new connection closed without an answer is an error, not a reason to try again
        with pytest.raises(ConnectionResetError):
            await post(fresh, server)
        fresh.close()
    assert [n for n, _, _ in server.requests] == [1, 1, 2, 2, 3]


async def test_client_skips_interim_answers_and_never_follows_redirects() -> None:
    replies = [b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 201 Created\r\nContent-Length: 0\r\n\r\n",
               b"HTTP/1.1 301 Moved\r\nLocation: http://127.0.0.1:1/elsewhere\r\nContent-Length: 5\r\n\r\nmoved"]
    async with RawServer(replies) as server:
        client = PushClient()
        assert await post(client, server) == Response(201, None, b"")
        assert await post(client, server) == Response(301, None, b"moved")
        client.close()
    assert len(server.requests) == 2


async def test_client_drops_connections_after_large_or_broken_answers() -> None:
    big = b"HTTP/1.1 413 Too Large\r\nContent-Length: 1000000\r\n\r\n" + b"z" * 1000
    replies = [big, CREATED, b"HTTP/1.1 201 Created\r\nContent-Length: 0\r\n\r\nextra", CREATED,
               b"HTTP/1.1 2x1 Created\r\n\r\n", b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n"]
    async with RawServer(replies) as server:
        client = PushClient()
        assert await post(client, server) == Response(413, None, b"z" * BODY_KEEP)
        assert (await post(client, server)).status == 201  # a new connection: the big body was not read
        assert (await post(client, server)).status == 201  # answered, but with bytes nobody asked for
        assert (await post(client, server)).status == 201
        with pytest.raises(HttpError):
            await post(client, server)
        with pytest.raises(HttpError):
            await post(client, server)
        client.close()
    assert [n for n, _, _ in server.requests] == [1, 2, 2, 3, 3, 4]


async def test_client_times_out_and_never_reuses_that_connection() -> None:
    async with RawServer([RawServer.HANG, CREATED]) as server:
        client = PushClient()
        with pytest.raises(TimeoutError):
            await post(client, server, timeout_s=0.2)
        assert (await post(client, server)).status == 201
        client.close()
    assert [n for n, _, _ in server.requests] == [1, 2]


async def test_client_speaks_tls(tmp_path: Path) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.now(UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - timedelta(minutes=5))
            .not_valid_after(now + timedelta(hours=1))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost")]), critical=False)
            .sign(key, hashes.SHA256()))
    (tmp_path / "cert.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (tmp_path / "key.pem").write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                         serialization.NoEncryption()))
    server_tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_tls.load_cert_chain(tmp_path / "cert.pem", tmp_path / "key.pem")
    trusting = ssl.create_default_context(cafile=str(tmp_path / "cert.pem"))
    async with RawServer([CREATED, CREATED], tls=server_tls) as server:
        client = PushClient(ssl_context=trusting, public_only=False)  # the test server is on loopback
        assert (await post(client, server, scheme="https")).status == 201
        assert (await post(client, server, scheme="https")).status == 201
        client.close()
        with pytest.raises(ssl.SSLCertVerificationError):  # the default context does not trust the test's CA
            await post(PushClient(public_only=False), server, scheme="https")
    assert [n for n, _, _ in server.requests] == [1, 1]  # one TLS connection, kept alive


async def test_client_refuses_host_names_that_resolve_into_private_networks(tmp_path: Path) -> None:
    """SSRF: an https endpoint whose name resolves to loopback (or any non-public address) is never connected to,
    however the name looks; the channel fails such a push instead of retrying it."""
    from adapters.channels.pushcheck import NotPublic, public_addresses

    loop = asyncio.get_running_loop()
    with pytest.raises(NotPublic, match="no public address"):
        await public_addresses("localhost", 443, loop)
    assert await public_addresses("8.8.8.8", 443, loop) == ["8.8.8.8"]  # a literal needs no resolver
    async with RawServer([CREATED]) as server:
        address = server.address("https")._replace(host="localhost")
        with pytest.raises(NotPublic):
            await PushClient().post(address, PushClient.request_head(address, "/p", b""), b"x", 5.0)
    assert server.requests == []  # nothing reached the local server



# --- the channel ----------------------------------------------------------------------------------------------------


def delivery(i: int, recipient: str) -> Delivery:
    return Delivery(id=i, key=f"pub1/v1/push/{recipient}", publication_id=1, thread="t1", channel="push",
                    recipient=recipient, priority=0, attempts=0, not_after_ms=None, host="127.0.0.1")


async def test_channel_resolves_and_keeps_order(rx: PushReceiver, http: aiohttp.ClientSession,
                                                vapid: VapidKey) -> None:
    subs = {name: rx.subscribe() for name in ("a", "c", "d")}
    rx.behave(subs["d"].id, status=410)

    async def resolve(batch: Sequence[Delivery]) -> list[PushTarget | None]:
        return [target(subs[d.recipient], json.dumps({"key": d.key}).encode()) if d.recipient in subs else None
                for d in batch]

    async with WebPushChannel(sender(http, vapid), resolve) as channel:
        assert channel.name == "push"
        outcomes = await channel.deliver([delivery(i, r) for i, r in enumerate("abcd")])
    await rx.wait_for(2, timeout=5)
    assert [o.kind for o in outcomes] == ["done", "gone", "done", "gone"]
    assert outcomes[1].reason == "subscription deleted"
    assert [r.body["key"] for r in rx.received()] == ["pub1/v1/push/a", "pub1/v1/push/c"]


async def test_channel_answers_every_row_when_resolve_fails(http: aiohttp.ClientSession, vapid: VapidKey) -> None:
    async def resolve(batch: Sequence[Delivery]) -> list[PushTarget | None]:
        raise OSError("database is locked")

    channel = WebPushChannel(sender(http, vapid), resolve)
    outcomes = await channel.deliver([delivery(1, "a"), delivery(2, "b")])
    assert [o.kind for o in outcomes] == ["retry", "retry"]


# --- checks ---------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("url", "allow_http", "ok"), [
    ("https://fcm.googleapis.com/fcm/send/abc:APA91b", False, True),
    ("https://updates.push.services.mozilla.com/wpush/v2/gAAAA", False, True),
    ("https://push.example.net:8443/p/1", False, True),
    ("https://[2001:4860:4860::8888]/p", False, True),
    ("https://8.8.8.8/p", False, True),
    ("http://push.example.net/p", False, False),
    ("http://push.example.net/p", True, False),
    ("http://127.0.0.1:8080/push/1", False, False),
    ("http://127.0.0.1:8080/push/1", True, True),
    ("http://[::1]:8080/push/1", True, True),
    ("http://localhost:8080/push/1", True, False),
    ("https://127.0.0.1/p", True, False),
    ("https://10.1.2.3/p", False, False),
    ("https://192.168.0.10/p", False, False),
    ("https://172.16.5.4/p", False, False),
    ("https://169.254.169.254/latest/meta-data", False, False),
    ("https://[fe80::1]/p", False, False),
    ("https://[::1]/p", False, False),
    ("https://[::ffff:127.0.0.1]/p", False, False),
    ("https://0.0.0.0/p", False, False),
    ("https://2130706433/p", False, False),
    ("https://0x7f.1/p", False, False),
    ("https://localhost/p", False, False),
    ("https://user:pw@push.example.net/p", False, False),
    ("https://user@push.example.net/p", False, False),
    ("https://push.example.net/" + "a" * 2100, False, False),
    ("https://push.example.net/a b", False, False),
    ("https://push.example.net:99999/p", False, False),
    ("ftp://push.example.net/p", False, False),
    ("https:///p", False, False),
    ("not a url", False, False),
])
def test_check_endpoint(url: str, allow_http: bool, ok: bool) -> None:
    reason = check_endpoint(url, allow_http=allow_http)
    assert (reason is None) == ok, reason
    if reason is not None:
        assert reason.isascii() and reason


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


_POINT = ec.derive_private_key(20240501, ec.SECP256R1()).public_key().public_bytes(
    serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint)


@pytest.mark.parametrize(("p256dh", "auth", "problem"), [
    (_b64(_POINT), _b64(b"a" * 16), None),
    (_b64(_POINT) + "=", _b64(b"a" * 16) + "==", None),
    (_b64(_POINT[:33]), _b64(b"a" * 16), "65-byte"),
    (_b64(b"\x04" + b"\x01" * 64), _b64(b"a" * 16), "not a point"),
    (_b64(b"\x05" + _POINT[1:]), _b64(b"a" * 16), "65-byte"),
    ("*" + _b64(_POINT)[1:], _b64(b"a" * 16), "base64url"),
    ("", _b64(b"a" * 16), "65-byte"),
    (_b64(_POINT), _b64(b"a" * 15), "16 bytes"),
    (_b64(_POINT), "!!", "base64url"),
])
def test_check_keys(p256dh: str, auth: str, problem: str | None) -> None:
    reason = check_keys(p256dh, auth)
    assert reason is None if problem is None else (reason is not None and problem in reason), reason


def test_topic_and_urgency() -> None:
    topic = topic_for("dwd/2.49.0.0.276.0.DWD.PVW.1718")
    assert topic == topic_for("dwd/2.49.0.0.276.0.DWD.PVW.1718") != topic_for("dwd/other")
    assert len(topic) == 32 and set(topic) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")
    assert urgency_for("Extreme", "Future") == "high"
    assert urgency_for("Severe", "Immediate") == urgency_for("Severe", "Expected") == "high"
    assert urgency_for("Moderate", "Immediate") == "normal"
    assert urgency_for("Minor", "Expected") == "low"
    assert urgency_for("Unknown", "Unknown") == "normal"


# --- the VAPID key file ---------------------------------------------------------------------------------------------


def test_key_file_created_private_and_reloaded(tmp_path: Path) -> None:
    path = tmp_path / "var" / "keys" / "vapid.pem"
    created = VapidKey.load_or_create(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert path.read_bytes().startswith(b"-----BEGIN PRIVATE KEY-----")
    assert sorted(p.name for p in path.parent.iterdir()) == ["vapid.pem"]  # no temp file left behind
    again = VapidKey.load_or_create(path)
    assert again.public_key_b64url == created.public_key_b64url
    assert len(base64.urlsafe_b64decode(created.public_key_b64url + "=")) == 65


def test_unusable_key_file_is_a_config_error(tmp_path: Path) -> None:
    path = tmp_path / "vapid.pem"
    path.write_text("not a key")
    with pytest.raises(ConfigError, match="vapid.pem"):
        VapidKey.load_or_create(path)
    p384 = ec.generate_private_key(ec.SECP384R1()).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    path.write_bytes(p384)
    with pytest.raises(ConfigError, match="P-256"):
        VapidKey.load_or_create(path)


# --- the receiver itself --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("lean", [False, True], ids=["aiohttp", "lean"])
async def test_receiver_refuses_bad_vapid(http: aiohttp.ClientSession, vapid: VapidKey, lean: bool) -> None:
    async with PushReceiver(lean=lean) as rx:
        sub = rx.subscribe()
        body = encrypt_batch([(b"x", sub.p256dh, sub.auth)])[0]
        base = {"TTL": "60", "Content-Encoding": "aes128gcm"}
        wrong_aud = vapid.authorization("https://push.example.net", SUBJECT)
        signed_by_other = VapidKey.generate().authorization(rx.origin, SUBJECT)
        forged = signed_by_other.split(", k=")[0] + f", k={vapid.public_key_b64url}"
        for auth, encoding in ((wrong_aud, "aes128gcm"), (forged, "aes128gcm"), ("", "aes128gcm"),
                               (vapid.authorization(rx.origin, SUBJECT), "aesgcm")):
            headers = {**base, "Authorization": auth, "Content-Encoding": encoding}
            async with http.post(sub.endpoint, data=body, headers=headers) as resp:
                assert resp.status in (400, 401)
        async with http.post(f"{rx.origin}/push/nobody", data=body, headers=base) as resp:
            assert resp.status == 404
        huge = {**base, "Authorization": vapid.authorization(rx.origin, SUBJECT)}
        async with http.post(sub.endpoint, data=b"x" * 5000, headers=huge) as resp:
            assert resp.status == 413
        assert len(rx.errors) == 5 and rx.received() == []


@pytest.mark.parametrize("lean", [False, True], ids=["aiohttp", "lean"])
async def test_deferred_receiver_counts_duplicates(http: aiohttp.ClientSession, vapid: VapidKey, lean: bool) -> None:
    async with PushReceiver(decrypt="deferred", lean=lean) as rx:
        subs = [rx.subscribe() for _ in range(3)]
        push = sender(http, vapid)
        await push.send_many([target(s, json.dumps({"key": f"v1/{s.id}"}).encode()) for s in subs])
        await push.send_many([target(subs[0], json.dumps({"key": f"v1/{subs[0].id}"}).encode())])
        assert rx.received() == []  # nothing decrypted yet
        async with http.get(f"{rx.origin}/stats") as resp:
            assert await resp.json() == {"received": 4, "unique_keys": 3, "duplicates": 1, "errors": 0}
        assert len(rx.received()) == 4


def test_receiver_cli_serves_subscriptions(tmp_path: Path) -> None:
    out = tmp_path / "subs.json"
    proc = subprocess.Popen([sys.executable, "-m", "tests.kits.pushkit", "serve", "--subscriptions", "2", "--out",
                             str(out), "--deferred", "--lean"], cwd=ROOT, stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        port = int(proc.stdout.readline())
        subs = [TestSubscription.from_json(d) for d in json.loads(out.read_text())]
        assert [s.endpoint for s in subs] == [f"http://127.0.0.1:{port}/push/{s.id}" for s in subs]

        async def deliver() -> dict[str, int]:
            async with aiohttp.ClientSession() as http:
                async with sender(http, VapidKey.generate()) as push:  # closed in this event loop
                    outcomes = await push.send_many([target(s, json.dumps({"key": s.id}).encode()) for s in subs])
                assert [o.kind for o in outcomes] == ["done", "done"]
                async with http.get(f"http://127.0.0.1:{port}/count") as resp:
                    assert await resp.json() == {"arrived": 2, "errors": 0}
                async with http.get(f"http://127.0.0.1:{port}/sample") as resp:
                    assert (await resp.json())["payload"]["key"] in [s.id for s in subs]
                async with http.get(f"http://127.0.0.1:{port}/stats") as resp:
                    return await resp.json()

        assert asyncio.run(deliver()) == {"received": 2, "unique_keys": 2, "duplicates": 0, "errors": 0}
    finally:
        proc.terminate()
        assert proc.wait(timeout=10) == 0
        assert proc.stdout is not None
        proc.stdout.close()
