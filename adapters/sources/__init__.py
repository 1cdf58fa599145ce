"""Sources: everything that brings warnings or readings into the hub, registered explicitly by config ``type``.

A source turns what it fetches into CAP at the edge: CAP XML goes to ``ctx.ingest`` as it came; other formats
(NINA JSON) become the core's :class:`~hub.cap.model.Alert` and go to ``ctx.ingest_alert``, which writes them as
CAP 1.2 and validates them like any other document. Nothing past this package sees raw JSON or XML.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from hub.cap.model import Alert
from hub.cap.sign import SignaturePolicy
from hub.health import Health
from hub.intake.documents import IntakeResult

if TYPE_CHECKING:
    import aiohttp

    from hub.metrics import Metrics
    from hub.store.db import AsyncStore


class Ingest(Protocol):
    """``durable=True``: on disk when it returns, for a source that then tells its sender (moves the file)."""

    def __call__(self, raw: bytes, *, origin: str, policy: SignaturePolicy, path: str | None = None,
                 notes: tuple[str, ...] = (), durable: bool = False) -> Awaitable[IntakeResult]: ...


class IngestAlert(Protocol):
    def __call__(self, alert: Alert, *, origin: str, notes: Sequence[str] = (),
                 path: str | None = None) -> Awaitable[IntakeResult]: ...


class Snapshot(Protocol):
    def __call__(self, origin: str, listed: Iterable[tuple[str, str]], *,
                 misses_to_end: int) -> Awaitable[list[int]]: ...


@dataclass(frozen=True, slots=True)
class SourceContext:
    """What a running source may use. Everything handed to ``ingest*`` is stored before the call returns."""

    ingest: Ingest
    health: Health
    log: logging.Logger
    ingest_alert: IngestAlert | None = None
    snapshot: Snapshot | None = None
    """Record a complete, successful fetch of a list that names every current warning (see Store.snapshot)."""
    known: Callable[[str, str], Awaitable[bool]] | None = None
    """Does the hub already hold a thread with this sender+identifier? (DWD: updates of warnings we hold pass
    the warncell filter even when they no longer name our cells.)"""
    http: aiohttp.ClientSession | None = None
    store: AsyncStore | None = None
    metrics: Metrics | None = None
    on_readings: Callable[[list[tuple[str, int, float]]], Awaitable[Any]] | None = None
    """Sensor readings ``(sensor, ts_ms, value)`` just stored: the rules' sensor watch hears of them."""


class Source(Protocol):
    name: str

    async def run(self, ctx: SourceContext) -> None: ...


def _registry() -> dict[str, Callable[..., Any]]:
    from adapters.sources.directory import DirectorySource
    from adapters.sources.dwd import DwdSource
    from adapters.sources.feed import CapFeedSource
    from adapters.sources.mqtt import MqttSource
    from adapters.sources.nina import NinaSource

    return {
        "directory": DirectorySource,
        "cap-feed": CapFeedSource,
        "dwd": DwdSource,
        "nina": NinaSource,
        "mqtt": MqttSource,
    }


SOURCES: dict[str, Callable[..., Source]] = _registry()
"""Config ``type`` -> source class. Every entry is documented in README.md (a test checks)."""
