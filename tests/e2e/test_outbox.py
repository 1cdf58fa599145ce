"""The outbox: nothing accepted is lost, nothing is delivered twice (as far as the hub can know), a dead channel or
host delays no other, and a warning is never delivered after it expired.

The outbox and the store are real (a SQLite file in tmp_path, and a PostgreSQL database: tests/conftest.py); a
channel here is a small recording stand-in for a receiver.
"""

from __future__ import annotations

import asyncio
import collections
import os
import signal
import subprocess
import sys
import textwrap
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, Self

import pytest
from prometheus_client import CollectorRegistry

from hub.deliver import outbox
from hub.deliver.breaker import CircuitBreaker
from hub.deliver.outbox import NewDelivery, RetryPolicy
from hub.deliver.workers import Outbox, OutboxMetrics
from hub.events import Wakeup
from hub.ports import Delivery, Outcome
from hub.store.db import AsyncStore, Store
from hub.supervise import Supervisor
from tests.kits import paths

ROOT = paths.REPO
NOW = 1_900_000_000_000
POLICY = RetryPolicy(base_s=1.0, max_s=4.0, max_attempts=3)


def row(recipient: str, *, pub: int = 1, thread: str = "t1", channel: str = "push", host: str = "",
        priority: int = 5, not_after_ms: int | None = None) -> NewDelivery:
    return NewDelivery(f"{pub}/{channel}/{recipient}", pub, thread, channel, recipient, host, priority, not_after_ms)


def keys(batch: Sequence[Delivery]) -> list[str]:
    return [d.key for d in batch]


def states(store: Store) -> dict[str, str]:
    return dict(store.conn.execute("SELECT key, state FROM outbox"))


@pytest.fixture
def store(store_url: str) -> Iterator[Store]:
    """The store on each backend (tests/conftest.py: a SQLite file, a PostgreSQL database)."""
    with Store(store_url) as s:
        yield s


@pytest.fixture
async def astore(store_url: str) -> AsyncIterator[AsyncStore]:
    a = AsyncStore(Store(store_url))
    yield a
    a.close()


class RecordingChannel:
    """Records every delivery it is given; answers with ``answer`` after ``gate`` (if any) opens."""

    def __init__(self, name: str, answer: Callable[[Delivery], Outcome] | None = None,
                 gate: asyncio.Event | None = None, events: list[str] | None = None) -> None:
        self.name = name
        self.seen: list[Delivery] = []
        self.answer = answer or (lambda d: Outcome.done())
        self.gate = gate
        self.events = events if events is not None else []
        self.entered = asyncio.Event()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc: object) -> None:
        return None

    async def deliver(self, batch: Sequence[Delivery]) -> Sequence[Outcome]:
        self.events.append(f"{self.name}:start")
        self.entered.set()
        if self.gate is not None:
            await self.gate.wait()
        self.seen.extend(batch)
        self.events.append(f"{self.name}:done")
        return [self.answer(d) for d in batch]


async def until(predicate: Callable[[], bool | Awaitable[bool]], timeout: float = 20.0) -> None:
    """Wait for a condition; the timeout only keeps a broken outbox from hanging the test run."""
    async def poll() -> None:
        while True:
            result = predicate()
            if isinstance(result, Awaitable):
                result = await result
            if result:
                return
            await asyncio.sleep(0.01)
    await asyncio.wait_for(poll(), timeout)


# -- the table and its functions ----------------------------------------------------------------------------


def test_enqueue_is_idempotent(store: Store) -> None:
    """Invariant: no duplicate per recipient and version: one key is one row, however often it is enqueued."""
    first = outbox.enqueue(store, [row("a"), row("a"), row("b")], now_ms=NOW)
    again = outbox.enqueue(store, [row("a")], now_ms=NOW)
    assert (first.inserted, first.duplicates, again.inserted, again.duplicates) == (2, 1, 0, 1)
    assert outbox.status(store) == {1: {"push": {"queued": 2}}}
    assert outbox.depth(store) == {"push": 2}


def test_claim_by_priority_then_insertion(store: Store) -> None:
    """Extreme before Minor, whatever the order they were enqueued in; same priority in insertion order."""
    outbox.enqueue(store, [row(f"minor{i}", priority=9) for i in range(3)], now_ms=NOW)
    outbox.enqueue(store, [row("severe", priority=2), row("extreme0", priority=0), row("extreme1", priority=0)],
                   now_ms=NOW)
    assert keys(outbox.claim(store, "push", 2, lease_s=60, now_ms=NOW)) == ["1/push/extreme0", "1/push/extreme1"]
    rest = outbox.claim(store, "push", 10, lease_s=60, now_ms=NOW)
    assert keys(rest) == ["1/push/severe", "1/push/minor0", "1/push/minor1", "1/push/minor2"]
    assert all(d.attempts == 0 for d in rest)
    assert outbox.claim(store, "push", 10, lease_s=60, now_ms=NOW) == []
    assert outbox.status(store) == {1: {"push": {"inflight": 6}}}


def test_claim_is_an_index_range_scan(tmp_path: Path) -> None:
    """Claiming among a million rows must not read them all: every query claim runs is an index search. SQLite's
    plan (on PostgreSQL the planner picks by the table's statistics: a table of 50 rows is read whole there)."""
    with Store(tmp_path / "hub.db") as store:
        _claim_plans(store)


def _claim_plans(store: Store) -> None:
    outbox.enqueue(store, [row(f"r{i}", priority=i % 3, host=f"h{i % 4}") for i in range(50)], now_ms=NOW)
    statements: list[str] = []
    store.conn.set_trace_callback(statements.append)
    try:
        outbox.claim(store, "push", 20, lease_s=60, now_ms=NOW, skip_hosts={"h1"})
    finally:
        store.conn.set_trace_callback(None)
    reads = [s for s in statements if s.lstrip().upper().startswith(("SELECT", "UPDATE"))]
    assert reads
    for sql in reads:
        plan = " | ".join(r[3] for r in store.conn.execute("EXPLAIN QUERY PLAN " + sql))
        assert "SCAN outbox" not in plan, (sql, plan)


def test_expired_is_never_delivered(store: Store) -> None:
    """Invariant: never deliver a warning after its expiry (at claim, and when a retry would land after it)."""
    outbox.enqueue(store, [row("old", not_after_ms=NOW), row("fresh", not_after_ms=NOW + 5_000)], now_ms=NOW - 1)
    batch = outbox.claim(store, "push", 10, lease_s=60, now_ms=NOW)
    assert keys(batch) == ["1/push/fresh"]
    result = outbox.complete(store, [(batch[0], Outcome.retry("503", after_s=10))], now_ms=NOW, policy=POLICY)
    assert result.counts["expired"] == 1
    assert states(store) == {"1/push/old": "expired", "1/push/fresh": "expired"}
    assert outbox.claim(store, "push", 10, lease_s=60, now_ms=NOW + 20_000) == []


def test_newer_version_supersedes_queued_not_inflight(store: Store) -> None:
    """Invariant: update supersedes: a queued v1 is replaced by v2; a v1 in flight may still land."""
    outbox.enqueue(store, [row("r1"), row("r2")], now_ms=NOW)
    (flying,) = outbox.claim(store, "push", 1, lease_s=60, now_ms=NOW)
    assert flying.recipient == "r1"
    result = outbox.enqueue(store, [row("r1", pub=2), row("r2", pub=2), row("r3", pub=2)], now_ms=NOW)
    assert (result.inserted, result.superseded) == (3, 1)
    assert outbox.status(store, [1, 2, 3]) == {1: {"push": {"inflight": 1, "superseded": 1}},
                                               2: {"push": {"queued": 3}}, 3: {}}
    late = outbox.enqueue(store, [row("r3", pub=1)], now_ms=NOW)  # v1 arriving after v2 is stale at once
    assert (late.inserted, late.superseded) == (1, 1)
    # v1 in flight comes back for a retry: v2 is queued, so v1 is superseded rather than sent again
    outbox.complete(store, [(flying, Outcome.retry("timeout"))], now_ms=NOW, policy=POLICY)
    assert states(store)["1/push/r1"] == "superseded"
    assert keys(outbox.claim(store, "push", 10, lease_s=60, now_ms=NOW + 60_000)) == [
        "2/push/r1", "2/push/r2", "2/push/r3"]


def test_withdraw_takes_back_queued_rows(store: Store) -> None:
    """A Cancel withdraws the queued deliveries of what it cancels (by channel, below a publication)."""
    outbox.enqueue(store, [row("a"), row("b"), row("a", channel="board"), row("x", thread="t2")], now_ms=NOW)
    outbox.enqueue(store, [row("c", pub=2)], now_ms=NOW)
    (flying,) = outbox.claim(store, "push", 1, lease_s=60, now_ms=NOW)
    assert outbox.withdraw(store, "t1", channels={"board"}) == 1
    assert outbox.withdraw(store, "t1", channels=()) == 0
    assert outbox.withdraw(store, "t1", below_publication=2) == 1
    assert outbox.withdraw(store, "t1") == 1
    assert states(store) == {"1/push/a": "inflight", "1/push/b": "withdrawn", "1/board/a": "withdrawn",
                             "1/push/x": "queued", "2/push/c": "withdrawn"}
    assert flying.key == "1/push/a"


def test_retry_honours_retry_after_then_gives_up(store: Store) -> None:
    """Backoff is at least Retry-After, grows with attempts within its cap, and ends as failed after max_attempts."""
    outbox.enqueue(store, [row("a")], now_ms=NOW)
    (first,) = outbox.claim(store, "push", 1, lease_s=60, now_ms=NOW)
    outbox.complete(store, [(first, Outcome.retry("503", after_s=120))], now_ms=NOW, policy=POLICY)
    assert outbox.claim(store, "push", 1, lease_s=60, now_ms=NOW + 119_999) == []
    (second,) = outbox.claim(store, "push", 1, lease_s=60, now_ms=NOW + 120_000)
    assert second.attempts == 1
    later = NOW + 120_000
    outbox.complete(store, [(second, Outcome.retry("503"))], now_ms=later, policy=POLICY)
    (next_at,) = store.conn.execute("SELECT next_at_ms FROM outbox").fetchone()
    assert later <= next_at <= later + 2_000  # second retry: full jitter below base_s * 2
    (third,) = outbox.claim(store, "push", 1, lease_s=60, now_ms=next_at)
    assert third.attempts == 2
    result = outbox.complete(store, [(third, Outcome.retry("503"))], now_ms=next_at, policy=POLICY)
    assert (result.counts["failed"], result.gave_up) == (1, 1)
    assert store.conn.execute("SELECT state, last_error FROM outbox").fetchone() == (
        "failed", "gave up after 3 attempts: 503")


def test_backoff_bounds() -> None:
    policy = RetryPolicy(base_s=1.0, max_s=30.0)
    for attempt in range(1, 12):
        ceiling = min(30.0, 2.0 ** (attempt - 1)) * 1000
        assert all(0 <= outbox.backoff_ms(policy, attempt) <= ceiling for _ in range(50))
        assert outbox.backoff_ms(policy, attempt, retry_after_s=90) >= 90_000


def test_lost_lease_is_claimed_again(store: Store) -> None:
    """A worker that died holding rows: they are queued again when the lease runs out, not lost."""
    outbox.enqueue(store, [row("a")], now_ms=NOW)
    outbox.claim(store, "push", 1, lease_s=1, now_ms=NOW)
    assert outbox.claim(store, "push", 1, lease_s=1, now_ms=NOW + 999) == []
    (again,) = outbox.claim(store, "push", 1, lease_s=1, now_ms=NOW + 1_000)
    assert (again.key, again.attempts) == ("1/push/a", 1)


def test_prune_keeps_unfinished_rows(store: Store) -> None:
    outbox.enqueue(store, [row("a"), row("b"), row("c")], now_ms=NOW)
    done, gone = outbox.claim(store, "push", 2, lease_s=60, now_ms=NOW)
    outbox.complete(store, [(done, Outcome.done()), (gone, Outcome.gone("410"))], now_ms=NOW, policy=POLICY)
    assert outbox.prune(store, NOW) == 0
    assert outbox.prune(store, NOW + 1) == 2
    assert states(store) == {"1/push/c": "queued"}


# -- workers ----------------------------------------------------------------------------------------------


async def test_gone_recipients_reach_on_gone(astore: AsyncStore) -> None:
    """A dead endpoint (404/410) is reported, so its subscription can be deleted."""
    reported: list[tuple[str, list[str]]] = []

    async def on_gone(channel: str, recipients: list[str]) -> None:
        reported.append((channel, recipients))

    registry = CollectorRegistry()
    box = Outbox(astore, metrics=OutboxMetrics(registry))
    channel = RecordingChannel("push", lambda d: Outcome.gone("410") if d.recipient == "sub-2" else Outcome.done())
    box.add_worker(channel, on_gone=on_gone, idle_s=3600)
    await box.start()
    try:
        await box.enqueue([row("sub-1"), row("sub-2"), row("sub-3")])
        await until(lambda: bool(reported))
    finally:
        await box.stop()
    assert reported == [("push", ["sub-2"])]
    assert await box.status([1]) == {1: {"push": {"done": 2, "gone": 1}}}
    assert [registry.get_sample_value("warnhub_outbox_deliveries_total", {"channel": "push", "outcome": outcome})
            for outcome in ("done", "gone")] == [2, 1]
    assert await box.depth() == {"push": 0}
    assert registry.get_sample_value("warnhub_outbox_queued", {"channel": "push"}) == 0


async def test_circuit_opens_for_dead_host_and_probe_closes_it(astore: AsyncStore) -> None:
    """A dead host delays no other host of its channel; after the cooldown one probe batch decides."""
    clock = [0.0]
    healthy = {"bad": False}
    breaker = CircuitBreaker(threshold=3, cooldown_s=30, clock=lambda: clock[0])

    def answer(d: Delivery) -> Outcome:
        return Outcome.done() if d.host == "good" or healthy["bad"] else Outcome.retry("503")

    channel = RecordingChannel("hooks", answer)
    box = Outbox(astore)
    worker = box.add_worker(channel, batch_size=1, breaker=breaker, idle_s=3600,
                            policy=RetryPolicy(base_s=0, max_s=0, max_attempts=100))
    # the dead host's rows come first (priority 0) and are due again at once after each failure
    await box.enqueue([row(f"b{i}", host="bad", priority=0, channel="hooks") for i in range(4)]
                      + [row(f"g{i}", host="good", priority=1, channel="hooks") for i in range(4)])
    await box.start()
    try:
        await until(lambda: sum(d.host == "good" for d in channel.seen) == 4)
        assert [d.host for d in channel.seen] == ["bad"] * 3 + ["good"] * 4
        assert breaker.open_hosts() == {"bad"}
        healthy["bad"] = True
        clock[0] += 30
        worker.wake()
        await until(lambda: len(channel.seen) == 11)
    finally:
        await box.stop()
    assert [d.host for d in channel.seen[7:]] == ["bad"] * 4  # the probe, then the rest once it answered
    assert sorted(d.recipient for d in channel.seen[7:]) == ["b0", "b1", "b2", "b3"]
    assert sum(d.attempts for d in channel.seen[7:]) == 3  # the three failures before the circuit opened
    assert breaker.open_hosts() == set()
    assert await box.status() == {1: {"hooks": {"done": 8}}}


async def test_slow_channel_delays_no_other(astore: AsyncStore) -> None:
    """Bounded latency: a hung channel (its deliver never returns) does not hold up another channel's worker."""
    events: list[str] = []
    gate = asyncio.Event()
    slow = RecordingChannel("boards", gate=gate, events=events)
    fast = RecordingChannel("push", events=events)
    box = Outbox(astore)
    box.add_worker(slow, idle_s=3600)
    box.add_worker(fast, batch_size=2, idle_s=3600)
    await box.start()
    try:
        await box.enqueue([row(f"b{i}", channel="boards", priority=0) for i in range(3)])
        await asyncio.wait_for(slow.entered.wait(), 20)
        await box.enqueue([row(f"p{i}", channel="push") for i in range(5)])
        await until(lambda: len(fast.seen) == 5)
        assert await box.status() == {1: {"boards": {"inflight": 3}, "push": {"done": 5}}}
        gate.set()
        await until(lambda: len(slow.seen) == 3)
    finally:
        await box.stop()
    assert events[0] == "boards:start" and events[-1] == "boards:done"
    assert events.count("push:done") == 3


async def test_concurrency_runs_batches_of_one_channel_side_by_side(astore: AsyncStore) -> None:
    gate = asyncio.Event()
    channel = RecordingChannel("push", gate=gate)
    box = Outbox(astore)
    box.add_worker(channel, batch_size=1, concurrency=2, idle_s=3600)
    await box.start()
    try:
        await box.enqueue([row("a"), row("b")])
        await until(lambda: channel.events.count("push:start") == 2)
        gate.set()
        await until(lambda: len(channel.seen) == 2)
    finally:
        await box.stop()
    assert channel.events == ["push:start", "push:start", "push:done", "push:done"]


class ClaimWatch(AsyncStore):
    """Marks when a worker's claim came back empty: from then on only wake() or idle_s can make it claim again."""

    def __init__(self, store: Store) -> None:
        super().__init__(store)
        self.idle = asyncio.Event()

    async def run_bulk(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        result = await super().run_bulk(fn, *args, **kwargs)
        if fn is outbox.claim and not result:
            self.idle.set()
        return result


async def test_wake_delivers_without_waiting_for_idle(store_url: str) -> None:
    watch = ClaimWatch(Store(store_url))
    channel = RecordingChannel("push")
    box = Outbox(watch)
    box.add_worker(channel, idle_s=3600)
    await box.start()
    try:
        await asyncio.wait_for(watch.idle.wait(), 20)
        await box.enqueue([row("a")])
        await until(lambda: len(channel.seen) == 1)  # without wake() this would wait an hour
    finally:
        await box.stop()
        watch.close()


async def test_deliver_errors_retry_the_batch(astore: AsyncStore) -> None:
    """A deliver that raises, or answers the wrong number of outcomes, loses nothing: a batch that raises is
    halved (each row alone here), a row answered wrongly is retried."""
    calls = [0]

    class Flaky(RecordingChannel):
        async def deliver(self, batch: Sequence[Delivery]) -> Sequence[Outcome]:
            calls[0] += 1
            if calls[0] == 1:
                raise ConnectionError("broker down")
            if calls[0] == 2:
                return [Outcome.done(), Outcome.done()]  # two outcomes for the one row "a"
            return await super().deliver(batch)

    channel = Flaky("push")
    box = Outbox(astore)
    box.add_worker(channel, idle_s=3600, policy=RetryPolicy(base_s=0, max_s=0))
    await box.start()
    try:
        await box.enqueue([row("a"), row("b")])
        await until(lambda: len(channel.seen) == 2)
    finally:
        await box.stop()
    assert [(d.recipient, d.attempts) for d in channel.seen] == [("b", 0), ("a", 1)]
    assert await box.status() == {1: {"push": {"done": 2}}}


async def test_stop_leaves_unfinished_rows_for_recover(astore: AsyncStore) -> None:
    channel = RecordingChannel("push", gate=asyncio.Event())  # never opens: a hung receiver
    box = Outbox(astore)
    box.add_worker(channel, idle_s=3600)
    await box.start()
    await box.enqueue([row("a")])
    await asyncio.wait_for(channel.entered.wait(), 20)
    await asyncio.wait_for(box.stop(timeout_s=0.1), 20)
    assert await box.status() == {1: {"push": {"inflight": 1}}}
    if astore.store.url is not None:  # PostgreSQL: another node may hold rows in flight; only lapsed leases return
        assert await astore.run(outbox.recover, astore.store) == 0
        assert await box.status() == {1: {"push": {"inflight": 1}}}
        assert await astore.run(outbox.recover, astore.store, now_ms=outbox.stamp_ms(None) + 3_600_000) == 1
    else:
        assert await astore.run(outbox.recover, astore.store) == 1
    assert await box.status() == {1: {"push": {"queued": 1}}}


# -- crash safety -------------------------------------------------------------------------------------------

CRASHER = textwrap.dedent("""
    import os, signal, sys
    from hub.ports import Outcome
    from hub.deliver import outbox
    from hub.store.db import Store

    db, record, inflight = sys.argv[1:4]
    store = Store(db)
    outbox.enqueue(store, [outbox.NewDelivery(f"p{p}/push/sub-{i}", p, f"thread-{p}", "push", f"sub-{i}",
                                              f"h{i % 7}", p % 3, None) for p in range(1, 6) for i in range(1000)])

    def receive(rec, batch):  # what the receiver got, on disk before the hub records it
        rec.write("".join(d.key + "\\n" for d in batch))
        rec.flush()
        os.fsync(rec.fileno())

    with open(record, "w") as rec:
        for _ in range(3):
            batch = outbox.claim(store, "push", 700, lease_s=3600)
            receive(rec, batch)
            outbox.complete(store, [(d, Outcome.done()) for d in batch], policy=outbox.RetryPolicy())
        batch = outbox.claim(store, "push", 500, lease_s=3600)
        with open(inflight, "w") as out:
            out.write("".join(d.key + "\\n" for d in batch))
            out.flush()
            os.fsync(out.fileno())
        receive(rec, batch[:250])  # half of the batch reached the receiver, then the hub dies
    os.kill(os.getpid(), signal.SIGKILL)
""")


async def test_kill9_with_rows_in_flight_loses_none(tmp_path: Path) -> None:
    """Invariant: no accepted delivery is lost across SIGKILL; the only keys delivered twice are those in flight
    at the kill (the receiver sees the same idempotency key)."""
    db, record, inflight = tmp_path / "hub.db", tmp_path / "received.txt", tmp_path / "inflight.txt"
    script = tmp_path / "crasher.py"
    script.write_text(CRASHER)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = await asyncio.create_subprocess_exec(sys.executable, str(script), str(db), str(record), str(inflight),
                                                env=env, cwd=str(tmp_path), stderr=subprocess.PIPE)
    _, err = await asyncio.wait_for(proc.communicate(), 120)
    assert proc.returncode == -signal.SIGKILL, err.decode()
    before = record.read_text().split()
    in_flight = set(inflight.read_text().split())
    assert len(before) == 2100 + 250 and len(in_flight) == 500

    astore = AsyncStore(Store(db))
    channel = RecordingChannel("push")
    box = Outbox(astore)
    box.add_worker(channel, batch_size=400, idle_s=3600)
    try:
        counts = collections.Counter(s for by_channel in (await box.status()).values()
                                     for c in by_channel.values() for s, n in c.items() for _ in range(n))
        assert counts == {"done": 2100, "inflight": 500, "queued": 2400}
        assert await box.start() == 500
        await until(lambda: len(channel.seen) == 2900, timeout=60)
        final = await box.status()
    finally:
        await box.stop()
        astore.close()

    expected = {f"p{p}/push/sub-{i}" for p in range(1, 6) for i in range(1000)}
    after = keys(channel.seen)
    assert len(set(before)) == len(before) and len(set(after)) == len(after)
    assert set(before) | set(after) == expected
    twice = set(before) & set(after)
    assert twice <= in_flight and twice == set(before[-250:])
    assert final == {p: {"push": {"done": 1000}} for p in range(1, 6)}


def test_enqueue_select_writes_rows_from_sql_and_supersedes_older_versions(store: Store) -> None:
    """A fan-out written by SQLite from a SELECT: same keys and states as enqueue, older queued versions of the same
    recipients superseded, other recipients' rows and rows in flight left alone, a repeat stored once."""
    store.conn.execute("CREATE TABLE people (id TEXT, host TEXT)")
    store.conn.executemany("INSERT INTO people VALUES (?, ?)", [("a", "h1"), ("b", "h2"), ("c", "h1")])
    outbox.enqueue(store, [row("a", pub=1), row("b", pub=1), row("z", pub=1)], now_ms=NOW)
    outbox.claim(store, "push", 1, lease_s=60, now_ms=NOW)  # a is in flight
    select = "SELECT id AS recipient, host FROM people WHERE id IN (SELECT value FROM json_each(?))"

    def fan_out() -> outbox.EnqueueResult:
        with store.transaction() as conn:
            return outbox.enqueue_select_in(conn, select, ('["a", "b", "c"]',), key_prefix="2/push/",
                                            publication_id=2, thread="t1", channel="push", priority=1,
                                            not_after_ms=None, now_ms=NOW + 1)

    result = fan_out()
    assert (result.inserted, result.superseded) == (3, 1)
    states = dict(store.conn.execute("SELECT key, state FROM outbox"))
    assert states == {"1/push/a": "inflight", "1/push/b": "superseded", "1/push/z": "queued",
                      "2/push/a": "queued", "2/push/b": "queued", "2/push/c": "queued"}
    hosts = dict(store.conn.execute("SELECT recipient, host FROM outbox WHERE publication_id=2"))
    assert hosts == {"a": "h1", "b": "h2", "c": "h1"}
    assert fan_out().inserted == 0  # the same keys again: stored once
    assert store.conn.execute("SELECT count(*) FROM outbox").fetchone()[0] == 6


async def test_a_worker_whose_loop_dies_is_restarted_by_its_supervisor(astore: AsyncStore,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """The daemon runs each channel's worker under the supervisor (hub/app.py): a claim loop that dies (a bug; store
    and channel errors are handled inside it) takes its worker down with the error, the worker restarts after its
    backoff, shows as restarting meanwhile, and then delivers what was queued."""
    box = Outbox(astore)
    channel = RecordingChannel("push")
    worker = box.add_worker(channel, idle_s=3600)
    await box.start(run_workers=False)
    real_wait, broken = Wakeup.wait, asyncio.Event()

    async def wait_once_broken(self: Wakeup, timeout: float | None = None) -> bool:
        if not broken.is_set():
            broken.set()
            raise RuntimeError("a bug in the claim loop")
        return await real_wait(self, timeout)

    monkeypatch.setattr(Wakeup, "wait", wait_once_broken)
    tasks = Supervisor(backoff=(0.2,))
    async with asyncio.TaskGroup() as group:
        tasks.start(group, "outbox:push", worker.run)
        await broken.wait()
        await until(lambda: tasks.tasks["outbox:push"].restarts == 1)
        assert "a bug in the claim loop" in tasks.tasks["outbox:push"].last_error
        await box.enqueue([row("sub-1")])
        await until(lambda: keys(channel.seen) == ["1/push/sub-1"])
        await box.stop()
        tasks.cancel()
    assert await box.status([1]) == {1: {"push": {"done": 1}}}


async def test_a_stalled_channel_is_degraded_with_its_wait_named(astore: AsyncStore) -> None:
    """Due rows nobody takes (a worker that stopped claiming) make the channel degraded once the oldest has waited
    longer than the alarm; rows waiting for a later retry do not."""
    box = Outbox(astore, backlog_alarm_s=60)
    box.add_worker(RecordingChannel("push"))  # never started: its rows stay queued
    await box.enqueue([row(f"r{i}") for i in range(3)], now_ms=NOW)
    fresh = (await box.refresh(now_ms=NOW + 59_000))["push"].as_dict()
    assert fresh["state"] == "ok" and fresh["queued"] == 3 and fresh["waiting_s"] == 59.0
    stalled = (await box.refresh(now_ms=NOW + 61_000))["push"].as_dict()
    assert stalled["state"] == "degraded" and stalled["waiting_s"] == 61.0
    assert stalled["problems"] == ["3 Zustellungen stehen an, die älteste seit 61 s / 3 deliveries queued, the oldest"
                                   " due for 61 s"]
    assert (await box.refresh(now_ms=NOW - 1))["push"].as_dict()["waiting_s"] is None  # none due yet
