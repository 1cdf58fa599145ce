"""The store: SQLite (WAL), the hub's source of truth, and the one writer thread the daemon reaches it through.

:class:`Store` is the synchronous store, made of its parts: the connection and its transactions
(:mod:`hub.store.connection`; opening a database brings its schema up to date, :mod:`hub.store.migrations`), alerts,
threads, rejections, list presence and source health (:mod:`hub.store.alerts`) and the hash-chained audit log
(:mod:`hub.store.chain`). Every table is in :mod:`hub.store.schema`.

One writer: a :class:`Store` is used from one thread only (the daemon gives it a dedicated writer thread with an
urgent and a bulk lane, see :class:`AsyncStore` and :mod:`hub.store.writer`); every write is one transaction, so a
crash at any point leaves either all of an alert or none.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import sqlite3
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any, ParamSpec, TypeVar

from hub.errors import StoreFull
from hub.store.alerts import Alerts
from hub.store.chain import AuditChain
from hub.store.connection import store_full, write_failure
from hub.store.migrations import m0008_districts
from hub.store.writer import Lane, Writer

log = logging.getLogger("warnhub.store")


class Store(Alerts, AuditChain):
    """Synchronous store; use from one thread."""

    def adopt_district(self, ars: str) -> int:
        """Give the rows no district owns yet (those of a single-district hub, before migration 8) to the first
        district ``ars``, in one transaction; returns how many (0 once done: the hub calls it at each start)."""
        with self.transaction(durable=True) as conn:
            return m0008_districts.adopt(conn, ars)


P = ParamSpec("P")
T = TypeVar("T")

_URGENT = contextvars.ContextVar("warnhub_store_urgent", default=False)


def urgent_from_here() -> None:
    """The calling task's (and its children's) bulk calls go in the urgent lane from now on: the push worker's
    express loop, whose claims, budget and outcomes are an Extreme's and as urgent as its publication."""
    _URGENT.set(True)


class AsyncStore:
    """The one writer for the daemon: every store call runs on one dedicated thread, off the event loop.

    Two lanes (:mod:`hub.store.writer`): :meth:`run` is the urgent lane (intake, decide, publish, the console,
    sessions, subscriptions), :meth:`run_bulk` the bulk lane (delivery: outbox claims and outcomes, fan-out steps,
    the push budget, sweeps, retention). An urgent call waits at most for the one bulk call already running.

    Reads from the web go through :meth:`read` instead: a small pool of threads with read-only connections of their
    own (WAL lets them read while the writer writes; on PostgreSQL connections of the store's pool), so a burst of
    page and API requests never queues in front of intake and sending on the writer thread.
    """

    def __init__(self, store: Store, *, readers: int = 4) -> None:
        self.store = store
        self._writer = Writer("store")
        self._file = str(store.path) != ":memory:"
        self._read_pool = ThreadPoolExecutor(max_workers=readers, thread_name_prefix="store-read")
        self._local = threading.local()
        self._readers: list[Store] = []
        self._readers_lock = threading.Lock()
        self.failure: str | None = None
        """Why the last write failed on a full or failing disk; None once a write (the probe) succeeds again."""
        self._probed: tuple[float, str | None] | None = None

    async def run(self, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        """``fn`` on the writer thread, in the urgent lane. A write the disk refuses (full, failing) raises
        :class:`StoreFull` and is remembered for :meth:`probe` until a write succeeds again."""
        return await self._call("urgent", lambda: fn(*args, **kwargs))

    async def run_bulk(self, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        """Like :meth:`run`, in the bulk lane: for delivery's work, which must never delay a warning (in a task
        marked by :func:`urgent_from_here`, the urgent lane)."""
        return await self._call("urgent" if _URGENT.get() else "bulk", lambda: fn(*args, **kwargs))

    def queued(self) -> dict[Lane, int]:
        """Calls waiting for the writer, per lane."""
        return self._writer.queued()

    async def _call(self, lane: Lane, call: Callable[[], T]) -> T:
        try:
            result: T = await asyncio.wrap_future(self._writer.submit(lane, call))
        except sqlite3.OperationalError as err:
            if not write_failure(err):
                raise
            full = store_full(err, self.store.path)
            self.failure = str(full)
            raise full from err
        return result

    async def probe(self, *, max_age_s: float = 5.0) -> str | None:
        """The store's health from a write: None when about one alert's worth can be written and committed to
        disk, else why not. A result is reused for ``max_age_s`` (the public /healthz must not become a write
        load); a write that failed since the last probe counts at once."""
        now = time.monotonic()
        if self._probed is not None and now - self._probed[0] < max_age_s and self.failure == self._probed[1]:
            return self._probed[1]
        try:
            await self.run(self.store.probe_write, datetime.now(UTC).isoformat(timespec="seconds"))
        except StoreFull as err:
            self.failure = str(err)
        else:
            self.failure = None
        self._probed = (now, self.failure)
        return self.failure

    async def read(self, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        """Like :meth:`run`, for a call that only reads, on a read connection: ``fn`` is called with the same
        arguments, except that the writer :class:`Store` (as the first argument, or as the object of a bound
        method) is replaced by this thread's read-only one. An in-memory store has no second connection: there
        the call runs on the writer."""
        if not self._file:
            return await self.run(fn, *args, **kwargs)
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(self._read_pool, lambda: self._call_reader(fn, args, kwargs))
        except sqlite3.OperationalError as err:
            if "readonly" not in str(err) and "read-only transaction" not in str(err):
                raise
            # a call that writes after all (every table exists from the open on): that one call goes to the writer
            log.warning("read of %s needed the writer: %s", getattr(fn, "__qualname__", fn), err)
            return await self.run(fn, *args, **kwargs)

    def _reader(self) -> Store:
        reader = getattr(self._local, "store", None)
        if reader is None:
            reader = Store.reader(self.store.url or self.store.path,
                                  max_age_without_expires=self.store.max_age_without_expires)
            self._local.store = reader
            with self._readers_lock:
                self._readers.append(reader)
        return reader

    def _call_reader(self, fn: Callable[..., T], args: tuple[Any, ...], kwargs: dict[str, Any]) -> T:
        reader = self._reader()
        if getattr(fn, "__self__", None) is self.store:
            same: T = getattr(reader, fn.__name__)(*args, **kwargs)  # the reader's method of that name
            return same
        if args and args[0] is self.store:
            args = (reader, *args[1:])
        return fn(*args, **kwargs)

    def close(self) -> None:
        self._read_pool.shutdown(wait=True)
        for reader in self._readers:
            reader.close()
        self._writer.close()
        self.store.close()
