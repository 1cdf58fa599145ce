"""Channels: everything that takes a warning out of the hub (GUIDE.md section 5).

A channel is fed by its own worker(s) from the outbox (:mod:`hub.outbox`): each worker claims a batch of
:class:`Delivery` rows for its channel, calls :meth:`Channel.deliver`, and records the :class:`Outcome` of each row.
A slow or dead channel therefore delays no other. ``deliver`` never raises for one bad row: it answers every row.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, Protocol, Self

OutcomeKind = Literal["done", "retry", "gone", "failed"]


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


class Channel(Protocol):
    name: str

    async def __aenter__(self) -> Self: ...

    async def __aexit__(self, *exc: object) -> None: ...

    async def deliver(self, batch: Sequence[Delivery]) -> Sequence[Outcome]:
        """One outcome per delivery, in order. Never raises for one bad row."""
        ...
