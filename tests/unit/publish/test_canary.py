"""Canaries (issue 17 section 2): a round queues one Test row per canary endpoint and nothing else (no publication,
no other recipient), the live stream offers the canary only to the watch's own subscriber, the channel resolvers send
a canary (marked, with its receipt URL) only to canary endpoints, and each endpoint's state follows its receipts
(ok, late after its SLO, silent after a whole interval) on an injected clock."""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from pathlib import Path

import pytest

from adapters.channels.boards import BoardState, plan_for
from hub.config import load as config
from hub.config.sections import BoardConfig, CanarySection, WebhookConfig
from hub.deliver.setup import Resolvers
from hub.events import Bus, Queued
from hub.metrics import Metrics
from hub.ports import BoardUpdate, Delivery, Outcome
from hub.publish import canary, subscriptions
from hub.publish.canary_watch import CanaryWatch, listen
from hub.store.db import AsyncStore, Store
from hub.web.live import Broadcaster
from tests.kits.hubproc import write_config

P256DH = "BCVxsr7N_eNgVRqvHtD0zTZsEc6-VV-JvLexhqUzORcxaOzi6-AYWXvTBHm4bjyPjs7Vd8pZGH6SRpkNtoIAiw4"
BOARDS = (BoardConfig(id="testtafel", name="Testtafel", ars="033540000000", kind="http", url="https://b.example/",
                      secret="s" * 16, canary=True, lines=2, chars=16, charset="ascii"),
          BoardConfig(id="markt", name="Markt", ars="033540000000", kind="http", url="https://m.example/", secret="s"))
HOOKS = (WebhookConfig(id="leitstelle", url="https://hook.example/in", secret="s" * 16, canary=True),
         WebhookConfig(id="zeitung", url="https://news.example/in", secret="s" * 16))


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _subscribe(store: Store, n: int) -> str:
    sid, _token = subscriptions.create(store, subscriptions.Subscription(
        endpoint=f"https://push{n}.example/ep/{n}", p256dh=P256DH, auth="BTBZMqHH6r4Tts7J_aSIgg",
        places=(subscriptions.PointPlace(53.0, 11.1, 1000),), languages=("en", "de")))
    return sid


def _count(metrics: Metrics, channel: str) -> float:
    return metrics.registry.get_sample_value("warnhub_canary_delivery_seconds_count", {"channel": channel}) or 0.0


async def test_a_round_reaches_only_the_canary_endpoints_and_states_follow_the_receipts(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    store = Store(tmp_path / "hub.db")
    control_room, citizen = _subscribe(store, 1), _subscribe(store, 2)
    cfg = CanarySection(enabled=True, interval_s=60, slo_s=5, push_subscriptions=[control_room])
    bus, metrics, clock, queued = Bus(), Metrics(), Clock(), []
    bus.subscribe(Queued, queued.append)
    stream = Broadcaster()
    public = stream.subscribe(None)  # a citizen's live stream (channel web, status Actual)
    everything = stream.subscribe(None, channels=None)
    watch = CanaryWatch(AsyncStore(store), cfg, HOOKS, histogram=metrics.canary_seconds, events=bus,
                        sse=stream.publish, clock=clock)
    assert watch.ok and {e["state"] for e in watch.as_dict().values()} == {"waiting"}

    assert await watch.round() == 3
    rows = store.conn.execute("SELECT thread, channel, recipient, publication_id, priority, host FROM outbox"
                              " ORDER BY channel").fetchall()
    assert [(r[1], r[2], r[3], r[4], r[5]) for r in rows] == [
        ("push", control_room, 0, canary.PRIORITY, "push1.example"),
        ("webhooks", "leitstelle", 0, canary.PRIORITY, "hook.example")]
    assert all(canary.is_canary(r[0]) for r in rows) and citizen not in {r[2] for r in rows}
    assert store.conn.execute("SELECT count(*) FROM publications").fetchone()[0] == 0
    assert queued == [Queued(frozenset({"push", "webhooks"}))]
    assert public.pending == 0 and everything.pending == 0  # Test, channel canary: no public client is offered it

    internal = stream.subscribe(None, channels=("canary",), statuses=("Test",))
    assert await watch.round() == 3  # the second round, now with the watch's own subscriber listening
    assert internal.pending == 1 and public.pending == 0 and everything.pending == 0
    internal.close()
    clock.now += 0.5
    await listen(internal, watch)  # reads the queued canary event, then ends (closed)
    assert _count(metrics, "sse") == 1 and watch.as_dict()["sse"]["state"] == "ok"

    push = watch.endpoints[f"push:{control_room}"]
    first, second = list(push.sent)
    clock.now += 1
    assert watch.received(second) and not watch.received("no-such-probe")
    assert push.sent == {} and _count(metrics, "push") == 1  # a newer receipt: the older probe is not waiting
    assert watch.as_dict()[f"push:{control_room}"]["state"] == "ok"
    assert watch.received(first) is False  # forgotten: no second sample
    assert _count(metrics, "push") == 1

    hook = watch.as_dict()["webhooks:leitstelle"]
    assert hook["state"] == "ok" and hook["unanswered"] == 2
    clock.now += 5  # past the SLO, no receipt: late, named
    hook = watch.as_dict()["webhooks:leitstelle"]
    assert hook["state"] == "late" and "target 5 s" in hook["problems"][0] and not watch.ok
    clock.now += 60  # a whole interval without a receipt: silent
    hook = watch.as_dict()["webhooks:leitstelle"]
    assert hook["state"] == "silent" and "canary not received" in hook["problems"][0]
    assert "nicht angekommen" in hook["problems"][0]
    with caplog.at_level(logging.INFO, logger="warnhub.canary"):
        watch.log_changes()
        watch.log_changes()  # once per change, not every round
    said = [r.getMessage() for r in caplog.records if "webhooks:leitstelle" in r.getMessage()]
    assert len(said) == 1 and "silent (was waiting)" in said[0] and caplog.records[-1].levelname == "WARNING"

    await watch.round()
    pid = next(reversed(watch.endpoints["webhooks:leitstelle"].sent))
    clock.now += 7  # a receipt after the SLO: late, with its time
    assert watch.received(pid)
    hook = watch.as_dict()["webhooks:leitstelle"]
    assert hook["state"] == "late" and hook["last_delay_s"] == 7 and hook["unanswered"] == 0
    assert "took 7.0 s" in hook["problems"][0]
    store.close()


async def test_an_unknown_canary_subscription_is_named_silent(tmp_path: Path) -> None:
    store = Store(tmp_path / "hub.db")
    watch = CanaryWatch(AsyncStore(store), CanarySection(enabled=True, push_subscriptions=["gone"], sse=False), (),
                        histogram=Metrics().canary_seconds, events=Bus())
    assert await watch.round() == 0
    state = watch.as_dict()["push:gone"]
    assert state["state"] == "silent" and "push subscription gone is not stored" in state["problems"][0]
    store.close()


def test_resolvers_send_a_canary_only_to_canary_endpoints(tmp_path: Path) -> None:
    store = Store(tmp_path / "hub.db")
    sid = _subscribe(store, 1)
    loaded = config.load(write_config(tmp_path, port=1))
    resolvers = Resolvers(AsyncStore(store), loaded)
    resolvers.webhooks = {h.id: h for h in HOOKS}
    thread = canary.PREFIX + "p" * 22
    push = resolvers._push(store, [Delivery(1, f"{thread}/push/{sid}", 0, thread, "push", sid, 9, 0, None, "")])
    assert push[0] is not None
    doc = json.loads(push[0].payload)
    assert doc["canary"] is True and doc["status"] == "Test" and doc["lang"] == "en"
    assert doc["receipt"] == canary.receipt_path("p" * 22) and "severity" not in doc and "headline" not in doc
    hooks = resolvers._webhooks(store, [Delivery(2, f"{thread}/webhooks/{h}", 0, thread, "webhooks", h, 9, 0, None, "")
                                        for h in ("leitstelle", "zeitung")])
    assert hooks[1] is None  # a webhook not marked canary never gets one (the row is gone, nothing sent)
    assert hooks[0] is not None and hooks[0].content_type == "application/json"
    body = json.loads(hooks[0].body)
    assert body["canary"] is True and body["receipt"].endswith(canary.receipt_path("p" * 22))
    assert body["receipt"].startswith(loaded.cfg.hub.public_url.rstrip("/"))

    resolvers.boards = {b.id: b for b in BOARDS}
    rows = [Delivery(3 + i, f"{thread}/boards-http/{b.id}", 0, thread, "boards-http", b.id, 9, 0, None, "")
            for i, b in enumerate(BOARDS)]
    updates = resolvers._boards(store, rows)
    assert updates[1] is None  # a board not marked canary never shows one
    assert updates[0] is not None and updates[0].text is not None
    text = updates[0].text
    assert text.status == "Test" and text.lines == ("KONTROLLMELDUNG", "KEINE WARNUNG")  # its 2 lines
    assert text.receipt is not None and text.receipt.endswith(canary.receipt_path("p" * 22))
    now = datetime.now(UTC)
    state = plan_for(BOARDS[0], rows[0], updates[0], {}, now)
    assert isinstance(state, BoardState) and state.to_dict()["receipt"] == text.receipt
    refused = plan_for(BOARDS[1], rows[1], BoardUpdate(BOARDS[1].id, text), {}, now)  # a Test on a public board
    assert isinstance(refused, Outcome) and refused.kind == "failed"
    store.close()
