"""Outbox leases across delivery nodes (issue 16): a node's claimed rows are held for ``[push] lease_s`` (30 s by
default, validated), renewed every third of it while they are being sent, so a short lease never sends a slow push
twice, and a node that died leaves its rows to the others after one lease. Each "node" is its own store (its own
connections) on one database of the session's private PostgreSQL cluster."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Self

import msgspec
import pytest

from hub.config import load as config_mod
from hub.config.sections import PushSection
from hub.deliver import outbox
from hub.deliver.outbox import NewDelivery
from hub.deliver.workers import ChannelWorker
from hub.errors import ConfigError
from hub.ports import Delivery, Outcome
from hub.store.db import AsyncStore, Store
from tests.kits import hubproc

LEASE_S = 0.6


@pytest.fixture
def nodes(two_nodes: tuple[AsyncStore, AsyncStore]) -> tuple[AsyncStore, AsyncStore]:
    return two_nodes  # tests/conftest.py


def rows(n: int) -> list[NewDelivery]:
    return [NewDelivery(f"1/push/s{i}", 1, "w1", "push", f"s{i}", "push.example", 3, None) for i in range(n)]


class Slow:
    """A push channel whose service answers only when the test lets it; counts what it was given."""

    name = "push"

    def __init__(self) -> None:
        self.given: list[str] = []
        self.release = asyncio.Event()
        self.called = asyncio.Event()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc: object) -> None:
        return None

    async def deliver(self, batch: Sequence[Delivery]) -> Sequence[Outcome]:
        self.given += [d.key for d in batch]
        self.called.set()
        await self.release.wait()
        return [Outcome.done() for _ in batch]


def lease_of(store: Store) -> int:
    return int(store.conn.execute("SELECT max(lease_until_ms) FROM outbox WHERE state='inflight'").fetchone()[0])


def test_the_lease_is_a_setting_30_s_by_default_and_validated(tmp_path: Path) -> None:
    assert PushSection().lease_s == 30.0
    assert msgspec.convert({"lease_s": 5}, PushSection).lease_s == 5.0
    config = hubproc.write_config(tmp_path, port=hubproc.free_port())
    text = config.read_text(encoding="utf-8")
    config.write_text(text.replace("[push]", "[push]\nlease_s = 0.5", 1) if "[push]" in text
                      else text + "\n[push]\nlease_s = 0.5\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="lease_s"):
        config_mod.load(config)


async def test_a_dead_claimers_rows_are_claimed_by_another_node_after_one_lease(
        nodes: tuple[AsyncStore, AsyncStore]) -> None:
    a, b = nodes
    outbox.enqueue(a.store, rows(3))
    t0 = outbox.stamp_ms(None)
    taken = await a.run(outbox.claim, a.store, "push", 10, lease_s=30, now_ms=t0)
    assert len(taken) == 3  # node a claims, then dies: nothing renews its rows
    assert await b.run(outbox.claim, b.store, "push", 10, lease_s=30, now_ms=t0 + 29_999) == []
    again = await b.run(outbox.claim, b.store, "push", 10, lease_s=30, now_ms=t0 + 30_000)
    assert sorted(d.key for d in again) == sorted(d.key for d in taken)


async def test_a_live_worker_renews_its_rows_so_no_other_node_takes_a_slow_push(
        nodes: tuple[AsyncStore, AsyncStore]) -> None:
    a, b = nodes
    outbox.enqueue(a.store, rows(2))
    slow = Slow()
    worker = ChannelWorker(a, slow, lease_s=LEASE_S)
    step = asyncio.create_task(worker.step())
    async with asyncio.timeout(20):
        await slow.called.wait()
        first = lease_of(b.store)
        # the positive event: the end of the lease the rows were claimed with has passed by the wall clock
        while (now := outbox.stamp_ms(None)) < first + LEASE_S * 1000 / 2:
            await asyncio.sleep(0.02)
    assert lease_of(b.store) > now  # renewed by the heartbeat: still held
    assert await b.run(outbox.claim, b.store, "push", 10, lease_s=LEASE_S, now_ms=now) == []  # the other node waits
    slow.release.set()
    assert await step == 2
    states = dict(b.store.conn.execute("SELECT key, state FROM outbox").fetchall())
    assert set(states.values()) == {"done"} and sorted(slow.given) == sorted(states)  # each pushed once


async def test_a_killed_workers_rows_go_to_the_other_node_after_one_lease(
        nodes: tuple[AsyncStore, AsyncStore]) -> None:
    """The worker that holds the rows is gone (its task cancelled mid-delivery, its heartbeat with it): the other
    node's worker sends them once their lease has run out."""
    a, b = nodes
    outbox.enqueue(a.store, rows(2))
    slow = Slow()
    doomed = asyncio.create_task(ChannelWorker(a, slow, lease_s=LEASE_S).step())
    async with asyncio.timeout(20):
        await slow.called.wait()
    doomed.cancel()
    await asyncio.gather(doomed, return_exceptions=True)
    killed = time.monotonic()
    heir = Slow()
    heir.release.set()
    worker = ChannelWorker(b, heir, lease_s=LEASE_S)
    async with asyncio.timeout(20):
        while not await worker.step():
            await asyncio.sleep(0.02)
    assert time.monotonic() - killed <= LEASE_S + 1.0
    assert sorted(heir.given) == sorted(slow.given)
