"""Fault 5: slow consumers, against the real daemon with the history log and the local push service
(tests/kits/pushkit.py), then the invariant checker (I1-I4) over the run.

- a push service that answers one subscription only after 30 s: the hub gives up after its request timeout
  (``[push] timeout_s``) and retries, and the other subscriptions get every warning meanwhile;
- 429 with ``Retry-After: 3``: that push is retried, and no earlier than 3 s after the refusal;
- 410 Gone: the row ends ``gone`` and the subscription is deleted;
- a live-stream (SSE) client that never reads: the hub evicts it at a heartbeat (``warnhub_stream_hung_up``), it
  buffers nothing for it meanwhile that a reading client would wait for, and a reading client gets every event.

Measured before the fixes: warning B reached the other subscriptions only after the slow service's request timed
out (each push worker process sends one chunk at a time, and the slow one held it; 3 runs of 3), and the stream
that never read stayed open (a few events fit in the kernel's buffers; no gauge showed it).

Two warnings (A and B) and an Update of A: the Update supersedes A everywhere (I4), each subscriber gets each
version once (I2), every row ends done or gone (I1).
"""

from __future__ import annotations

import asyncio
import socket
import sqlite3
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp

from tests.e2e.test_delivery_e2e import DANNENBERG, post_json
from tests.e2e.test_fdlimit import DISTRICT, STREAM_GET
from tests.e2e.test_routing import Hub, dwd_cap
from tests.e2e.test_web_channel import events
from tests.faults.test_sse_abandoned import gauge
from tests.kits.hubproc import drop, until
from tests.kits.invariants import check, receipts_of
from tests.kits.pushkit import PushReceiver, TestSubscription

TIMEOUT_S = 5
"""``[push] timeout_s``: the hub's wait for one push service's answer."""
RETRY_AFTER_S = 3
HEARTBEAT_S = 15.0
CONFIG = f"""
[push]
allow_http_endpoints = true
vapid_key = "var/vapid.pem"
vapid_subject = "mailto:test@warnhub.example"
timeout_s = {TIMEOUT_S}
workers = 1

[debug]
history = "history.jsonl"
"""


def never_reads(port: int) -> socket.socket:
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1024)  # the kernel's minimum: full after a few events
    s.connect(("127.0.0.1", port))
    s.sendall(STREAM_GET.encode())
    return s


async def follow(url: str, seen: list[tuple[str, Any]]) -> None:
    async with aiohttp.ClientSession() as session, session.get(url) as resp:
        assert resp.status == 200
        stream: AsyncIterator[tuple[str, Any]] = events(resp)
        async for name, data in stream:
            seen.append((name, data))


def got(rx: PushReceiver, sub: TestSubscription, thread: str, version: int) -> list[Any]:
    return [r for r in rx.received(sub.id) if isinstance(r.body, dict) and r.body.get("thread") == thread
            and r.body.get("version") == version]


async def test_slow_consumers_do_not_hold_up_the_others(tmp_path: Path) -> None:
    hub = Hub(tmp_path, CONFIG)
    async with PushReceiver() as rx:
        await asyncio.to_thread(hub.proc.start)
        try:
            await _run(hub, rx)
        finally:
            await asyncio.to_thread(hub.proc.close)
        receipts = receipts_of(rx.receipts())
    verdict = check(tmp_path / "history.jsonl", tmp_path / "hub.db", receipts, p99_limit_s=None)
    verdict.assert_holds("I1", "I2", "I3", "I4")
    states = verdict.figures["row_states"]
    assert states.get("gone", 0) >= 1 and states["done"] == len(receipts), verdict.figures
    assert set(states) <= {"done", "gone", "superseded"}, verdict.figures


async def _run(hub: Hub, rx: PushReceiver) -> None:
    api = f"{hub.proc.base}/api/v1/subscriptions"
    subs = [rx.subscribe() for _ in range(7)]
    normal, slow, busy, dead = subs[:4], subs[4], subs[5], subs[6]
    for sub in subs:
        await asyncio.to_thread(post_json, api, {"subscription": sub.as_json(), "languages": ["de"],
                                                 "places": [{"lat": DANNENBERG[0], "lon": DANNENBERG[1]}]})
    rx.behave(slow.id, hang_s=30, times=1)
    rx.behave(busy.id, status=429, retry_after=RETRY_AFTER_S, times=1)
    rx.behave(dead.id, status=410)

    seen: list[tuple[str, Any]] = []
    reader = asyncio.ensure_future(follow(f"{hub.proc.base}/api/v1/stream?ars={DISTRICT}", seen))
    stuck = await asyncio.to_thread(never_reads, hub.port)
    try:
        await until(lambda: seen, "the reading stream's snapshot")
        assert await asyncio.to_thread(gauge, hub.proc, "warnhub_stream_clients") == 2

        sent = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=1)
        drop(hub.inbox, "a.xml", dwd_cap("slow-a", sent=sent, expires=sent + timedelta(hours=6)), settled=True)
        await until(lambda: all(got(rx, s, *_first(rx, normal[0])) for s in normal) and rx.hit_times.get(slow.id),
                    "warning A at every normal subscription")
        drop(hub.inbox, "b.xml", dwd_cap("slow-b", sent=sent + timedelta(seconds=1), description="Orkanböen.",
                                         expires=sent + timedelta(hours=6)), settled=True)
        await until(lambda: all(len(rx.received(s.id)) == 2 for s in normal), "warning B at every normal one")
        slow_asked = rx.hit_times[slow.id][0]
        last_normal = max(r.at for s in normal for r in rx.received(s.id))
        # the others went on: A and B arrived while the hub still waited for the slow service's first answer
        assert last_normal < slow_asked + TIMEOUT_S, (last_normal - slow_asked)

        await until(lambda: len(rx.received(slow.id)) == 2 and len(rx.received(busy.id)) == 2,
                    "A and B at the slow and the busy subscription, after their retries", timeout=60)
        a_thread = _first(rx, normal[0])[0]
        refused_at = rx.hit_times[busy.id][0]
        busy_a = got(rx, busy, a_thread, 1)
        assert busy_a and busy_a[0].at >= refused_at + RETRY_AFTER_S - 0.01, (busy_a[0].at - refused_at)
        assert len(rx.hit_times[slow.id]) >= 2 and not rx.received(dead.id)
        await until(lambda: _subscription_gone(hub, dead), "the 410 subscription deleted")

        drop(hub.inbox, "a2.xml", dwd_cap("slow-a2", msg_type="Update", severity="Extreme",  # pushed: it is graver
                                          sent=sent + timedelta(seconds=2),
                                          references=f"opendata@dwd.de,slow-a,{sent.isoformat()}",
                                          expires=sent + timedelta(hours=6)), settled=True)
        await until(lambda: all(got(rx, s, a_thread, 2) for s in subs[:6]), "A's Update everywhere")
        publications = [(d["thread"], d["version"]) for name, d in seen if name == "publication"]
        assert len(publications) == 3 and publications[-1] == (a_thread, 2), seen
        # the stream that never read is evicted at a heartbeat after the last event; the reader stays
        await until(lambda: gauge(hub.proc, 'warnhub_stream_hung_up{reason="stalled"}') == 1,
                    "the client that never reads evicted", timeout=2 * HEARTBEAT_S + 20)
        assert gauge(hub.proc, "warnhub_stream_clients") == 1 and not reader.done()
    finally:
        stuck.close()
        reader.cancel()
        await asyncio.gather(reader, return_exceptions=True)


def _first(rx: PushReceiver, sub: TestSubscription) -> tuple[str, int]:
    """The (thread, version) of the first push a subscription received, ("", 0) before it has one."""
    first = next((r.body for r in rx.received(sub.id) if isinstance(r.body, dict)), None)
    return ("", 0) if first is None else (first["thread"], first["version"])


def _subscription_gone(hub: Hub, sub: TestSubscription) -> bool:
    with sqlite3.connect(f"{(hub.tmp / 'hub.db').as_uri()}?mode=ro", uri=True) as db:
        return db.execute("SELECT count(*) FROM subscriptions WHERE endpoint=?", (sub.endpoint,)).fetchone()[0] == 0
