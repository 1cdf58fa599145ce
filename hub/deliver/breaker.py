"""What keeps one bad host or one bad row from delaying the others: the per-host :class:`CircuitBreaker` of a
channel worker, and :func:`row_failed` / :class:`RowsFailed` for a row whose content cannot be made."""

from __future__ import annotations

import contextvars
import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

log = logging.getLogger("warnhub.outbox")

ROW_FAULTS: contextvars.ContextVar[dict[int, str] | None] = contextvars.ContextVar("outbox_row_faults",
                                                                                    default=None)


class RowsFailed(Exception):
    """Raised by a resolver after :func:`row_failed` named the rows it could not make: the channel answers the
    batch as a whole (retry), and the worker sends the other rows again without them."""


def row_failed(delivery_id: int, reason: str) -> bool:
    """Called while a channel worker delivers (e.g. by a resolver whose content for this one row raised): this
    row is retried with backoff (finally failed) with ``reason``, the rest of its batch is sent without it.
    False outside a worker's delivery: the caller then raises as it would have."""
    faults = ROW_FAULTS.get()
    if faults is None:
        return False
    faults[delivery_id] = reason[:500]
    return True


def in_delivery() -> bool:
    """Is a channel worker delivering (so :func:`row_failed` can isolate a row)?"""
    return ROW_FAULTS.get() is not None


@dataclass(slots=True)
class _Circuit:
    failures: int = 0
    opened_at: float | None = None
    probing: bool = False


class CircuitBreaker:
    """Per destination host: ``threshold`` retry/failed outcomes in a row open its circuit, and claims pass its rows
    over. After ``cooldown_s`` one batch is let through as a probe (half-open): a done or gone in it closes the
    circuit (the host answers), else it stays open for another cooldown."""

    def __init__(self, threshold: int = 5, cooldown_s: float = 30.0, *,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.threshold = threshold
        self.cooldown_s = cooldown_s
        self._clock = clock
        self._hosts: dict[str, _Circuit] = {}

    def open_hosts(self) -> set[str]:
        """Hosts to skip now: open and cooling down, or half-open with the probe under way."""
        now = self._clock()
        return {h for h, c in self._hosts.items()
                if c.opened_at is not None and (c.probing or now - c.opened_at < self.cooldown_s)}

    def broken_hosts(self) -> list[str]:
        """Hosts whose circuit is open (cooling down or being probed): what health reports."""
        return sorted(h for h, c in self._hosts.items() if c.opened_at is not None)

    def next_probe_s(self) -> float | None:
        """Seconds until the next open circuit may be probed (None if none is cooling down)."""
        now = self._clock()
        waits = [c.opened_at + self.cooldown_s - now for c in self._hosts.values()
                 if c.opened_at is not None and not c.probing and now - c.opened_at < self.cooldown_s]
        return min(waits, default=None)

    def claimed(self, hosts: Iterable[str]) -> None:
        """A claimed batch holding rows of an open host (its cooldown over) is that host's probe."""
        for host in hosts:
            circuit = self._hosts.get(host)
            if circuit is not None and circuit.opened_at is not None:
                circuit.probing = True

    def record(self, host: str, kinds: Iterable[str]) -> bool:
        """Outcomes for one host, in order; True if they closed its circuit (the host answers again)."""
        circuit = self._hosts.setdefault(host, _Circuit())
        answered = closed = False
        for kind in kinds:
            if kind == "coalesced":  # held back by the push budget (hub.deliver.budget): the host was not asked
                continue
            if kind in ("done", "gone"):
                circuit.failures, answered = 0, True
            else:
                circuit.failures += 1
        if circuit.opened_at is not None:
            circuit.probing = False
            if answered:
                log.info("circuit closed for host %r: it answers again", host)
                circuit.opened_at = None
                closed = True
            else:
                circuit.opened_at = self._clock()
        elif circuit.failures >= self.threshold:
            log.warning("circuit open for host %r after %d failures in a row; retrying in %.0fs",
                        host, circuit.failures, self.cooldown_s)
            circuit.opened_at = self._clock()
        if circuit.opened_at is None and circuit.failures == 0:
            del self._hosts[host]
        return closed


