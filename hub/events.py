"""Typed events of the flow and the in-process bus that carries them; the one wake-up helper of the loops.

The stages do not call each other to say "there is work": each publishes what happened, and whoever needs it
subscribes (the wiring is in :mod:`hub.app`, the composition root):

- intake stores a new version (or a better-signed copy replaces one) -> :class:`AlertStored` -> the router decides;
- the router (or the console's send/approve) stores a decision -> :class:`Decided` -> the pipeline publishes;
- the pipeline commits a publication -> :class:`~hub.publish.publications.Published` (defined beside the
  publication it carries) -> the live web stream;
- the pipeline queues deliveries (or boards must be cleared) -> :class:`Queued` -> the outbox workers of those
  channels claim at once.

Every stage reads its work from the store, so an event is only a hint to look now: a lost one delays work to the
stage's next idle check, never loses it. Handlers are plain functions called in the order they subscribed; they
must be quick (set a :class:`Wakeup`) and one that raises is logged and does not stop the others.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

log = logging.getLogger("warnhub.events")

RELAYED: contextvars.ContextVar[bool] = contextvars.ContextVar("warnhub_relayed", default=False)
"""True while an event another node published is handed to this node's handlers (:mod:`hub.cluster`): a handler
that records what this node did (the history log) passes over it."""

E = TypeVar("E")


@dataclass(frozen=True, slots=True)
class AlertStored:
    """A version was committed that the rules have not decided yet (new, or a conflict's better copy)."""

    alert_id: int
    thread_id: int
    origin: str


@dataclass(frozen=True, slots=True)
class Decided:
    """A decision was committed (by the rules or by an operator who sent a warning in the console)."""

    alert_id: int
    thread_id: int
    decision: str
    """``publish``, ``draft``, ``suppress`` or ``unrouted``."""


@dataclass(frozen=True, slots=True)
class Queued:
    """Deliveries were queued (or board updates are due) for these channels."""

    channels: frozenset[str]


@dataclass(frozen=True, slots=True)
class SubscriptionsChanged:
    """Push subscriptions were created, changed or deleted (their ids): a node's targeting index reads them again
    (on the node that changed them it is up to date already; other nodes hear it through :mod:`hub.cluster`)."""

    ids: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class CanaryReceived:
    """A canary's receipt came to a node whose watch did not send it (many nodes: one node sends the rounds); the
    node that did counts it when it hears this through :mod:`hub.cluster`."""

    probe: str


@dataclass(frozen=True, slots=True)
class CanaryStates:
    """The canary endpoints' states (JSON) as the node sending the rounds sees them, for the other nodes' /healthz
    and console (many nodes, :mod:`hub.cluster`)."""

    states: str


class Subscription:
    """What :meth:`Bus.subscribe` returns: call :meth:`cancel` (or the handle itself) to stop hearing events."""

    __slots__ = ("_bus", "_kind", "_handler")

    def __init__(self, bus: Bus, kind: type, handler: Callable[[Any], None]) -> None:
        self._bus, self._kind, self._handler = bus, kind, handler

    def cancel(self) -> None:
        """Unsubscribe (again: nothing happens)."""
        handlers = self._bus._handlers.get(self._kind, [])
        for i, entry in enumerate(handlers):
            if entry is self:
                del handlers[i]
                return

    __call__ = cancel


class Bus:
    """In-process publish/subscribe by event type (the exact class, no subclass matching)."""

    def __init__(self) -> None:
        self._handlers: dict[type, list[Subscription]] = {}

    def subscribe(self, kind: type[E], handler: Callable[[E], None]) -> Subscription:
        """Call ``handler(event)`` for every published ``kind``, after the handlers subscribed before it."""
        entry = Subscription(self, kind, handler)
        self._handlers.setdefault(kind, []).append(entry)
        return entry

    def publish(self, event: object) -> None:
        """Hand ``event`` to each handler of its type, in order; a handler that raises is logged and skipped."""
        for entry in list(self._handlers.get(type(event), ())):
            try:
                entry._handler(event)
            except Exception:  # noqa: BLE001 - one broken listener must not keep the event from the others
                log.exception("handler %r failed on %r", entry._handler, event)

    def count(self, kind: type) -> int:
        """How many handlers hear ``kind`` now."""
        return len(self._handlers.get(kind, ()))


class Wakeup:
    """"There is work": set by anyone, awaited by one consumer loop. A :meth:`set` while the consumer is busy is
    kept, so the next :meth:`wait` returns at once: no wake-up is lost between checking for work and waiting."""

    def __init__(self) -> None:
        self._event = asyncio.Event()

    def set(self) -> None:
        self._event.set()

    def clear(self) -> None:
        """Forget a pending wake-up (the consumer is about to look for work anyway)."""
        self._event.clear()

    def is_set(self) -> bool:
        return self._event.is_set()

    async def wait(self, timeout: float | None = None) -> bool:
        """Until :meth:`set` (True; the wake-up is consumed) or ``timeout`` seconds (False)."""
        if not self._event.is_set():
            try:
                async with asyncio.timeout(timeout):
                    await self._event.wait()
            except TimeoutError:
                return False
        self._event.clear()
        return True


async def keep_up(work: Callable[[], Awaitable[object]], wakeup: Wakeup, *, idle_s: float, what: str,
                  logger: logging.Logger = log) -> None:
    """The stages' loop: do ``work`` (all that is due), then wait for ``wakeup`` or ``idle_s`` (a safety net for a
    lost hint), forever. ``work`` that raises is logged as ``what`` failed and tried again after the wait."""
    while True:
        wakeup.clear()  # the work below reads everything stored so far: earlier hints are covered
        try:
            await work()
        except asyncio.CancelledError:
            raise
        except Exception:  # noqa: BLE001 - the stage goes on; what failed is read from the store again
            logger.exception("%s failed; retrying in %s s", what, idle_s)
        await wakeup.wait(idle_s)
