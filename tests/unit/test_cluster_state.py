"""What nodes on one PostgreSQL share beyond wake-ups (issue 16, "nodes hold no state that another node needs"):
subscription changes reach every node's targeting index at once; one node sends each canary round while any web
node takes the receipts; ``warnhub sources`` names the node that polls a source and those standing by. Real
PostgreSQL (the session's private cluster); each "node" is its own bus, bridge and store connections on one
database."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import aiohttp
import psycopg
import pytest

from hub import app, cluster
from hub.cap.validate import Validator
from hub.cli import main as cli
from hub.config import load as config_mod
from hub.config.sections import CanarySection, WebhookConfig
from hub.decide.router import Router, empty_rules
from hub.events import Bus, SubscriptionsChanged
from hub.intake.service import IntakeService
from hub.metrics import Metrics
from hub.publish import canary
from hub.publish import index as targeting
from hub.publish import subscriptions as subs
from hub.publish.canary_watch import CanaryWatch
from hub.store.db import AsyncStore
from hub.supervise import Supervisor
from tests.kits import hubproc

KREIS = "033540000000"
"""Landkreis Lüchow-Dannenberg."""
HOOK = WebhookConfig(id="leitstelle", url="https://hook.example/in", secret="s" * 16, canary=True)


@pytest.fixture
def two(two_nodes: tuple[AsyncStore, AsyncStore]) -> tuple[AsyncStore, AsyncStore]:
    return two_nodes  # tests/conftest.py


def matched(index: targeting.SubscriptionIndex) -> set[str]:
    return set(index.match(None, {KREIS}, severity="Severe", categories={"Met"}, event_topics=(), exercise=False))


async def _until(check: object, what: str, timeout: float = 10.0) -> float:
    """Seconds until ``check()`` holds (the positive event a test waits for)."""
    start = time.monotonic()
    async with asyncio.timeout(timeout):
        while not check():  # type: ignore[operator]
            await asyncio.sleep(0.005)
    return time.monotonic() - start


async def test_a_subscription_made_on_one_node_is_targeted_by_another_within_a_second(
        pg_url: str, two: tuple[AsyncStore, AsyncStore]) -> None:
    web_store, decide_store = two
    web_bus, decide_bus = Bus(), Bus()
    index = targeting.SubscriptionIndex()
    follower = cluster.IndexFollower(decide_store, index, decide_bus)
    follower.attach()
    bridges = [cluster.Bridge(pg_url, web_bus, web_store, node="web"),
               cluster.Bridge(pg_url, decide_bus, decide_store, node="decide")]
    for bridge in bridges:
        bridge.attach()
    async with asyncio.TaskGroup() as group:
        tasks = [group.create_task(b.run()) for b in bridges] + [group.create_task(follower.run())]
        await asyncio.wait_for(asyncio.gather(*(b.listening.wait() for b in bridges)), 10)
        sub = subs.Subscription("https://push.example.org/n1", "B" + "x" * 86, "a" * 22, (subs.RegionPlace(KREIS),))
        sid, _ = await web_store.run(subs.create, web_store.store, sub)
        web_bus.publish(SubscriptionsChanged((sid,)))  # what the web node's subscription API does after storing
        took = await _until(lambda: matched(index) == {sid}, "the decide node's index targets the subscription")
        assert took <= 1.0, took
        await web_store.run(subs.delete_ids, web_store.store, [sid])
        web_bus.publish(SubscriptionsChanged((sid,)))
        took = await _until(lambda: not matched(index), "the decide node's index drops the deleted subscription")
        assert took <= 1.0, took
        for task in tasks:
            task.cancel()
    assert follower.applied == 2


def scalar(url: str, sql: str) -> Any:
    with psycopg.connect(url, autocommit=True) as conn:
        row = conn.execute(sql).fetchone()
    return row[0] if row else None


def canary_node(astore: AsyncStore, bus: Bus, cfg: CanarySection) -> tuple[CanaryWatch, SimpleNamespace]:
    metrics = Metrics()
    intake = IntakeService(astore, Validator(), metrics=metrics, events=bus)
    watch = CanaryWatch(astore, cfg, (HOOK,), histogram=metrics.canary_seconds, events=bus, intake=intake,
                        sender="leitstelle@kreis.example")
    return watch, SimpleNamespace(canary=watch, broadcaster=None, tasks=Supervisor(), store=astore)


async def test_one_node_sends_each_canary_round_and_any_web_node_takes_its_receipts(
        pg_url: str, two: tuple[AsyncStore, AsyncStore], tmp_path: Path) -> None:
    """Canaries on many nodes: the rounds run on the node holding the canary lock (the other sends none, and takes
    over when that one dies), a receipt posted to the other node reaches the watch that sent the probe (once a
    decide node queued the round), and the other node shows the sender's states."""
    cfg = CanarySection(enabled=True, interval_s=0.5, slo_s=5, sse=False)
    buses = [Bus(), Bus()]
    nodes = [canary_node(store, bus, cfg) for store, bus in zip(two, buses, strict=True)]
    bridges = [cluster.Bridge(pg_url, bus, store, node=f"n{i}")
               for i, (store, bus) in enumerate(zip(two, buses, strict=True))]
    for bridge in bridges:
        bridge.attach()
    rows = "SELECT count(*) FROM alerts WHERE origin='canary'"
    router = Router(two[1], empty_rules(tmp_path / "rules"), district="033540000000", events=buses[1])
    async with asyncio.TaskGroup() as group:
        bridge_tasks = [group.create_task(b.run()) for b in bridges]
        await asyncio.wait_for(asyncio.gather(*(b.listening.wait() for b in bridges)), 10)
        for _, services in nodes:
            app.start_canaries(group, services)  # type: ignore[arg-type]
        # read on a connection of the test's own: the nodes' writer connections are busy on their threads
        await _until(lambda: scalar(pg_url, rows) >= 3, "three rounds sent")
        rounds = [watch.rounds for watch, _ in nodes]
        sender = 0 if rounds[0] else 1
        other = 1 - sender
        stored = scalar(pg_url, rows)  # a round counts itself before the intake has stored it
        assert rounds[other] == 0 and rounds[sender] - 1 <= stored <= rounds[sender], (rounds, stored)
        # a decide node queues the rounds (router and publish step) ...
        await router.decide_pending()
        assert await two[1].run(canary.queue_due, two[1].store, now=datetime.now(UTC))
        queued = scalar(pg_url, "SELECT thread FROM outbox WHERE channel='webhooks' AND thread LIKE 'canary:%' LIMIT 1")
        probe = canary.probe_id(queued)
        assert probe in nodes[sender][0].endpoints["webhooks:leitstelle"].sent
        # ... and a receipt that comes to the other node (its web role behind the same proxy) counts at the sender
        assert await nodes[other][0].acknowledge(probe)
        await _until(lambda: nodes[sender][0].endpoints["webhooks:leitstelle"].received == 1, "the sender counts it")
        # the other node's /healthz and console show the sender's states (the receipt counted), not "waiting"
        await _until(lambda: nodes[other][0].as_dict()["webhooks:leitstelle"]["received"] == 1, "the states told")
        assert nodes[other][0].as_dict()["webhooks:leitstelle"]["state"] != "waiting"  # its own would be
        assert not await nodes[other][0].acknowledge("x" * 22)  # a probe nobody sent
        nodes[sender][1].tasks.cancel()  # the sending node dies: the other takes the rounds over
        await _until(lambda: nodes[other][0].rounds >= 1, "the other node sends the next round")
        nodes[other][1].tasks.cancel()
        for task in bridge_tasks:
            task.cancel()


def health_of(url: str) -> tuple[str, str] | None:
    """Read on a connection of the test's own (the nodes' writer connections are busy on their threads)."""
    with psycopg.connect(url, autocommit=True) as conn:
        row = conn.execute("SELECT state, node FROM source_health WHERE name='cap-inbox'").fetchone()
    return None if row is None else (row[0], row[1])


async def test_warnhub_sources_names_the_polling_node_and_those_standing_by(
        pg_url: str, two: tuple[AsyncStore, AsyncStore], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Two ingest nodes for one source: the one holding its lock polls it and records its health; the other stands
    by and says so, without overwriting the poller's record with "starting"; ``warnhub sources`` shows both, and
    the other node once it took over."""
    (tmp_path / "inbox").mkdir()
    config = hubproc.write_config(tmp_path, port=hubproc.free_port(), store_url=pg_url)
    loaded = config_mod.load(config)
    nodes = []
    for i, store in enumerate(two):
        services = app.basic_services(loaded, store)
        services.recorder.node = f"node-{i + 1}"
        nodes.append(services)
    feed = SimpleNamespace(feed=None)

    def sources() -> str:
        capsys.readouterr()
        assert cli.main(["sources", "--config", str(config)]) == 0
        return capsys.readouterr().out

    async with aiohttp.ClientSession() as http, asyncio.TaskGroup() as group:
        app.start_sources(group, nodes[0], http, feed)  # type: ignore[arg-type]
        await _until(lambda: health_of(pg_url) == ("up", "node-1"), "node 1 polls the source")
        app.start_sources(group, nodes[1], http, feed)  # type: ignore[arg-type]
        standby = "SELECT count(*) FROM source_standby WHERE name='cap-inbox' AND node='node-2'"
        await _until(lambda: scalar(pg_url, standby) == 1, "node 2 stands by")
        assert health_of(pg_url) == ("up", "node-1")  # the standby wrote no "starting" over it
        out = sources()
        assert "starting" not in out and "cap-inbox  " in out and " up " in out
        assert "cap-inbox: abgerufen von / polled by node-1; in Bereitschaft / standing by: node-2" in out, out
        nodes[0].tasks.cancel()  # node 1 dies: node 2 takes the source over
        await _until(lambda: health_of(pg_url) == ("up", "node-2"), "node 2 polls the source", timeout=20)
        assert "cap-inbox: abgerufen von / polled by node-2; in Bereitschaft / standing by: -" in sources()
        nodes[1].tasks.cancel()
    for services in nodes:
        services.intake.close()
