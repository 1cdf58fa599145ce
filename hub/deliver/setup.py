"""Delivery in the daemon: the outbox with one worker per channel, the channels from config, and what each channel
sends, read from the store at delivery time (so a queued push shows the newest version of its warning, and a
board shows the most urgent warning in force for its region, or nothing).

Channels come from the registry (:func:`hub.registry.channels`, entry points ``warnhub.channels``): ``push`` (Web
Push, always), ``boards-mqtt`` and ``boards-http`` (when such boards are configured), ``webhooks`` (when webhooks are
configured); each factory builds its channels from the config. Kiosk boards and the web read the publications
directly.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import logging
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any, TypeVar

import aiohttp

from hub import registry
from hub.cap import labels
from hub.config.load import LoadedConfig
from hub.deliver import breaker, budget, workers
from hub.events import Bus, SubscriptionsChanged
from hub.ports import BoardUpdate, ChannelSetup, Delivery, PushTarget, WebhookBody
from hub.publish import canary, publications, subscriptions, testpush
from hub.publish.boardtext import board_text
from hub.publish.pipeline import EXPRESS_PRIORITY, PUSH_PAYLOAD_MAX, latest_by_thread, push_payload
from hub.store.db import AsyncStore, Store

log = logging.getLogger("warnhub.delivery")
T = TypeVar("T")

DEFAULT_TTL_S = 24 * 3600
"""Push TTL for a warning without an end (the push service drops it after this)."""
_EMPTY_KEY = len(b'{"key":""')


def topic_for(thread: str) -> str:
    """A stable RFC 8030 Topic for a publication thread: 32 characters of base64url (a newer version replaces an
    undelivered older one at the push service)."""
    return base64.urlsafe_b64encode(hashlib.sha256(thread.encode()).digest()[:24]).rstrip(b"=").decode()


def urgency_for(severity: str, urgency: str) -> str:
    """RFC 8030 Urgency for a CAP severity/urgency: Extreme and Severe high (whatever the CAP urgency, Immediate
    included), Moderate normal, Minor low, Unknown or anything else normal. ``urgency`` is taken for the day the
    table distinguishes it; today it changes nothing."""
    sev = severity.strip().lower()
    if sev in ("extreme", "severe"):
        return "high"
    return {"moderate": "normal", "minor": "low"}.get(sev, "normal")


def _each_row(store: Store, fn: Callable[[Store, Sequence[Delivery]], list[T | None]], batch: Sequence[Delivery], *,
              isolate: bool) -> list[T | None] | dict[int, str]:
    """``fn`` for the batch; if it raises (and a worker can isolate rows), ``fn`` for each row alone: the answers,
    or the rows whose content raised with the reason (one broken publication must not hold up the others)."""
    try:
        return fn(store, batch)
    except Exception:
        if not isolate:
            raise
    faults: dict[int, str] = {}
    for d in batch:
        try:
            fn(store, [d])
        except Exception as err:  # noqa: BLE001 - named, retried and finally failed by the outbox worker
            log.warning("content for delivery %s (%s) failed: %r", d.id, d.key, err)
            faults[d.id] = f"content failed: {type(err).__name__}: {err}"
    if not faults:
        return fn(store, batch)  # a passing hiccup: every row resolves alone, so try the batch once more
    return faults


class Resolvers:
    """What each channel sends for a batch of outbox rows (runs on a read connection's thread)."""

    def __init__(self, astore: AsyncStore, loaded: LoadedConfig) -> None:
        self.astore = astore
        self.base_url = loaded.cfg.hub.public_url.rstrip("/")
        self.district_urls = {d.ars: d.public_url for d in loaded.districts} if loaded.districts.multi else {}
        """Many districts: a warning's link goes to its district's site (``District.public_url``)."""
        self.boards = {b.id: b for b in loaded.cfg.boards}
        self.webhooks = {h.id: h for h in loaded.cfg.webhooks}
        self.budget: budget.PushBudget | None = None
        """The push budget (set by :func:`open_outbox`): how many rows a summary push stands for."""

    def url_of(self, district: str) -> str:
        """Where the citizens of ``district`` read its warnings (the hub's ``public_url`` with one district)."""
        return self.district_urls.get(district, self.base_url)

    async def push(self, batch: Sequence[Delivery]) -> list[PushTarget | None]:
        return await self._resolve(self._push, batch)

    async def _resolve(self, fn: Callable[[Store, Sequence[Delivery]], list[T | None]],
                       batch: Sequence[Delivery]) -> list[T | None]:
        isolate = breaker.in_delivery()  # read here: the store's thread does not share this task's context
        # only reads: on a read connection, so that building the payloads never holds the writer
        found = await self.astore.read(_each_row, self.astore.store, fn, batch, isolate=isolate)
        if isinstance(found, list):
            return found
        for delivery_id, reason in found.items():  # rows whose content raised: retried alone, the rest sent again
            breaker.row_failed(delivery_id, reason)
        raise breaker.RowsFailed(f"content failed for {len(found)} of {len(batch)} deliveries")

    def _push(self, store: Store, batch: Sequence[Delivery]) -> list[PushTarget | None]:
        pubs = latest_by_thread(store, (d.thread for d in batch))
        ids = sorted({d.recipient for d in batch})
        subs: dict[str, tuple[str, str, str, list[str]]] = {}
        for i in range(0, len(ids), 500):
            part = ids[i:i + 500]
            for sid, endpoint, p256dh, auth, langs in store.conn.execute(
                    "SELECT id, endpoint, p256dh, auth, languages FROM subscriptions WHERE id IN "
                    f"({','.join('?' * len(part))})", part):
                subs[sid] = (endpoint, p256dh, auth, json.loads(langs))
        now_ms = publications.ms(datetime.now(UTC))
        per_thread: dict[str, tuple[int, str, str]] = {}
        bodies: dict[tuple[str, tuple[str, ...]], bytes] = {}
        out: list[PushTarget | None] = []
        for d in batch:
            sub, pub = subs.get(d.recipient), pubs.get(d.thread)
            if sub is not None and testpush.is_test(d.thread):  # a test the subscriber asked for, not a warning
                out.append(testpush.target(d, *sub))
                continue
            if sub is not None and canary.is_canary(d.thread):  # the control room's canary, not a warning
                out.append(canary.push_target(d, *sub))
                continue
            if sub is not None and budget.is_summary(d.thread):  # what went over the subscription's budget
                held = self.budget.held(d.key, d.recipient) if self.budget is not None else 0
                out.append(budget.summary_target(d, max(1, held), *sub, self.base_url))
                continue
            if sub is None or pub is None:
                out.append(None)  # the subscription was deleted: nothing to send, the row is gone
                continue
            endpoint, p256dh, auth, langs = sub
            fixed = per_thread.get(d.thread)
            if fixed is None:
                ttl = DEFAULT_TTL_S if pub.expires_ms is None else max(0, (pub.expires_ms - now_ms) // 1000)
                fixed = per_thread[d.thread] = (int(ttl), urgency_for(pub.severity, pub.urgency),
                                                topic_for(pub.thread))
            # the payload differs between recipients only in its key: render it once per thread and languages
            body_key = (d.thread, tuple(langs))
            body = bodies.get(body_key)
            if body is None:
                body = bodies[body_key] = push_payload(pub, "", langs, self.url_of(pub.district))
            payload = b'{"key":' + json.dumps(d.key).encode() + body[_EMPTY_KEY:]
            if len(payload) > PUSH_PAYLOAD_MAX:
                payload = push_payload(pub, d.key, langs, self.url_of(pub.district))  # shortens the texts
            out.append(PushTarget(endpoint, p256dh, auth, payload, *fixed))
        return out

    async def boards_state(self, batch: Sequence[Delivery]) -> list[BoardUpdate | None]:
        return await self._resolve(self._boards, batch)

    def _boards(self, store: Store, batch: Sequence[Delivery]) -> list[BoardUpdate | None]:
        """Each board gets the most urgent warning in force among those published to it, or a clear."""
        out: list[BoardUpdate | None] = []
        now = datetime.now(UTC)
        for d in batch:
            board = self.boards.get(d.recipient)
            if board is None or canary.is_canary(d.thread):  # a canary only to a board marked for it
                out.append(canary.board_update(d, board, self.base_url) if board is not None and board.canary
                           else None)
                continue
            threads = [t for (t,) in store.conn.execute(
                "SELECT DISTINCT thread FROM outbox WHERE channel=? AND recipient=?", (d.channel, d.recipient))]
            live = [p for p in latest_by_thread(store, threads).values() if p.live(now)
                    and (p.status == "Actual" or (board.exercise and p.status == "Exercise"))]
            live.sort(key=lambda p: (-labels.rank(p.severity), -p.sent.timestamp()))
            shown = live[0] if live else None
            out.append(BoardUpdate(board.id, board_text(board, shown, shown.notice([board.language]))
                                   if shown is not None else None))
        return out

    async def webhook_body(self, batch: Sequence[Delivery]) -> list[WebhookBody | None]:
        return await self._resolve(self._webhooks, batch)

    def _webhooks(self, store: Store, batch: Sequence[Delivery]) -> list[WebhookBody | None]:
        pubs = publications.many(store, sorted({d.publication_id for d in batch}))
        out: list[WebhookBody | None] = []
        for d in batch:
            hook, pub = self.webhooks.get(d.recipient), pubs.get(d.publication_id)
            if hook is not None and hook.canary and canary.is_canary(d.thread):
                out.append(canary.webhook_body(d, self.base_url))
            elif hook is None or pub is None:
                out.append(None)
            elif hook.format == "cap":
                out.append(WebhookBody("application/cap+xml", publications.cap_xml(store, pub.id) or b""))
            else:
                body = dict(pub.as_dict(), key=d.key)
                out.append(WebhookBody("application/json", json.dumps(body, ensure_ascii=False).encode()))
        return out


async def open_outbox(stack: contextlib.AsyncExitStack, *, astore: AsyncStore, loaded: LoadedConfig,
                      http: aiohttp.ClientSession, index: Any, metrics: Any,
                      events: Bus | None = None) -> workers.Outbox:
    """Build the channels from config (every registered factory), enter them on ``stack``, recover the rows that
    were in flight at the last stop; returns the outbox, whose channel workers the caller runs (supervised)."""
    box = workers.Outbox(astore, metrics=workers.OutboxMetrics(metrics.registry))

    async def on_gone(channel: str, recipients: list[str]) -> None:
        if channel != "push" or not recipients:
            return
        removed = await astore.run_bulk(subscriptions.delete_ids, astore.store, recipients)
        if index is not None:
            index.remove_many(recipients)
        if events is not None:  # the other nodes' indexes too (hub.cluster)
            events.publish(SubscriptionsChanged(tuple(recipients)))
        log.info("deleted %d subscription(s) whose push endpoint is gone (404/410)", removed)

    content = Resolvers(astore, loaded)
    push_cfg = loaded.cfg.push
    content.budget = budget.PushBudget(int(push_cfg.budget_window_min * 60_000), push_cfg.budget_pushes)
    setup = ChannelSetup(loaded=loaded, http=http, content=content, stack=stack)
    for factory in registry.channels().values():
        for channel in await factory(setup):
            if channel.name == "push":  # at most N pushes per person and window; the rest in one summary
                channel = budget.BudgetedChannel(channel, astore, content.budget)
            await stack.enter_async_context(channel)
            box.add_worker(channel, batch_size=500 if channel.name == "push" else 50,
                           concurrency=2 if channel.name == "push" else 1, on_gone=on_gone, lease_s=push_cfg.lease_s,
                           express=(EXPRESS_PRIORITY, 100) if channel.name == "push" else None)
    requeued = await box.start(run_workers=False)  # the composition root supervises each channel's worker
    stack.push_async_callback(box.stop)
    if requeued:
        log.warning("outbox: %d delivery(ies) were in flight at the last stop and are queued again", requeued)
    return box


def push_public_key(loaded: LoadedConfig) -> str:
    """The hub's VAPID public key (the push channel creates the key on first start): the browsers' key."""
    return registry.push().public_key(loaded)
