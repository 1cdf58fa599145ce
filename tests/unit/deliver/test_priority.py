"""Priority all the way (issue 17 §1): an Extreme warning queued behind thousands of Minor and Immediate Severe
deliveries, while every channel is busy sending, is the first row each channel takes next — push, boards and
webhooks, with the workers' batch sizes and concurrency of the daemon (hub/deliver/setup.py), the pipeline's
priorities and a real SQLite outbox."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Self

from hub.deliver.outbox import NewDelivery
from hub.deliver.workers import Outbox
from hub.ports import Delivery, Outcome
from hub.publish.pipeline import priority
from hub.store.db import AsyncStore, Store

MINOR = 3000
CHANNELS = {"push": (500, 2), "boards-http": (50, 1), "webhooks": (50, 1)}
"""Channel -> (batch size, claim loops), as the daemon runs them."""


class Gated:
    """A channel that holds every batch until the gate opens, and records the batches in the order taken."""

    def __init__(self, name: str, gate: asyncio.Event) -> None:
        self.name = name
        self.gate = gate
        self.batches: list[list[str]] = []

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc: object) -> None:
        return None

    async def deliver(self, batch: Sequence[Delivery]) -> Sequence[Outcome]:
        self.batches.append([d.key for d in batch])
        await self.gate.wait()
        return [Outcome.done() for _ in batch]


def rows(channel: str, pub: int, n: int, severity: str, urgency: str) -> list[NewDelivery]:
    return [NewDelivery(f"{pub}/{channel}/r{i}", pub, f"w{pub}", channel, f"r{pub}-{i}", f"host{i % 7}",
                        priority(severity, urgency), None) for i in range(n)]


async def until(check: Callable[[], bool], timeout: float = 60) -> None:
    async with asyncio.timeout(timeout):
        while not check():
            await asyncio.sleep(0.01)


async def test_extreme_behind_thousands_of_minor_goes_first_in_every_channel(tmp_path: Path) -> None:
    astore = AsyncStore(Store(tmp_path / "hub.db"))
    gate = asyncio.Event()
    box = Outbox(astore)
    channels = {name: Gated(name, gate) for name in CHANNELS}
    for name, (size, loops) in CHANNELS.items():
        box.add_worker(channels[name], batch_size=size, concurrency=loops, idle_s=3600)
    try:
        for name in CHANNELS:
            await box.enqueue(rows(name, 1, MINOR // 2, "Minor", "Expected"))
            await box.enqueue(rows(name, 3, MINOR // 2, "Severe", "Immediate"))
        await box.start()
        # every claim loop has taken a batch of Minor rows and is sending it: delivery is saturated
        await until(lambda: all(len(channels[n].batches) == loops for n, (_, loops) in CHANNELS.items()))
        for name in CHANNELS:
            await box.enqueue(rows(name, 2, 1, "Extreme", "Immediate"))
        gate.set()
        await until(lambda: all(sum(map(len, c.batches)) == MINOR + 1 for c in channels.values()))
    finally:
        await box.stop()
        astore.close()
    for name, (_, loops) in CHANNELS.items():
        after = channels[name].batches[loops]  # the first batch taken after the Extreme was queued
        assert after[0] == f"2/{name}/r0", (name, after[:3])
    # severity first, Immediate first within it: a storm of Immediate Severe warnings never holds up an Extreme
    assert [priority(s, u) for s, u in (("Extreme", "Immediate"), ("Extreme", "Expected"), ("Severe", "Immediate"),
                                         ("Severe", "Future"), ("Minor", "Immediate"), ("Unknown", "Unknown"))] \
        == [0, 1, 2, 3, 6, 9]
