"""The canary watch: starts a round of canaries every ``[canary] interval_s`` and judges each endpoint by its receipts.

An endpoint is one canary receiver: a push subscription on a control-room device (``push:<id>``), a webhook marked
``canary`` (``webhooks:<id>``), a test board marked ``canary`` (``boards-mqtt:<id>``, ``boards-http:<id>``) or the
web node's own live stream (``sse``, counted by an internal subscriber). Each round gives every endpoint a probe
with its own id and hands the round, one CAP alert naming the probes (:mod:`hub.publish.canary`), to the real
intake; the router decides it and the publishing pipeline queues the probes (:class:`~hub.publish.canary.Round`
on the bus, whose SSE probes this watch then sends through the live stream). The time from the intake's
acceptance to the receipt goes into ``warnhub_canary_delivery_seconds{channel}``, so a stalled intake, router or
pipeline shows like a stalled channel. An endpoint is

- ``ok``: its newest receipt came within its SLO and nothing it was sent is older than the SLO unanswered;
- ``late``: its newest receipt came after its SLO, or a probe is unanswered for longer than the SLO;
- ``silent``: a probe is unanswered for a whole interval (a channel that accepts and drops shows this way);
- ``waiting``: no round has been sent to it yet.

The state lives in memory: after a restart the first round starts afresh, and a receipt of a probe from before the
restart is unknown (404). On many nodes (PostgreSQL) one node at a time sends the rounds (the holder of the
``canary`` lock, :mod:`hub.cluster`); a receipt that comes to another web node is checked against the store (a
canary row of that probe was queued) and handed to the sending node as :class:`~hub.events.CanaryReceived`; the
sending node tells the others its endpoints' states (:class:`~hub.events.CanaryStates`, before each round and after
each receipt), which their /healthz and console show.
"""

from __future__ import annotations

import asyncio
import contextvars
import json
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

from hub.cap.sign import SignaturePolicy
from hub.config.sections import BoardConfig, CanarySection, WebhookConfig
from hub.decide.canary import ORIGIN
from hub.events import RELAYED, Bus, CanaryReceived, CanaryStates
from hub.intake.service import IntakeService
from hub.publish import canary
from hub.publish.audience import BOARD_CHANNELS
from hub.store.db import AsyncStore, Store

log = logging.getLogger("warnhub.canary")

KEEP_PROBES = 20
"""Unanswered probes remembered per endpoint (older ones are forgotten: the endpoint is silent by then anyway)."""


@dataclass(slots=True)
class Endpoint:
    name: str
    channel: str
    """``push``, ``webhooks``, ``boards-mqtt``, ``boards-http`` or ``sse`` (the histogram's label)."""
    recipient: str
    slo_s: float
    sent: dict[str, float] = field(default_factory=dict)
    """Unanswered probes: id -> when queued (monotonic)."""
    last_sent: float | None = None
    last_received: float | None = None
    last_delay_s: float | None = None
    received: int = 0
    missing: str = ""
    """Why the last round could not be sent to it (a subscription id the store does not know)."""

    def state(self, now: float, interval_s: float) -> tuple[str, list[str]]:
        if self.missing:
            return "silent", [self.missing]
        oldest = min(self.sent.values(), default=None)
        if oldest is not None and now - oldest >= interval_s:
            age = now - oldest
            return "silent", [f"Kontrollmeldung seit {age:.0f} s nicht angekommen (Intervall {interval_s:g} s) / "
                              f"canary not received for {age:.0f} s (interval {interval_s:g} s)"]
        if oldest is not None and now - oldest > self.slo_s:
            age = now - oldest
            return "late", [f"Kontrollmeldung seit {age:.0f} s unterwegs, Ziel {self.slo_s:g} s / canary under way "
                            f"for {age:.0f} s, target {self.slo_s:g} s"]
        if self.last_delay_s is not None and self.last_delay_s > self.slo_s:
            return "late", [f"Kontrollmeldung kam nach {self.last_delay_s:.1f} s, Ziel {self.slo_s:g} s / canary "
                            f"took {self.last_delay_s:.1f} s, target {self.slo_s:g} s"]
        if self.last_sent is None:
            return "waiting", []
        return "ok", []


class CanaryWatch:
    """Sends the rounds (:meth:`run`), takes the receipts (:meth:`received`) and says each endpoint's state."""

    def __init__(self, store: AsyncStore, cfg: CanarySection, webhooks: tuple[WebhookConfig, ...], *,
                 histogram: Any, events: Bus, intake: IntakeService, sender: str,
                 sse: Callable[[Mapping[str, Any]], int] | None = None, boards: tuple[BoardConfig, ...] = (),
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.store = store
        self.intake = intake
        self.sender = canary.sender_of(sender)
        """The canaries' CAP sender (the hub's ``[hub] sender``, marked)."""
        self.cfg = cfg
        self.histogram = histogram
        self.events = events
        self.sse = sse if cfg.sse else None
        self.clock = clock
        self.endpoints: dict[str, Endpoint] = {}
        for sid in cfg.push_subscriptions:
            self._add(f"push:{sid}", "push", sid)
        for hook in webhooks:
            if hook.canary:
                self._add(f"webhooks:{hook.id}", "webhooks", hook.id)
        self._hosts = {h.id: urlsplit(h.url).netloc.lower() for h in webhooks}
        for board in boards:
            if board.canary and board.kind in BOARD_CHANNELS:
                channel = BOARD_CHANNELS[board.kind]
                self._add(f"{channel}:{board.id}", channel, board.id)
                self._hosts[board.id] = board.host if board.kind == "mqtt" else urlsplit(board.url or "").netloc.lower()
        if self.sse is not None:
            self._add("sse", "sse", "")
        self._probes: dict[str, str] = {}
        """Probe id -> endpoint name, for the receipts."""
        self._logged: dict[str, str] = {}
        self.shared = getattr(store.store, "url", None) is not None
        """Many nodes share the store: receipts of probes another node sent are passed on to it."""
        self.rounds = 0
        """Rounds this node has sent."""
        self._last_round: float | None = None
        self._told: tuple[dict[str, dict[str, Any]], float] | None = None
        """The states the sending node told last, and when (many nodes)."""
        events.subscribe(CanaryReceived, self._relayed)
        events.subscribe(CanaryStates, self._states)
        events.subscribe(canary.Round, self._queued)

    def _relayed(self, event: CanaryReceived) -> None:
        if RELAYED.get() and self.received(event.probe):  # another node took the receipt of a probe of this one
            # the states go out after the relaying (a relayed event is not sent on), as this node's own event
            asyncio.get_running_loop().call_soon(self.tell, context=contextvars.Context())

    def _states(self, event: CanaryStates) -> None:
        if RELAYED.get():
            self._told = (json.loads(event.states), self.clock())

    def tell(self) -> None:
        """Many nodes: the other nodes learn this node's states (it sends the rounds)."""
        if self.shared:
            self.events.publish(CanaryStates(json.dumps(self._own(), separators=(",", ":"))))

    async def acknowledge(self, pid: str) -> bool:
        """A receipt that came to this node (the receipt route): counted here if this node sent the probe; on many
        nodes, passed on to the one that did if the store has the probe's row; False for an unknown probe."""
        if self.received(pid):
            return True
        if not self.shared or not await self.store.read(canary.queued_before, self.store.store, pid):
            return False
        self.events.publish(CanaryReceived(pid))
        return True

    def _add(self, name: str, channel: str, recipient: str) -> None:
        self.endpoints[name] = Endpoint(name, channel, recipient, self.cfg.slo_for(channel))

    async def run(self) -> None:
        """A round now, then one every interval (supervised by the daemon); before each round, an endpoint whose
        state changed is logged (once per change, not every round)."""
        log.info("canaries every %g s to %s", self.cfg.interval_s, ", ".join(self.endpoints) or "no endpoint")
        while True:
            self.log_changes()
            self.tell()
            await self.round()
            await asyncio.sleep(self.cfg.interval_s)

    def log_changes(self) -> None:
        for name, state in self.as_dict().items():
            before = self._logged.get(name, "waiting")
            if state["state"] != before:
                level = logging.WARNING if state["state"] in ("late", "silent") else logging.INFO
                log.log(level, "canary to %s %s (was %s)%s", name, state["state"], before,
                        f": {state['problems'][0]}" if state["problems"] else "")
                self._logged[name] = state["state"]

    async def round(self) -> int:
        """Start one round: a probe for every endpoint, handed to the intake as one canary alert (the clock of each
        probe starts here, at acceptance); returns the probes. A round the intake refuses or cannot store is
        logged, and its endpoints go late and silent like those of a round lost further on."""
        probes: list[canary.Probe] = []
        by_probe: dict[str, Endpoint] = {}
        hosts = await self.store.run(_push_hosts, self.store.store, [e.recipient for e in self.endpoints.values()
                                                                       if e.channel == "push"])
        for e in self.endpoints.values():
            host = hosts.get(e.recipient) if e.channel == "push" else self._hosts.get(e.recipient, "")
            e.missing = "" if host is not None else (
                f"Push-Abo {e.recipient} ist nicht gespeichert / push subscription {e.recipient} is not stored")
            if host is not None:
                probe = canary.Probe(canary.new_id(), e.channel, e.recipient, host)
                probes.append(probe)
                by_probe[probe.id] = e
        if not probes:
            return 0
        now = self.clock()
        for probe in probes:
            self._sent(by_probe[probe.id], probe.id, now)
        self.rounds += 1
        self._last_round = now
        sent = datetime.now(UTC)
        raw = canary.alert_xml(canary.new_id(), probes, sender=self.sender, sent=sent,
                               expires=sent + timedelta(seconds=2 * self.cfg.interval_s + 1))
        try:
            result = await self.intake.ingest(raw, origin=ORIGIN, policy=SignaturePolicy.IGNORE)
        except Exception:  # noqa: BLE001 - the round is lost (its endpoints show it); the next one is due anyway
            log.exception("canary round could not be taken in")
            return len(probes)
        if result.outcome == "rejected":
            log.error("canary round refused by the intake: %s", result.reason)
        return len(probes)

    def _queued(self, done: canary.Round) -> None:
        """The pipeline queued a round's probes (on this node, whichever node made the round): its live-stream
        probe goes out now, on this node's stream."""
        if self.sse is None:
            return
        for probe in done.probes:
            if probe.channel == "sse":
                self.sse(sse_event(probe.id))

    def _sent(self, e: Endpoint, pid: str, now: float) -> None:
        e.sent[pid] = now
        e.last_sent = now
        self._probes[pid] = e.name
        while len(e.sent) > KEEP_PROBES:
            old = next(iter(e.sent))
            del e.sent[old]
            self._probes.pop(old, None)

    def received(self, pid: str) -> bool:
        """A receipt: measured once (a repeated receipt changes nothing). False for an unknown probe."""
        name = self._probes.pop(pid, None)
        e = self.endpoints.get(name) if name is not None else None
        if e is None:
            return False
        now = self.clock()
        queued = e.sent.pop(pid, None)
        if queued is None:
            return True
        for older, at in list(e.sent.items()):  # the channel delivers again: earlier probes are lost, not waiting
            if at <= queued:
                del e.sent[older]
                self._probes.pop(older, None)
        delay = now - queued
        e.last_received, e.last_delay_s, e.received = now, delay, e.received + 1
        self.histogram.labels(e.channel).observe(delay)
        if delay > e.slo_s:
            log.warning("canary to %s late: %.1f s (target %g s)", e.name, delay, e.slo_s)
        if not RELAYED.get():  # a relayed receipt's states go out after the relaying (_relayed)
            self.tell()
        return True

    def as_dict(self) -> dict[str, dict[str, Any]]:
        """Every endpoint's state for /healthz and the console: on many nodes, as the node sending the rounds told
        them, unless this node sent a round since."""
        told = self._told
        if told is not None and (self._last_round is None or told[1] > self._last_round):
            return told[0]
        return self._own()

    def _own(self) -> dict[str, dict[str, Any]]:
        now = self.clock()
        out = {}
        for name, e in sorted(self.endpoints.items()):
            state, problems = e.state(now, self.cfg.interval_s)
            out[name] = {"channel": e.channel, "state": state, "slo_s": e.slo_s,
                         "last_delay_s": None if e.last_delay_s is None else round(e.last_delay_s, 3),
                         "received": e.received, "unanswered": len(e.sent), "problems": problems}
        return out

    @property
    def ok(self) -> bool:
        return all(e["state"] in ("ok", "waiting") for e in self.as_dict().values())


def sse_event(pid: str) -> dict[str, Any]:
    """The live stream's canary event: status Test and channel ``canary``, so no public client (Actual, channel
    ``web``) is ever offered it; the watch's own subscriber is."""
    return {"thread": canary.PREFIX + pid, "version": 0, "msgType": "Alert", "regions": [], "status": canary.STATUS,
            "scope": "Public", "channels": ["canary"]}


async def listen(stream: Any, watch: CanaryWatch) -> None:
    """The internal subscriber of the live stream (a :class:`hub.web.live.Subscriber` of channel ``canary`` and
    status Test): every canary event it is offered is a receipt."""
    async for msg in stream:
        if msg.event == "publication":
            thread = str(msg.data.get("thread", ""))
            if canary.is_canary(thread):
                watch.received(canary.probe_id(thread))


def _push_hosts(store: Store, ids: list[str]) -> dict[str, str]:
    """Endpoint host of each stored subscription among ``ids``."""
    out = {}
    for sid in ids:
        row = store.conn.execute("SELECT endpoint FROM subscriptions WHERE id=?", (sid,)).fetchone()
        if row is not None:
            out[sid] = urlsplit(row[0]).netloc.lower()
    return out
