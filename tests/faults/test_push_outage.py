"""Fault 11: a push service answering 500 for five minutes, the minutes compressed by an injected clock.

In this process, as tests/e2e/test_outbox.py does: the real outbox on a real SQLite store, the real Web Push
channel (encryption, VAPID, HTTP) to two local push services (tests/kits/pushkit.py) on two hosts, 127.0.0.1 (the
one that fails) and 127.0.0.2 (healthy), and a second channel (``webhooks``, a recording stand-in). One clock, in
epoch milliseconds, drives the workers' due times and retries (``Outbox(clock=)``), the circuit breaker and the
channel health; the test steps it a second at a time and lets the workers claim what is due at each step, so five
minutes of outage take a few seconds.

Expected: the failing host's circuit opens and it is only probed, once per cooldown (backoff per origin), while
the healthy host and the other channel get every warning at once, including one published mid-outage; a warning
that expires during the outage is never pushed to the failing host (its rows end ``expired``); the channel health
is degraded, naming the host, from the circuit's opening to the first answered probe and ok after; the queue gauge
equals the store's queue at every refresh (every 2 s of the clock, ``Outbox.metrics_interval_s``). After the
outage everything still due arrives, once: I1-I4 over the history log, the store and both receivers' receipts.
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator, Sequence
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from adapters.channels.vapid import VapidKey
from adapters.channels.webpush import WebPushChannel, WebPushSender
from hub.deliver.breaker import CircuitBreaker
from hub.deliver.outbox import NewDelivery
from hub.deliver.workers import ChannelWorker, Outbox, OutboxMetrics
from hub.history import History
from hub.ports import Delivery, PushTarget
from hub.store.db import AsyncStore, Store
from tests.e2e.test_outbox import RecordingChannel
from tests.kits.invariants import check, receipts_of
from tests.kits.pushkit import PushReceiver, TestSubscription

OUTAGE_S = 300
COOLDOWN_S = 30.0
HOUR_MS = 3_600_000
SHORT_MS = 120_000
"""The warning that expires during the outage: two minutes after it began."""


class Clock:
    def __init__(self) -> None:
        self.ms = time.time_ns() // 1_000_000

    def now_ms(self) -> int:
        return self.ms

    def now_s(self) -> float:
        return self.ms / 1000


def add_publication(store: Store, pub: int, thread: str, expires_ms: int, now_ms: int) -> None:
    with store.transaction() as conn:
        conn.execute(
            "INSERT INTO publications (id, thread, version, identifier, sender, sent, msg_type, status, severity,"
            " urgency, expires_ms, push, channels, regions, notices, alert_json, cap_xml, created_ms) VALUES"
            " (?, ?, 1, ?, 'hub@test', '2026-01-01T00:00:00+00:00', 'Alert', 'Actual', 'Severe', 'Immediate', ?, 1,"
            " '[\"push\",\"webhooks\"]', '[]', '{}', '{}', x'', ?)", (pub, thread, f"id-{pub}", expires_ms, now_ms))


@pytest.fixture
async def receivers() -> AsyncIterator[tuple[PushReceiver, PushReceiver]]:
    async with PushReceiver(host="127.0.0.1") as bad, PushReceiver(host="127.0.0.2") as good:
        yield bad, good


async def test_five_minute_push_outage(tmp_path: Path, receivers: tuple[PushReceiver, PushReceiver]) -> None:
    bad, good = receivers
    clock = Clock()
    subs = {f"bad-{i}": bad.subscribe() for i in range(5)} | {f"good-{i}": good.subscribe() for i in range(5)}
    host = {name: s.endpoint.split("/")[2] for name, s in subs.items()}
    expires: dict[str, int] = {}

    async def resolve(batch: Sequence[Delivery]) -> list[PushTarget | None]:
        out: list[PushTarget | None] = []
        for d in batch:
            sub = subs[d.recipient]
            body = json.dumps({"key": d.key, "thread": d.thread, "version": 1, "status": "Actual"}).encode()
            out.append(PushTarget(sub.endpoint, sub.p256dh, sub.auth, body,
                                  max(0, (expires[d.thread] - clock.ms) // 1000), "high", None))
        return out

    astore = AsyncStore(Store(tmp_path / "hub.db"))
    history = History(tmp_path / "history.jsonl", clock=clock.now_s)
    registry = CollectorRegistry()
    box = Outbox(astore, metrics=OutboxMetrics(registry), clock=clock.now_ms)
    box.observers.append(history.sent)
    sender = WebPushSender(None, VapidKey.generate(), "mailto:test@warnhub.example", executor=None, timeout_s=5,
                           allow_http=True)
    hooks = RecordingChannel("webhooks")
    try:
        async with WebPushChannel(sender, resolve) as push:
            breaker = CircuitBreaker(cooldown_s=COOLDOWN_S, clock=clock.now_s)
            workers = [box.add_worker(push, breaker=breaker, idle_s=3600), box.add_worker(hooks, idle_s=3600)]
            run = Run(clock, box, workers, astore, registry, bad, {n: h for n, h in host.items()})

            for name in subs:
                if name.startswith("bad"):
                    bad.behave(subs[name].id, status=500)  # the outage begins
            await run.publish(1, "lange-warnung", HOUR_MS, subs, expires, history)
            await run.publish(2, "kurze-warnung", SHORT_MS, subs, expires, history)
            while run.t < OUTAGE_S:
                if run.t == OUTAGE_S // 2:
                    await run.publish(3, "mitten-im-ausfall", HOUR_MS, subs, expires, history)
                await run.tick()
            for name in subs:
                if name.startswith("bad"):
                    bad.behave(subs[name].id)  # answers again
            while await run.open_rows() and run.t < OUTAGE_S + 900:
                await run.tick()
            delivered_at = run.t
            run.t += run.t % 2  # a last refresh, at the refresh interval
            await run.step()
            print({"all_delivered_s_after_outage": delivered_at - OUTAGE_S, "probes": run.asked_steps})
    finally:
        await sender.aclose()
        history.close()
        astore.close()

    receipts = receipts_of(bad.receipts() + good.receipts())
    verdict = check(tmp_path / "history.jsonl", tmp_path / "hub.db", receipts, p99_limit_s=None)
    verdict.assert_holds("I1", "I2", "I3", "I4")
    _expectations(run, bad, good, subs, receipts, verdict.figures, hooks)
    # the first probe after the service answers again closes the circuit, and everything that waited for the host
    # goes in the same step (measured before: rows kept each its own backoff, the last arrived 182 s later)
    assert delivered_at == OUTAGE_S + COOLDOWN_S, delivered_at


def _expectations(run: Run, bad: PushReceiver, good: PushReceiver, subs: dict[str, TestSubscription],
                  receipts: list, figures: dict, hooks: RecordingChannel) -> None:
    bad_host = f"127.0.0.1:{bad.port}"
    # nothing expired is delivered late: the short warning never reached the failing host, its rows expired
    assert not [r for r in bad.receipts() if r["payload"]["thread"] == "kurze-warnung"]
    assert figures["row_states"] == {"done": 5 * 3 + 5 * 2 + 2 * 3, "expired": 5}, figures
    # everything else arrived once: 3 warnings at the healthy host, 2 at the failing one after the outage
    assert len(good.receipts()) == 15 and len(bad.receipts()) == 10 and not bad.errors and not good.errors
    # the healthy host and the other channel were not held up: everything at the first step after publishing
    assert run.first_done["good"] == run.first_done["webhooks"] == {1: 0, 2: 0, 3: OUTAGE_S // 2}, run.first_done
    assert len(hooks.seen) == 6
    # backoff per origin: the failing host was asked in few steps (the failures that opened its circuit, then one
    # probe per cooldown), not at every retry of every row
    asked = [t for t in run.asked_steps if t < OUTAGE_S]
    assert asked == [int(COOLDOWN_S) * i for i in range(len(asked))] and len(asked) == OUTAGE_S / COOLDOWN_S, asked
    # health: degraded naming the host while the circuit was open (from its opening to the outage's end), ok after
    opened = min(t for t, h in run.health if h["push"]["open_circuits"])
    assert opened < 30, run.health[:20]
    during = [h for t, h in run.health if opened <= t < OUTAGE_S]
    assert during and all(h["push"]["state"] == "degraded" and h["push"]["open_circuits"] == [bad_host]
                          and any(bad_host in p for p in h["push"]["problems"]) for h in during)
    assert all(h["webhooks"]["state"] == "ok" for _, h in run.health)
    assert run.health[-1][1]["push"]["state"] == "ok" and run.health[-1][1]["push"]["queued"] == 0
    # the queue gauge equalled the store's queue at every refresh
    assert run.gauge_mismatches == [], run.gauge_mismatches[:5]


class Run:
    """The simulation: the clock, the workers and what was observed at each step."""

    def __init__(self, clock: Clock, box: Outbox, workers: list[ChannelWorker], astore: AsyncStore,
                 registry: CollectorRegistry, bad: PushReceiver, host: dict[str, str]) -> None:
        self.clock, self.box, self.workers, self.astore, self.registry, self.bad = (
            clock, box, workers, astore, registry, bad)
        self.host = host
        self.t = 0
        self.start_ms = clock.ms
        self.health: list[tuple[int, dict]] = []
        self.asked_steps: list[int] = []
        self.first_done: dict[str, dict[int, int]] = {"good": {}, "webhooks": {}}
        """Step at which every row of a publication was done, for the healthy host and the other channel."""
        self.gauge_mismatches: list[tuple[int, float | None, int]] = []
        self._hits = 0

    async def publish(self, pub: int, thread: str, lifetime_ms: int, subs: dict[str, TestSubscription],
                      expires: dict[str, int], history: History) -> None:
        expires[thread] = self.clock.ms + lifetime_ms
        await self.astore.run(add_publication, self.astore.store, pub, thread, expires[thread], self.clock.ms)
        history.record("publish", pub=pub, thread=thread, version=1, status="Actual", source_alert=None)
        rows = [NewDelivery(f"{pub}/push/{n}", pub, thread, "push", n, self.host[n], 1, expires[thread]) for n in subs]
        rows += [NewDelivery(f"{pub}/webhooks/{h}", pub, thread, "webhooks", h, h, 1, expires[thread])
                 for h in ("presse", "taxi")]
        await self.box.enqueue(rows, now_ms=self.clock.ms)
        await self.step()

    async def step(self) -> None:
        """Let every worker claim and deliver what is due now, then observe."""
        for worker in self.workers:
            while await worker.step():
                pass
        if sum(self.bad.hits.values()) > self._hits:
            self._hits = sum(self.bad.hits.values())
            self.asked_steps.append(self.t)
        done = await self.astore.run(_done_by_publication, self.astore.store)
        for name, rows in (("good", 5), ("webhooks", 2)):
            for pub, n in done.get(name, {}).items():
                if n == rows:
                    self.first_done[name].setdefault(pub, self.t)
        if self.t % 2 == 0:  # the outbox's refresh interval (metrics_interval_s = 2 s)
            health = await self.box.refresh()
            self.health.append((self.t, {n: h.as_dict() for n, h in health.items()}))
            queued = await self.astore.run(_queued, self.astore.store)
            shown = self.registry.get_sample_value("warnhub_outbox_queued", {"channel": "push"})
            if shown != queued:
                self.gauge_mismatches.append((self.t, shown, queued))

    async def tick(self) -> None:
        self.t += 1
        self.clock.ms += 1000
        await self.step()

    async def open_rows(self) -> int:
        return await self.astore.run(_queued, self.astore.store, "inflight")


def _done_by_publication(store: Store) -> dict[str, dict[int, int]]:
    out: dict[str, dict[int, int]] = {}
    for channel, recipient, pub, n in store.conn.execute(
            "SELECT channel, substr(recipient, 1, 4), publication_id, count(*) FROM outbox WHERE state='done'"
            " GROUP BY 1, 2, 3"):
        name = "webhooks" if channel == "webhooks" else recipient
        out.setdefault(name, {})[pub] = out.get(name, {}).get(pub, 0) + n
    return out


def _queued(store: Store, also: str = "") -> int:
    states = ("queued", also)
    return int(store.conn.execute("SELECT count(*) FROM outbox WHERE channel='push' AND state IN (?, ?)",
                                  states).fetchone()[0])
