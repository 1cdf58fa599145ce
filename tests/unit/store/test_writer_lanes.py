"""The store writer's two lanes (issue 17 §1, backpressure without collapse), on a real SQLite file.

Every job here is a real write (an audit entry) that also records when it ran; the writer is held busy by a bulk
job waiting on a gate, so what is queued behind it is known before anything more runs. No timings: the order in
which the jobs ran is the assertion. On the single-worker FIFO executor these fail (no bulk lane, FIFO order)."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from hub.errors import StoreFull
from hub.store.db import AsyncStore, Store, urgent_from_here
from hub.store.writer import URGENT_RUN


@pytest.fixture
async def astore(tmp_path: Path) -> AsyncIterator[AsyncStore]:
    s = AsyncStore(Store(tmp_path / "warnhub.db"))
    yield s
    if not s._writer._closing:
        s.close()


class Busy:
    """A bulk job that holds the writer until released; the jobs queued meanwhile record the order they run in."""

    def __init__(self, astore: AsyncStore) -> None:
        self.astore = astore
        self.started = threading.Event()
        self.gate = threading.Event()
        self.order: list[str] = []
        self.task: asyncio.Task[Any] | None = None

    def job(self, name: str) -> Callable[[Store], str]:
        def write(store: Store) -> str:
            self.order.append(name)
            store.audit("test", "test.lane", name)
            return name
        return write

    def _hold(self, store: Store) -> str:
        self.order.append("busy")
        self.started.set()
        assert self.gate.wait(30), "never released"
        return "busy"

    async def start(self) -> None:
        self.task = asyncio.create_task(self.astore.run_bulk(self._hold, self.astore.store))
        assert await asyncio.to_thread(self.started.wait, 30)

    async def queue(self, run: Callable[..., Awaitable[str]], name: str) -> asyncio.Task[str]:
        """Queue one job and wait until the writer holds it (so the queue order is the submission order)."""
        before = sum(self.astore.queued().values())
        task = asyncio.create_task(run(self.job(name), self.astore.store))
        while sum(self.astore.queued().values()) == before:
            await asyncio.sleep(0)
        return task


async def test_an_urgent_job_runs_right_after_the_running_bulk_job(astore: AsyncStore) -> None:
    busy = Busy(astore)
    await busy.start()
    bulk = [await busy.queue(astore.run_bulk, f"bulk-{i}") for i in range(20)]
    urgent = await busy.queue(astore.run, "urgent")
    assert astore.queued() == {"urgent": 1, "bulk": 20}
    busy.gate.set()
    assert await urgent == "urgent"
    await asyncio.gather(*bulk)
    assert busy.order == ["busy", "urgent", *(f"bulk-{i}" for i in range(20))]
    # the writes committed in that order too
    subjects = [e["subject"] for e in astore.store.audit_entries() if e["action"] == "test.lane"]
    assert subjects == busy.order[1:]


async def test_bulk_is_not_starved_by_a_stream_of_urgent_jobs(astore: AsyncStore) -> None:
    busy = Busy(astore)
    await busy.start()
    bulk = [await busy.queue(astore.run_bulk, f"bulk-{i}") for i in range(2)]
    urgent = [await busy.queue(astore.run, f"urgent-{i}") for i in range(3 * URGENT_RUN)]
    busy.gate.set()
    await asyncio.gather(*bulk, *urgent)
    u = [f"urgent-{i}" for i in range(3 * URGENT_RUN)]
    # URGENT_RUN urgent jobs, then one bulk job, and again; the urgent ones keep their own order
    assert busy.order == ["busy", *u[:URGENT_RUN], "bulk-0", *u[URGENT_RUN:2 * URGENT_RUN], "bulk-1",
                          *u[2 * URGENT_RUN:]]


def _fill(store: Store, name: str) -> None:
    """A real SQLITE_FULL: the file may not grow past its pages, and the write needs more."""
    pages = store.conn.execute("PRAGMA page_count").fetchone()[0]
    store.conn.execute(f"PRAGMA max_page_count = {pages}")
    try:
        store.audit("test", "test.full", name, {"pad": "x" * 200_000})
    finally:
        store.conn.execute("PRAGMA max_page_count = 1073741823")


@pytest.mark.parametrize("lane", ["urgent", "bulk"])
async def test_a_full_store_raises_store_full_from_both_lanes(astore: AsyncStore, lane: str) -> None:
    run = astore.run if lane == "urgent" else astore.run_bulk
    with pytest.raises(StoreFull) as caught:
        await run(_fill, astore.store, lane)
    assert isinstance(caught.value.__cause__, sqlite3.OperationalError)
    assert astore.failure is not None and "store cannot write" in astore.failure
    assert await astore.probe(max_age_s=0) is None  # the disk has room again: the next write clears it
    assert astore.failure is None


async def test_other_errors_pass_through_unchanged(astore: AsyncStore) -> None:
    def broken(store: Store) -> None:
        store.conn.execute("SELECT * FROM no_such_table")

    with pytest.raises(sqlite3.OperationalError, match="no such table"):
        await astore.run_bulk(broken, astore.store)
    assert astore.failure is None


async def test_close_resolves_every_queued_job(astore: AsyncStore) -> None:
    busy = Busy(astore)
    await busy.start()
    queued = [await busy.queue(astore.run_bulk if i % 2 else astore.run, f"job-{i}") for i in range(10)]
    closing = asyncio.create_task(asyncio.to_thread(astore.close))
    while not astore._writer._closing:
        await asyncio.sleep(0)
    with pytest.raises(RuntimeError, match="closed"):
        await astore.run(busy.job("late"), astore.store)
    busy.gate.set()
    await closing
    assert all(t.done() for t in queued)  # close() returned only after every queued job ran
    assert sorted(await asyncio.gather(*queued)) == sorted(f"job-{i}" for i in range(10))
    assert "late" not in busy.order


async def test_a_job_whose_caller_gave_up_does_not_run(astore: AsyncStore) -> None:
    busy = Busy(astore)
    await busy.start()
    dropped = await busy.queue(astore.run_bulk, "dropped")
    kept = await busy.queue(astore.run_bulk, "kept")
    dropped.cancel()
    with pytest.raises(asyncio.CancelledError):
        await dropped
    busy.gate.set()
    assert await kept == "kept"
    assert busy.order == ["busy", "kept"]


async def test_the_writer_thread_is_named_store(astore: AsyncStore) -> None:
    assert await astore.run(lambda: threading.current_thread().name) == "store"
    assert await astore.run_bulk(lambda: threading.current_thread().name) == "store"


async def test_bulk_calls_of_a_task_marked_urgent_go_in_the_urgent_lane(astore: AsyncStore) -> None:
    """The push worker's express loop marks its task (hub.store.db.urgent_from_here): its claims and outcomes,
    bulk calls by name, run ahead of the storm's queued bulk work; other tasks' bulk calls stay bulk."""
    busy = Busy(astore)
    await busy.start()
    bulk = [await busy.queue(astore.run_bulk, f"bulk-{i}") for i in range(5)]

    async def express() -> str:
        urgent_from_here()
        return await astore.run_bulk(busy.job("express"), astore.store)

    marked = asyncio.create_task(express())
    while astore.queued()["urgent"] == 0:
        await asyncio.sleep(0)
    after = await busy.queue(astore.run_bulk, "bulk-after")  # this task is not marked: still bulk
    busy.gate.set()
    await asyncio.gather(*bulk, marked, after)
    assert busy.order == ["busy", "express", *(f"bulk-{i}" for i in range(5)), "bulk-after"]
