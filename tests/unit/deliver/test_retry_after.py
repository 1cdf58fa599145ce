"""A Retry-After holds the whole subscription (issue 17, fault 5): after a 429 with Retry-After on one row, the
other rows for the same subscription are not sent before that time either, and are sent after it; other
subscriptions go on meanwhile. The real channel worker on the real store (both backends), an injected clock, and
a stand-in channel that answers 429 once. On the old worker the second row went out at once."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from typing import Self

import pytest

from hub.deliver.outbox import NewDelivery, RetryPolicy, enqueue
from hub.deliver.workers import ChannelWorker
from hub.ports import Delivery, Outcome
from hub.store.db import AsyncStore, Store

NOW = 1_900_000_000_000
RETRY_AFTER_S = 60


class Refusing:
    """A push service that answers the first row for ``busy`` with 429 Retry-After, every other with 201."""

    name = "push"

    def __init__(self, busy: str) -> None:
        self.busy = busy
        self.sent: list[str] = []
        self.refused = False

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc: object) -> None:
        return None

    async def deliver(self, batch: Sequence[Delivery]) -> list[Outcome]:
        out = []
        for d in batch:
            self.sent.append(d.key)
            if d.recipient == self.busy and not self.refused:
                self.refused = True
                out.append(Outcome.retry("push service answered 429", RETRY_AFTER_S))
            else:
                out.append(Outcome.done())
        return out


@pytest.fixture
async def astore(store_url: str) -> AsyncIterator[AsyncStore]:
    a = AsyncStore(Store(store_url))
    yield a
    a.close()


def row(key: str, recipient: str, priority: int) -> NewDelivery:
    return NewDelivery(key, 1, f"t-{key}", "push", recipient, "push.example", priority, None)


async def drain(worker: ChannelWorker) -> None:
    while await worker.step():
        pass


async def test_retry_after_holds_every_row_of_the_subscription(astore: AsyncStore) -> None:
    clock = [NOW]
    channel = Refusing("sub-1")
    worker = ChannelWorker(astore, channel, batch_size=1, clock=lambda: clock[0],
                           policy=RetryPolicy(base_s=1.0, max_s=4.0, max_attempts=5))
    # a (most urgent) is refused; b is already queued for the same subscription; c is another subscription's
    await astore.run(enqueue, astore.store, [row("a", "sub-1", 0), row("b", "sub-1", 1), row("c", "sub-2", 2)],
                     now_ms=NOW)
    await drain(worker)
    assert channel.sent == ["a", "c"]  # b waits for sub-1's Retry-After; c went on
    # and a row queued for sub-1 after the refusal waits too
    await astore.run(enqueue, astore.store, [row("d", "sub-1", 0)], now_ms=NOW + 1000)
    clock[0] = NOW + 1000
    await drain(worker)
    assert channel.sent == ["a", "c"]
    queued = dict(astore.store.conn.execute("SELECT key, next_at_ms FROM outbox WHERE state='queued'"))
    assert queued["b"] >= NOW + RETRY_AFTER_S * 1000 and queued["d"] >= NOW + RETRY_AFTER_S * 1000
    attempts = dict(astore.store.conn.execute("SELECT key, attempts FROM outbox"))
    assert attempts["b"] == 0 and attempts["d"] == 0  # held back unsent: not an attempt

    clock[0] = NOW + RETRY_AFTER_S * 1000 - 1
    await drain(worker)
    assert channel.sent == ["a", "c"]  # not a millisecond before
    clock[0] = NOW + RETRY_AFTER_S * 1000
    await drain(worker)
    assert sorted(channel.sent[2:]) == ["a", "b", "d"]
    states = dict(astore.store.conn.execute("SELECT key, state FROM outbox"))
    assert states == {"a": "done", "b": "done", "c": "done", "d": "done"}
