"""Live fan-out of the hub's publications to Server-Sent-Events clients (the web channel's stream).

:class:`Broadcaster` keeps one bounded queue per connected client (:class:`Subscriber`). :meth:`Broadcaster.publish`
never blocks and never waits for a client: an event goes into the queue of every client whose region it concerns,
and a client whose queue is full (it stopped reading) is dropped — its queue is replaced by one final ``dropped``
event and it is unsubscribed — so one stuck kiosk never slows the others. A client that is idle for
``heartbeat_s`` gets a ``heartbeat`` event (with a comment line for proxies), so proxies keep the connection and
clients can tell a live connection from a stale one.

The heartbeat also evicts abandoned clients (:func:`relay`): a client that stopped reading without closing (a
suspended laptop, a vanished phone, a script that never reads) would otherwise hold its connection, its queue and
its descriptor for hours, since a few heartbeats fit in the kernel's buffers. At each heartbeat (the stream has been
idle ``heartbeat_s``) the bytes written but not yet acknowledged by the client's TCP stack (``SIOCOUTQ`` plus the
transport's own buffer, :func:`unacknowledged`) are compared with their count after the last write: bytes still
pending and not one acknowledged for a whole heartbeat interval mean the client does not read; it is evicted
(``stalled``). A write that cannot be handed to the kernel within two heartbeat intervals evicts it too. A
half-closed client (it sent FIN) is noticed at the first heartbeat written after it: the write fails. After a wave
of at least :data:`RECLAIM_AFTER` clients has gone, the hub gives the memory they held back to the system
(:func:`give_back_memory`), so a flood of abandoned connections does not leave the process at its peak size.

An event is a dict (:func:`event_of` builds it from a :class:`~hub.publish.publications.Publication`):

* ``thread``, ``version``, ``msgType``, ``regions`` (ARS list): required;
* ``status`` (or ``publication.status``): required — an event without one is delivered to nobody, so an exercise
  can never leak to a public stream because its producer forgot to say what it is;
* ``scope`` (or ``publication.scope``): CAP scope; only ``Public`` is delivered (never Restricted or Private);
* ``channels``: optional; when present, only subscribers of one of these channels get it;
* ``publication``: :meth:`Publication.as_dict` (with ``links``), what clients render;
* ``district``: the Kreis key of the district that issued it; a subscriber of one district's site gets only its
  district's events (issue 19), a subscriber without one (a single-district hub) every district's.

Limits (:class:`StreamGate`, applied to ``/api/v1/stream`` by the :func:`stream_limits` middleware): at most
``[web] max_streams`` open streams in total and ``[web] max_streams_per_address`` per client address, and a new one
only while twice ``[web] fd_reserve`` file descriptors are free (:mod:`hub.web.fdlimit`); over a limit the answer is
503 with ``Retry-After`` and the connection is closed.

Regions match by key (:meth:`hub.geo.registry.Registry.is_within` either way): a client of a Kreis gets the
warnings for the Kreis, for its Land and for any Gemeinde in it. Geometry is not compared here (the snapshot a
client receives on connect is filtered by geometry as well, see :mod:`hub.publish.places`).
"""

from __future__ import annotations

import asyncio
import collections
import ctypes
import ctypes.util
import fcntl
import gc
import json
import logging
import struct
import termios
from collections.abc import Awaitable, Callable, Collection, Mapping
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

from aiohttp import web

from hub.geo.registry import Registry, ars_related, registry
from hub.publish.publications import PUBLIC_SCOPE, Publication
from hub.web.client import client_address
from hub.web.fdlimit import FdBudget
from hub.web.limits import AddressSlots, refusal

log = logging.getLogger("warnhub.web.live")

QUEUE_SIZE = 64
"""Events a client may have waiting; one more and it is dropped."""
HEARTBEAT_S = 15.0
RETRY_MS = 5000
"""The reconnect delay an EventSource is told to use."""
PUBLIC = frozenset({"Actual"})
RECLAIM_AFTER = 1000
"""Clients gone (since the last time) that make the hub give freed memory back, once the wave is over."""
RECLAIM_QUIET_S = 2.0
"""The wave is over when no client has gone for this long."""


def links(thread: str, identifier: str, base: str = "") -> dict[str, str]:
    """Where a publication is found on this hub (paths relative to the hub's root; ``base``: a district site's
    prefix, ``/uelzen``)."""
    t = quote(thread, safe="")
    return {"thread": f"{base}/api/v1/warnings/{t}", "threadCap": f"{base}/api/v1/warnings/{t}/cap.xml",
            "cap": f"{base}/api/v1/publications/{quote(identifier, safe='')}.xml"}


def public_dict(pub: Publication, base: str = "") -> dict[str, Any]:
    """What the web channel shows of a publication: :meth:`Publication.as_dict` with ``links`` (under ``base``)."""
    return {**pub.as_dict(), "links": links(pub.thread, pub.identifier, base)}


def _based(data: dict[str, Any], base: str) -> dict[str, Any]:
    """An event's data with its publication's links under a district site's prefix."""
    pub = data.get("publication")
    if not base or not isinstance(pub, Mapping) or not isinstance(pub.get("links"), Mapping):
        return data
    return {**data, "publication": {**pub, "links": {k: base + v for k, v in pub["links"].items()}}}


def event_of(pub: Publication) -> dict[str, Any]:
    """The broadcaster event for a new publication version."""
    return {"thread": pub.thread, "version": pub.version, "msgType": pub.msg_type, "status": pub.status,
            "scope": pub.scope, "channels": list(pub.channels), "regions": list(pub.regions),
            "district": pub.district, "publication": public_dict(pub)}


def sse(event: str, data: Any) -> bytes:
    """One Server-Sent Event; ``data`` as one line of JSON (JSON escapes newlines)."""
    body = json.dumps(data, ensure_ascii=False, separators=(",", ":"))
    return f"event: {event}\ndata: {body}\n\n".encode()


def retry_hint(ms: int = RETRY_MS) -> bytes:
    return f"retry: {ms}\n\n".encode()


class Message:
    """One event for clients, encoded once however many clients receive it."""

    __slots__ = ("event", "data", "raw")

    def __init__(self, event: str, data: Any, raw: bytes | None = None) -> None:
        self.event, self.data = event, data
        self.raw = raw if raw is not None else sse(event, data)

    def __repr__(self) -> str:
        return f"Message({self.event!r})"


def heartbeat() -> Message:
    data = {"time": datetime.now(UTC).isoformat(timespec="seconds")}
    return Message("heartbeat", data, b": keepalive\n" + sse("heartbeat", data))


class Subscriber:
    """One client's queue: iterate it for :class:`Message` objects (``heartbeat`` when idle); the iteration ends
    after the final ``dropped`` or ``shutdown`` message."""

    def __init__(self, owner: Broadcaster, ars: str | None, *, channels: frozenset[str] | None,
                 statuses: frozenset[str], chain: frozenset[str], limit: int, heartbeat_s: float,
                 district: str = "", base: str = "") -> None:
        self.ars = ars
        self.district = district
        self.base = base
        """The prefix of the site it reads (``/uelzen``): its events' links are under it."""
        self.channels = channels
        self.statuses = statuses
        self._owner = owner
        self._chain = chain
        """``ars`` and every region above it."""
        self._limit = limit
        self._heartbeat_s = heartbeat_s
        self._items: collections.deque[Message] = collections.deque()
        self._wake = asyncio.Event()
        self.ended = asyncio.Event()
        """Set when the subscriber is dropped or closed (its final message may still wait in the queue)."""
        self.reason: str | None = None

    # -- the consumer's side --------------------------------------------------------------------------------------

    def __aiter__(self) -> Subscriber:
        return self

    async def __anext__(self) -> Message:
        while True:
            if self._items:
                return self._items.popleft()
            if self.ended.is_set():
                raise StopAsyncIteration
            self._wake.clear()
            try:
                async with asyncio.timeout(self._heartbeat_s):
                    await self._wake.wait()
            except TimeoutError:
                return heartbeat()

    def close(self, reason: str = "closed") -> None:
        """Unsubscribe (the client went away); nothing more is queued."""
        self._end(reason, None)

    @property
    def pending(self) -> int:
        return len(self._items)

    # -- the broadcaster's side -----------------------------------------------------------------------------------

    def wants(self, regions: frozenset[str], keys: frozenset[str], channels: Collection[str] | None,
              status: str, district: str = "") -> bool:
        if status not in self.statuses or self.district not in ("", district):
            return False
        if channels is not None and self.channels is not None and self.channels.isdisjoint(channels):
            return False
        if self.ars is None:
            return True
        if self.ars in keys or not self._chain.isdisjoint(regions):
            return True
        if self.ars not in self._owner.registry:  # a key the registry does not know: by its digits
            return any(ars_related(self.ars, r) for r in regions)
        return False

    def offer(self, msg: Message) -> bool:
        """Queue a message; False (and the subscriber is dropped) if the queue is full."""
        if self.ended.is_set():
            return False
        if len(self._items) >= self._limit:
            self._items.clear()  # what it has not read is stale by now; the final word is that it was dropped
            self._end("dropped", Message("dropped", {
                "reason": "Verbindung zu langsam, bitte neu verbinden / client too slow, please reconnect"}))
            return False
        self._items.append(msg)
        self._wake.set()
        return True

    def _end(self, reason: str, final: Message | None) -> None:
        if self.ended.is_set():
            return
        self.reason = reason
        if final is not None:
            self._items.append(final)
        self.ended.set()
        self._wake.set()
        self._owner._forget(self)


class Broadcaster:
    """In-memory fan-out of publication events to SSE clients (see the module docstring)."""

    def __init__(self, *, queue_size: int = QUEUE_SIZE, heartbeat_s: float = HEARTBEAT_S,
                 reg: Registry | None = None) -> None:
        self.queue_size = queue_size
        self.heartbeat_s = heartbeat_s
        self.registry = reg or registry()
        self._subscribers: set[Subscriber] = set()
        self.closed = False
        self.published = 0
        self.dropped = 0
        """Clients dropped because their queue overflowed (they read too slowly for the events)."""
        self.evicted = 0
        """Clients evicted at a heartbeat because they stopped reading (:func:`relay`)."""
        self._warned_status = False
        self._gone = 0
        self._last_gone = 0.0
        self._reclaim: asyncio.TimerHandle | None = None
        self.reclaimed = 0
        """How often freed memory was given back after a wave of clients had gone."""

    @property
    def clients(self) -> int:
        return len(self._subscribers)

    def __len__(self) -> int:
        return len(self._subscribers)

    def subscribe(self, ars: str | None = None, *, channels: Collection[str] | None = ("web",),
                  statuses: Collection[str] = PUBLIC, district: str = "", base: str = "") -> Subscriber:
        """A new client for the events of this region (None: all), of these channels (None: any) and statuses, and
        of one district (``""``: of every district)."""
        chain = frozenset({ars, *(r.ars for r in self.registry.ancestors(ars))}) if ars else frozenset()
        sub = Subscriber(self, ars, channels=frozenset(channels) if channels is not None else None,
                         statuses=frozenset(statuses), chain=chain, limit=self.queue_size,
                         heartbeat_s=self.heartbeat_s, district=district, base=base)
        if self.closed:
            sub._end("shutdown", _shutdown())
        else:
            self._subscribers.add(sub)
        return sub

    def publish(self, event: Mapping[str, Any]) -> int:
        """Queue an event for every client it concerns; never blocks. Returns how many clients got it."""
        if self.closed:
            return 0
        pub = event.get("publication")
        status = event.get("status") or (pub.get("status") if isinstance(pub, Mapping) else None)
        if not status:
            if not self._warned_status:
                log.warning("event for %s v%s has no status: delivered to nobody", event.get("thread"),
                            event.get("version"))
                self._warned_status = True
            return 0
        if (event.get("scope") or (pub.get("scope") if isinstance(pub, Mapping) else None)) != PUBLIC_SCOPE:
            return 0  # Restricted, Private or not said: never on a public stream
        regions = frozenset(event.get("regions") or ())
        keys = frozenset(regions.union(*({a.ars for a in self.registry.ancestors(r)} for r in regions)))
        channels = event.get("channels")
        district = str(event.get("district") or "")
        data = {k: event[k] for k in ("thread", "version", "msgType", "regions", "publication") if k in event}
        msgs = {"": Message("publication", data)}  # encoded once per site prefix
        self.published += 1
        sent = 0
        for sub in list(self._subscribers):
            if sub.wants(regions, keys, channels, str(status), district):
                msg = msgs.get(sub.base)
                if msg is None:
                    msg = msgs[sub.base] = Message("publication", _based(data, sub.base))
                if sub.offer(msg):
                    sent += 1
                else:
                    self.dropped += 1
                    log.info("stream client for %s dropped: %d events unread", sub.ars or "all", self.queue_size)
        return sent

    def close(self) -> None:
        """End every client's stream with a ``shutdown`` event; later subscribers end at once."""
        self.closed = True
        for sub in list(self._subscribers):
            sub._end("shutdown", _shutdown())

    def _forget(self, sub: Subscriber) -> None:
        self._subscribers.discard(sub)
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return
        self._gone += 1
        self._last_gone = loop.time()
        if self._gone >= RECLAIM_AFTER and self._reclaim is None:
            self._reclaim = loop.call_later(RECLAIM_QUIET_S, self._after_wave, loop)

    def _after_wave(self, loop: asyncio.AbstractEventLoop) -> None:
        quiet = loop.time() - self._last_gone
        if quiet < RECLAIM_QUIET_S:  # clients are still going: wait for the end of the wave
            self._reclaim = loop.call_later(RECLAIM_QUIET_S - quiet, self._after_wave, loop)
            return
        self._reclaim = None
        log.info("%d stream clients gone: giving their memory back", self._gone)
        self._gone = 0
        self.reclaimed += 1
        give_back_memory()


def give_back_memory() -> None:
    """Collect cycles, then ask the C allocator to return its free pages to the system (glibc's ``malloc_trim``;
    elsewhere only the collection): freed memory otherwise stays in the process at its peak size."""
    gc.collect()
    name = ctypes.util.find_library("c")
    libc = ctypes.CDLL(name) if name else None
    trim = getattr(libc, "malloc_trim", None)
    if trim is not None:
        trim(0)


def unacknowledged(transport: asyncio.BaseTransport | None) -> int | None:
    """Bytes written to a TCP connection that its peer has not acknowledged: the kernel's send queue
    (``SIOCOUTQ``, sent or not) plus what the transport still holds. None where it cannot be told."""
    if transport is None or transport.is_closing():
        return None
    sock = transport.get_extra_info("socket")
    if sock is None:
        return None
    try:
        raw = fcntl.ioctl(sock.fileno(), termios.TIOCOUTQ, b"\0\0\0\0")
    except (OSError, ValueError):
        return None
    buffered = transport.get_write_buffer_size() if isinstance(transport, asyncio.WriteTransport) else 0
    return int(struct.unpack("i", raw)[0]) + buffered


class StalledClient(ConnectionError):
    """The client has not read for a heartbeat interval (see :func:`relay`)."""


async def relay(sub: Subscriber, write: Callable[[bytes], Awaitable[None]],
                pending: Callable[[], int | None]) -> None:
    """Write the subscriber's messages until it ends; raises :class:`StalledClient` (and the subscriber is evicted)
    when, at a heartbeat, bytes written before it are still unacknowledged and none was acknowledged since the last
    write (``pending``: :func:`unacknowledged` of the connection), or when a write cannot be handed to the kernel
    within two heartbeat intervals. A client that reads, however slowly, acknowledges something within a
    heartbeat interval."""
    after_write: int | None = None
    for_s = 2 * sub._heartbeat_s
    async for msg in sub:
        if msg.event == "heartbeat" and after_write:
            now = pending()
            if now is not None and now >= after_write:
                sub._owner.evicted += 1
                sub.close("stalled")
                raise StalledClient(f"{now} bytes unacknowledged for {sub._heartbeat_s:g} s")
        try:
            async with asyncio.timeout(for_s):
                await write(msg.raw)
        except TimeoutError:
            sub._owner.evicted += 1
            sub.close("stalled")
            raise StalledClient(f"a write waited {for_s:g} s for the client to read") from None
        after_write = pending()


def _shutdown() -> Message:
    return Message("shutdown", {"reason": "Der Hub wird neu gestartet / the hub is shutting down"})


# -- limits ---------------------------------------------------------------------------------------------------------

STREAM_PATH = "/api/v1/stream"
STREAM_RETRY_S = 30


class StreamGate:
    """Open streams in total and per address, and the descriptors a new one needs (see the module docstring)."""

    def __init__(self, total: int, per_address: int, fds: FdBudget | None = None) -> None:
        self.slots = AddressSlots(total, per_address)
        self.fds = fds
        self.refused = 0

    def admit(self, address: str) -> Callable[[], None]:
        """A release function for the new stream, or raises a 503 (``Retry-After``) that closes the connection."""
        if self.fds is not None and self.fds.low(2):
            reason = "zu wenige freie Dateideskriptoren / too few free file descriptors"
        else:
            release = self.slots.take(address)
            if release is not None:
                return release
            reason = (f"höchstens {self.slots.per_address} Streams je Adresse / at most {self.slots.per_address} "
                      "streams per address" if self.slots.of(address) >= self.slots.per_address else
                      f"höchstens {self.slots.total} Streams / at most {self.slots.total} streams")
        self.refused += 1
        if self.refused == 1 or self.refused % 1000 == 0:
            log.warning("stream refused (%d so far): %s", self.refused, reason)
        raise refusal(web.HTTPServiceUnavailable, "Zu viele offene Live-Verbindungen, bitte später erneut versuchen "
                      f"/ too many open live connections, please try again later ({reason})", STREAM_RETRY_S)


STREAM_GATE_KEY = web.AppKey("stream_gate", StreamGate)


def _is_stream(request: web.Request) -> bool:
    """``/api/v1/stream``, also a district's (``/{slug}/api/v1/stream``): one gate for the whole hub."""
    if request.path == STREAM_PATH:
        return True
    resource = request.match_info.route.resource if request.match_info.route is not None else None
    return request.path.endswith(STREAM_PATH) and resource is not None and resource.canonical.endswith(STREAM_PATH)


@web.middleware
async def stream_limits(request: web.Request, handler: Any) -> web.StreamResponse:
    """Hold a :class:`StreamGate` slot for as long as a ``/api/v1/stream`` request runs."""
    gate = request.app.get(STREAM_GATE_KEY)
    if gate is None or not _is_stream(request):
        return await handler(request)
    release = gate.admit(client_address(request))
    try:
        return await handler(request)
    finally:
        release()
