"""The core's contracts that adapters implement (GUIDE.md sections 4 and 5).

Sources (``adapters/sources``) bring warnings and sensor readings in through a :class:`SourceContext`; channels
(``adapters/channels``) take warnings out, fed by the outbox (:mod:`hub.deliver.outbox`) with :class:`Delivery` rows
and answering each with an :class:`Outcome`. What a channel sends (:class:`PushTarget`, :class:`BoardUpdate`,
:class:`WebhookBody`) is resolved by the core before :meth:`Channel.deliver` sends it, so a channel never calls back
into the core. The core finds its adapters through :mod:`hub.registry` and never imports them.

A source turns what it fetches into CAP at the edge: CAP XML goes to ``ctx.ingest`` as it came; other formats
(NINA JSON) become the core's :class:`~hub.cap.model.Alert` and go to ``ctx.ingest_alert``, which writes them as
CAP 1.2 and validates them like any other document. Nothing past the sources sees raw JSON or XML.

A channel is fed by its own worker(s) from the outbox: each worker claims a batch of :class:`Delivery` rows for its
channel, calls :meth:`Channel.deliver`, and records the :class:`Outcome` of each row. A slow or dead channel
therefore delays no other. ``deliver`` never raises for one bad row: it answers every row.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, Literal, Protocol, Self

from hub.cap.model import Alert
from hub.cap.sign import SignaturePolicy
from hub.intake.documents import IntakeResult
from hub.intake.readings import BatchResult, Registered, SensorRow

if TYPE_CHECKING:
    import aiohttp

    from hub.config.load import LoadedConfig
    from hub.metrics import Metrics

# --- sources ----------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Converted:
    """An alert made from a non-CAP payload (or a CAP document the adapter had to change), with the adapter's
    notes: what it repaired, dropped or could not tell. Notes travel into the stored version's warnings."""

    alert: Alert
    notes: tuple[str, ...] = ()


Converter = Callable[..., list[Converted]]
"""A saved payload's alerts: ``convert(data)``; the NINA converter also takes ``geojson=`` (the warning's
``{id}.geojson``). Registered under ``warnhub.converters`` (``warnhub convert`` and rules replay use them)."""


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


class HealthReport(Protocol):
    """How a source reports its state (:class:`hub.health.Health`): ``up``, ``degraded`` (works, not completely) or
    ``down`` (nothing usable came; never read as "no warnings")."""

    def up(self, name: str, *, detail: dict[str, Any] | None = None) -> None: ...

    def degraded(self, name: str, err: object, *, detail: dict[str, Any] | None = None) -> None: ...

    def down(self, name: str, err: object) -> None: ...


class Readings(Protocol):
    """The way in for sensor readings (:class:`hub.intake.sensors.SensorIntake`): a source never opens the store."""

    async def register(self, source: str, sensors: Sequence[SensorRow]) -> Registered:
        """Claim these sensors for ``source`` (config order); what the store knew of them."""
        ...

    async def record(self, rows: Sequence[tuple[str, int, float, str, int]],
                     bad: Sequence[tuple[str, str, int]] = (), *,
                     after_commit: Callable[[], None] | None = None) -> BatchResult:
        """Store a batch in one transaction; ``after_commit`` runs on the writer thread right after the commit (the
        MQTT source acknowledges the messages there: nothing is acknowledged before it is on disk)."""
        ...

    async def mark_stale(self, stale: Sequence[tuple[str, int]]) -> None: ...

    async def purge(self, source: str, cutoff_ms: int) -> int:
        """Delete ``source``'s readings older than ``cutoff_ms`` in small transactions; how many."""
        ...


@dataclass(frozen=True, slots=True)
class SourceContext:
    """What a running source may use. Everything handed to ``ingest*`` is stored before the call returns."""

    ingest: Ingest
    health: HealthReport
    log: logging.Logger
    ingest_alert: IngestAlert | None = None
    snapshot: Snapshot | None = None
    """Record a complete, successful fetch of a list that names every current warning (see Store.snapshot)."""
    known: Callable[[str, str], Awaitable[bool]] | None = None
    """Does the hub already hold a thread with this sender+identifier? (DWD: updates of warnings we hold pass
    the warncell filter even when they no longer name our cells.)"""
    http: aiohttp.ClientSession | None = None
    readings: Readings | None = None
    metrics: Metrics | None = None
    on_readings: Callable[[list[tuple[str, int, float]]], Awaitable[Any]] | None = None
    """Sensor readings ``(sensor, ts_ms, value)`` just stored: the rules' sensor watch hears of them."""


class Source(Protocol):
    name: str

    async def run(self, ctx: SourceContext) -> None: ...


class SourceFactory(Protocol):
    """A source class: built from its config section (its ``type`` names the registry entry)."""

    def __call__(self, settings: Any, loaded: LoadedConfig, *, max_bytes: int) -> Source: ...


# --- channels ---------------------------------------------------------------------------------------------------

OutcomeKind = Literal["done", "retry", "gone", "failed", "coalesced"]


@dataclass(frozen=True, slots=True)
class Delivery:
    """One outbox row as a channel sees it: this publication version, to this recipient, over this channel."""

    id: int
    key: str
    """Idempotency key (publication version, channel, recipient): a receiver seeing it twice got a redelivery."""
    publication_id: int
    thread: str
    """The publication thread (all versions of one warning), for superseding and collapsing."""
    channel: str
    recipient: str
    """Subscription id, board id or webhook id: what the channel resolves to an endpoint."""
    priority: int
    """0 first (Extreme/Immediate) ... 9 last."""
    attempts: int
    """Deliveries tried before this one."""
    not_after_ms: int | None
    """Never deliver after this (the warning's expiry), milliseconds since the epoch."""
    host: str
    """The destination host, for the per-host circuit breaker ("" when the channel has none)."""


@dataclass(frozen=True, slots=True)
class Outcome:
    """What happened to one delivery."""

    kind: OutcomeKind
    reason: str = ""
    retry_after_s: float | None = None
    """For ``retry``: the receiver's Retry-After, honoured as the minimum wait."""

    @classmethod
    def done(cls) -> Outcome:
        return cls("done")

    @classmethod
    def retry(cls, reason: str, after_s: float | None = None) -> Outcome:
        return cls("retry", reason, after_s)

    @classmethod
    def gone(cls, reason: str) -> Outcome:
        return cls("gone", reason)

    @classmethod
    def failed(cls, reason: str) -> Outcome:
        return cls("failed", reason)

    @classmethod
    def coalesced(cls, summary_key: str) -> Outcome:
        """Not sent: over the subscription's push budget, counted in the summary push with this key."""
        return cls("coalesced", summary_key)


class Channel(Protocol):
    name: str

    async def __aenter__(self) -> Self: ...

    async def __aexit__(self, *exc: object) -> None: ...

    async def deliver(self, batch: Sequence[Delivery]) -> Sequence[Outcome]:
        """One outcome per delivery, in order. Never raises for one bad row."""
        ...


@dataclass(frozen=True, slots=True)
class PushTarget:
    """One push to send: where, the subscription's keys, the plaintext and the RFC 8030 delivery options."""

    endpoint: str
    p256dh: str
    auth: str
    payload: bytes
    ttl_s: int
    urgency: str
    topic: str | None


@dataclass(frozen=True, slots=True)
class BoardText:
    """What a board shows of one publication version, in the board's language, fitted by the core to the board's
    budget and charset (:func:`hub.publish.boardtext.board_text`): the channel sends it as it is."""

    thread: str
    version: int
    msg_type: str
    """Alert, Update or Cancel (a Cancel clears the board)."""
    status: str
    """CAP status: only Actual is shown, and Exercise on a board configured for exercises."""
    severity: str
    expires: datetime | None
    """Aware; the board clears after it."""
    lines: tuple[str, ...]
    """At most the board's lines, each at most its characters, in its charset."""
    headline: str
    instruction: str
    """The whole headline and instruction as plain text in the board's charset (not fitted)."""
    receipt: str | None = None
    """A canary (status Test, a board marked ``canary``): the URL the board's controller POSTs to once it shows it."""


@dataclass(frozen=True, slots=True)
class BoardUpdate:
    """What a board should show for one delivery (``text`` None: nothing)."""

    board_id: str
    text: BoardText | None


@dataclass(frozen=True, slots=True)
class WebhookBody:
    """The rendered body for one delivery (``application/cap+xml`` or ``application/json``, say)."""

    content_type: str
    body: bytes


PushResolve = Callable[[Sequence[Delivery]], Awaitable[list[PushTarget | None]]]
BoardResolve = Callable[[Sequence[Delivery]], Awaitable[list[BoardUpdate | None]]]
WebhookResolve = Callable[[Sequence[Delivery]], Awaitable[list[WebhookBody | None]]]
"""The core's answer per delivery, in order; None: nothing to deliver for that row (failed)."""


class Content(Protocol):
    """What each kind of channel sends for a batch of outbox rows (:class:`hub.deliver.setup.Resolvers`)."""

    async def push(self, batch: Sequence[Delivery]) -> list[PushTarget | None]: ...

    async def boards_state(self, batch: Sequence[Delivery]) -> list[BoardUpdate | None]: ...

    async def webhook_body(self, batch: Sequence[Delivery]) -> list[WebhookBody | None]: ...


@dataclass(frozen=True, slots=True)
class ChannelSetup:
    """What a channel factory may use to build its channels from the config."""

    loaded: LoadedConfig
    http: aiohttp.ClientSession
    content: Content
    stack: contextlib.AsyncExitStack
    """For what must outlive the channel's own context (closed in reverse order when the hub stops)."""


ChannelFactory = Callable[[ChannelSetup], Awaitable[Sequence[Channel]]]
"""Builds the channels of one registry entry (none when the config names nothing for it)."""


class CheckEndpoint(Protocol):
    """``check_endpoint(url, *, allow_http) -> reason | None``: the push channel's check of an endpoint."""

    def __call__(self, url: str, *, allow_http: bool) -> str | None: ...


CheckKeys = Callable[[str, str], "str | None"]
"""``check_keys(p256dh, auth) -> reason | None``: the push channel's check of a subscription's keys."""

PublicKey = Callable[["LoadedConfig"], str]
"""The hub's push (VAPID) public key, base64url, created on first start: browsers need it to subscribe."""
