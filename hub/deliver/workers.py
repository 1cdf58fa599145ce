"""The channel workers that claim outbox rows and deliver them (one per channel, so a dead channel delays no
other), their metrics, and :class:`Outbox`, the facade the hub starts them through."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Collection, Iterable
from dataclasses import dataclass
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge

from hub.deliver.breaker import ROW_FAULTS, CircuitBreaker
from hub.deliver.outbox import (
    OUTCOME_KINDS,
    EnqueueResult,
    NewDelivery,
    RetryPolicy,
    backlog,
    claim,
    complete,
    defer,
    depth,
    due_again,
    enqueue,
    next_due,
    recover,
    renew,
    stamp_ms,
    status,
    withdraw,
)
from hub.events import Queued, Wakeup
from hub.ports import Channel, Delivery, Outcome
from hub.store.db import AsyncStore, urgent_from_here

log = logging.getLogger("warnhub.outbox")

DELIVER_TIMEOUT_S = 54.0
"""A batch's delivery is given up (its rows retried) after this long: a hung channel holds no rows for ever."""
BACKLOG_ALARM_S = 60.0
"""A due delivery waiting longer than this makes its channel degraded: delivery has stalled or cannot keep up."""


@dataclass(frozen=True, slots=True)
class ChannelHealth:
    """A channel's delivery as /healthz and the console show it: degraded when a destination's circuit is open or
    a due delivery has waited longer than the alarm (a channel that silently stops shows as a growing wait)."""

    queued: int
    waiting_s: float | None
    """How long the longest-waiting due delivery has waited (None: nothing due)."""
    open_circuits: tuple[str, ...]
    alarm_s: float = BACKLOG_ALARM_S

    @property
    def problems(self) -> list[str]:
        found = []
        if self.open_circuits:
            hosts = ", ".join(self.open_circuits)
            found.append(f"Ziel antwortet nicht, Sicherung offen: {hosts} / circuit open for {hosts}")
        if self.waiting_s is not None and self.waiting_s > self.alarm_s:
            found.append(f"{self.queued} Zustellungen stehen an, die älteste seit {self.waiting_s:.0f} s / "
                         f"{self.queued} deliveries queued, the oldest due for {self.waiting_s:.0f} s")
        return found

    def as_dict(self) -> dict[str, Any]:
        problems = self.problems
        return {"state": "degraded" if problems else "ok", "queued": self.queued,
                "waiting_s": None if self.waiting_s is None else round(self.waiting_s, 1),
                "open_circuits": list(self.open_circuits), "problems": problems}


class OutboxMetrics:
    """Outbox metrics, registered in the hub's registry (``Metrics().registry``)."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.deliveries = Counter("warnhub_outbox_deliveries_total", "Delivery attempts by channel and outcome "
                                  "(done, retry, gone, failed, expired)", ["channel", "outcome"], registry=registry)
        self.queued = Gauge("warnhub_outbox_queued", "Deliveries queued per channel (due or waiting to retry)",
                            ["channel"], registry=registry)
        self.open_circuits = Gauge("warnhub_outbox_open_circuits", "Hosts whose circuit is open, per channel",
                                   ["channel"], registry=registry)


class ChannelWorker:
    """Feeds one channel from the outbox: claim a batch, deliver, record the outcomes, again at once while rows
    remain; else sleep until :meth:`wake`, the next row is due, a circuit may be probed, or ``idle_s`` passes.
    ``concurrency`` claim/deliver loops run side by side. The caller enters and leaves the channel itself.

    ``express`` (max priority, batch size): one more loop that claims only rows of that priority or a more urgent
    one, in small batches. In a storm every loop is busy with a batch of Severe rows when the Extreme is published;
    claim order alone would make the Extreme wait until one of them is done (issue 17: its first push within a
    second of being accepted). Idle otherwise."""

    def __init__(self, astore: AsyncStore, channel: Channel, *, batch_size: int = 500, concurrency: int = 1,
                 express: tuple[int, int] | None = None,
                 lease_s: float = 30.0, deliver_timeout_s: float = DELIVER_TIMEOUT_S,
                 policy: RetryPolicy | None = None, breaker: CircuitBreaker | None = None,
                 metrics: OutboxMetrics | None = None,
                 on_gone: Callable[[str, list[str]], Awaitable[None]] | None = None, idle_s: float = 1.0,
                 clock: Callable[[], int] | None = None,
                 observe: Callable[[str, list[tuple[Delivery, Outcome]]], None] | None = None) -> None:
        self.astore = astore
        self.clock = clock or (lambda: stamp_ms(None))
        """Epoch milliseconds (injected by tests)."""
        self.channel = channel
        self.batch_size = batch_size
        self.lease_s = lease_s
        """How long claimed rows are held; renewed every third of it while they are being sent."""
        self.deliver_timeout_s = deliver_timeout_s
        self.policy = policy or RetryPolicy()
        self.breaker = breaker or CircuitBreaker()
        self.metrics = metrics
        self.on_gone = on_gone
        self.observe = observe
        """Told every delivered batch's outcomes once they are stored (the history log)."""
        self.idle_s = idle_s
        self._wakeups = [Wakeup() for _ in range(max(1, concurrency) + (express is not None))]
        self.express = express
        self._claiming = asyncio.Lock()  # claims of one channel in turn: no two loops probe the same host
        self._tasks: list[asyncio.Task[None]] = []
        self._stopping = False
        self._failing = False
        self._holds: dict[str, int] = {}
        """Recipient -> epoch ms before which nothing is sent to it: its receiver answered Retry-After."""

    @property
    def name(self) -> str:
        return self.channel.name

    def wake(self) -> None:
        """Rows were enqueued: claim now rather than at the next idle poll."""
        for event in self._wakeups:
            event.set()

    async def run(self) -> None:
        """The claim loops until :meth:`stop`. A loop that dies (a bug: store and channel errors are handled in
        it) takes the others down and raises, so whoever runs this (the supervisor) restarts the worker."""
        self._stopping = False
        async with asyncio.TaskGroup() as group:
            loops = [(event, None) for event in self._wakeups[:-1]] + [(self._wakeups[-1], self.express)] \
                if self.express is not None else [(event, None) for event in self._wakeups]
            self._tasks = [group.create_task(self._loop(event, only), name=f"outbox-{self.name}-{i}")
                           for i, (event, only) in enumerate(loops)]

    async def stop(self, timeout_s: float = 10.0) -> None:
        """Claim no more; let batches in hand finish for up to ``timeout_s``, then cancel them (their rows stay in
        flight until the lease runs out or :func:`recover`)."""
        self._stopping = True
        self.wake()
        if not self._tasks:
            return
        _, pending = await asyncio.wait(self._tasks, timeout=timeout_s)
        for task in pending:
            task.cancel()
        if pending:
            log.warning("outbox %s: %d batches unfinished at stop; they are sent again later", self.name, len(pending))
            await asyncio.gather(*pending, return_exceptions=True)

    async def _loop(self, wakeup: Wakeup, express: tuple[int, int] | None = None) -> None:
        if express is not None:
            urgent_from_here()  # an Extreme's claims and outcomes do not queue behind the storm's bulk work
        while not self._stopping:
            wakeup.clear()
            try:
                if await self.step(express):
                    continue
                timeout = await self._idle_timeout() if express is None else self.idle_s
            except Exception:
                log.exception("outbox %s: store failed; trying again in %.1fs", self.name, self.idle_s)
                timeout = self.idle_s
            if self._stopping:
                break
            await wakeup.wait(timeout)

    async def _claim(self, express: tuple[int, int] | None = None) -> list[Delivery]:
        limit, most = (self.batch_size, None) if express is None else (express[1], express[0])
        async with self._claiming:
            batch = await self.astore.run_bulk(claim, self.astore.store, self.name, limit, lease_s=self.lease_s,
                                               skip_hosts=self.breaker.open_hosts(), now_ms=self.clock(),
                                               max_priority=most)
            self.breaker.claimed({d.host for d in batch})
        return batch

    async def _idle_timeout(self) -> float:
        due = await self.astore.run_bulk(next_due, self.astore.store, self.name, skip_hosts=self.breaker.open_hosts())
        waits = [self.idle_s]
        if due is not None:
            waits.append((due - self.clock()) / 1000)
        if (probe := self.breaker.next_probe_s()) is not None:
            waits.append(probe)
        return max(0.0, min(waits))

    async def step(self, express: tuple[int, int] | None = None) -> int:
        """Claim one batch and deliver it (what the loop does each turn); returns its size, 0 when none was due.
        ``express``: only rows of that priority or more urgent, at most that many (the express loop)."""
        batch = await self._claim(express)
        send = await self._hold_back(batch) if batch and self._holds else batch
        if send:
            await self._handle(send)
        return len(batch)

    async def _hold_back(self, batch: list[Delivery]) -> list[Delivery]:
        """The rows to send now: a row for a recipient whose receiver asked to wait (429 or 503 with Retry-After,
        on another of its rows) goes back to the queue unsent until then. Retry-After is about the subscription,
        not the one row it was refused; what this node learnt is held here (another node learns it from its own
        refusal, and the refused row itself waits in the store)."""
        now = self.clock()
        self._holds = {r: until for r, until in self._holds.items() if until > now}
        held = [(d.id, self._holds[d.recipient]) for d in batch if d.recipient in self._holds]
        if not held:
            return batch
        await self.astore.run_bulk(defer, self.astore.store, held, now_ms=now)
        log.info("outbox %s: %d deliveries wait for their recipient's Retry-After", self.name, len(held))
        ids = {i for i, _ in held}
        return [d for d in batch if d.id not in ids]

    def _learn_holds(self, pairs: list[tuple[Delivery, Outcome]]) -> None:
        now = self.clock()
        for d, o in pairs:
            if o.kind == "retry" and o.retry_after_s:
                until = now + int(o.retry_after_s * 1000)
                self._holds[d.recipient] = max(until, self._holds.get(d.recipient, 0))

    async def _deliver(self, batch: list[Delivery]) -> list[Outcome]:
        """Outcomes for a batch, one bad row isolated: a row whose content could not be made (:func:`row_failed`)
        is retried alone and the rest sent again without it; a batch whose ``deliver`` raises is halved until the
        row that raises is alone. All within ``deliver_timeout_s`` (the rows' leases are renewed meanwhile, so no
        other node claims them while this one is still sending)."""
        loop = asyncio.get_running_loop()
        return await self._isolate(batch, loop.time() + self.deliver_timeout_s)

    async def _isolate(self, batch: list[Delivery], deadline: float) -> list[Outcome]:
        left = deadline - asyncio.get_running_loop().time()
        if left <= 0:
            return [Outcome.retry("not tried: isolating a failing row used up the lease")] * len(batch)
        faults: dict[int, str] = {}
        token = ROW_FAULTS.set(faults)
        try:
            # a hung delivery must not hold its rows (renewed) for ever: stop it, the rows are retried
            async with asyncio.timeout(left):
                outcomes = list(await self.channel.deliver(batch))
        except Exception as err:
            if not self._failing:
                log.warning("outbox %s: deliver raised for %d row(s); isolating the row", self.name, len(batch),
                            exc_info=True)
            self._failing = True
            if len(batch) == 1 or isinstance(err, TimeoutError):
                return [Outcome.retry(f"deliver raised {err!r}")] * len(batch)
            half = len(batch) // 2
            return await self._isolate(batch[:half], deadline) + await self._isolate(batch[half:], deadline)
        finally:
            ROW_FAULTS.reset(token)
        if faults:
            log.warning("outbox %s: content failed for %d row(s); the other %d are sent without them", self.name,
                        len(faults), len(batch) - len(faults))
            rest = [d for d in batch if d.id not in faults]
            by_id = {d.id: Outcome.retry(faults[d.id]) for d in batch if d.id in faults}
            by_id.update(zip((d.id for d in rest), await self._isolate(rest, deadline) if rest else [], strict=True))
            return [by_id[d.id] for d in batch]
        if len(outcomes) != len(batch) or not all(isinstance(o, Outcome) and o.kind in OUTCOME_KINDS for o in outcomes):
            log.error("outbox %s: channel answered %d outcomes for %d deliveries, or unknown ones (a bug);"
                      " retrying all", self.name, len(outcomes), len(batch))
            return [Outcome.retry("channel answered the wrong outcomes")] * len(batch)
        if self._failing:
            log.info("outbox %s: deliver works again", self.name)
        self._failing = False
        return outcomes

    async def _renew(self, ids: list[int]) -> None:
        """The heartbeat of a batch in hand: its rows' leases renewed every third of the lease until it is
        settled, so a short lease never sends a slow push twice, and a dead node's rows return after one lease."""
        while True:
            await asyncio.sleep(self.lease_s / 3)
            try:
                await self.astore.run_bulk(renew, self.astore.store, ids, lease_s=self.lease_s, now_ms=self.clock())
            except Exception:  # noqa: BLE001 - the next beat tries again; a lease that ran out only sends twice
                log.warning("outbox %s: renewing the leases of %d rows failed", self.name, len(ids), exc_info=True)

    async def _handle(self, batch: list[Delivery]) -> None:
        heartbeat = asyncio.create_task(self._renew([d.id for d in batch]), name=f"outbox-{self.name}-lease")
        try:
            await self._settle(batch, await self._deliver(batch))
        finally:
            heartbeat.cancel()
            await asyncio.gather(heartbeat, return_exceptions=True)

    async def _settle(self, batch: list[Delivery], outcomes: list[Outcome]) -> None:
        by_host: dict[str, list[str]] = {}
        for delivery, outcome in zip(batch, outcomes, strict=True):
            by_host.setdefault(delivery.host, []).append(outcome.kind)
        answering = [host for host, kinds in by_host.items() if self.breaker.record(host, kinds)]
        pairs = list(zip(batch, outcomes, strict=True))
        self._learn_holds(pairs)
        result = await self.astore.run_bulk(complete, self.astore.store, pairs, policy=self.policy, now_ms=self.clock())
        if answering:  # a host is back: what waited for it goes now, not after each row's own backoff
            again = await self.astore.run_bulk(due_again, self.astore.store, self.name, answering, now_ms=self.clock())
            log.info("outbox %s: %s answers again; %d queued deliveries due now", self.name, ", ".join(answering),
                     again)
        if self.observe is not None:
            self.observe(self.name, pairs)
        if self.metrics is not None:
            for state, n in result.counts.items():
                if n:
                    self.metrics.deliveries.labels(self.name, state).inc(n)
        if self.on_gone is not None:
            for channel, recipients in result.gone.items():
                try:
                    await self.on_gone(channel, recipients)
                except Exception:
                    log.exception("outbox %s: on_gone failed for %d recipients", self.name, len(recipients))


class Outbox:
    """The pipeline's handle: enqueue (and wake the workers concerned), withdraw, status; starts and stops the
    channel workers. ``start`` first runs :func:`recover`."""

    def __init__(self, astore: AsyncStore, *, metrics: OutboxMetrics | None = None,
                 metrics_interval_s: float = 2.0, backlog_alarm_s: float = BACKLOG_ALARM_S,
                 clock: Callable[[], int] | None = None) -> None:
        self.astore = astore
        self.clock = clock
        """Epoch milliseconds for its workers and the backlog's ages (None: the wall clock; injected by tests)."""
        self.metrics = metrics
        self.metrics_interval_s = metrics_interval_s
        self.backlog_alarm_s = backlog_alarm_s
        self.health: dict[str, ChannelHealth] = {}
        self.observers: list[Callable[[str, list[tuple[Delivery, Outcome]]], None]] = []
        """Told each delivered batch's outcomes (channel, rows) after they are stored: the history log."""
        """Each channel's delivery health, read every ``metrics_interval_s`` (on a reader thread, never the writer)."""
        self.workers: dict[str, ChannelWorker] = {}
        self._tasks: list[asyncio.Task[None]] = []
        self._unserved: set[str] = set()

    def add_worker(self, channel: Channel, **kw: Any) -> ChannelWorker:
        """A worker for a channel (keyword arguments as for :class:`ChannelWorker`); one per channel name."""
        if channel.name in self.workers:
            raise ValueError(f"outbox: channel {channel.name!r} has a worker already")
        kw.setdefault("metrics", self.metrics)
        if self.clock is not None:
            kw.setdefault("clock", self.clock)
        kw.setdefault("observe", self._observe)
        worker = self.workers[channel.name] = ChannelWorker(self.astore, channel, **kw)
        return worker

    async def start(self, *, run_workers: bool = True) -> int:
        """Queue again what was in flight at the last stop or crash, then start the workers (``run_workers``
        False: the caller runs each worker's :meth:`ChannelWorker.run` itself, under its supervisor); returns that
        count."""
        recovered = await self.astore.run_bulk(recover, self.astore.store)
        if recovered:
            log.warning("outbox: %d deliveries were in flight at the last stop; queued again", recovered)
        if run_workers:
            self._tasks = [asyncio.create_task(w.run(), name=f"outbox-{w.name}") for w in self.workers.values()]
        self._tasks.append(asyncio.create_task(self._watch(), name="outbox-health"))
        return recovered

    async def stop(self, timeout_s: float = 10.0) -> None:
        await asyncio.gather(*(w.stop(timeout_s) for w in self.workers.values()))
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []

    def _observe(self, channel: str, pairs: list[tuple[Delivery, Outcome]]) -> None:
        for observer in self.observers:
            try:
                observer(channel, pairs)
            except Exception:
                log.exception("outbox %s: an observer failed", channel)

    def on_queued(self, event: Queued) -> None:
        """Handler of :class:`~hub.events.Queued` (rows written elsewhere, in the pipeline's transaction): the
        workers of those channels claim now rather than at their next idle poll."""
        for name in event.channels:
            if name in self.workers:
                self.workers[name].wake()

    async def enqueue(self, rows: Iterable[NewDelivery], *, now_ms: int | None = None) -> EnqueueResult:
        rows = list(rows)
        result = await self.astore.run_bulk(enqueue, self.astore.store, rows, now_ms=now_ms)
        for name in {r.channel for r in rows}:
            if name in self.workers:
                self.workers[name].wake()
            elif name not in self._unserved:
                self._unserved.add(name)
                log.warning("outbox: no worker for channel %r; its deliveries stay queued", name)
        return result

    async def withdraw(self, thread: str, *, channels: Collection[str] | None = None,
                       below_publication: int | None = None) -> int:
        return await self.astore.run_bulk(withdraw, self.astore.store, thread, channels=channels,
                                     below_publication=below_publication)

    async def status(self, publication_ids: Collection[int] | None = None) -> dict[int, dict[str, dict[str, int]]]:
        return await self.astore.run_bulk(status, self.astore.store, publication_ids)

    async def depth(self) -> dict[str, int]:
        """Queued rows per channel (every channel with a worker is named), also set as the gauge."""
        found = await self.astore.run_bulk(depth, self.astore.store)
        out = {name: found.get(name, 0) for name in self.workers} | found
        if self.metrics is not None:
            for name, n in out.items():
                self.metrics.queued.labels(name).set(n)
            for name, worker in self.workers.items():
                self.metrics.open_circuits.labels(name).set(len(worker.breaker.open_hosts()))
        return out

    async def refresh(self, *, now_ms: int | None = None) -> dict[str, ChannelHealth]:
        """Read every channel's backlog (a reader thread) and its workers' open circuits: :attr:`health` and the
        queue and circuit gauges."""
        now = stamp_ms(now_ms if now_ms is not None or self.clock is None else self.clock())
        found = await self.astore.read(backlog, self.astore.store, now)
        health = {}
        for name in {*self.workers, *found}:
            queued, oldest = found.get(name, (0, None))
            worker = self.workers.get(name)
            health[name] = ChannelHealth(queued, None if oldest is None else max(0.0, (now - oldest) / 1000),
                                         tuple(worker.breaker.broken_hosts()) if worker else (), self.backlog_alarm_s)
            if self.metrics is not None:
                self.metrics.queued.labels(name).set(queued)
                self.metrics.open_circuits.labels(name).set(len(health[name].open_circuits))
        self.health = health
        return health

    async def _watch(self) -> None:
        while True:
            try:
                await self.refresh()
            except Exception:
                log.exception("outbox: reading the channels' backlog failed")
            await asyncio.sleep(self.metrics_interval_s)
