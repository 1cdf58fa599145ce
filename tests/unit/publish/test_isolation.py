"""Invariant: one bad alert never stops the others, and nothing still valid is forgotten (issue 13, point 5).

Each stage gets one poisoned item through a real seam — the rules raising for one alert (and one stored version
that cannot be read), a publication whose rendering raises, a channel that raises for one recipient, a stored
publication whose content cannot be read — and the items behind it must still flow. The poisoned one is recorded
as failed with its reason, shows in ``/healthz`` (``degraded``), in ``/metrics`` and the console inbox, and is
retried with backoff on an injected clock (no sleeps). A publish decision made before an outage of days is still
published while its warning is valid, and an expired one never is.
"""

from __future__ import annotations

import dataclasses
import re
import shutil
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Self

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from adapters.channels.webhooks import Webhooks
from hub.app import basic_services
from hub.cap.model import Severity
from hub.cap.parse import parse
from hub.cap.validate import Validator
from hub.config import load as config
from hub.console.overview import inbox
from hub.decide import decisions
from hub.decide.router import Router
from hub.decide.rules.engine import LiveRules, RuleSet
from hub.deliver import outbox
from hub.deliver.outbox import RetryPolicy
from hub.deliver.setup import Resolvers
from hub.deliver.workers import ChannelWorker, OutboxMetrics
from hub.geo.geography import Geography, geography
from hub.intake.documents import Intake
from hub.metrics import Metrics
from hub.ports import Delivery, Outcome
from hub.publish import publications
from hub.publish.pipeline import Pipeline
from hub.store.clock import utc_iso
from hub.store.db import AsyncStore, Store
from hub.web.app import make_app
from tests.e2e.test_routing import dwd_cap
from tests.kits.hubproc import REPO, write_config

DISTRICT = "033540000000"


@pytest.fixture(scope="module")
def geo() -> Geography:
    return geography()


class Rig:
    """A store, the repository's rules, the router and the pipeline on one injected clock, and the hub's web app
    (``/healthz``, ``/metrics``) over them."""

    def __init__(self, tmp: Path, geo: Geography, extra: str = "") -> None:
        rules = tmp / "rules"
        shutil.copytree(REPO / "rules", rules)
        main = rules / "luechow-dannenberg.toml"
        text = main.read_text(encoding="utf-8")
        main.write_text(text[:text.index("# --- Eigene Sensoren")], encoding="utf-8")  # no sensors configured here
        self.loaded = config.load(write_config(tmp, port=1, extra=extra))
        self.store = Store(self.loaded.db_path)
        self.astore = AsyncStore(self.store)
        self.now = datetime.now(UTC).replace(microsecond=0)
        self.metrics = Metrics()
        self.live = LiveRules.open(rules, sensors=[], geo=geo)
        self.router = Router(self.astore, self.live, district=DISTRICT, metrics=self.metrics)
        self.router.clock = self.clock
        self.pipeline = Pipeline(self.astore, self.loaded, self.live, index=None)
        self.pipeline.clock = self.clock
        self.pipeline.metrics = self.metrics
        self.intake = Intake(Validator(), self.store)
        self.client: TestClient[web.Request, web.Application] | None = None

    def clock(self) -> datetime:
        return self.now

    def ms(self) -> int:
        return publications.ms(self.now)

    def ingest(self, identifier: str, **kw: Any) -> int:
        result = self.intake.ingest(dwd_cap(identifier, sent=kw.pop("sent", self.now - timedelta(minutes=5)), **kw),
                                    origin="dwd")
        assert result.alert_id is not None, result
        return result.alert_id

    async def web(self) -> TestClient[web.Request, web.Application]:
        hub = dataclasses.replace(basic_services(self.loaded, self.astore, metrics=self.metrics), router=self.router)
        hub.tasks.started = True
        self.client = TestClient(TestServer(make_app(hub)))
        await self.client.start_server()
        return self.client

    async def health(self) -> dict[str, Any]:
        assert self.client is not None
        async with self.client.get("/healthz") as r:
            assert r.status == 200
            return dict(await r.json())

    async def metric(self, name: str, stage: str) -> float | None:
        assert self.client is not None
        async with self.client.get("/metrics") as r:
            text = await r.text()
        line = next((x for x in text.splitlines() if x.startswith(f'{name}{{stage="{stage}"}} ')), None)
        return float(line.split()[-1]) if line else None

    async def close(self) -> None:
        if self.client is not None:
            await self.client.close()
        self.astore.close()


def inbox_section(store: Store, now: datetime) -> str:
    """The console inbox's health section as the dashboard renders it from the shared inbox."""
    from hub.web import console_view
    from hub.web.console import _ENV, shared_inbox

    data = shared_inbox(store, now=now)
    return _ENV.get_template("console/inbox/health.html").render(data={**data, "health": {}}, local=console_view.local,
                                                                 prefix="/console")


@pytest.fixture
async def rig(tmp_path: Path, geo: Geography) -> AsyncIterator[Rig]:
    r = Rig(tmp_path, geo)
    yield r
    await r.close()


# -- publish ------------------------------------------------------------------------------------------------------


async def test_a_publication_that_raises_fails_alone_and_is_retried(rig: Rig,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    poisoned = rig.ingest("poison-1")  # first in id order: today it aborts every batch behind it
    good = [rig.ingest(f"good-{n}") for n in (1, 2)]
    assert await rig.router.decide_pending() == 3
    assert {decisions.decision_of(rig.store, i).decision for i in (poisoned, *good)} == {"publish"}  # type: ignore[union-attr]

    issue = publications.issue

    def render(alert: Any, **kw: Any) -> Any:  # the hub's CAP for this one alert cannot be made
        if alert.identifier == "poison-1":
            raise ValueError("cannot render the publication")
        return issue(alert, **kw)

    monkeypatch.setattr(publications, "issue", render)
    await rig.pipeline.publish_pending()
    for alert_id in good:  # the warnings behind the poisoned one went out
        assert publications.by_source_alert(rig.store, alert_id) is not None
    assert publications.by_source_alert(rig.store, poisoned) is None
    d = decisions.decision_of(rig.store, poisoned)
    assert d is not None and d.failed and d.failed_stage == "publish" and d.attempts == 1
    assert "cannot render the publication" in d.failure
    assert d.retry_at == utc_iso(rig.now + decisions.retry_delay(1))

    await rig.web()
    health = await rig.health()
    assert health["status"] == "degraded" and health["pipeline"]["failed"]["publish"] == 1
    assert [i["reason"] for i in health["pipeline"]["items"]] == [d.failure]
    assert await rig.metric("warnhub_failed", "publish") == 1.0
    assert await rig.metric("warnhub_failures_total", "publish") == 1.0
    shown = inbox(rig.store, now=rig.now)["failed"]["items"]
    assert [(i["stage"], i["identifier"], i["attempts"]) for i in shown] == [("publish", "poison-1", 1)]
    html = inbox_section(rig.store, rig.now)
    assert "Veröffentlichen" in html and "poison-1" in html and "cannot render the publication" in html
    assert re.search(r'href="/console/incidents/\d+">poison-1<', html), html  # the operators' page of it

    # not before its retry is due; then again (still failing: the wait doubles)
    assert await rig.pipeline.publish_pending() == 0
    rig.now += decisions.retry_delay(1)
    assert await rig.pipeline.publish_pending() == 1
    d = decisions.decision_of(rig.store, poisoned)
    assert d is not None and d.attempts == 2 and decisions.retry_delay(2) == 2 * decisions.retry_delay(1)
    assert d.retry_at == utc_iso(rig.now + decisions.retry_delay(2))
    assert await rig.metric("warnhub_failures_total", "publish") == 2.0

    # the fault is gone: the next try publishes it, and the hub is healthy again
    monkeypatch.setattr(publications, "issue", issue)
    rig.now += decisions.retry_delay(2)
    assert await rig.pipeline.publish_pending() == 1
    assert publications.by_source_alert(rig.store, poisoned) is not None
    d = decisions.decision_of(rig.store, poisoned)
    assert d is not None and not d.failed and d.failure == "" and d.attempts == 2
    health = await rig.health()
    assert health["status"] == "ok" and health["pipeline"]["failed"]["publish"] == 0
    assert await rig.metric("warnhub_failed", "publish") == 0.0


async def test_decisions_older_than_a_day_are_published_while_their_warning_is_valid(rig: Rig) -> None:
    """After an outage of two days a warning valid for a week still goes out; one that expired meanwhile never."""
    week = rig.ingest("week-1", expires=rig.now + timedelta(days=7))
    short = rig.ingest("short-1", expires=rig.now + timedelta(days=1))
    assert await rig.router.decide_pending() == 2
    assert decisions.decision_of(rig.store, week).decision == "publish"  # type: ignore[union-attr]
    assert decisions.decision_of(rig.store, short).decision == "publish"  # type: ignore[union-attr]
    # the hub was down for two days between deciding and publishing
    rig.store.conn.execute("UPDATE decisions SET decided_at=?",
                           (utc_iso(rig.now - timedelta(days=2)),))
    rig.now += timedelta(days=2)
    await rig.pipeline.publish_pending()
    assert publications.by_source_alert(rig.store, week) is not None
    assert publications.by_source_alert(rig.store, short) is None  # expired a day ago: never published
    assert await rig.pipeline.publish_pending() == 0

    # the authority withdraws the week's warning with a Cancel whose own expiry has passed by the time it is
    # picked up: the hub still withdraws its own warning, which is in force
    first = datetime.fromisoformat(rig.store.conn.execute("SELECT sent_utc FROM alerts WHERE id=?",
                                                          (week,)).fetchone()[0])
    cancel = rig.ingest("week-2", msg_type="Cancel", sent=first + timedelta(minutes=1),
                        expires=first + timedelta(minutes=2), references=f"opendata@dwd.de,week-1,{first.isoformat()}")
    assert first + timedelta(minutes=2) < rig.now  # the Cancel itself has expired on the pipeline's clock
    await rig.router.decide_pending()
    assert decisions.decision_of(rig.store, cancel) is not None
    await rig.pipeline.publish_pending()
    withdrawn = publications.by_source_alert(rig.store, cancel)
    assert withdrawn is not None and withdrawn.msg_type == "Cancel" and withdrawn.version == 2


# -- rules --------------------------------------------------------------------------------------------------------


async def test_an_alert_whose_rules_raise_fails_alone_and_is_retried(rig: Rig,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    unreadable = rig.ingest("broken-1")
    # a stored version the rules cannot even be given (a store written by another release, a damaged row)
    rig.store.conn.execute("UPDATE alerts SET json='{\"identifier\": 1}' WHERE id=?", (unreadable,))
    poisoned = rig.ingest("poison-1")
    good = [rig.ingest(f"good-{n}") for n in (1, 2)]

    evaluate = RuleSet.evaluate

    def rule(self: RuleSet, alert: Any, **kw: Any) -> Any:  # a rule that raises on this one alert
        if alert.identifier == "poison-1":
            raise ZeroDivisionError("rule 'Pegel' divided by zero")
        return evaluate(self, alert, **kw)

    monkeypatch.setattr(RuleSet, "evaluate", rule)
    await rig.router.decide_pending()
    for alert_id in good:  # the alerts behind the broken ones were decided
        assert decisions.decision_of(rig.store, alert_id).decision == "publish"  # type: ignore[union-attr]
    d = decisions.decision_of(rig.store, poisoned)
    assert d is not None and d.decision == "unrouted" and d.failed_stage == "rules" and d.attempts == 1
    assert "divided by zero" in d.failure and "divided by zero" in d.why
    b = decisions.decision_of(rig.store, unreadable)
    assert b is not None and b.decision == "unrouted" and b.failed_stage == "rules"
    assert "cannot read the stored alert" in b.failure

    await rig.web()
    health = await rig.health()
    assert health["status"] == "degraded" and health["pipeline"]["failed"]["rules"] == 2
    assert await rig.metric("warnhub_failed", "rules") == 2.0
    assert await rig.metric("warnhub_failures_total", "rules") == 1.0
    shown = {i["identifier"]: i for i in inbox(rig.store, now=rig.now)["failed"]["items"]}
    assert shown["poison-1"]["stage"] == "rules" and "divided by zero" in shown["poison-1"]["reason"]

    assert await rig.router.decide_pending() == 0  # nothing due before the backoff has passed
    rig.now += decisions.retry_delay(1)
    assert await rig.router.decide_pending() == 1  # both tried again, both still failing (the unreadable one is
    # marked again as it is read, so only the other one reaches the rules)
    assert decisions.decision_of(rig.store, poisoned).attempts == 2  # type: ignore[union-attr]
    assert decisions.decision_of(rig.store, unreadable).attempts == 2  # type: ignore[union-attr]

    monkeypatch.setattr(RuleSet, "evaluate", evaluate)  # the rule is fixed
    rig.now += decisions.retry_delay(2)
    await rig.router.decide_pending()
    d = decisions.decision_of(rig.store, poisoned)
    assert d is not None and d.decision == "publish" and not d.failed and d.attempts == 2
    assert (await rig.health())["pipeline"]["failed"]["rules"] == 1  # the unreadable one stays failed, shown
    await rig.pipeline.publish_pending()
    assert publications.by_source_alert(rig.store, poisoned) is not None


# -- channel workers -----------------------------------------------------------------------------------------------


class Picky:
    """A channel that raises for a batch holding the recipient ``poison`` (a bug one recipient triggers)."""

    name = "webhooks"

    def __init__(self) -> None:
        self.delivered: list[str] = []

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc: object) -> None:
        return None

    async def deliver(self, batch: Sequence[Delivery]) -> Sequence[Outcome]:
        if any(d.recipient == "poison" for d in batch):
            raise KeyError("poison")
        self.delivered += [d.recipient for d in batch]
        return [Outcome.done()] * len(batch)


def worker(rig: Rig, channel: Any, *, max_attempts: int = 3) -> ChannelWorker:
    w = ChannelWorker(rig.astore, channel, batch_size=50, policy=RetryPolicy(base_s=2, max_s=8,
                                                                             max_attempts=max_attempts),
                      metrics=OutboxMetrics(rig.metrics.registry))
    w.clock = rig.ms
    return w


def state_of(store: Store, key: str) -> tuple[str, int, int, str]:
    return store.conn.execute("SELECT state, attempts, next_at_ms, last_error FROM outbox WHERE key=?",
                              (key,)).fetchone()


async def retry_until_failed(rig: Rig, w: ChannelWorker, key: str, max_attempts: int) -> None:
    """Move the clock to each retry of the row and let the worker take it, until it has failed for good."""
    for attempt in range(2, max_attempts + 1):
        state, attempts, next_at, _ = state_of(rig.store, key)
        assert (state, attempts) == ("queued", attempt - 1)
        assert next_at <= rig.ms() + 2000 * 2 ** (attempt - 2)  # backoff ceiling of this retry
        if next_at > rig.ms():
            assert await w.step() == 0  # not taken before it is due
            rig.now = datetime.fromtimestamp(next_at / 1000, UTC) + timedelta(milliseconds=1)
        assert await w.step() == 1


async def test_a_channel_that_raises_for_one_recipient_holds_up_no_other(rig: Rig) -> None:
    channel = Picky()
    w = worker(rig, channel)
    rows = [outbox.NewDelivery(f"p1/webhooks/{r}", 1, "w1", "webhooks", r, "", 1, None)
            for r in ("a", "poison", "b", "c")]
    outbox.enqueue(rig.store, rows, now_ms=rig.ms())
    assert await w.step() == 4
    assert sorted(channel.delivered) == ["a", "b", "c"]  # one batch: the others went out
    state, attempts, next_at, error = state_of(rig.store, "p1/webhooks/poison")
    assert (state, attempts) == ("queued", 1) and "KeyError" in error and next_at > rig.ms() - 1
    await retry_until_failed(rig, w, "p1/webhooks/poison", 3)
    state, attempts, _, error = state_of(rig.store, "p1/webhooks/poison")
    assert (state, attempts) == ("failed", 3) and error.startswith("gave up after 3 attempts: deliver raised KeyError")
    assert sorted(channel.delivered) == ["a", "b", "c"]

    await rig.web()
    health = await rig.health()
    assert health["status"] == "degraded" and health["pipeline"]["failed"]["delivery"] == 1
    assert [(i["recipient"], i["reason"]) for i in health["pipeline"]["items"]] == [("poison", error)]
    assert await rig.metric("warnhub_failed", "delivery") == 1.0
    html = inbox_section(rig.store, rig.now)
    assert "Zustellung" in html and "webhooks → poison" in html and "deliver raised KeyError" in html


@pytest.fixture
async def receiver() -> AsyncIterator[tuple[str, list[dict[str, Any]]]]:
    """A local webhook receiver: records each JSON body it gets."""
    got: list[dict[str, Any]] = []

    async def hook(request: web.Request) -> web.Response:
        got.append(await request.json())
        return web.Response(status=204)

    app = web.Application()
    app.router.add_post("/hook", hook)
    server = TestServer(app)
    await server.start_server()
    yield str(server.make_url("/hook")), got
    await server.close()


def publish(store: Store, identifier: str, now: datetime) -> publications.Publication:
    alert = parse(dwd_cap(identifier, sent=now - timedelta(minutes=5))).alert
    assert alert is not None
    thread = f"w-{identifier}"
    issued = publications.issue(alert, sender="leitstelle@kreis.example", district=DISTRICT, thread=thread,
                                version=1, previous=None, severity=Severity.SEVERE, now=now)
    with store.transaction() as conn:
        return publications.insert(conn, issued, thread=thread, version=1, source_thread=None, source_alert=None,
                                   push=False, channels=("webhook",), regions=(DISTRICT,), area=None,
                                   now_ms=publications.ms(now))


async def test_a_row_whose_content_cannot_be_made_holds_up_no_other(
        tmp_path: Path, geo: Geography, receiver: tuple[str, list[dict[str, Any]]]) -> None:
    url, got = receiver
    rig = Rig(tmp_path, geo, extra=f'\n[[webhooks]]\nid = "zeitung"\nurl = "{url}"\nsecret = "s3cret"\n')
    try:
        pubs = [publish(rig.store, name, rig.now) for name in ("good-1", "poison-1", "good-2")]
        # the stored publication of one warning is damaged: reading it raises
        rig.store.conn.execute("UPDATE publications SET notices='[{' WHERE id=?", (pubs[1].id,))
        outbox.enqueue(rig.store, [outbox.NewDelivery(f"{p.identifier}/webhooks/zeitung", p.id, p.thread, "webhooks",
                                                      "zeitung", "", 1, None) for p in pubs], now_ms=rig.ms())
        async with aiohttp.ClientSession() as http:
            channel = Webhooks(rig.loaded.cfg.webhooks, http, Resolvers(rig.astore, rig.loaded).webhook_body)
            async with channel:
                w = worker(rig, channel, max_attempts=2)
                assert await w.step() == 3
                assert sorted(body["thread"] for body in got) == ["w-good-1", "w-good-2"]  # sent, in one batch
                key = f"{pubs[1].identifier}/webhooks/zeitung"
                state, attempts, _, error = state_of(rig.store, key)
                assert (state, attempts) == ("queued", 1) and error.startswith("content failed: JSONDecodeError")
                await retry_until_failed(rig, w, key, 2)
        state, attempts, _, error = state_of(rig.store, key)
        assert (state, attempts) == ("failed", 2) and "content failed: JSONDecodeError" in error
        assert len(got) == 2
        await rig.web()
        health = await rig.health()
        assert health["status"] == "degraded" and health["pipeline"]["failed"]["delivery"] == 1
        assert await rig.metric("warnhub_failed", "delivery") == 1.0
        shown = inbox(rig.store, now=rig.now)["failed"]["items"]
        assert [(i["stage"], i["recipient"]) for i in shown] == [("delivery", "zeitung")]
    finally:
        await rig.close()


def test_existing_decisions_table_gains_the_failure_columns(tmp_path: Path) -> None:
    """A store made before failures were recorded keeps its decisions and gets the new columns (migration 4)."""
    store = Store(tmp_path / "hub.db")
    stored = Intake(Validator(), store).ingest(dwd_cap("old-1"), origin="dwd")
    store.conn.execute("DROP INDEX decisions_failed")
    store.conn.execute("DROP TABLE decisions")
    store.conn.execute(  # the table as the previous release made it
        "CREATE TABLE decisions (alert_id INTEGER PRIMARY KEY REFERENCES alerts(id), thread_id INTEGER NOT NULL,"
        " decision TEXT NOT NULL, rules TEXT NOT NULL, channels TEXT NOT NULL, audiences TEXT NOT NULL,"
        " push INTEGER NOT NULL, drafts TEXT NOT NULL, severity TEXT NOT NULL, regions TEXT NOT NULL,"
        " inside_district INTEGER, outside_share REAL, changes TEXT NOT NULL, why TEXT NOT NULL,"
        " rules_loaded_at TEXT, decided_at TEXT NOT NULL)")
    store.conn.execute("INSERT INTO decisions (alert_id, thread_id, decision, rules, channels, audiences, push,"
                       " drafts, severity, regions, changes, why, decided_at) VALUES (?, ?, 'publish', '[]', '[]',"
                       " '[]', 1, '[]', 'Severe', '[]', '[]', 'old', '2026-01-01T00:00:00+00:00')",
                       (stored.alert_id, stored.thread_id))
    store.conn.execute("PRAGMA user_version=3")
    store.close()
    store = Store(tmp_path / "hub.db")
    d = decisions.decision_of(store, stored.alert_id)
    assert d is not None and d.why == "old" and not d.failed and d.attempts == 0 and d.retry_at is None
    store.close()
