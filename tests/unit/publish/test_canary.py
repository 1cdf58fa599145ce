"""Canaries (issue 17 section 2): a round is one Test alert through the real intake, the router's built-in decision
(the rules never see it) and the publish step, which queues one Test row per canary endpoint and nothing else (no
publication, no other recipient; a round too late queues nothing; retention deletes old rounds), the live stream
offers the canary only to the watch's own subscriber, the channel resolvers send a canary (marked, with its receipt
URL) only to canary endpoints, and each endpoint's state follows its receipts (ok, late after its SLO, silent after
a whole interval) on an injected clock."""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from adapters.channels.boards import BoardState, plan_for
from hub import retention
from hub.cap.sign import SignaturePolicy
from hub.cap.validate import Validator
from hub.config import load as config
from hub.config.sections import BoardConfig, CanarySection, RetentionSection, WebhookConfig
from hub.decide import decisions
from hub.decide.router import Router, empty_rules
from hub.deliver.setup import Resolvers
from hub.events import AlertStored, Bus, Queued
from hub.intake.service import IntakeService
from hub.metrics import Metrics
from hub.ports import BoardUpdate, Delivery, Outcome
from hub.publish import canary, subscriptions
from hub.publish.canary_watch import CanaryWatch, listen
from hub.publish.pipeline import Pipeline
from hub.store.db import AsyncStore, Store
from hub.web.live import Broadcaster
from tests.e2e.test_routing import dwd_cap
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


class RulesThatMustNotSeeIt:
    """Rules in force whose evaluation fails the test: the canary's decision is built in, before the rules."""

    rules: list[object] = []
    loaded_at = None
    geo = None

    def evaluate(self, alert: object, **_kw: object) -> None:
        raise AssertionError(f"the rules were asked about {alert!r}")


class Flow:
    """The real intake, router and publishing pipeline on one store and bus, as the daemon wires them."""

    def __init__(self, tmp_path: Path, store: Store, bus: Bus, metrics: Metrics) -> None:
        astore = AsyncStore(store)
        self.intake = IntakeService(astore, Validator(), metrics=metrics, events=bus)
        live = empty_rules(tmp_path / "rules")
        self.router = Router(astore, live, district="033540000000", events=bus)
        live.current = RulesThatMustNotSeeIt()  # type: ignore[assignment]
        self.pipeline = Pipeline(astore, config.load(write_config(tmp_path, port=1)), live, index=None, events=bus)

    async def through(self) -> int:
        """Decide what was ingested and run the publish step; returns the canary rounds queued."""
        await self.router.decide_pending()
        return await self.pipeline.queue_canaries()


async def test_a_round_goes_through_intake_decide_and_publish_to_the_canary_endpoints_only(
        tmp_path: Path, store_url: str, caplog: pytest.LogCaptureFixture) -> None:
    store = Store(store_url)
    control_room, citizen = _subscribe(store, 1), _subscribe(store, 2)
    cfg = CanarySection(enabled=True, interval_s=60, slo_s=5, push_subscriptions=[control_room])
    bus, metrics, clock, queued, stored = Bus(), Metrics(), Clock(), [], []
    bus.subscribe(Queued, queued.append)
    bus.subscribe(AlertStored, stored.append)
    flow = Flow(tmp_path, store, bus, metrics)
    stream = Broadcaster()
    public = stream.subscribe(None)  # a citizen's live stream (channel web, status Actual)
    everything = stream.subscribe(None, channels=None)
    watch = CanaryWatch(AsyncStore(store), cfg, HOOKS, histogram=metrics.canary_seconds, events=bus,
                        intake=flow.intake, sender="leitstelle@kreis.example", sse=stream.publish, clock=clock)
    assert watch.ok and {e["state"] for e in watch.as_dict().values()} == {"waiting"}

    assert await watch.round() == 3
    assert [s.origin for s in stored] == ["canary"]  # ingested: validated and stored like any alert
    alert = store.alert(stored[0].alert_id)
    assert alert is not None and alert.status.value == "Test" and alert.scope.value == "Restricted"
    assert alert.sender == "canary.leitstelle@kreis.example" and alert.identifier.startswith("warnhub.canary.")
    assert alert.infos[0].headline == "Kontrollmeldung / Canary"
    assert store.conn.execute("SELECT count(*) FROM outbox").fetchone()[0] == 0  # nothing before decide + publish
    assert await flow.through() == 1
    stored_decision = decisions.decision_of(store, stored[0].alert_id)
    assert stored_decision is not None and stored_decision.decision == "canary" and not stored_decision.failed
    rows = store.conn.execute("SELECT thread, channel, recipient, publication_id, priority, host FROM outbox"
                              " ORDER BY channel").fetchall()
    assert [(r[1], r[2], r[3], r[4], r[5]) for r in rows] == [
        ("push", control_room, 0, canary.PRIORITY, "push1.example"),
        ("webhooks", "leitstelle", 0, canary.PRIORITY, "hook.example")]
    assert {canary.probe_id(r[0]) for r in rows} < set(watch._probes)  # the probes the watch is waiting for
    assert all(canary.is_canary(r[0]) for r in rows) and citizen not in {r[2] for r in rows}
    assert store.conn.execute("SELECT count(*) FROM publications").fetchone()[0] == 0
    assert queued == [Queued(frozenset({"push", "webhooks"}))]
    assert public.pending == 0 and everything.pending == 0  # Test, channel canary: no public client is offered it
    assert store.thread(stored[0].thread_id).state == "ended"  # type: ignore[union-attr] # not a live warning
    assert await flow.through() == 0  # queued once

    internal = stream.subscribe(None, channels=("canary",), statuses=("Test",))
    assert await watch.round() == 3  # the second round, now with the watch's own subscriber listening
    assert internal.pending == 0  # not before the publish step
    assert await flow.through() == 1
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
    clock.now += 7  # a receipt after the SLO: late, with its time (counted from the intake, not the queue)
    assert watch.received(pid)
    hook = watch.as_dict()["webhooks:leitstelle"]
    assert hook["state"] == "late" and hook["last_delay_s"] == 7 and hook["unanswered"] == 0
    assert "took 7.0 s" in hook["problems"][0]
    store.close()


async def test_a_round_decided_after_it_expired_queues_nothing_and_retention_deletes_old_rounds(
        tmp_path: Path, store_url: str) -> None:
    store = Store(store_url)
    bus, metrics = Bus(), Metrics()
    flow = Flow(tmp_path, store, bus, metrics)
    watch = CanaryWatch(AsyncStore(store), CanarySection(enabled=True, interval_s=60), HOOKS,
                        histogram=metrics.canary_seconds, events=bus, intake=flow.intake, sender="l@k.example")
    assert await watch.round() == 1  # the canary webhook
    await flow.router.decide_pending()
    later = datetime.now(UTC) + timedelta(seconds=200)  # past its two intervals: of no use any more
    assert await flow.pipeline.store.run(canary.queue_due, store, now=later) == []
    assert store.conn.execute("SELECT count(*) FROM outbox").fetchone()[0] == 0
    assert len(store.sweep_expired(later)) == 1  # the late round's thread expires, unsent
    await watch.round()
    assert await flow.through() == 1

    cfg = RetentionSection()
    plan = retention.Plan(cfg, frozenset(), frozenset(), tmp_path / "audit")
    done = await retention.run(AsyncStore(store), plan, now=datetime.now(UTC) + timedelta(hours=1))
    assert done["canaries"] == 0  # ended an hour ago: kept for a day
    real = await flow.intake.ingest(dwd_cap("echt", expires=datetime.now(UTC) + timedelta(minutes=5)),
                                    origin="cap-inbox", policy=SignaturePolicy.IGNORE)
    assert real.thread_id is not None
    done = await retention.run(AsyncStore(store), plan, now=later + timedelta(days=2))
    assert done["canaries"] == 2
    assert store.conn.execute("SELECT count(*) FROM alerts WHERE origin = 'canary'").fetchone()[0] == 0
    assert store.conn.execute("SELECT count(*) FROM decisions").fetchone()[0] == 0
    assert store.conn.execute("SELECT origin FROM alerts").fetchall() == [("cap-inbox",)]
    assert store.thread(real.thread_id) is not None
    store.close()


async def test_a_round_the_intake_refuses_leaves_its_endpoints_silent(tmp_path: Path,
                                                                     caplog: pytest.LogCaptureFixture) -> None:
    store = Store(tmp_path / "hub.db")
    bus, metrics, clock = Bus(), Metrics(), Clock()
    flow = Flow(tmp_path, store, bus, metrics)
    flow.intake.intake.validator = Validator(max_bytes=200)  # every round is too big: refused at the intake
    watch = CanaryWatch(AsyncStore(store), CanarySection(enabled=True, interval_s=60, slo_s=5), HOOKS,
                        histogram=metrics.canary_seconds, events=bus, intake=flow.intake, sender="l@k.example",
                        clock=clock)
    with caplog.at_level(logging.ERROR, logger="warnhub.canary"):
        assert await watch.round() == 1
    assert "refused by the intake" in caplog.text
    assert await flow.through() == 0 and store.conn.execute("SELECT count(*) FROM alerts").fetchone()[0] == 0
    assert store.conn.execute("SELECT origin FROM rejections").fetchall() == [("canary",)]
    clock.now += 60
    state = watch.as_dict()["webhooks:leitstelle"]
    assert state["state"] == "silent" and state["received"] == 0 and not watch.ok
    store.close()


async def test_an_unknown_canary_subscription_is_named_silent(tmp_path: Path) -> None:
    store = Store(tmp_path / "hub.db")
    bus, metrics = Bus(), Metrics()
    flow = Flow(tmp_path, store, bus, metrics)
    watch = CanaryWatch(AsyncStore(store), CanarySection(enabled=True, push_subscriptions=["gone"], sse=False), (),
                        histogram=metrics.canary_seconds, events=bus, intake=flow.intake, sender="l@k.example")
    assert await watch.round() == 0
    state = watch.as_dict()["push:gone"]
    assert state["state"] == "silent" and "push subscription gone is not stored" in state["problems"][0]
    assert store.conn.execute("SELECT count(*) FROM alerts").fetchone()[0] == 0  # no probe: no round
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
