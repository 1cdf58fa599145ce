"""The push worker's express loop (issue 17 §1: the Extreme's first push within a second of being accepted): when
every claim loop is busy sending a batch of Severe rows, an Extreme published now is taken and sent by the express
loop at once, not after one of those batches is done; the express loop takes nothing less urgent."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from pathlib import Path
from typing import Self

from hub.deliver.outbox import NewDelivery
from hub.deliver.setup import EXPRESS_PRIORITY
from hub.deliver.workers import Outbox
from hub.ports import Delivery, Outcome
from hub.publish.pipeline import priority
from hub.store.db import AsyncStore, Store
from tests.unit.deliver.test_priority import rows, until


class HeldUnlessExtreme:
    """Holds every batch but the Extreme ones until the gate opens; records (loop task, keys) per batch."""

    name = "push"

    def __init__(self, gate: asyncio.Event) -> None:
        self.gate = gate
        self.batches: list[tuple[str, list[str]]] = []
        self.sent: list[str] = []

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc: object) -> None:
        return None

    async def deliver(self, batch: Sequence[Delivery]) -> Sequence[Outcome]:
        task = asyncio.current_task()
        self.batches.append((task.get_name() if task else "", [d.key for d in batch]))
        if any(d.priority > EXPRESS_PRIORITY for d in batch):
            await self.gate.wait()
        self.sent += [d.key for d in batch]
        return [Outcome.done() for _ in batch]


def extreme(n: int) -> list[NewDelivery]:
    return rows("push", 2, n, "Extreme", "Immediate")


async def test_an_extreme_is_sent_while_every_loop_holds_a_severe_batch(tmp_path: Path) -> None:
    astore = AsyncStore(Store(tmp_path / "hub.db"))
    gate = asyncio.Event()
    box = Outbox(astore)
    channel = HeldUnlessExtreme(gate)
    box.add_worker(channel, batch_size=500, concurrency=2, express=(EXPRESS_PRIORITY, 100), idle_s=3600)
    try:
        await box.enqueue(rows("push", 1, 3000, "Severe", "Immediate"))
        await box.start()
        await until(lambda: len(channel.batches) == 2)  # both loops are sending Severe rows, held
        await box.enqueue(extreme(250))
        # all 250 Extreme rows are sent while both Severe batches are still held
        await until(lambda: sum(k.startswith("2/") for k in channel.sent) == 250)
        assert not any(k.startswith("1/") for k in channel.sent)
        gate.set()
        await until(lambda: len(channel.sent) == 3250)
    finally:
        await box.stop()
        astore.close()
    express = [keys for task, keys in channel.batches if task == "outbox-push-2"]
    assert express and all(len(keys) <= 100 for keys in express)
    assert all(k.startswith("2/") for keys in express for k in keys)  # nothing less urgent in the express loop
    assert priority("Extreme", "Expected") == EXPRESS_PRIORITY


async def test_without_express_the_extreme_waits_for_a_loop(tmp_path: Path) -> None:
    """The same storm without the express loop: the Extreme is not sent until a Severe batch is done (what the
    express loop is for)."""
    astore = AsyncStore(Store(tmp_path / "hub.db"))
    gate = asyncio.Event()
    box = Outbox(astore)
    channel = HeldUnlessExtreme(gate)
    box.add_worker(channel, batch_size=500, concurrency=2, idle_s=3600)
    try:
        await box.enqueue(rows("push", 1, 3000, "Severe", "Immediate"))
        await box.start()
        await until(lambda: len(channel.batches) == 2)
        await box.enqueue(extreme(250))
        gate.set()
        await until(lambda: len(channel.sent) == 3250)
    finally:
        await box.stop()
        astore.close()
    first_extreme = next(i for i, k in enumerate(channel.sent) if k.startswith("2/"))
    assert first_extreme >= 500  # a whole Severe batch went out before it
