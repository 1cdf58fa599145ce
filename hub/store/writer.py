"""The store's one writer thread, with two lanes so that delivery's many transactions never queue in front of a warning.

Every write of the daemon runs on one thread (one SQLite writer; on PostgreSQL one connection holding the writer's
lock). A plain one-worker executor is one FIFO queue: in a storm the channel workers' claims and outcomes, the push
fan-out's steps and the push budget's queries pile up in it, and intake, decide and publish wait behind all of them
(measured: an Extreme published 4.7 s after it was accepted). So jobs come in two lanes:

- **urgent** — intake, decide, publish, the console, sessions, subscriptions: everything a person waits for;
- **bulk** — outbox claims, outcomes, recovery, the fan-out's steps, the budget's queries, sweeps and retention.

Each lane is FIFO. The writer always takes the oldest urgent job first, so an urgent job waits at most for the one
bulk job already running. Bulk is never starved: after :data:`URGENT_RUN` urgent jobs in a row while bulk jobs wait,
the writer takes one bulk job (a steady stream of urgent work still leaves delivery about 1/(URGENT_RUN+1) of the
writer, and in practice urgent work comes in bursts of a few jobs per warning).

:meth:`Writer.close` drains: every job queued before it runs and its future is resolved, then the thread ends; a job
submitted after ``close`` is refused with :class:`RuntimeError`, as an executor after ``shutdown`` refuses it.
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any, Literal

log = logging.getLogger("warnhub.store")

Lane = Literal["urgent", "bulk"]

URGENT_RUN = 8
"""Urgent jobs the writer runs in a row while bulk jobs wait, before it takes one bulk job."""


class _Job:
    __slots__ = ("fn", "future")

    def __init__(self, fn: Callable[[], Any]) -> None:
        self.fn = fn
        self.future: Future[Any] = Future()


class Writer:
    """One thread (named ``name``) running jobs from two FIFO lanes, urgent ahead of bulk."""

    def __init__(self, name: str = "store", *, urgent_run: int = URGENT_RUN) -> None:
        self._lanes: dict[Lane, deque[_Job]] = {"urgent": deque(), "bulk": deque()}
        self._cond = threading.Condition()
        self._closing = False
        self._urgent_run = urgent_run
        self._in_a_row = 0
        self._thread = threading.Thread(target=self._loop, name=name, daemon=True)
        self._thread.start()

    def submit(self, lane: Lane, fn: Callable[[], Any]) -> Future[Any]:
        """Queue ``fn`` in ``lane``; its result (or exception) comes through the returned future."""
        job = _Job(fn)
        with self._cond:
            if self._closing:
                raise RuntimeError("the store's writer is closed")
            self._lanes[lane].append(job)
            self._cond.notify()
        return job.future

    def queued(self) -> dict[Lane, int]:
        """Jobs waiting per lane (not counting the one running)."""
        with self._cond:
            return {lane: len(jobs) for lane, jobs in self._lanes.items()}

    def _next(self) -> _Job | None:
        """The next job to run, waiting for one; None once closed and drained."""
        with self._cond:
            while True:
                urgent, bulk = self._lanes["urgent"], self._lanes["bulk"]
                if urgent and not (bulk and self._in_a_row >= self._urgent_run):
                    self._in_a_row = self._in_a_row + 1 if bulk else 0
                    return urgent.popleft()
                if bulk:
                    self._in_a_row = 0
                    return bulk.popleft()
                if self._closing:
                    return None
                self._cond.wait()

    def _loop(self) -> None:
        while (job := self._next()) is not None:
            if not job.future.set_running_or_notify_cancel():
                continue  # its caller gave up waiting before it ran
            try:
                result = job.fn()
            except BaseException as err:  # noqa: BLE001 - handed to the caller, as an executor does
                job.future.set_exception(err)
            else:
                job.future.set_result(result)

    def close(self) -> None:
        """Run what is queued, then end the thread; refuse new jobs from now on."""
        with self._cond:
            self._closing = True
            self._cond.notify_all()
        if threading.current_thread() is not self._thread:
            self._thread.join()
