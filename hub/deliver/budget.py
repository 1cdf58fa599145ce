"""A push budget per person (issue 17 §1): within a window (``[push] budget_window_min``) a subscription gets at
most ``budget_pushes`` warning pushes; what would exceed it is coalesced into one summary push ("3 neue Warnungen
für Ihre Orte", opening the start page), sent when the window allows another push.

The rules (applied before: an Update they find insignificant queues no push) and threading (copies of one incident
from several sources are one thread, one row per person) have already kept the noise out; the budget is the last
brake, applied by the push channel at delivery time (:class:`BudgetedChannel` wraps it), so that the outbox's
priority order decides which warnings a person gets first when many are queued at once.

- One slot of the budget is kept for an Extreme: until one came in the window, warnings below Extreme get
  ``budget_pushes - 1`` pushes (at least one); an Extreme (by the publication's severity; an Immediate Severe
  warning is not one) always gets through and counts. So in a storm a person gets at most ``budget_pushes``
  pushes per window unless several Extremes arrive.
- A row over the budget ends ``coalesced`` with its summary row's key as its reason; the summary row (thread and
  key ``summary:<subscription>/<due ms>``) is queued, due when the oldest push counted leaves the window. Rows
  coalesced until it is sent join it; its payload counts them. The summary counts as a push of its window.
- Test pushes (:mod:`hub.publish.testpush`) and the control room's canaries (:mod:`hub.publish.canary`) pass and
  never count.
- A row counted once (by its key) is not counted again when it is retried or sent again after a restart.

The state is in memory, per process (cheap at 1M subscriptions: a few integers per person pushed in the last window,
swept as they age); a hub on several nodes shares it with issue 16. After a restart it is rebuilt from the outbox
(:func:`recent`): the push rows done within the window, the queued summaries and how many rows each holds.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from collections.abc import Awaitable, Callable, Collection, Sequence
from dataclasses import dataclass, field
from typing import Self

from hub.deliver.outbox import stamp_ms
from hub.i18n.languages import SOURCE
from hub.ports import Channel, Delivery, Outcome, PushTarget
from hub.publish import canary, notify, testpush
from hub.store.db import AsyncStore, Store

log = logging.getLogger("warnhub.budget")

SUMMARY = "summary:"
SUMMARY_PRIORITY = 2
"""After Extreme warnings, with Immediate Severe ones (hub.publish.pipeline.priority)."""
SUMMARY_TTL_MS = 3_600_000
"""A summary the push service could not take within an hour after it was due is of no use any more."""


def is_summary(thread: str) -> bool:
    return thread.startswith(SUMMARY)


@dataclass(slots=True)
class _Person:
    sent: list[tuple[int, str, bool]] = field(default_factory=list)
    """(when, key, an Extreme) of the pushes counted in the window, oldest first."""
    summary: str | None = None
    """The key of the queued summary rows over the budget join."""
    held: int = 0
    """Rows coalesced into that summary."""


@dataclass(frozen=True, slots=True)
class Summary:
    key: str
    recipient: str
    host: str
    due_ms: int


@dataclass(frozen=True, slots=True)
class Judged:
    send: list[Delivery]
    coalesced: dict[int, str]
    """Row id -> the summary's key."""
    summaries: list[Summary]
    """New summary rows to queue (before the coalesced rows are recorded)."""


class PushBudget:
    def __init__(self, window_ms: int, pushes: int) -> None:
        self.window_ms = window_ms
        self.pushes = pushes
        self._people: dict[str, _Person] = {}
        self._sending: dict[str, int] = {}
        """Summary key -> rows it stands for, from its judging until the push service answered (its payload)."""
        self._swept_ms = 0

    def hold(self, counts: dict[str, int]) -> None:
        """More rows (per recipient) joined their summaries in bulk (:func:`coalesce_queued`)."""
        for recipient, n in counts.items():
            person = self._people.get(recipient)
            if person is not None and person.summary is not None:
                person.held += n

    def over(self, recipients: Collection[str]) -> dict[str, str]:
        """Of these people, those over the budget, with their summary's key."""
        return {r: p.summary for r in recipients if (p := self._people.get(r)) is not None and p.summary is not None}

    def held(self, summary_key: str, recipient: str) -> int:
        """Rows coalesced into a summary (for its payload)."""
        if summary_key in self._sending:
            return self._sending[summary_key]
        person = self._people.get(recipient)
        return person.held if person is not None and person.summary == summary_key else 0

    def judge(self, batch: Sequence[Delivery], now_ms: int, extreme: Collection[int] = ()) -> Judged:
        """Which rows of a push batch to send, which to coalesce (rows in order; the outbox claimed them by
        priority); ``extreme``: the publications among them whose severity is Extreme."""
        self._sweep(now_ms)
        send: list[Delivery] = []
        coalesced: dict[int, str] = {}
        summaries: list[Summary] = []
        for d in batch:
            if testpush.is_test(d.thread) or canary.is_canary(d.thread):  # neither is a warning to a person
                send.append(d)
                continue
            person = self._people.setdefault(d.recipient, _Person())
            person.sent = [s for s in person.sent if s[0] > now_ms - self.window_ms]
            if any(s[1] == d.key for s in person.sent):
                send.append(d)  # counted already: a retry, or sent again after a restart
            elif is_summary(d.thread):
                person.sent.append((now_ms, d.key, False))
                if person.summary == d.key:
                    self._sending[d.key] = person.held
                    person.summary, person.held = None, 0
                send.append(d)
            elif d.publication_id in extreme or (person.summary is None
                                                 and len(person.sent) < (limit := self._limit(person))):
                person.sent.append((now_ms, d.key, d.publication_id in extreme))
                send.append(d)
            else:
                if person.summary is None:  # a pending summary takes the next free slot: rows join it meanwhile
                    due = person.sent[len(person.sent) - limit][0] + self.window_ms
                    person.summary = f"{SUMMARY}{d.recipient}/{due}"
                    summaries.append(Summary(person.summary, d.recipient, d.host, due))
                person.held += 1
                coalesced[d.id] = person.summary
        return Judged(send, coalesced, summaries)

    def completed(self, rows: Sequence[Delivery], at_ms: int) -> None:
        """The push service has answered for these rows: their pushes count from now (the receiver has them
        by now; a summary due a window later can never land within one window of them)."""
        for d in rows:
            self._sending.pop(d.key, None)
            person = self._people.get(d.recipient)
            if person is not None:
                person.sent = sorted((at_ms if k == d.key else t, k, x) for t, k, x in person.sent)

    def due(self, recipient: str, now_ms: int) -> int:
        """When the window allows the next push below Extreme (a summary) for this person."""
        person = self._people.get(recipient)
        if person is None:
            return now_ms
        limit = self._limit(person)
        return now_ms if len(person.sent) < limit else person.sent[len(person.sent) - limit][0] + self.window_ms

    def _limit(self, person: _Person) -> int:
        """Pushes below Extreme allowed now: one slot is kept for an Extreme until one has come in the window."""
        return self.pushes if any(s[2] for s in person.sent) else max(1, self.pushes - 1)

    def _sweep(self, now_ms: int) -> None:
        """Forget people with nothing counted in the window and no summary (at most once per window)."""
        if now_ms - self._swept_ms < self.window_ms:
            return
        self._swept_ms = now_ms
        since = now_ms - self.window_ms
        for rid in [r for r, p in self._people.items() if p.summary is None and all(s[0] <= since for s in p.sent)]:
            del self._people[rid]

    def restore(self, sent: Sequence[tuple[str, int, str, bool]], summaries: Sequence[tuple[str, str, int]]) -> None:
        """Rebuild from the outbox: (recipient, finished_ms, key, an Extreme) of push rows done in the window, and
        (recipient, summary key, rows held) of queued summaries."""
        for recipient, at, key, top in sorted(sent, key=lambda r: r[1]):
            self._people.setdefault(recipient, _Person()).sent.append((at, key, top))
        for recipient, key, held in summaries:
            person = self._people.setdefault(recipient, _Person())
            person.summary, person.held = key, held


def recent(store: Store, window_ms: int,
           now_ms: int) -> tuple[list[tuple[str, int, str, bool]], list[tuple[str, str, int]]]:
    """What :meth:`PushBudget.restore` needs, from the outbox (one scan of the window's finished push rows)."""
    since = now_ms - window_ms
    sent = [(r, int(t), k, bool(x)) for r, t, k, x in store.conn.execute(
        "SELECT o.recipient, o.finished_ms, o.key, CASE WHEN p.severity = 'Extreme' THEN 1 ELSE 0 END"
        " FROM outbox o LEFT JOIN publications p ON p.id = o.publication_id"
        " WHERE o.channel='push' AND o.state='done' AND o.finished_ms>?"
        " AND o.thread NOT LIKE 'test:%' AND o.thread NOT LIKE 'canary:%'", (since,))]
    held = dict(store.conn.execute(
        "SELECT last_error, count(*) FROM outbox WHERE channel='push' AND state='coalesced' GROUP BY last_error"))
    summaries = [(r, k, int(held.get(k, 0))) for r, k in store.conn.execute(
        "SELECT recipient, key FROM outbox WHERE channel='push' AND state IN ('queued', 'inflight')"
        " AND thread LIKE 'summary:%'")]
    return sent, summaries


def summary_payload(key: str, n: int, languages: Sequence[str], base_url: str = "") -> bytes:
    """The summary push's JSON (marked ``summary``): how many warnings it stands for, in the subscription's
    language, opening the start page (the list of warnings in force)."""
    lang = notify.reader_language(languages)
    title = notify.texts(lang).gettext(notify.SUMMARY) % {"n": n}
    doc = {"key": key, "summary": True, "thread": key, "version": 0, "status": "Actual", "count": n, "lang": lang,
           "title": title, "url": f"{base_url}/" + (f"?lang={lang}" if lang != SOURCE.code else "")}
    return json.dumps(doc, ensure_ascii=False, separators=(",", ":")).encode()


def summary_target(d: Delivery, n: int, endpoint: str, p256dh: str, auth: str, languages: Sequence[str],
                   base_url: str = "") -> PushTarget:
    """The push of a summary row (for the push channel's resolver, :mod:`hub.deliver.setup`)."""
    return PushTarget(endpoint, p256dh, auth, summary_payload(d.key, n, languages, base_url), SUMMARY_TTL_MS // 1000,
                      "normal", None)


def extremes(store: Store, publication_ids: Sequence[int]) -> set[int]:
    """Which of these publications are Extreme (the budget never holds them back)."""
    return {r[0] for r in store.conn.execute(
        "SELECT id FROM publications WHERE severity='Extreme'"
        " AND id IN (SELECT CAST(value AS BIGINT) FROM json_each(?))",
        (json.dumps(list(publication_ids)),))}


_QUEUED_OF = (
    # driven from the people (x the day's publications' threads) through outbox_version: never a scan of the queue
    "WITH m AS MATERIALIZED (SELECT json_extract(value, '$[0]') AS rcpt, json_extract(value, '$[1]') AS skey,"
    " t.thread AS th FROM json_each(?1),"
    " (SELECT DISTINCT thread FROM publications WHERE created_ms > ?2) t)"
    " SELECT o.id, m.skey, o.recipient FROM m CROSS JOIN outbox o INDEXED BY outbox_version"
    " WHERE o.thread=m.th AND o.channel='push' AND o.recipient=m.rcpt AND o.state='queued'"
    " AND NOT EXISTS (SELECT 1 FROM publications p WHERE p.id=o.publication_id AND p.severity='Extreme')")
_COALESCE = ("UPDATE outbox SET state='coalesced', finished_ms=?2, last_error=r.skey, lease_until_ms=NULL FROM"
             " (SELECT json_extract(value, '$[0]') AS id, json_extract(value, '$[1]') AS skey FROM json_each(?1)) r"
             " WHERE outbox.id=CAST(r.id AS BIGINT) AND outbox.state='queued'")
LOOKBACK_MS = 86_400_000
"""Queued rows of publications of the last day join a summary at once; older ones when they are claimed."""


def coalesce_queued(store: Store, summaries: dict[str, str], now_ms: int) -> dict[str, int]:
    """The queued warning pushes (below Extreme) of people over the budget join their summaries at once, rather
    than one claim and one answer each: in a storm most of the queue is theirs. Returns rows per recipient."""
    counts: dict[str, int] = {}
    with store.transaction() as conn:
        found = conn.execute(_QUEUED_OF, (json.dumps(list(summaries.items())), now_ms - LOOKBACK_MS)).fetchall()
        if found:
            conn.execute(_COALESCE, (json.dumps([[i, k] for i, k, _ in found]), now_ms))
    for _, _, recipient in found:
        counts[recipient] = counts.get(recipient, 0) + 1
    return counts


def queue_summaries(store: Store, rows: Sequence[Summary], now_ms: int) -> None:
    """Queue summary rows, each due at its time (publication 0: no publication has it)."""
    with store.transaction() as conn:
        conn.executemany(
            "INSERT OR IGNORE INTO outbox (key, publication_id, thread, channel, recipient, host, priority,"
            " not_after_ms, next_at_ms, created_ms) VALUES (?, 0, ?, 'push', ?, ?, ?, ?, ?, ?)",
            [(s.key, s.key, s.recipient, s.host, SUMMARY_PRIORITY, s.due_ms + SUMMARY_TTL_MS,
              s.due_ms, now_ms) for s in rows])


class BudgetedChannel:
    """The push channel behind the budget: rows within it are sent by ``inner``, the others answered
    ``coalesced`` after their summary is queued."""

    def __init__(self, inner: Channel, astore: AsyncStore, budget: PushBudget, *,
                 clock: Callable[[], int] | None = None) -> None:
        self.inner = inner
        self.name = inner.name
        self.astore = astore
        self.budget = budget
        self.clock = clock or (lambda: stamp_ms(None))

    async def __aenter__(self) -> Self:
        await self.inner.__aenter__()
        sent, summaries = await self.astore.run_bulk(recent, self.astore.store, self.budget.window_ms, self.clock())
        self.budget.restore(sent, summaries)
        if sent or summaries:
            log.info("push budget: %d pushes within the window and %d queued summaries restored", len(sent),
                     len(summaries))
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.inner.__aexit__(*exc)

    async def deliver(self, batch: Sequence[Delivery]) -> Sequence[Outcome]:
        now = self.clock()
        pubs = sorted({d.publication_id for d in batch if d.publication_id})
        extreme = await self.astore.run_bulk(extremes, self.astore.store, pubs) if pubs else set()
        judged = self.budget.judge(batch, now, extreme)
        sent: Awaitable[Sequence[Outcome]] | None = self.inner.deliver(judged.send) if judged.send else None
        outcomes = dict(zip((d.id for d in judged.send), await sent if sent is not None else [], strict=True))
        done = self.clock()
        self.budget.completed(judged.send, done)
        if judged.summaries:  # due a window after the pushes just answered (their answer time, not their claim)
            due = [dataclasses.replace(s, due_ms=max(s.due_ms, self.budget.due(s.recipient, done)))
                   for s in judged.summaries]
            await self.astore.run_bulk(queue_summaries, self.astore.store, due, done)
        over = self.budget.over({d.recipient for d in batch if d.id in judged.coalesced})
        if over:
            self.budget.hold(await self.astore.run_bulk(coalesce_queued, self.astore.store, over, done))
        return [outcomes[d.id] if d.id in outcomes else Outcome.coalesced(judged.coalesced[d.id]) for d in batch]
