"""Fair sending to many push hosts: at most so many requests in flight per host, hosts served in turn.

A batch of pushes is mostly a few big push services (FCM, Mozilla, Apple) and whatever else subscribers' browsers
and UnifiedPush distributors use. A flood of subscriptions whose endpoints are on one slow host must neither take
every request slot (delaying real citizens' pushes to the other hosts) nor make the hub hammer that host:
:class:`HostSlots` counts the requests in flight per host (shared by the batches of one event loop) and
:class:`FairQueue` hands a batch's items to the senders host by host in turn, skipping hosts at their limit, so a
sender never waits for a slow host while another host's items are waiting. Items still waiting for their host at
a deadline are left (the caller retries them later), so a slow host cannot stretch a batch without end.
"""

from __future__ import annotations

import asyncio
from collections import Counter, deque
from collections.abc import Sequence

__all__ = ["FairQueue", "HostSlots"]


class HostSlots:
    """Requests in flight per host, at most ``limit`` each. Used from one event loop."""

    def __init__(self, limit: int) -> None:
        if limit < 1:
            raise ValueError("a host needs at least one slot")
        self.limit = limit
        self.busy: Counter[str] = Counter()
        self._freed = asyncio.Event()

    def free(self, host: str) -> bool:
        return self.busy[host] < self.limit

    def take(self, host: str) -> None:
        self.busy[host] += 1

    def release(self, host: str) -> None:
        self.busy[host] -= 1
        if self.busy[host] <= 0:
            del self.busy[host]
        self._freed.set()

    async def wait(self) -> None:
        """Until some host's request ends (no check and wait in between can miss it: one event loop)."""
        self._freed.clear()
        await self._freed.wait()


class FairQueue:
    """A batch's items (by index) grouped by host and handed out host by host in turn, each only while its host
    has a free slot. :meth:`take` reserves the slot; the caller gives it back with ``slots.release(host)``."""

    def __init__(self, hosts: Sequence[str], slots: HostSlots, deadline: float | None = None) -> None:
        """``deadline`` (event loop time): after it no item waits for a slot any more (see :meth:`left`)."""
        self.slots = slots
        self.deadline = deadline
        self._queues: dict[str, deque[int]] = {}
        for k, host in enumerate(hosts):
            self._queues.setdefault(host, deque()).append(k)
        self._turn = deque(self._queues)
        """Hosts with items left, the next to serve first."""

    async def take(self) -> tuple[int, str] | None:
        """The next item and its host (its slot taken), waiting while every host with items left is at its limit;
        None when no item is left, or when the deadline has passed."""
        loop = asyncio.get_running_loop()
        while self._turn and (self.deadline is None or loop.time() < self.deadline):
            for _ in range(len(self._turn)):
                host = self._turn[0]
                self._turn.rotate(-1)
                if self.slots.free(host):
                    queue = self._queues[host]
                    k = queue.popleft()
                    if not queue:
                        self._turn.remove(host)
                    self.slots.take(host)
                    return k, host
            try:
                async with asyncio.timeout_at(self.deadline):
                    await self.slots.wait()
            except TimeoutError:
                return None
        return None

    def left(self) -> list[tuple[int, str]]:
        """The items never handed out (their hosts stayed at the limit until the deadline), with their hosts."""
        return [(k, host) for host in self._turn for k in self._queues[host]]
