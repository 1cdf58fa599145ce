"""From a decision to deliveries: publication, targeting and the outbox (GUIDE.md sections 1 and 5).

For every stored ``publish`` decision the pipeline issues the hub's own CAP message (:mod:`hub.publish.publications`),
works out who gets it — push subscriptions whose places the area reaches (:class:`~hub.publish.index.
SubscriptionIndex`), display boards whose region it touches, webhooks for their regions — and writes the
publication and one outbox row per (version, channel, recipient) in **one transaction**. Only then do the channel
workers send. A big push fan-out is the exception: that transaction writes its first rows and the rest as durable
chunks, which :meth:`Pipeline.fan_out` writes one transaction each while the workers already send
(:mod:`hub.deliver.fanout`). It reads its work from the store (decisions without a publication), so a crash after the
decision and before the publication only delays it to the next start — however long that takes, while the warning is
valid. Each decision is published on its own: one that raises is recorded as failed on its decision and retried with
backoff (:func:`hub.decide.decisions.record_failure`), and the others go on.

* An Update that the rules did not find significant (``push`` false) updates web, boards and webhooks and queues
  no push; queued pushes of earlier versions are superseded by newer push rows, and any push still queued shows
  the newest version when it is sent (content is read at delivery time).
* A Cancel withdraws every queued delivery of the thread, tells the subscriptions and webhooks that received an
  earlier version, and clears the boards that showed it.
* Exercises reach only boards, webhooks and subscriptions marked for exercises.
* Many districts: each district publishes its own decisions, in its name, to its own (:mod:`hub.publish.issuers`).
* Audiences: only a decision for the ``public`` audience reaches the public (web, boards, push subscribers of any
  topic). One for ``topic:<slug>`` alone reaches only the push subscriptions of that event topic (a school closure,
  a festival: never a public warning); one for another audience (``einsatzkraefte``) only webhooks naming it. The
  rule is :func:`hub.publish.audience.effective_channels`, the one the console previews and stores by.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

from shapely.geometry.base import BaseGeometry

from hub.cap import event_names, labels
from hub.cap.model import Alert, Severity, from_json
from hub.config.load import LoadedConfig
from hub.config.sections import BoardConfig, WebhookConfig
from hub.decide import canary as decide_canary
from hub.decide import decisions
from hub.decide.rules.engine import LiveRules
from hub.deliver import fanout, outbox
from hub.events import Bus, Decided, Queued, Wakeup, keep_up
from hub.i18n.languages import SOURCE, code_of, reading_order
from hub.publish import canary, issuers, notify, publications
from hub.publish.audience import BOARD_CHANNELS, effective_channels, recipients
from hub.publish.publications import Publication, Published
from hub.store.clock import now_utc, utc_iso
from hub.store.db import AsyncStore, Store

log = logging.getLogger("warnhub.pipeline")

PUSH_PAYLOAD_MAX = 3993
"""Plaintext bytes one Web Push record carries (RFC 8291 with a 4096-byte record)."""


def priority(severity: str, urgency: str) -> int:
    """The outbox's claim order, 0 first: by severity (Extreme, Severe, Moderate, Minor, Unknown: hub.cap.labels
    rank), Immediate before the rest within each (0 Extreme Immediate ... 9 Unknown not Immediate). Severity first:
    in a storm every trigger is Immediate, and the Extreme must not wait behind a million Immediate Severe rows."""
    return 2 * (labels.rank(Severity.EXTREME) - labels.rank(severity)) + (0 if urgency == "Immediate" else 1)


EXPRESS_PRIORITY = 1
"""``priority("Extreme", <not Immediate>)``: rows this urgent (every Extreme) are claimed by the push worker's express
loop (hub.deliver.workers) and their fan-out chunks written in the store's urgent lane."""


@dataclass(frozen=True, slots=True)
class Unpublished:
    alert_id: int
    thread_id: int
    alert: Alert
    decision: decisions.StoredDecision
    """A district's decision (``decision.district``): published by that district."""


def unpublished(store: Store, *, limit: int = 20, now: datetime | None = None) -> list[Unpublished]:
    """Publish decisions without a publication of their district whose alert has not expired, or Cancels of a
    warning the district published in force (however long ago they were decided: after an outage of a day a warning
    valid for a week still goes out), oldest first; a failed one once its retry is due. One passed by a newer version
    its district published is left alone; one whose alert cannot be read is marked failed, never holding others up."""
    now = now or now_utc()
    # A Cancel of an incident the hub published is published whatever the rules say about it: the hub must never
    # leave its own warning standing after the authority withdrew it.
    rows = store.conn.execute(
        "SELECT d.alert_id, d.district, a.json FROM decisions d JOIN alerts a ON a.id = d.alert_id"
        " WHERE (d.decision='publish' OR (a.msg_type='Cancel' AND EXISTS (SELECT 1 FROM publications q"
        "      WHERE q.source_thread = d.thread_id AND q.district = d.district)))"
        f" AND {decisions.still_due(store)} AND (d.retry_at IS NULL OR d.retry_at <= :now)"
        " AND NOT EXISTS (SELECT 1 FROM publications p WHERE p.source_thread = d.thread_id"
        "                 AND p.district = d.district AND p.source_alert >= d.alert_id)"
        " ORDER BY d.alert_id, d.district LIMIT :limit", {**decisions.due_params(now), "limit": limit}).fetchall()
    out = []
    for alert_id, district, doc in rows:
        try:
            d = decisions.decision_of(store, alert_id, district)
            alert = from_json(doc)
        except Exception as err:  # noqa: BLE001 - one unreadable version must not hold up the others
            log.exception("alert %s: stored version cannot be read for publishing", alert_id)
            decisions.record_failure(store, alert_id, "publish", f"cannot read the stored alert: {err!r}", now=now,
                                     district=district)
            continue
        if d is not None:
            out.append(Unpublished(alert_id, d.thread_id, alert, d))
    return out


class AlreadyPublished(Exception):
    """The version was published (by another decide node) between reading it as unpublished and writing."""


@dataclass(frozen=True, slots=True)
class Plan:
    """What one publication will be and whom it reaches (computed off the writer thread)."""

    item: Unpublished
    area_lonlat: BaseGeometry | None
    push_recipients: fanout.Prepared
    """The push subscriptions' ids, split for the fan-out (prepared off the writer thread)."""
    boards: tuple[BoardConfig, ...]
    webhooks: tuple[WebhookConfig, ...]
    issuer: issuers.Issuer
    push: bool = False
    """The decision sends push (an all-clear then also goes to everyone who got an earlier version)."""
    after: int | None = None
    """The version of the thread the plan follows (None: the first); ``encoded`` holds only if it still is."""
    encoded: publications.Encoded | None = None
    """The publication, issued and serialised (signed) off the writer thread."""


class Pipeline:
    def __init__(self, store: AsyncStore, loaded: LoadedConfig, live: LiveRules, *, index: Any,
                 events: Bus | None = None, sender: str | None = None, clock: Callable[[], datetime] = now_utc,
                 metrics: Any = None) -> None:
        self.store = store
        self.clock = clock
        self.metrics = metrics
        self.loaded = loaded
        self.live = live
        self.index = index
        self.events = events or Bus()
        """Where :class:`~hub.publish.publications.Published` and :class:`~hub.events.Queued` are published."""
        self.issuers = issuers.of(loaded, sender=sender)  # each district's, by its Kreis key, the first first
        self.first = next(iter(self.issuers.values()))
        self._wakeup = Wakeup()
        self._chunks = Wakeup()
        self._express = False
        """An Extreme's fan-out chunks are being written (urgent lane)."""
        self.published = 0
        self.failed = 0
        self.signers = {ars: publications.Signer(*i.signing) for ars, i in self.issuers.items() if i.signing}

    def issuer(self, item: Unpublished) -> issuers.Issuer:
        """The district that publishes a decision (a decision stored without one: the first district's)."""
        return self.issuers.get(item.decision.district) or self.first

    def on_decided(self, event: Decided) -> None:
        """Handler of :class:`~hub.events.Decided`: publish a ``publish`` decision now, not at the idle check."""
        if event.decision in ("publish", decide_canary.DECISION):
            self._wakeup.set()

    async def run(self, *, idle_s: float = 30.0) -> None:
        """Publish what is due, then wait for :meth:`on_decided` (or ``idle_s``); a batch that fails as a whole
        is tried again after the wait (each failed decision is retried with its own backoff)."""
        async with asyncio.TaskGroup() as group:
            group.create_task(keep_up(self.fan_out, self._chunks, idle_s=idle_s, what="fan-out", logger=log))
            await keep_up(self._publish_all, self._wakeup, idle_s=idle_s, what="publishing", logger=log)

    async def fan_out(self) -> int:
        """Write the fan-outs' chunks not yet written (most urgent first, one transaction each, so a publication
        gets in between), waking the workers after each; also what a restart resumes. Returns rows written."""
        written, chunks, started = 0, 0, time.perf_counter()
        while (done := await (self.store.run if self._express else self.store.run_bulk)(
                fanout.step, self.store.store)) is not None:
            written, chunks = written + done.inserted, chunks + 1
            self._express = self._express and done.priority <= EXPRESS_PRIORITY  # chunks come most urgent first
            if done.inserted:
                self.events.publish(Queued(frozenset((done.channel,))))
        if chunks:
            log.info("fan-out: %d rows written in %d chunks, %.0f ms", written, chunks,
                     (time.perf_counter() - started) * 1000)
        return written

    async def _publish_all(self) -> None:
        while await self.publish_pending():
            pass
        try:  # after the warnings, and never in their way: a canary that cannot be queued shows as late or silent
            await self.queue_canaries()
        except Exception:  # noqa: BLE001 - taken up again at the next wake (every round wakes it)
            log.exception("queueing canaries failed; tried again at the next wake-up")

    async def queue_canaries(self) -> int:
        """The publish step of the hub's canaries (:func:`hub.publish.canary.queue_due`): their probes are queued,
        nothing is published. Each round queued goes on the bus (the canary watch sends its live-stream probe, the
        history log records it). Returns the rounds queued."""
        rounds = await self.store.run(canary.queue_due, self.store.store, now=self.clock())
        for done in rounds:
            channels = frozenset(p.channel for p in done.probes if p.channel != "sse")
            log.info("canary alert %s: %d probe(s) queued", done.alert_id, len(done.probes))
            if channels:
                self.events.publish(Queued(channels))
            self.events.publish(done)
        return len(rounds)

    async def publish_pending(self) -> int:
        """Publish one batch of due decisions, each on its own: one that raises is recorded as failed on its
        decision (reason, attempts, next try with backoff) and the others go on. Returns how many were taken up
        (published, skipped or failed): 0 when nothing is due."""
        items = await self.store.run(unpublished, self.store.store, now=self.clock())
        for item in items:
            try:
                await self.publish(item)
            except asyncio.CancelledError:
                raise
            except Exception as err:  # noqa: BLE001 - recorded on the decision and retried; the rest go on
                await self._failed(item, err)
        return len(items)

    async def _failed(self, item: Unpublished, err: Exception) -> None:
        attempts, retry_at = await self.store.run(decisions.record_failure, self.store.store, item.alert_id,
                                                  "publish", f"{type(err).__name__}: {err}", now=self.clock(),
                                                  district=item.decision.district)
        self.failed += 1
        if self.metrics is not None:
            self.metrics.failures.labels("publish").inc()
        log.error("publishing alert %s (%s/%s) failed (attempt %d), retried at %s: %r", item.alert_id,
                  item.alert.sender, item.alert.identifier, attempts, utc_iso(retry_at), err,
                  exc_info=attempts == 1)

    async def publish(self, item: Unpublished) -> Publication | None:
        status = item.alert.status.value
        if status not in ("Actual", "Exercise"):
            log.warning("alert %s: status %s is never published; decision ignored", item.alert_id, status)
            await self.store.run(_mark_skipped, self.store.store, item, f"status {status}")
            return None
        started = time.perf_counter()
        previous = await self.store.read(publications.latest, self.store.store,
                                         self.issuer(item).thread(item.thread_id))
        plan = await asyncio.to_thread(self._plan, item, previous)
        planned = time.perf_counter()
        try:  # one writer job: the check for a newer version and the publication
            done = await self.store.run(self._write, self.store.store, plan)
        except AlreadyPublished:
            log.info("alert %s was published by another node meanwhile", item.alert_id)
            return None
        if isinstance(done, str):  # arrived late (out of order, a replay): never over a newer version
            log.warning("alert %s (%s/%s) was sent before %s, already published in its thread: not published",
                        item.alert_id, item.alert.sender, item.alert.identifier, done)
            return None
        pub, counts = done
        written = time.perf_counter()
        self.published += 1
        log.info("published %s v%d (%s, %s) for alert %s: %s (targeting %.0f ms, writing %.0f ms)", pub.thread,
                 pub.version, pub.msg_type, pub.severity, item.alert_id,
                 ", ".join(f"{k} {v}" for k, v in counts.items()) or "no deliveries",
                 (planned - started) * 1000, (written - planned) * 1000)
        # the publication is committed: the bus never raises, and workers and streams catch up from the store
        if counts:
            # an Extreme's chunks are written in the urgent lane, not behind the storm's delivery work
            self._express = self._express or priority(pub.severity, pub.urgency) <= EXPRESS_PRIORITY
            self.events.publish(Queued(frozenset(counts)))
            self._chunks.set()
        self.events.publish(Published(pub))
        return pub

    async def expire_boards(self) -> int:
        """Scheduled: update the boards that show a warning that has just expired (see :func:`expire_boards`)."""
        counts = await self.store.run_bulk(expire_boards, self.store.store)
        if counts:
            log.info("warnings expired on boards: %s", ", ".join(f"{k} {v}" for k, v in counts.items()))
            self.events.publish(Queued(frozenset(counts)))
        return sum(counts.values())

    # -- targeting (in a thread: geometry) -----------------------------------------------------------------------

    def _plan(self, item: Unpublished, previous: Publication | None = None) -> Plan:
        """Whom it reaches, and the publication itself as it follows ``previous`` (read just before): both are
        CPU work (geometry, serialising, signing) kept off the writer, which only checks and writes."""
        ruleset = self.live.current
        geo = ruleset.geo if ruleset is not None else None
        now = self.clock()
        issuer = self.issuer(item)
        aud = recipients(geo, self.index, issuer.boards, issuer.webhooks, item.alert, item.decision,
                         district=issuer.ars, shapes=ruleset.geometry(item.alert) if ruleset is not None else (),
                         measure=False, now=now, within=issuer.within)
        issued = self._issue(item, previous, now)
        return Plan(item, aud.area_lonlat, fanout.prepare(aud.push), aud.boards, aud.webhooks, issuer,
                    push=aud.push_on, after=previous.version if previous is not None else None,
                    encoded=publications.encode(issued, aud.area_lonlat, self.signers.get(issuer.ars)))

    def _issue(self, item: Unpublished, previous: Publication | None, now: datetime) -> Alert:
        issuer = self.issuer(item)
        return publications.issue(item.alert, sender=issuer.sender, district=issuer.ars,
                                  thread=issuer.thread(item.thread_id),
                                  version=(previous.version + 1) if previous else 1, previous=previous,
                                  severity=item.decision.severity, now=now, sender_name=issuer.sender_name)

    # -- the one transaction ----------------------------------------------------------------------------------------

    def _write(self, store: Store, plan: Plan) -> tuple[Publication, dict[str, int]] | str:
        """Publish the plan in one transaction; or, when a version of the thread sent after it is published
        already, mark the decision skipped and return that version's identifier (I4 of issue 17)."""
        item, d = plan.item, plan.item.decision
        issuer = self.issuer(item)
        thread = issuer.thread(item.thread_id)
        now = self.clock()
        now_ms = publications.ms(now)
        with store.transaction() as conn:
            if (newer := _passed_by(store, item)) is not None:
                _mark_skipped(store, item, f"sent before the published version {newer}")
                return newer
            # under the store writer's lock: another decide node (hub.cluster) may have published it meanwhile
            if conn.execute("SELECT 1 FROM publications WHERE source_thread=? AND district=? AND source_alert>=?"
                            " LIMIT 1", (item.thread_id, d.district, item.alert_id)).fetchone() is not None:
                raise AlreadyPublished(item.alert_id)
            decisions.clear_failure_in(conn, item.alert_id, district=d.district)
            prev_row = conn.execute("SELECT max(version) FROM publications WHERE thread=?", (thread,)).fetchone()
            latest = prev_row[0] if prev_row and prev_row[0] else None
            previous = publications.latest(store, thread) if latest else None
            # issued in the plan, unless another version was published in between (then issued again here)
            encoded = plan.encoded if plan.after == latest else None
            issued = encoded.alert if encoded is not None else self._issue(item, previous, now)
            channels = effective_channels(d.channels, d.audiences, item.alert.scope.value)
            if d.decision != "publish" and previous is not None:  # a Cancel the rules did not route
                channels = previous.channels
            elif issued.msg_type.value == "Cancel" and previous is not None:
                # a Cancel is shown wherever the warning it ends was shown (and nowhere else it was not)
                channels = tuple(dict.fromkeys((*channels, *previous.channels)))
            pub = publications.insert(conn, issued, thread=thread, version=(previous.version + 1) if previous else 1,
                                      source_thread=item.thread_id, source_alert=item.alert_id,
                                      push=d.push, channels=channels, regions=d.regions,
                                      area=plan.area_lonlat, now_ms=now_ms, signer=self.signers.get(issuer.ars),
                                      encoded=encoded, district=d.district)
            rows = self._rows(conn, pub, plan, now_ms)
            if pub.msg_type == "Cancel":
                outbox.withdraw_in(conn, thread, below_publication=pub.id, now_ms=now_ms)
                fanout.drop_in(conn, thread, below_publication=pub.id)
            outbox.enqueue_in(conn, rows, now_ms=now_ms)
            pushed = self._enqueue_push(conn, pub, plan, now_ms, issuer) if pub.msg_type != "Cancel" else 0
        counts: dict[str, int] = {"push": pushed} if pushed else {}
        for r in rows:
            counts[r.channel] = counts.get(r.channel, 0) + 1
        return pub, counts

    @staticmethod
    def _enqueue_push(conn: Any, pub: Publication, plan: Plan, now_ms: int, issuer: issuers.Issuer) -> int:
        """One push row per matched subscription still stored, host taken from its endpoint: the first chunk in
        this transaction, the rest by :meth:`fan_out` (returns rows written now and to be written)."""
        prefix = issuer.push_prefix(pub.identifier, pub.source_alert)
        earlier = 0
        if pub.all_clear and plan.push:
            # the all-clear goes to everyone who was warned, whatever their minimum severity or place now
            earlier = outbox.enqueue_select_in(
                conn, "SELECT DISTINCT recipient, host FROM outbox WHERE thread=? AND channel='push'"
                " AND publication_id<? AND state IN ('done', 'inflight')", (pub.thread, pub.id),
                key_prefix=prefix, publication_id=pub.id, thread=pub.thread, channel="push",
                priority=priority(pub.severity, pub.urgency), not_after_ms=pub.expires_ms, now_ms=now_ms).inserted
        if not plan.push_recipients.total:
            return earlier
        # the first chunk now, the rest in priority chunks after the commit (hub.deliver.fanout)
        job = fanout.Job(pub.id, pub.thread, prefix, priority(pub.severity, pub.urgency),
                         pub.expires_ms)
        now, later = fanout.start_in(conn, job, plan.push_recipients, now_ms=now_ms)
        return earlier + now + later

    def _rows(self, conn: Any, pub: Publication, plan: Plan, now_ms: int) -> list[outbox.NewDelivery]:
        prio = priority(pub.severity, pub.urgency)
        not_after = pub.expires_ms
        rows = []

        push = plan.issuer.push_prefix(pub.identifier, pub.source_alert)

        def row(channel: str, recipient: str, host: str = "") -> outbox.NewDelivery:
            key = f"{push}{recipient}" if channel == "push" else f"{pub.identifier}/{channel}/{recipient}"
            return outbox.NewDelivery(key, pub.id, pub.thread, channel, recipient, host, prio, not_after)

        if pub.msg_type == "Cancel":
            # who had an earlier version (or has it in flight) hears that it is over
            had = conn.execute("SELECT DISTINCT channel, recipient, host FROM outbox WHERE thread=?"
                               " AND publication_id<? AND state IN ('done', 'inflight')",
                               (pub.thread, pub.id)).fetchall()
            return [row(channel, recipient, host) for channel, recipient, host in had]
        for b in plan.boards:
            rows.append(row(BOARD_CHANNELS[b.kind], b.id, b.host if b.kind == "mqtt" else _host(b.url or "")))
        for h in plan.webhooks:
            rows.append(row("webhooks", h.id, _host(h.url)))
        return rows


BOARD_EXPIRY_LOOKBACK = timedelta(days=1)


def expire_boards(store: Store, *, now_ms: int | None = None) -> dict[str, int]:
    """Queue a board update for every board that showed a warning whose newest version has expired (within the
    last day), once per version and board (the key says so): the board then shows the next most urgent warning
    in force, or clears. Returns rows queued per channel."""
    now = publications.ms(datetime.now(UTC)) if now_ms is None else now_ms
    since = now - int(BOARD_EXPIRY_LOOKBACK.total_seconds() * 1000)
    rows = store.conn.execute(
        "SELECT DISTINCT p.id, p.identifier, p.thread, p.severity, p.urgency, o.channel, o.recipient, o.host"
        " FROM publications p JOIN outbox o ON o.thread = p.thread AND o.channel IN ('boards-mqtt', 'boards-http')"
        " AND o.state IN ('done', 'inflight')"
        " WHERE p.expires_ms <= ? AND p.expires_ms > ? AND p.msg_type != 'Cancel'"
        " AND p.version = (SELECT max(q.version) FROM publications q WHERE q.thread = p.thread)",
        (now, since)).fetchall()
    batch = [outbox.NewDelivery(f"{identifier}/expired/{channel}/{board}", pub_id, thread, channel, board, host,
                                priority(severity, urgency), None)
             for pub_id, identifier, thread, severity, urgency, channel, board, host in rows]
    if not batch:
        return {}
    inserted = outbox.enqueue(store, batch, now_ms=now).inserted
    counts: dict[str, int] = {}
    if inserted:
        for r in batch:
            counts[r.channel] = counts.get(r.channel, 0) + 1
    return counts


def _mark_skipped(store: Store, item: Unpublished, reason: str) -> None:
    """Record that a publish decision was not published (status not Actual/Exercise, or passed by a newer version),
    so it is not retried."""
    with store.transaction() as conn:
        conn.execute("UPDATE decisions SET decision='suppress', why=why || '; not published: ' || ?"
                     " WHERE alert_id=? AND district=?", (reason, item.alert_id, item.decision.district))


def _passed_by(store: Store, item: Unpublished) -> str | None:
    """The CAP identifier of a version of the item's thread that was sent after it and is already published, or
    None. Versions are published in the order they arrive; one that arrives after a newer one (out of order, or
    replayed: an Alert after its Update or Cancel) must not be published over it (I4 of issue 17)."""
    row = store.conn.execute(
        "SELECT a.identifier FROM publications p JOIN alerts a ON a.id = p.source_alert"
        " WHERE p.source_thread = ? AND p.district = ? AND a.sent_utc > (SELECT sent_utc FROM alerts WHERE id = ?)"
        " ORDER BY a.sent_utc DESC LIMIT 1", (item.thread_id, item.decision.district, item.alert_id)).fetchone()
    return str(row[0]) if row else None


def _host(url: str) -> str:
    try:
        return urlsplit(url).netloc.lower()
    except ValueError:
        return ""


# -- what the channels send (read at delivery time) ---------------------------------------------------------------


def latest_by_thread(store: Store, threads: Iterable[str]) -> dict[str, Publication]:
    """The newest publication of each thread."""
    names = sorted(set(threads))
    out: dict[str, Publication] = {}
    for i in range(0, len(names), 500):
        part = names[i:i + 500]
        rows = store.conn.execute(
            "SELECT p.id FROM publications p JOIN (SELECT thread, max(version) v FROM publications"
            f" WHERE thread IN ({','.join('?' * len(part))}) GROUP BY thread) m ON m.thread=p.thread AND m.v=p.version",
            part).fetchall()
        for pub in publications.many(store, [r[0] for r in rows]).values():
            out[pub.thread] = pub
    return out


def push_payload(pub: Publication, key: str, languages: Sequence[str], base_url: str = "") -> bytes:
    """The JSON the service worker shows, within what one push record carries (texts shortened if needed).

    Its words (severity, state, exercise marker: ``word`` and ``labels``) are in the subscription's first language
    the hub has (``uiLang``; German when it has none of them); the warning's own texts (``lang``) in that language
    when the warning carries it, else in the subscription's next language it carries, else as every page reads it
    (:func:`~hub.i18n.languages.reading_order`: English before German for readers of the seven other languages),
    and then ``translated`` is false and ``labels.untranslated`` says so. The link opens the page in ``uiLang``."""
    ui = notify.reader_language(languages)
    n = pub.notice(list(dict.fromkeys([ui, *languages, *reading_order(ui)])))
    translated = code_of(n.language) == ui
    body = (n.instruction or n.description)[:600]
    area = n.area_desc[:200]
    url = f"{base_url}/warnungen/{pub.thread}" + (f"?lang={ui}" if ui != SOURCE.code else "")
    doc = {"key": key, "thread": pub.thread, "version": pub.version, "msgType": pub.msg_type, "status": pub.status,
           "severity": pub.severity, "word": labels.severity_word(pub.severity, ui),
           "urgency": pub.urgency, "event": n.event, "headline": n.headline,
           "body": body, "area": area, "sender": n.sender_name[:120], "lang": n.language, "uiLang": ui,
           "translated": translated, "labels": notify.push_labels(ui, translated=translated),
           "allClear": n.all_clear, "sent": pub.sent.isoformat(),
           "expires": pub.expires.isoformat() if pub.expires else None, "url": url}
    named = None if translated else event_names.of_event(n.event, n.event_codes, ui)
    if named is not None and named[0] != n.event:  # what happened, in the reader's language, from the codes
        doc["eventName"] = named[0]
    raw = json.dumps(doc, ensure_ascii=False, separators=(",", ":")).encode()
    while len(raw) > PUSH_PAYLOAD_MAX and (body or area):
        body, area = body[: len(body) // 2], area[: len(area) // 2]
        doc["body"], doc["area"] = body, area
        raw = json.dumps(doc, ensure_ascii=False, separators=(",", ":")).encode()
    return raw
