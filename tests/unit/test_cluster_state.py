"""What nodes on one PostgreSQL share beyond wake-ups (issue 16, "nodes hold no state that another node needs"):
subscription changes reach every node's targeting index at once. Real PostgreSQL (the session's private cluster);
each "node" is its own bus, bridge and store connections on one database."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import pytest

from hub import cluster
from hub.events import Bus, SubscriptionsChanged
from hub.publish import index as targeting
from hub.publish import subscriptions as subs
from hub.store.db import AsyncStore, Store

KREIS = "033540000000"
"""Landkreis Lüchow-Dannenberg."""


@pytest.fixture
async def two(pg_url: str) -> AsyncIterator[tuple[AsyncStore, AsyncStore]]:
    a, b = AsyncStore(Store(pg_url)), AsyncStore(Store(pg_url))
    yield a, b
    b.close()
    a.close()


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
