"""Many hub nodes on one PostgreSQL store (issue 16): roles, wake-ups across nodes, one holder per source and job.

- **Roles** (``warnhub run --role``, repeatable, default ``all``): ``ingest`` polls the sources and takes documents
  in; ``decide`` runs the rules router and the publishing pipeline; ``deliver`` the outbox workers; ``web`` the HTTP
  server (citizen pages, API, console). A node without ``web`` still answers ``/healthz`` on its port (the
  health-only app of :mod:`hub.web.app`). Roles other than ``all`` need PostgreSQL: one SQLite file is one node.
- **Wake-ups** (:class:`Bridge`): local events go out as ``NOTIFY`` (ids only) and other nodes' notifications come
  in as local events, so a deliver node wakes for rows a decide node queued, a decide node for a version an ingest
  node stored, a web node's live stream sees a publication of another node (read from the store by its id).
  A lost notification only delays work to the stage's idle check: every stage reads its work from the store.
- **Subscriptions** (:class:`IndexFollower`): a subscription created, changed or deleted on one node goes out as its
  id; every other node reads that row (or finds it gone) and updates its targeting index at once. The index is still
  read again from the store every 30 s (``hub.app.INDEX_RELOAD_S``), the safety net for a lost notification.
- **One holder** (:class:`Holder`): a source's poller, the scheduled jobs and the canary rounds run on the one node
  that holds a session-level advisory lock, on a connection of its own; a node that cannot take it tries again every
  interval, so when the holder dies (its connection closes, the server releases the lock) another takes over within
  one.

Nodes keep no state another node needs; every node reads the same config file.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import socket
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

import psycopg

from hub.errors import ConfigError
from hub.events import RELAYED, AlertStored, Bus, CanaryReceived, CanaryStates, Queued, SubscriptionsChanged, Wakeup
from hub.publish import publications, subscriptions
from hub.publish.index import SubscriptionIndex
from hub.publish.publications import Published
from hub.store.db import AsyncStore

log = logging.getLogger("warnhub.cluster")

ROLES = ("ingest", "decide", "deliver", "web")
ALL = frozenset(ROLES)
CHANNEL = "warnhub_events"
"""The ``LISTEN``/``NOTIFY`` channel of the hub's events."""
NOTE_MAX = 7900
"""PostgreSQL takes a notification of less than 8000 bytes."""
IDS_PER_NOTE = 100
"""Subscription ids per notification (a notification holds at most 8000 bytes)."""


def roles_of(given: Iterable[str] | None, *, store_url: str | None) -> frozenset[str]:
    """The roles a node runs (``all``, or none given: every role); anything but all of them needs PostgreSQL."""
    names = list(given or ["all"])
    unknown = sorted(set(names) - ALL - {"all"})
    if unknown:
        raise ConfigError(f"--role {', '.join(unknown)}: unbekannte Rolle / unknown role "
                          f"(all, {', '.join(ROLES)})")
    roles = ALL if "all" in names else frozenset(names)
    if roles != ALL and store_url is None:
        raise ConfigError("--role: Rollen brauchen PostgreSQL ([store] url); eine SQLite-Datei ist ein Knoten / "
                          "roles other than all need PostgreSQL ([store] url): one SQLite file is one node")
    return roles


def node_name() -> str:
    """This node in logs and notifications: host and process."""
    return f"{socket.gethostname()}:{os.getpid()}"


# -- wake-ups across nodes -------------------------------------------------------------------------------------


def payload(event: object, node: str) -> str | None:
    """The notification for a local event (ids only), None for an event other nodes need not hear."""
    if isinstance(event, AlertStored):
        body: dict[str, Any] = {"k": "stored", "alert": event.alert_id, "thread": event.thread_id,
                                "origin": event.origin}
    elif isinstance(event, Queued):
        body = {"k": "queued", "channels": sorted(event.channels)}
    elif isinstance(event, Published):
        body = {"k": "published", "pub": event.publication.id}
    elif isinstance(event, SubscriptionsChanged):
        body = {"k": "subs", "ids": list(event.ids)}
    elif isinstance(event, CanaryReceived):
        body = {"k": "canary", "probe": event.probe}
    elif isinstance(event, CanaryStates):
        body = {"k": "canaries", "states": event.states}
    else:
        return None
    body["n"] = node
    return json.dumps(body, separators=(",", ":"))


class Bridge:
    """Local events out as ``NOTIFY``, other nodes' notifications in as local events (see the module's docstring).

    Two connections of its own: one listens, one sends (in order, from a queue the bus handlers fill without
    waiting). A notification from this node itself is ignored; an event it relays is not sent out again."""

    def __init__(self, url: str, events: Bus, store: AsyncStore, *, node: str | None = None,
                 retry_s: float = 1.0) -> None:
        self.url, self.events, self.store = url, events, store
        self.node = node or node_name()
        self.retry_s = retry_s
        self._out: asyncio.Queue[str] = asyncio.Queue(maxsize=10_000)
        self._relaying = False
        self.listening = asyncio.Event()
        """Set once this node listens (a test waits for it before another node sends)."""

    def attach(self, kinds: Iterable[type] = (AlertStored, Queued, Published, SubscriptionsChanged,
                                              CanaryReceived, CanaryStates)) -> None:
        for kind in kinds:
            self.events.subscribe(kind, self._local)

    def _local(self, event: object) -> None:
        if self._relaying:
            return
        if isinstance(event, SubscriptionsChanged) and len(event.ids) > IDS_PER_NOTE:
            for i in range(0, len(event.ids), IDS_PER_NOTE):
                self._local(SubscriptionsChanged(event.ids[i:i + IDS_PER_NOTE]))
            return
        text = payload(event, self.node)
        if text is None or len(text.encode()) > NOTE_MAX:
            if text is not None:
                log.warning("cluster: notification of %d bytes not sent (at most %d)", len(text.encode()), NOTE_MAX)
            return
        try:
            self._out.put_nowait(text)
        except asyncio.QueueFull:  # a hint only: the other nodes find the work at their idle check
            log.warning("cluster: notification queue full; %s dropped", text)

    async def run(self) -> None:
        """Listen and send until cancelled; a lost connection is opened again after ``retry_s``."""
        async with asyncio.TaskGroup() as group:
            group.create_task(self._reconnecting(self._listen, "listen"))
            group.create_task(self._reconnecting(self._send, "notify"))

    async def _reconnecting(self, body: Callable[[psycopg.AsyncConnection[Any]], Awaitable[None]],
                            what: str) -> None:
        while True:
            try:
                async with await psycopg.AsyncConnection.connect(self.url, autocommit=True) as conn:
                    await body(conn)
            except psycopg.Error as err:
                log.warning("cluster: %s connection failed (%s); again in %s s", what, err, self.retry_s)
            if what == "listen":
                self.listening.clear()
            await asyncio.sleep(self.retry_s)

    async def _send(self, conn: psycopg.AsyncConnection[Any]) -> None:
        while True:
            text = await self._out.get()
            await conn.execute("SELECT pg_notify(%s, %s)", (CHANNEL, text))

    async def _listen(self, conn: psycopg.AsyncConnection[Any]) -> None:
        await conn.execute(f"LISTEN {CHANNEL}")
        self.listening.set()
        async for note in conn.notifies():
            try:
                await self._remote(json.loads(note.payload))
            except Exception:  # noqa: BLE001 - one bad notification must not stop the others
                log.exception("cluster: notification %r failed", note.payload)

    async def _remote(self, body: dict[str, Any]) -> None:
        if body.get("n") == self.node:
            return
        kind = body.get("k")
        event: object
        if kind == "stored":
            event = AlertStored(int(body["alert"]), int(body["thread"]), str(body["origin"]))
        elif kind == "queued":
            event = Queued(frozenset(str(c) for c in body["channels"]))
        elif kind == "published":
            pub = await self.store.read(publications.get, self.store.store, int(body["pub"]))
            if pub is None:
                return
            event = Published(pub)
        elif kind == "subs":
            event = SubscriptionsChanged(tuple(str(i) for i in body["ids"]))
        elif kind == "canary":
            event = CanaryReceived(str(body["probe"]))
        elif kind == "canaries":
            event = CanaryStates(str(body["states"]))
        else:
            return
        self._relaying = True
        token = RELAYED.set(True)
        try:
            self.events.publish(event)
        finally:
            RELAYED.reset(token)
            self._relaying = False


class IndexFollower:
    """Keeps this node's targeting index in step with the subscriptions other nodes change: a relayed
    :class:`SubscriptionsChanged` names them, :meth:`run` reads those rows (a reader connection) and puts each one
    found into the index, removing the ones no longer stored. Changes heard while a read is under way are read next."""

    def __init__(self, store: AsyncStore, index: SubscriptionIndex, events: Bus) -> None:
        self.store, self.index, self.events = store, index, events
        self._pending: set[str] = set()
        self._wakeup = Wakeup()
        self.applied = 0
        """Subscription changes applied to the index so far."""

    def attach(self) -> None:
        self.events.subscribe(SubscriptionsChanged, self._heard)

    def _heard(self, event: SubscriptionsChanged) -> None:
        if RELAYED.get():  # this node's own changes are in its index already
            self._pending.update(event.ids)
            self._wakeup.set()

    async def run(self) -> None:
        while True:
            await self._wakeup.wait(None)
            self._wakeup.clear()
            await self.apply()

    async def apply(self) -> int:
        """Read the pending subscriptions and update the index; returns how many."""
        ids, self._pending = sorted(self._pending), set()
        if not ids:
            return 0
        found = dict(await self.store.read(_targeting, self.store.store, ids))
        for sid, sub in found.items():
            self.index.put(sid, sub)
        self.index.remove_many(i for i in ids if i not in found)
        self.applied += len(ids)
        return len(ids)


def _targeting(store: Any, ids: list[str]) -> list[tuple[str, subscriptions.Subscription]]:
    return list(subscriptions.stream_for_targeting(store, ids))


# -- one holder per source and job -----------------------------------------------------------------------------


class Holder:
    """Runs ``work`` while this node holds the session-level advisory lock ``name`` (its own connection): at most
    one node at a time. A node that cannot take it tries again every ``interval_s``; while holding, the connection
    is checked every ``interval_s`` and ``work`` is cancelled when it is lost (the server released the lock then,
    and another node may take over). ``work`` that returns is started again while the lock is held."""

    def __init__(self, url: str, name: str, *, interval_s: float,
                 on_standby: Callable[[], Awaitable[object]] | None = None) -> None:
        self.url, self.name, self.interval_s = url, name, interval_s
        self.on_standby = on_standby
        """Called after each try that found another node holding the lock (``warnhub sources`` shows it)."""
        self.holding = False
        self.tries = 0
        """How often this node has tried to take the lock."""

    async def run(self, work: Callable[[], Awaitable[object]]) -> None:
        while True:
            try:
                async with await psycopg.AsyncConnection.connect(self.url, autocommit=True) as conn:
                    await self._hold(conn, work)
            except psycopg.Error as err:
                log.warning("cluster: lock %s: connection failed (%s)", self.name, err)
            finally:
                self.holding = False
            await asyncio.sleep(self.interval_s)

    async def _hold(self, conn: psycopg.AsyncConnection[Any], work: Callable[[], Awaitable[object]]) -> None:
        while True:
            self.tries += 1
            cur = await conn.execute("SELECT pg_try_advisory_lock(hashtext(%s))", (f"warnhub.{self.name}",))
            row = await cur.fetchone()
            if row is not None and row[0]:
                break
            if self.on_standby is not None:
                try:
                    await self.on_standby()
                except Exception:  # noqa: BLE001 - a record for the operator; the lock is what matters
                    log.warning("cluster: lock %s: recording the standby failed", self.name, exc_info=True)
            await asyncio.sleep(self.interval_s)
        self.holding = True
        log.info("cluster: this node holds %s", self.name)
        task = asyncio.create_task(self._repeat(work))
        try:
            while not task.done():
                await asyncio.wait({task}, timeout=self.interval_s)
                if not task.done():
                    await conn.execute("SELECT 1")  # raises when the connection (and so the lock) is lost
            task.result()
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
            log.info("cluster: this node no longer holds %s", self.name)

    async def _repeat(self, work: Callable[[], Awaitable[object]]) -> None:
        while True:
            await work()
            await asyncio.sleep(self.interval_s)
